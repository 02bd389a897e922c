"""Selection glue: a spec from command options, one board's records, the model files to predict with, and the
candidates of a data set ranked (``perfmodel select``, ``report``, ``pipeline``)."""

from __future__ import annotations

from pathlib import Path

from perfmodel.errors import PerfmodelError
from perfmodel.workflows.load import load_long


def only_board(long_df, board: str, dataset) -> "object":
    """The records of ``board``; PerfmodelError naming the data set's boards when it has none of them."""
    boards = sorted(set(long_df["board"].astype(str))) if "board" in long_df.columns else []
    if board not in boards:
        raise PerfmodelError(f"--board {board!r}: {dataset} has no records of that board (its boards: "
                             f"{', '.join(boards) or 'none'})")
    return long_df[long_df["board"].astype(str) == board].copy()


def load_models(paths) -> list:
    """The model files ``paths``, each checked on load (:func:`perfmodel.model.load_model`)."""
    if not paths:
        return []
    try:
        from perfmodel.model import load_model
    except ImportError as exc:
        raise PerfmodelError(f"cannot load models: perfmodel.model is not available ({exc})") from None
    return [load_model(p) for p in paths]


def spec_from_options(*, max_power, max_energy, min_fps, min_top1, min_top5, max_memory, max_temp, objective,
                      weights, allow_unknown):
    """A :class:`perfmodel.select.Spec` from command options (``weights``: a string or a list option's terms)."""
    from perfmodel.select import Spec

    if weights is not None and not isinstance(weights, str):  # a list option's terms
        weights = ",".join(weights)

    return Spec.from_options(max_power=max_power, max_energy=max_energy, min_fps=min_fps, min_top1=min_top1,
                             min_top5=min_top5, max_memory=max_memory, max_temp=max_temp,
                             objective=objective.strip().lower(), weights=weights, allow_unknown=allow_unknown)


def select_from_dataset(dataset: Path, spec, *, model_paths=None, board: str | None = None, expand: bool = False):
    """The candidates of ``dataset`` (one ``board``'s; ``expand``: also the combinations not measured)
    ranked against ``spec``, figures a cell lacks predicted by the models ``model_paths``."""
    from perfmodel.data import wide_per_cell
    from perfmodel.select import candidates_from_cells, missing_reasons, rank

    long_df = load_long(dataset)
    if board is not None:
        long_df = only_board(long_df, board, dataset)
    models = load_models(model_paths)
    cand = candidates_from_cells(wide_per_cell(long_df), models=models, reasons=missing_reasons(long_df),
                                 expand=expand, dataset=dataset)
    if cand.empty:
        raise PerfmodelError(
            f"{dataset} has no framework x network x threads cells to select from"
            + (" (an ARMPM file holds benchmark workloads with power, not CNN inference cells: use it with "
               "perfmodel fit / evaluate / predict)" if str(dataset).startswith("armpm:") else ""))
    return rank(cand, spec)


def correlation(dataset: Path, target: str, features: list[str] | None, *, by: str | None = None,
                level: str = "auto"):
    """``(correlation table, level used, the table correlated)`` of ``target`` with ``features`` (default:
    event rates of the trace samples / per-image counts of the cells) in ``dataset``
    (:func:`perfmodel.report.correlate.correlation_table`); ``level`` auto: sample when the target has
    trace samples, else cell."""
    from perfmodel.data import wide_per_cell, wide_per_sample
    from perfmodel.errors import check_choice
    from perfmodel.report.correlate import correlation_table, default_features
    from perfmodel.select import join_simulated_cells, missing_reasons

    check_choice("level", level, ("auto", "sample", "cell"))
    long_df = load_long(dataset)

    def cells():
        # simulated (valgrind) cells carry the per-image counts of the timing cells they describe
        return join_simulated_cells(wide_per_cell(long_df)).frame

    if level in ("auto", "sample"):
        table = wide_per_sample(long_df).frame
        if level == "auto" and (target not in table.columns or not table[target].notna().any()):
            level, table = "cell", cells()
        else:
            level = "sample"
    else:
        table = cells()
    if target not in table.columns or not table[target].notna().any():
        why = missing_reasons(long_df).get(target)
        raise PerfmodelError(f"no {target} values in the per-{level} table of {dataset}"
                             + (f": {why}" if why else "") + "; nothing to correlate")
    if features:
        feats = list(features)
        unknown = [f for f in feats if f not in table.columns]
        if unknown:
            raise PerfmodelError(f"no column(s) {', '.join(unknown)} in the per-{level} table; known event "
                                 f"columns: {', '.join(default_features(table, level)) or 'none'}")
    else:
        feats = default_features(table, level)
    if not feats:
        raise PerfmodelError(f"no event columns to correlate with in the per-{level} table; pass --features")
    return correlation_table(table, target, feats, by=by), level, table

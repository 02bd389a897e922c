"""Prediction from each source: a data set, a CSV, a quick sample, a measured command (``perfmodel
predict``). Each source gives a wide table (:func:`dataset_samples`, :func:`csv_samples`,
:func:`command_samples`, :func:`perfmodel.workflows.quick.quick_sample_table`); :func:`prepare_samples`
attaches what the model needs beyond the measured columns and :func:`predict_samples` predicts every row."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfmodel.errors import PerfmodelError
from perfmodel.workflows import Say, silent
from perfmodel.workflows.command import command_problems, measure_command_sample
from perfmodel.workflows.fit import check_excluded
from perfmodel.workflows.load import import_report_lines, load_counted, load_table, warn_code_paths
from perfmodel.workflows.quick import long_run_from_sample, sample_image_count, sample_rel_se, simulated_columns

#: the key columns a prediction table shows, where the samples have them
KEY_COLUMNS = ("framework", "network", "threads", "workload", "freq_mhz", "cores")


def sample_only_reason(model, *, framework: str | None, network: str | None, threads: int | None, counters: str,
                       progress_regex: str | None = None, two_phase: bool = False,
                       seconds: float | None = None) -> str | None:
    """Why ``perfmodel predict --model M -- CMD`` gives the command's sample estimate instead of the model's
    prediction (None: the model applies): the model's terms cannot be supplied by a measured command, or a
    sample option was given."""
    refused = command_problems(model, framework=framework, network=network, threads=threads, counters=counters)
    if refused or progress_regex or two_phase or seconds is not None:
        return "; ".join(refused) if refused else \
            "a sample option (--seconds / --progress-regex / --two-phase) was given: sample estimate only"
    return None


def default_sensor_lag(model) -> int:
    """The sensor lag the model was trained with (``preparation.sensor_lag``, else 0)."""
    return model.preparation.sensor_lag or 0


def dataset_samples(model, dataset: str, *, counts_from: Path | None = None, simulated_from: Path | None = None,
                    table: str = "auto", sensor_lag: int | None = None, mapping: str | None = None,
                    cores: int | None = None, say: Say = silent):
    """The wide table of ``dataset`` to predict with ``model`` (``csv:PATH`` read with the mapping the model
    was fitted with unless ``mapping``); says the importer's report and, where the model uses simulated
    counts joined to timed cells, the code-path differences."""
    if sensor_lag is None:
        sensor_lag = default_sensor_lag(model)
    if mapping is None and dataset.startswith("csv:"):
        mapping = model.preparation.map
    df = load_counted(dataset, counts_from=counts_from, table=table, sensor_lag=sensor_lag,
                      simulated_from=[simulated_from] if simulated_from is not None else (),
                      mapping=mapping, cores=cores)
    lines = import_report_lines(df)
    if lines:
        say("\n".join(lines))
    if simulated_columns(model):  # counts of a simulated run joined to timed cells
        warn_code_paths(df, say)
    return df


def csv_samples(csv: Path):
    """A wide CSV: a row with an impossible or non-numeric value gets n/a and its reason, the others an
    answer."""
    return load_table(str(csv), strict=False)


def command_samples(model, command: list[str], *, images: int, counters: str, framework: str | None,
                    network: str | None, threads: int | None, timeout: float, load_command: str | None = None,
                    sensor_root: str | Path = "/"):
    """``(wide cell table, sample)`` of a measured command
    (:func:`perfmodel.workflows.command.measure_command_sample`: one whole run, the machine's state before
    and after), refused before it runs when it cannot give the model's features (:func:`command_problems`).
    The sample's own throughput gives the long-run estimate beside the model's prediction
    (:func:`perfmodel.workflows.command.command_estimate`) without running the command again."""
    from perfmodel.data import wide_per_cell

    problems = command_problems(model, framework=framework, network=network, threads=threads, counters=counters)
    if problems:
        raise PerfmodelError(f"this model cannot be applied to a measured command as asked: "
                             f"{'; '.join(problems)}")
    cs = measure_command_sample(list(command), images=images, counters=counters, framework=framework,
                                network=network, threads=threads, timeout=timeout, load_command=load_command,
                                sensor_root=sensor_root)
    return wide_per_cell(cs.records), cs


@dataclass
class PreparedSamples:
    """Samples ready for the model, the same as measured (for the training-range check), and where the
    streaming bandwidth and speed calibration came from (``notes`` of
    :func:`perfmodel.model.prepare.prepare_for_model`)."""

    df: Any
    as_measured: Any
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def bandwidth_source(self) -> str | None:
        return self.notes.get("stream_bandwidth_from")

    @property
    def speed(self) -> dict | None:
        return self.notes.get("speed_calibration")


def prepare_samples(model, df, *, dataset: str | None = None, counts_from: Path | None = None,
                    simulated_from: Path | None = None, quick_measured=None) -> PreparedSamples:
    """Refuse no samples and samples of a row class the model was fitted without, then attach the model's
    inputs beyond the measured columns. A quick sample (``quick_measured``: its table as measured) was
    prepared by :func:`~perfmodel.workflows.quick.quick_sample_table` with the calibration measured with it."""
    if df.empty:
        raise PerfmodelError("no samples to predict")
    check_excluded(model, df)
    if quick_measured is not None:
        return PreparedSamples(df, quick_measured, {})
    from perfmodel.model.prepare import prepare_for_model

    counts = None if not dataset else [counts_from] if counts_from is not None else [dataset] + (
        [simulated_from] if simulated_from is not None else [])
    df, as_measured, notes = prepare_for_model(df, model, dataset=dataset, counts_from=counts)
    return PreparedSamples(df, as_measured, notes)


@dataclass
class Prediction:
    """Every row's prediction: ``table`` holds the key columns, ``pred``, ``lo``, ``hi`` and, where there
    are any, ``not_evaluated`` (why a row has no prediction), ``outside_training`` and ``measured``."""

    table: Any
    keys: list[str]
    failed: dict = field(default_factory=dict)
    outside: Any = None
    rows: int = 0

    @property
    def n_outside(self) -> int:
        return 0 if self.outside is None else int((self.outside != "").sum())

    def first_outside(self) -> str:
        return self.outside[self.outside != ""].iloc[0]


def predict_samples(model, prepared: PreparedSamples, *, alpha: float = 0.05, provenance: str | None = None,
                    source: Any = None) -> Prediction:
    """Predict every row of ``prepared`` together, and one by one where that fails (a row that cannot be
    predicted gets NaN and its reason); ``source`` names the input in the error when no row can be."""
    import pandas as pd

    from perfmodel.data.provenance import as_table
    from perfmodel.model.prepare import predict_each

    table = as_table(prepared.df)
    df = table.frame
    bad_rows = dict(table.meta.get("row_problems") or {})
    if bad_rows and len(bad_rows) == len(df):
        raise PerfmodelError(f"no row of {source} can be predicted: {'; '.join(list(bad_rows.values())[:5])}")
    good = table.with_frame(df.drop(index=list(bad_rows))) if bad_rows else table
    pred, failed = predict_each(model, good, alpha=alpha, provenance=provenance)
    failed = {**failed, **bad_rows}
    pred = pred.reindex(df.index)  # rows that could not be predicted: NaN, with the reason below
    keys = [c for c in KEY_COLUMNS if c in df.columns]
    out = pd.concat([df[keys].reset_index(drop=True), pred.reset_index(drop=True)], axis=1)
    if failed:
        out["not_evaluated"] = [failed.get(i, "") for i in df.index]
    outside = model.out_of_range(prepared.as_measured).reset_index(drop=True)  # the counts as measured
    if (outside != "").any():
        out["outside_training"] = outside
    if model.target in df.columns:
        out["measured"] = pd.to_numeric(df[model.target], errors="coerce").to_numpy()
    return Prediction(table=out, keys=keys, failed=failed, outside=outside, rows=len(df))


def quick_sample_summary(df, counts_note: str, *, framework: str, network: str, threads: int,
                         seconds: float | None, traces: list[Path] | None, alpha: float) -> dict[str, Any]:
    """What a quick sample measured beside the model's prediction: its own throughput, where its counts came
    from, and its throughput x the long-run / start ratio of long-run traces."""
    import pandas as pd

    from perfmodel.data.provenance import frame_of

    df = frame_of(df)
    fps = pd.to_numeric(df["throughput_fps"], errors="coerce") if "throughput_fps" in df else None
    measured = float(fps.iloc[0]) if fps is not None and len(fps) else None
    return {"framework": framework, "network": network, "threads": threads, "images": sample_image_count(df),
            "seconds": seconds,
            "measured_fps": measured, "counts_from": counts_note,
            "long_run_from_sample": (long_run_from_sample(measured, framework, threads, traces, alpha=alpha,
                                                          quick_rel_se=sample_rel_se(df))
                                     if measured else {"reason": "the sample has no throughput"}),
            "note": "pred = the counter model's long-run estimate (from counts, not from the sample's "
                    "timing); measured_fps = this short sample's own throughput; long_run_from_sample "
                    "= measured_fps x the long-run / start ratio of long-run traces"}


def prediction_payload(model, prediction: Prediction, prepared: PreparedSamples, *, alpha: float,
                       quick: dict | None = None) -> dict[str, Any]:
    """The ``perfmodel predict --json`` payload."""
    payload = {"target": model.target, "alpha": alpha, "rows": prediction.table.to_dict("records")}
    if prepared.bandwidth_source is not None:
        payload["stream_bandwidth_from"] = prepared.bandwidth_source
    if prepared.speed is not None:
        payload["speed_calibration"] = prepared.speed
    if quick is not None:
        payload["quick_sample"] = quick
    return payload

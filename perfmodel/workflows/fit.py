"""Fit and evaluate on a data set: the table a model is fitted on (named term sets, ``--exclude``,
``--dropna``, the inputs beyond the measured columns) and what the model file keeps (its typed preparation,
its metadata)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfmodel.errors import PerfmodelError
from perfmodel.workflows import Say, silent
from perfmodel.workflows.load import IMPORT_PREFIXES, import_report_lines, load_counted, load_table, warn_code_paths

if TYPE_CHECKING:
    from perfmodel.model.schema import Preparation

TERM_SETS = ("throughput", "throughput-levels", "throughput-macs", "throughput-additive", "throughput-stream",
             "throughput-stream-l1d", "throughput-l2")


def named_terms(df, name: str):
    """``(df, features)``: the features of a named term set (see ``perfmodel fit --terms``) on ``df`` (a
    :class:`~perfmodel.data.Table` or a DataFrame; it gains a ``macs`` column for ``throughput-macs``)."""
    from perfmodel.errors import check_choice
    from perfmodel.model.features import (L2_OVERFLOW_COLUMN, additive_throughput_terms, attach_macs,
                                          per_thread_terms, throughput_terms)

    from perfmodel.data.provenance import frame_of

    check_choice("term set", name, TERM_SETS)
    frame = frame_of(df)
    if name == "throughput-additive":
        return df, additive_throughput_terms(frame)
    if name == "throughput-stream":  # needs fc_stream_ms (with_stream_time)
        return df, additive_throughput_terms(frame) + ["fc_stream_ms"]
    if name == "throughput-stream-l1d":  # + L1-d refills, one cost per thread count
        return df, additive_throughput_terms(frame) + ["fc_stream_ms"] + per_thread_terms(frame,
                                                                                         "l1d_refills_per_image")
    if name == "throughput-l2":  # + conv_over_l2_mb (with_l2_overflow), one cost per thread count
        return df, additive_throughput_terms(frame) + ["fc_stream_ms"] + per_thread_terms(frame, L2_OVERFLOW_COLUMN)
    if name == "throughput-macs":
        df = attach_macs(df)
        return df, throughput_terms(frame_of(df), work="macs")
    return df, throughput_terms(frame, threads_model="levels" if name.endswith("levels") else "log")


def exclude_rows(table, rules: list[str]):
    """``(table without the rows matching any COLUMN=VALUE rule, number of rows removed)``; the kind of table
    it is given (a :class:`~perfmodel.data.Table` keeps its provenance)."""
    from perfmodel.data.provenance import as_table, frame_of, like
    from perfmodel.model.features import _key_str

    df = frame_of(table)
    keep = None
    for rule in rules:
        col, sep, value = rule.partition("=")
        if not sep or not col:
            raise PerfmodelError(f"--exclude takes COLUMN=VALUE (e.g. framework=tensorflow), got {rule!r}")
        if col not in df.columns:
            raise PerfmodelError(f"--exclude {rule}: the data has no column {col!r}")
        hit = _key_str(df[col]) == value
        if not hit.any():
            seen = ", ".join(sorted(map(str, _key_str(df[col]).unique()))[:12])
            raise PerfmodelError(f"--exclude {rule}: no row has {col}={value} (values: {seen})")
        keep = ~hit if keep is None else keep & ~hit
    out = as_table(table).rows(keep, reset_index=True)
    if out.empty:
        raise PerfmodelError(f"--exclude {' '.join(rules)} leaves no data")
    return like(table, out), int((~keep).sum())


def check_excluded(model, df) -> None:
    """Refuse samples that match a row class the model was fitted without (``perfmodel fit --exclude``)."""
    from perfmodel.data.provenance import frame_of
    from perfmodel.model import IncompatibleSampleError
    from perfmodel.model.features import _key_str

    rules = model.preparation.excluded.rules if model.preparation.excluded else []
    df = frame_of(df)
    for rule in rules:
        col, _, value = str(rule).partition("=")
        if col in df.columns and (_key_str(df[col]) == value).any():
            raise IncompatibleSampleError(
                f"the model was fitted without {rule} (excluded: {', '.join(rules)}); it cannot predict it")


def drop_incomplete(table, target: str, features: list[str] | None):
    """``(table without rows lacking the target or a feature's columns, labels of the dropped rows)``; the
    kind of table it is given."""
    import numpy as np
    import pandas as pd

    from perfmodel.data.provenance import as_table, frame_of, like
    from perfmodel.model.features import feature_frame

    df = frame_of(table)
    ok = np.isfinite(pd.to_numeric(df[target], errors="coerce").to_numpy(dtype="float64")) \
        if target in df.columns else np.ones(len(df), dtype=bool)
    if features:
        ok &= np.isfinite(feature_frame(df, features, allow_nan=True).to_numpy(dtype="float64")).all(axis=1)
    label = df["cell_id"].astype(str) if "cell_id" in df.columns else pd.Series(df.index.astype(str), index=df.index)
    dropped = list(label[~ok])
    return like(table, as_table(table).rows(ok, reset_index=True)), dropped


def check_features_exist(df, feats) -> None:
    """Refuse feature names that cannot be computed on ``df``, naming each with the reason."""
    from perfmodel.data.provenance import frame_of
    from perfmodel.model.features import compute_feature

    df = frame_of(df)
    bad = []
    for f in feats or []:
        try:
            compute_feature(df, f)
        except Exception as exc:  # noqa: BLE001 - FeatureError or any failure: the user's feature name
            bad.append(f"{f} ({exc})")
    if bad:
        raise PerfmodelError("unknown or uncomputable feature(s): " + "; ".join(bad))


def check_fit_output(dataset: str, output: Path, *, force: bool) -> None:
    """Refuse a model file path that is a folder, the data being fitted, or an existing file without
    ``force``."""
    if output.exists() and output.is_dir():
        raise PerfmodelError(f"--out {output} is a folder; give a file name such as {output / 'model.json'}")
    src = None if dataset.startswith(IMPORT_PREFIXES) else Path(dataset)
    if src is not None and src.exists() and output.exists() and output.resolve() == src.resolve():
        raise PerfmodelError(f"--out {output} is the data being fitted: give another file name")
    if output.exists() and not force:
        raise PerfmodelError(f"--out {output} exists: give another name, or --force to replace it")


# -- the sensor lag of a power trace ----------------------------------------------------------------

AUTO_LAG = "auto"


def parse_sensor_lag(value: int | str | None) -> int | str:
    """``--sensor-lag``: ``auto`` (the default) or a whole number of samples >= 0."""
    if value is None or (isinstance(value, str) and value.strip().lower() == AUTO_LAG):
        return AUTO_LAG
    try:
        lag = int(str(value).strip())
    except ValueError:
        raise PerfmodelError(f"--sensor-lag must be auto or a whole number >= 0, got {value!r}") from None
    if lag < 0:
        raise PerfmodelError(f"--sensor-lag must be auto or a whole number >= 0, got {value!r}")
    return lag


def lagged_trace(dataset: str, mapping: str | None = None) -> bool:
    """Is ``dataset`` a trace of samples whose sensors may lag the counters (``armpm:PATH``, ``csv:PATH``)?
    Powmon rows are averages of many samples (no lag); data set folders have no sensor trace."""
    return dataset.startswith(("armpm:", "csv:")) or (mapping is not None and not dataset.startswith("powmon:"))


#: ``SensorLag.scope``: where an automatic lag was chosen
ALL_ROWS = "all rows"
IN_FOLDS = "training rows of every outer fold"
#: the lag used where ``--sensor-lag auto`` cannot choose one
FALLBACK_LAG = 0


@dataclass
class SensorLag:
    """The sensor lag a command used and why: ``lag`` the one lag (None: it differs between outer folds,
    ``per_fold``), ``chosen`` whether it was chosen from the data (``--sensor-lag auto``), ``scope`` on which
    rows (:data:`ALL_ROWS` or :data:`IN_FOLDS`; None: not chosen), ``fallback`` whether ``auto`` could not
    choose one and :data:`FALLBACK_LAG` was used (the reason says why)."""

    lag: int | None
    reason: str
    chosen: bool = False
    per_fold: dict[str, int] | None = None
    detail: dict[str, Any] | None = None
    scope: str | None = None
    fallback: bool = False

    def lags(self) -> list[int]:
        return sorted(set(self.per_fold.values())) if self.per_fold else [int(self.lag or 0)]

    def text(self) -> str:
        shown = self.lag if self.lag is not None else "per fold " + ", ".join(
            f"{k}: {v}" for k, v in (self.per_fold or {}).items())
        return f"sensor lag: {shown} - {self.reason}"

    def cv_note(self) -> str | None:
        """What a CV figure must say of the lag: chosen on all the rows, not inside the folds (None: it was
        not chosen from the data, or was chosen inside every fold)."""
        if self.scope != ALL_ROWS:
            return None
        return f"sensor lag {self.lag} chosen on all rows, not re-chosen inside the folds: slightly optimistic"

    def to_dict(self) -> dict[str, Any]:
        return {"lag": self.lag, "chosen": self.chosen, "chosen_on": self.scope, "fallback": self.fallback,
                "reason": self.reason, "per_fold": self.per_fold,
                **({"correlation": self.detail["r"], "event": self.detail["event"]} if self.detail else {})}


def _lag_zero_table(dataset: str, *, table: str, mapping: str | None, cores: int | None):
    return load_table(dataset, table=table, sensor_lag=0, mapping=mapping, cores=cores)


def _fixed_lag(dataset: str, sensor_lag: int | str, mapping: str | None) -> SensorLag | None:
    """The lag without choosing: a given number, or auto where nothing lags (None: choose it)."""
    if sensor_lag != AUTO_LAG:
        return SensorLag(int(sensor_lag), "given (--sensor-lag)")
    if dataset.startswith("powmon:"):
        return SensorLag(0, "Powmon rows are averages of many samples: no lag to choose")
    if not lagged_trace(dataset, mapping):
        return SensorLag(0, "no sensor trace")
    return None


def _fallen_back(c: dict[str, Any]) -> SensorLag:
    return SensorLag(int(c["lag"]), f"auto: {c['reason']} (give --sensor-lag N to use another)", detail=c,
                     fallback=True)


def _all_rows_lag(df0, target: str, why: str) -> SensorLag:
    from perfmodel.model.lag import choose_sensor_lag

    c = choose_sensor_lag(df0, target=_lag_target(target), fallback=FALLBACK_LAG)
    if c["fallback"]:
        return _fallen_back(c)
    return SensorLag(c["lag"], f"auto, chosen on all rows{why}: {c['reason']}", chosen=True, detail=c,
                     scope=ALL_ROWS)


def fit_sensor_lag(dataset: str, sensor_lag: int | str, *, table: str = "auto", mapping: str | None = None,
                   cores: int | None = None, target: str = "power_w") -> SensorLag:
    """``perfmodel fit``'s sensor lag: the given one, or (``auto``) the lag of
    :func:`perfmodel.model.lag.choose_sensor_lag` on all the data (its within-run correlation, no model; not
    re-chosen inside the CV folds, so the fit's CV figures are slightly optimistic); :data:`FALLBACK_LAG`
    with the reason where none can be chosen."""
    fixed = _fixed_lag(dataset, sensor_lag, mapping)
    if fixed is not None:
        return fixed
    df0 = _lag_zero_table(dataset, table=table, mapping=mapping, cores=cores).frame
    return _all_rows_lag(df0, target, " (not re-chosen inside the CV folds; evaluate does that)")


def _lag_target(target: str) -> str:
    return target if target.startswith("power") else "power_w"


def evaluation_lag(dataset: str, sensor_lag: int | str, *, cv: str = "kfold", folds: int = 5, table: str = "auto",
                   mapping: str | None = None, cores: int | None = None, target: str = "power_w") -> SensorLag:
    """``perfmodel evaluate``'s sensor lag: the given one, or (``auto``) for a grouped ``cv`` (leave one
    workload / network / ... out) chosen inside every outer fold from its training groups only
    (:func:`perfmodel.model.lag.fold_sensor_lags`), the held-out rows never seen, ``lag`` None where the folds
    disagree (then every fold is evaluated at its own lag); for shuffled k-fold one lag chosen on all rows (a
    lagged table's k-fold folds are other rows, so per-fold lags cannot be pooled). :data:`FALLBACK_LAG` with
    the reason where none can be chosen (a fold whose training rows choose none: that fold)."""
    fixed = _fixed_lag(dataset, sensor_lag, mapping)
    if fixed is not None:
        return fixed
    from perfmodel.model.cv import make_splits
    from perfmodel.model.fit import scheme_group
    from perfmodel.model.lag import choose_sensor_lag, fold_sensor_lags

    df0 = _lag_zero_table(dataset, table=table, mapping=mapping, cores=cores).frame.reset_index(drop=True)
    group = scheme_group(cv)
    if not group:
        return _all_rows_lag(df0, target, " (k-fold: shuffled folds are not whole runs, and a lagged table, the "
                                          "last sample of every run dropped, shuffles into other folds, so the "
                                          "lag is not re-chosen inside them; slightly optimistic: a grouped --cv "
                                          "such as lowo chooses it inside every fold)")
    overall = choose_sensor_lag(df0, target=_lag_target(target), fallback=FALLBACK_LAG)
    if overall["fallback"]:
        return _fallen_back(overall)
    splits = make_splits(df0, group=group, n_splits=folds)
    fell_back: list[str] = []
    per_fold = fold_sensor_lags(df0, splits, group=group, target=_lag_target(target), fallback=FALLBACK_LAG,
                                fell_back=fell_back)
    lags = sorted(set(per_fold.values()))
    where = f"inside every outer fold from its training {group}s only"
    if fell_back:
        where += (f" ({', '.join(fell_back)}: none can be chosen from the fold's training rows, "
                  f"{FALLBACK_LAG} used)")
    if len(lags) == 1:
        return SensorLag(lags[0], f"auto, chosen {where} (the same in all {len(per_fold)} folds); on all the data "
                         f"for reference: {overall['reason']}", chosen=True, per_fold=per_fold, detail=overall,
                         scope=IN_FOLDS)
    return SensorLag(None, f"auto, chosen {where}: they differ, so every fold is evaluated at its own lag (MAPE "
                     f"and +-10 % pooled over the folds); on all the data for reference: {overall['reason']}",
                     chosen=True, per_fold=per_fold, detail=overall, scope=IN_FOLDS)


@dataclass
class FitPlan:
    """What :func:`plan_fit` prepared: the table (a :class:`~perfmodel.data.Table`, whose provenance the model
    records), its features (None: stepwise over every event), the selection, the model file's metadata, what a
    prediction must replay (``preparation``) and the power term set chosen (None: not a power auto fit)."""

    df: Any
    target: str
    kind: str
    features: list[str] | None
    select: str
    metadata: dict[str, Any]
    preparation: Preparation | None = None
    power_terms: dict[str, Any] | None = None
    sensor_lag: SensorLag | None = None


def plan_fit(dataset: str, target: str, *, kind: str | None = None, features: list[str] | None = None,
             force_auto: bool = False, select: str | None = None, terms: str | None = None,
             l2_kib: float | None = None, simulated_from: Sequence[Path] = (), exclude: Sequence[str] = (),
             dropna: bool = False, table: str = "auto", sensor_lag: int | str = 0, mapping: str | None = None,
             cores: int | None = None, counts_from: Path | None = None, shrink: bool = False,
             say: Say = silent) -> FitPlan:
    """Load ``dataset`` (``counts_from`` / ``simulated_from``: other data sets' valgrind cells) and prepare
    the fit of ``target`` (``perfmodel fit``): ``--exclude`` rules, a named term set, the FC weight-streaming
    time, the L2 overflow, the training speed of an ``overhead-linear`` model, the power term set, rows
    dropped by ``dropna``; what a prediction replays recorded in the typed preparation, the rest in the
    metadata. ``sensor_lag`` ``"auto"``: chosen on all the data (:func:`fit_sensor_lag`) and recorded.
    ``shrink``: the shrunk power model (every Powmon-form term, the event terms' penalty from inner folds).
    ``kind`` None: ``ridge`` with ``shrink`` (which fits nothing else), else ``linear``; :attr:`FitPlan.kind`
    is the kind resolved. Says the importer's report, the sensor lag, the code-path differences and the dropped
    rows."""
    kind = fit_kind(kind, shrink=shrink)
    lag = fit_sensor_lag(dataset, parse_sensor_lag(sensor_lag), table=table, mapping=mapping, cores=cores,
                         target=target)
    df = load_counted(dataset, counts_from=counts_from, simulated_from=simulated_from or (), table=table,
                      sensor_lag=int(lag.lag or 0), mapping=mapping, cores=cores)
    lines = import_report_lines(df)
    if lines:
        say("\n".join(lines))
    feats = features
    from perfmodel.model.schema import Excluded, Preparation

    meta: dict[str, Any] = {"dataset": dataset, "simulated_from": [str(p) for p in simulated_from or []] or None}
    traced = dataset.startswith(IMPORT_PREFIXES) or mapping
    prep = Preparation(sensor_lag=int(lag.lag or 0) if traced else None)
    if traced:
        meta["sensor_lag_choice"] = lag.to_dict()  # the lag itself is preparation.sensor_lag
    if df.meta.get("import_report"):  # a power file: the board / cluster and the events it recorded
        meta.update({"board": df.meta.get("board"), "cluster": df.meta.get("cluster"),
                     "events": list(df.meta.get("events") or [])})
        if mapping:
            prep.map = mapping
    if counts_from is not None:
        meta["counts_from"] = str(counts_from)
    from perfmodel.model.prepare import counts_geometry

    geometry = counts_geometry([counts_from] if counts_from is not None else [dataset, *(simulated_from or [])])
    if geometry:
        prep.simulated_geometry = geometry
    if exclude:
        df, removed = exclude_rows(df, list(exclude))
        prep.excluded = Excluded(rules=list(exclude), rows=removed)
    if terms:
        df, named = named_terms(df, terms)
        feats = named + [f for f in (feats or []) if f not in named]
        prep.terms = terms
    from perfmodel.model.prepare import (needs_l2_overflow, needs_stream_time, training_speed, with_l2_overflow,
                                         with_stream_time)

    if needs_stream_time(feats):
        df, bw, source = with_stream_time(df, dataset)
        prep.stream_bandwidth_gbps, prep.stream_bandwidth_source = bw or None, source
    if l2_kib is not None and not needs_l2_overflow(feats):
        raise PerfmodelError("--l2-kib is for the conv_over_l2_mb term (--terms throughput-l2); these features "
                             "do not use it")
    if needs_l2_overflow(feats):
        df, l2, source = with_l2_overflow(df, dataset, explicit_kib=l2_kib)
        prep.l2_bytes, prep.l2_bytes_source = l2, source
    if kind == "overhead-linear":  # its costs are of the training hour's speed: kept to rescale them later
        speed, source = training_speed(dataset)
        prep.gemm_gflops, prep.gemm_gflops_source = speed or None, source
    notes = warn_code_paths(df, say)
    if notes:  # kept with the model
        meta["code_path_differences"] = notes
    from perfmodel.model.fit import is_power_auto, power_term_set

    power_terms = None
    if shrink:
        if feats is not None or terms or select not in (None, "shrink") or force_auto:
            raise PerfmodelError("--shrink keeps every Powmon-form term of the events present: not with "
                                 "--features, --terms or --select")
        if not is_power_auto(df.frame, target):
            raise PerfmodelError("--shrink is for a power target on data with voltage_v and freq_mhz columns (the "
                                 "Powmon-form terms)")
        from perfmodel.model.features import power_event_names

        n_events = len(power_event_names(df.frame))
        power_terms = {"set": "auto, shrunk",
                       "reason": f"--shrink: every Powmon-form term of the {n_events} events present kept, the "
                                 "event terms shrunk by ridge, the penalty chosen by the MAPE of inner folds grouped "
                                 "like --cv"}
        meta["power_terms"] = dict(power_terms)
        select = "shrink"
    elif feats is None and (force_auto or (select is None and not terms and is_power_auto(df.frame, target))):
        power_terms = power_term_set(df.frame, target, force_auto=force_auto)
        meta["power_terms"] = {k: power_terms[k] for k in ("set", "reason")}
        if power_terms["set"] == "fixed":
            feats = power_terms["features"]
            if select is None:
                select = "fixed"
        elif select == "fixed":
            raise PerfmodelError("--features auto chooses the events by stepwise selection: not with --select fixed")
    sel = select or ("fixed" if feats else "stepwise")
    if dropna:
        df, dropped = drop_incomplete(df, target, feats if sel == "fixed" else None)
        if dropped:
            say(f"dropped {len(dropped)} row(s) without a value of a feature or the "
                f"target: {', '.join(dropped[:12])}{' ...' if len(dropped) > 12 else ''}")
            meta["dropped_rows"] = dropped
    return FitPlan(df=df, target=target, kind=kind, features=feats, select=sel, metadata=meta, preparation=prep,
                   power_terms=power_terms, sensor_lag=lag if traced else None)


@dataclass
class FitResult:
    """A fitted model written to ``path``, with the power term set it was fitted on (None: not chosen)."""

    model: Any
    path: Path
    target: str
    kind: str
    power_terms: dict[str, Any] | None = None
    sensor_lag: SensorLag | None = None

    def summary(self) -> dict[str, Any]:
        """The ``perfmodel fit --json`` summary."""
        m = self.model
        return {"model": str(self.path), "target": self.target, "kind": self.kind, "features": m.features,
                **({"term_set": {k: self.power_terms[k] for k in ("set", "reason")}}
                   if self.power_terms is not None else {}),
                **({"sensor_lag": self.sensor_lag.to_dict()} if self.sensor_lag is not None else {}),
                **({"shrink": {k: m.selection[k] for k in ("lambda", "alpha", "inner_mape", "penalised")}}
                   if m.selection.get("method") == "shrink" else {}),
                "cv": {k: v for k, v in m.cv.items() if k != "results"}, "results": m.cv["results"]}


def fit_kind(kind: str | None, *, shrink: bool = False) -> str:
    """The model kind ``perfmodel fit`` fits: the given one, else ``ridge`` with ``--shrink`` (the shrunk model is
    a ridge), else ``linear``; ``--shrink`` with another kind given is refused."""
    if kind is None:
        return "ridge" if shrink else "linear"
    if shrink and kind != "ridge":
        raise PerfmodelError(f"--shrink fits a ridge model (--kind ridge), not --kind {kind}")
    return kind


def fit_planned(plan: FitPlan, output: Path, *, cv: str = "kfold", folds: int = 5, max_features: int = 8,
                vif_cap: float = 10.0, jobs: int = 1, provenance: str | None = None) -> FitResult:
    """Fit ``plan`` (cross-validated with ``cv``) and write the model file ``output``."""
    from perfmodel.model import fit_model, save_model

    model = fit_model(plan.df, plan.target, plan.features, kind=plan.kind, groups=cv, select=plan.select,
                      max_features=max_features, vif_cap=vif_cap, n_splits=folds, n_jobs=jobs,
                      provenance=provenance, metadata=plan.metadata, preparation=plan.preparation)
    note = plan.sensor_lag.cv_note() if plan.sensor_lag is not None else None
    if note:  # the CV figures are of the lag chosen on all the rows, held-out ones included
        model.cv["sensor_lag"] = note
    save_model(model, output)
    return FitResult(model=model, path=output, target=plan.target, kind=plan.kind, power_terms=plan.power_terms,
                     sensor_lag=plan.sensor_lag)


# -- evaluate --------------------------------------------------------------------------------------

def evaluation_table(dataset: str, *, table: str = "auto", sensor_lag: int = 0, mapping: str | None = None,
                     cores: int | None = None, say: Say = silent):
    """The table ``perfmodel evaluate`` cross-validates on, having said the importer's report and the
    code-path differences."""
    df = load_table(dataset, table=table, sensor_lag=sensor_lag, mapping=mapping, cores=cores)
    lines = import_report_lines(df)
    if lines:
        say("\n".join(lines))
    warn_code_paths(df, say)
    return df


def evaluation_terms(df, target: str, features: list[str] | None, *, force_auto: bool = False):
    """``(features, power term set or None)``: the named features, checked; for a power target without
    them (or ``force_auto``) the validated fixed set where the data has its events, else the automatic set
    (features None: chosen inside every outer fold)."""
    check_features_exist(df, features)
    from perfmodel.data.provenance import frame_of
    from perfmodel.model.fit import is_power_auto, power_term_set

    df = frame_of(df)
    terms = None
    if features is None and (force_auto or is_power_auto(df, target)):
        terms = power_term_set(df, target, force_auto=force_auto)
        if terms["set"] == "fixed":
            features = terms["features"]
    return features, terms


@dataclass
class Evaluation:
    """Cross-validation rows of every kind beside the baselines; ``features`` a list, or for the automatic
    power set ``{"always", "candidates"}`` (events chosen inside every outer fold: ``nested``)."""

    target: str
    features: Any
    rows: list[dict] = field(default_factory=list)
    terms: dict[str, Any] | None = None
    nested: bool = False
    sensor_lag: SensorLag | None = None

    def scheme(self, cv: str) -> str:
        return next((r["scheme"] for r in self.rows if r.get("scheme")), cv)

    def to_dict(self) -> dict[str, Any]:
        """The ``perfmodel evaluate --json`` payload."""
        extra = {"term_set": {k: self.terms[k] for k in ("set", "reason")}} if self.terms is not None else {}
        if self.sensor_lag is not None:
            extra["sensor_lag"] = self.sensor_lag.to_dict()
        return {"target": self.target, **extra, "features": self.features, "results": self.rows}


def evaluate_table(df, target: str, features: list[str] | None, terms: dict[str, Any] | None, *,
                   cv: str = "kfold", folds: int = 5, jobs: int = 1, shrink: bool = False) -> Evaluation:
    """Cross-validate linear, log-linear and ridge models (and overhead-loglinear for throughput) beside the
    baselines on the same splits; the automatic power term set is selected inside every outer fold
    (``shrink``: plus ridge on every event term)."""
    from perfmodel.data.provenance import frame_of
    from perfmodel.model.fit import _is_throughput, evaluate, evaluate_power_nested, fit_model, scheme_group

    table, df = df, frame_of(df)  # the table (with its provenance) for fit_model, the frame for the rest
    if shrink and (terms is None or terms["set"] != "auto"):
        raise PerfmodelError("--shrink is for the automatic power term set (a power target; --features auto "
                             "where the data has the validated fixed set's events)")
    if terms is not None and terms["set"] == "auto":  # events chosen inside every outer fold
        feats, rows = evaluate_power_nested(df, target, kinds=("linear", "loglinear", "ridge"),
                                            group=scheme_group(cv), n_splits=folds, n_jobs=jobs)
        if shrink:
            from perfmodel.model.fit import evaluate_power_shrunk

            k = next((i for i, r in enumerate(rows) if r["model"].startswith("baseline")), len(rows))
            rows.insert(k, evaluate_power_shrunk(df, target, group=scheme_group(cv), n_splits=folds))
        return Evaluation(target=target, features=feats, rows=rows, terms=terms, nested=True)
    if features is None:
        features = fit_model(table, target, kind="linear", groups=cv, n_splits=folds, n_jobs=jobs, baselines=False,
                             statistics=False, provenance="real").features
    kinds = ("linear", "loglinear", "ridge")
    if _is_throughput(target):  # "not evaluated" with the reason where read/pre-process times are missing
        kinds += ("overhead-loglinear",)  # overhead-linear needs its own terms (--kind on fit)
    _, rows = evaluate(df, target, features, kinds=kinds, group=scheme_group(cv), n_splits=folds, n_jobs=jobs)
    return Evaluation(target=target, features=features, rows=rows, terms=terms)


def evaluate_lagged(dataset: str, df, lag: SensorLag, target: str, features: list[str] | None,
                    terms: dict[str, Any] | None, *, cv: str = "kfold", folds: int = 5, jobs: int = 1,
                    shrink: bool = False, table: str = "auto", mapping: str | None = None,
                    cores: int | None = None) -> Evaluation:
    """:func:`evaluate_table` at the sensor lag of :func:`evaluation_lag`: ``df`` is the table at ``lag.lag``
    (at its smallest lag where the outer folds chose different ones: then the evaluation is run at every
    lag chosen and each fold keeps the figures of its own lag, :func:`perfmodel.model.lag.pool_fold_rows`)."""
    if lag.lag is not None or not lag.per_fold:
        ev = evaluate_table(df, target, features, terms, cv=cv, folds=folds, jobs=jobs, shrink=shrink)
        if lagged_trace(dataset, mapping) or dataset.startswith("powmon:"):  # a power file: its lag said
            ev.sensor_lag = lag
        return ev
    from perfmodel.model.lag import pool_fold_rows

    evs = {}
    for s in lag.lags():
        d = df if s == lag.lags()[0] else load_table(dataset, table=table, sensor_lag=s, mapping=mapping, cores=cores)
        evs[s] = evaluate_table(d, target, features, terms, cv=cv, folds=folds, jobs=jobs, shrink=shrink)
    first = evs[lag.lags()[0]]
    rows = pool_fold_rows({s: e.rows for s, e in evs.items()}, lag.per_fold)
    return Evaluation(target=target, features=first.features, rows=rows, terms=terms, nested=first.nested,
                      sensor_lag=lag)

"""Feature columns for the regressors: selection, product terms, log transform, provenance.

A *feature* is a column name of the wide table or a product of factors written ``a*b^2*c`` where each
factor is a column (optionally raised to a small integer power ``^k``). Product terms are computed here,
never with ``eval``, and their names are stored in model files so that prediction recomputes them from
the same columns. Examples::

    instructions_per_s                       # a plain column
    l1d_accesses_per_s*voltage_v^2           # dynamic-power term  (rate x V^2)
    voltage_v^2*freq_mhz                     # switching term       (V^2 f)
    temperature_c*voltage_v                  # leakage term         (~ exp(T) V, linearised)

:func:`powmon_terms` builds the Powmon / ARMPM style power features: every event *rate* times ``V^2``
(rate = events per cycle x cycles per second, so this is the "events per cycle x f x V^2" term summed
over active cores), plus ``V``, ``V^2 f``, optional ``T V`` (leakage) and ``cores V^2 f``;
:func:`power_features` is the fixed, a-priori set (all events, per-frequency intercepts) whose
cross-validated error needs no nesting, :func:`power_loglinear_features` its multiplicative
counterpart for a log target.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import pandas as pd

from perfmodel.errors import PerfmodelError
from perfmodel.metrics import EVENTS, base_event

#: the study's fixed feature list (L1-d loads/s, L2-d loads/s, instructions/s)
STUDY_FEATURES: tuple[str, ...] = ("l1d_accesses_per_s", "l2d_accesses_per_s", "instructions_per_s")

#: key / bookkeeping columns that are never candidate features
NON_FEATURES = frozenset({
    "run_id", "cell_id", "board", "framework", "network", "threads", "workload", "repeat", "image_index",
    "t_start_s", "t_end_s", "t_rel_s", "dt_s", "timestamp_ns", "segment", "run", "interval_ok", "n_images",
})

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_FACTOR = re.compile(rf"^(?:log\(({_NAME})\)|({_NAME})=([A-Za-z0-9_.+-]+)|({_NAME})(?:\^([1-9]))?)$")


class FeatureError(PerfmodelError):
    """A feature that cannot be computed: missing column, NaN / infinite value, bad name."""


class Factor(NamedTuple):
    """One factor of a feature: ``column``, ``column^power``, ``log(column)`` or ``column=value``."""

    column: str
    power: int = 1
    op: str = ""  # "" | "log" | "eq"
    value: str = ""


def parse_feature(name: str) -> list[Factor]:
    """``"a*b^2*log(c)*fw=litert"`` -> its :class:`Factor` list (:class:`FeatureError` for malformed names).

    Factors: ``column`` (numeric), ``column^k`` (k = 1..9), ``log(column)`` (natural log, column > 0) and
    ``column=value`` (indicator: 1.0 where ``str(column) == value``, else 0.0; for categorical keys such
    as ``framework`` or ``threads``).
    """
    if not isinstance(name, str) or not name:
        raise FeatureError(f"invalid feature name {name!r}")
    factors = []
    for part in name.split("*"):
        m = _FACTOR.match(part.strip())
        if not m:
            raise FeatureError(
                f"invalid feature {name!r}: factor {part!r} is not 'column', 'column^k' (k=1..9), "
                "'log(column)' or 'column=value'")
        if m.group(1):
            factors.append(Factor(m.group(1), 1, "log"))
        elif m.group(2):
            factors.append(Factor(m.group(2), 1, "eq", m.group(3)))
        else:
            factors.append(Factor(m.group(4), int(m.group(5) or 1)))
    return factors


def base_columns(features: Iterable[str]) -> list[str]:
    """The table columns the features are computed from (in first-use order)."""
    out: list[str] = []
    for f in features:
        for fac in parse_feature(f):
            if fac.column not in out:
                out.append(fac.column)
    return out


def _key_str(s: pd.Series) -> pd.Series:
    """Categorical values as strings, integral floats without ``.0`` (``threads`` 2.0 -> ``"2"``)."""
    if pd.api.types.is_float_dtype(s.dtype):
        return s.map(lambda v: str(int(v)) if np.isfinite(v) and float(v).is_integer() else str(v))
    return s.astype(str)


def compute_feature(df: pd.DataFrame, name: str, _cache: dict | None = None, *, lenient: bool = False) -> pd.Series:
    """The values of feature ``name`` on ``df`` (float64). ``_cache`` (a dict) lets several features of one
    frame share the per-column conversions (done once per column; the products are numpy arrays).
    ``lenient``: a value that is not a number, or the log of one <= 0, is NaN instead of an error (for
    row-wise checks that must not cost the other rows their answer)."""
    values = None
    cache = {} if _cache is None else _cache
    for fac in parse_feature(name):
        col = fac.column
        if col not in df.columns:
            raise FeatureError(f"feature {name!r} needs column {col!r}, which the data does not have")
        if fac.op == "eq":
            if ("key", col) not in cache:
                cache[("key", col)] = _key_str(df[col]).to_numpy(dtype=object)
            x = (cache[("key", col)] == fac.value).astype("float64")
        else:
            if ("num", col) not in cache:
                try:
                    cache[("num", col)] = pd.to_numeric(df[col], errors="coerce" if lenient else "raise").to_numpy(
                        dtype="float64", na_value=np.nan)
                except (TypeError, ValueError):
                    conv = pd.to_numeric(df[col], errors="coerce")
                    odd = df[col][conv.isna() & df[col].notna()]
                    first = f": {odd.iloc[0]!r} (row {odd.index[0]}) is not a number" if len(odd) else ""
                    raise FeatureError(f"column {col!r} (feature {name!r}) is not numeric{first}") from None
            x = cache[("num", col)]
            if fac.op == "log":
                bad = ~(x > 0) & ~np.isnan(x)
                if bad.any() and lenient:
                    x = np.where(bad, np.nan, x)
                elif bad.any():
                    raise FeatureError(f"feature {name!r}: log of {int(bad.sum())} value(s) of {col!r} that are <= 0")
                with np.errstate(invalid="ignore", divide="ignore"):
                    x = np.log(x)
            elif fac.power != 1:
                with np.errstate(over="ignore", invalid="ignore"):  # inf / overflow: refused as non-finite later
                    x = x**fac.power
        with np.errstate(over="ignore", invalid="ignore"):
            values = x if values is None else values * x
    assert values is not None
    return pd.Series(values, index=df.index, name=name, dtype="float64")


def _copied_attrs(attrs: Mapping | None) -> dict:
    """A copy of a frame's ``attrs`` whose dict values (``provenance``, ...) are copies too, so a derived
    frame can add to them without changing its source's."""
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in (attrs or {}).items()}


@contextmanager
def attrs_aside(df: pd.DataFrame):
    """Within the block ``df.attrs`` is empty (restored after): pandas deep-copies ``attrs`` into every
    intermediate result (even a column lookup), and a data set's metadata there made a one-row
    prediction ~20x slower."""
    saved, df.attrs = df.attrs, {}
    try:
        yield saved
    finally:
        df.attrs = saved


def feature_frame(df: pd.DataFrame, features: Sequence[str], *, allow_nan: bool = False,
                  lenient: bool = False) -> pd.DataFrame:
    """A DataFrame with one float column per feature; NaN / inf raise :class:`FeatureError` unless allowed.
    ``lenient`` (with ``allow_nan``): values that are not numbers and logs of values <= 0 are NaN too."""
    if not len(features):
        raise FeatureError("no features given")
    if len(set(features)) != len(features):
        raise FeatureError(f"duplicate features in {list(features)}")
    with attrs_aside(df):
        cache: dict = {}
        out = pd.DataFrame({f: compute_feature(df, f, cache, lenient=lenient and allow_nan) for f in features},
                           index=df.index)
    if not allow_nan:
        bad = ~np.isfinite(out.to_numpy())
        if bad.any():
            cols = [features[j] for j in np.flatnonzero(bad.any(axis=0))]
            bad_rows = bad.any(axis=1)
            with attrs_aside(df):
                sub = df.loc[bad_rows]
                inputs = [c for c in base_columns(cols) if c in sub.columns and pd.api.types.is_numeric_dtype(sub[c])
                          and not np.isfinite(pd.to_numeric(sub[c], errors="coerce").to_numpy(dtype="float64")).all()]
                keys = [c for c in ("framework", "network", "threads") if c in sub.columns]
                which = [" x ".join(str(v) for v in r) for r in sub[keys].head(3).itertuples(index=False)] if keys else []
            raise FeatureError(
                f"{int(bad_rows.sum())} row(s)" + (f" ({'; '.join(which)}{', ...' if bad_rows.sum() > 3 else ''})"
                                                   if which else "")
                + " have NaN or infinite values in "
                + (f"{', '.join(inputs)} (feature(s) {', '.join(cols)})" if inputs else f"feature(s) {', '.join(cols)}")
                + "; drop or fill them first (missing figures are never guessed)"
            )
    return out


def feature_matrix(df: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """``feature_frame(df, features).to_numpy()``."""
    return feature_frame(df, features).to_numpy(dtype="float64")


def target_vector(df: pd.DataFrame, target: str, *, positive: bool = False) -> np.ndarray:
    """The target column as float64, checked finite (and > 0 when ``positive``)."""
    if target not in df.columns:
        raise FeatureError(f"target column {target!r} is not in the data (columns: {', '.join(map(str, df.columns[:30]))})")
    y = pd.to_numeric(df[target], errors="coerce").to_numpy(dtype="float64")
    if not np.isfinite(y).all():
        raise FeatureError(f"target {target!r} has {int((~np.isfinite(y)).sum())} NaN or infinite value(s)")
    if positive and (y <= 0).any():
        raise FeatureError(f"target {target!r} must be > 0 for this model (log transform / percentage errors)")
    return y


def candidate_features(df: pd.DataFrame, target: str, *, kinds: Sequence[str] = ("_per_s", "_per_image", "_per_cycle")) -> list[str]:
    """Event columns of ``df`` (``<event><suffix>``, suffix in ``kinds``) usable as features of ``target``."""
    out = []
    for col in df.columns:
        if col == target or col in NON_FEATURES or not isinstance(col, str):
            continue
        ev = base_event(col)
        if ev is None or col == ev:
            continue
        if not any(col.endswith(k) for k in kinds):
            continue
        if not pd.api.types.is_numeric_dtype(df[col]) or not np.isfinite(df[col].to_numpy(dtype="float64")).all():
            continue
        if df[col].nunique() <= 1:
            continue
        out.append(col)
    return out


def powmon_terms(
    df: pd.DataFrame,
    events: Sequence[str] | None = None,
    *,
    voltage: str = "voltage_v",
    freq: str = "freq_mhz",
    temperature: str | None = "temperature_c",
    cores: str | None = "cores",
    rate_suffix: str = "_per_s",
    freq_levels: bool = False,
    core_static: bool = False,
) -> tuple[list[str], list[str]]:
    """Powmon-style power features: ``(event_terms, fixed_terms)``.

    ``event_terms``: ``<event>_per_s*voltage_v^2`` for each event (all events with a rate column when
    ``events`` is None, cycles included); ``fixed_terms``: ``voltage_v``, ``voltage_v^2*freq_mhz`` and,
    where the columns exist, ``temperature_c*voltage_v`` (leakage) and ``cores*voltage_v^2*freq_mhz``.

    Options (default off, so the default set is unchanged):

    * ``freq_levels``: one indicator ``freq_mhz=<f>`` per operating point but the lowest - a
      per-frequency intercept. The DVFS voltage of an operating point is fixed, so this absorbs the
      static / uncore power of the operating point where the measured ``V`` is coarse (the XU3 logs it
      to 0.1 V: 1.1 or 1.2 V at 1800 MHz). ``V^2 f`` is then left out (collinear with the levels and
      ``V``); ``V`` stays for the voltage variation within an operating point.
    * ``core_static``: ``cores*voltage_v`` (leakage of every powered core, independent of activity).

    Only columns of the wide table are used, so a model on these terms applies to any table that has
    them (e.g. :func:`perfmodel.data.importers.armpm.load_armpm`).
    """
    for col in (voltage, freq):
        if col not in df.columns:
            raise FeatureError(f"power features need column {col!r}")
    if events is None:
        events = [e for e in EVENTS if f"{e}{rate_suffix}" in df.columns]
    missing = [e for e in events if f"{e}{rate_suffix}" not in df.columns]
    if missing:
        raise FeatureError(f"power features need column(s) {', '.join(e + rate_suffix for e in missing)}")
    event_terms = [f"{e}{rate_suffix}*{voltage}^2" for e in events]
    # with a per-frequency intercept V^2 f adds nothing a level and V do not (with one or two measured
    # V values per operating point it is an exact linear combination of them): left out
    fixed = [voltage] if freq_levels else [voltage, f"{voltage}^2*{freq}"]
    if temperature and temperature in df.columns:
        fixed.append(f"{temperature}*{voltage}")
    has_cores = bool(cores and cores in df.columns and df[cores].nunique() > 1)
    if has_cores:
        fixed.append(f"{cores}*{voltage}^2*{freq}")
        if core_static:
            fixed.append(f"{cores}*{voltage}")
    if freq_levels:
        fixed += freq_level_terms(df, freq)
    return event_terms, fixed


def freq_level_terms(df: pd.DataFrame, freq: str = "freq_mhz") -> list[str]:
    """``freq_mhz=<f>`` indicators for every frequency of ``df`` but the lowest (none for one frequency)."""
    if freq not in df.columns:
        raise FeatureError(f"frequency levels need column {freq!r}")
    vals = pd.to_numeric(df[freq], errors="coerce")
    if vals.isna().any():
        raise FeatureError(f"column {freq!r} has missing values")
    levels = sorted(pd.unique(vals))
    return [f"{freq}={_key_str(pd.Series([v], dtype='float64')).iloc[0]}" for v in levels[1:]]


def power_event_names(df: pd.DataFrame, rate_suffix: str = "_per_s") -> list[str]:
    """The events of ``df`` usable in power terms: every ``<event>_per_s`` column (vocabulary or ARM PMU
    name, :func:`perfmodel.metrics.base_event`) that is finite and not constant, in column order."""
    out = []
    for col in candidate_features(df, "power_w", kinds=(rate_suffix,)):
        ev = base_event(col)
        if ev and col == f"{ev}{rate_suffix}" and ev not in out:
            out.append(ev)
    return out


def cycles_restate_cores(df: pd.DataFrame, rtol: float = 1e-6) -> bool:
    """True where ``cycles_per_s`` is ``cores x freq_mhz x 1e6`` on every row (Powmon rates without an
    interval: events per cycle x frequency summed over the active cores), so that ``cycles/s x V^2``
    restates ``cores x V^2 f`` (the design would be rank-deficient with both: the cycles term is left out)."""
    if not {"cycles_per_s", "cores", "freq_mhz"} <= set(df.columns) or df["cores"].nunique() < 2:
        return False
    cyc = pd.to_numeric(df["cycles_per_s"], errors="coerce").to_numpy(dtype="float64")
    ref = (pd.to_numeric(df["cores"], errors="coerce") * pd.to_numeric(df["freq_mhz"], errors="coerce")).to_numpy(
        dtype="float64") * 1e6
    ok = np.isfinite(cyc) & np.isfinite(ref) & (ref > 0)
    return bool(ok.all() and np.allclose(cyc, ref, rtol=rtol, atol=0.0))


def voltage_fixed_per_frequency(df: pd.DataFrame) -> bool:
    """True where ``voltage_v`` has one value per ``freq_mhz`` (e.g. rows that are averages per operating
    point): ``V`` is then a function of the per-frequency intercepts (constant with one frequency), and
    with them a rank-deficient design."""
    if not {"voltage_v", "freq_mhz"} <= set(df.columns):
        return False
    return bool((df.groupby("freq_mhz")["voltage_v"].nunique(dropna=False) <= 1).all())


def power_selection_terms(df: pd.DataFrame) -> tuple[list[str], list[str], dict[str, str]]:
    """The automatic Powmon-form term set of whatever events ``df`` has: ``(candidates, always, vif_columns)``.

    ``always``: ``V``, ``T V`` (where there is a temperature), ``cores V^2 f`` (where the core count
    varies), per-frequency intercepts and, where the cycle count exists, ``cycles/s x V^2`` (the
    activity every Powmon model keeps; left out where it restates ``cores x V^2 f``,
    :func:`cycles_restate_cores`; ``V`` is left out where it has one value per frequency,
    :func:`voltage_fixed_per_frequency`); ``candidates``: every other event rate x ``V^2``, for stepwise
    selection; ``vif_columns``: each candidate's event per cycle, on which the VIF cap is checked
    (:func:`perfmodel.model.selection.stepwise_select`).
    """
    events = power_event_names(df)
    if not events:
        raise FeatureError("no event rate column (<event>_per_s) to build power terms from")
    if cycles_restate_cores(df):
        events = [e for e in events if e != "cycles"]
    ev_terms, fixed = powmon_terms(df, events, freq_levels=True)
    if voltage_fixed_per_frequency(df):  # the per-frequency intercepts carry it
        fixed = [t for t in fixed if t != "voltage_v"]
    always = list(fixed)
    cands = []
    for e, t in zip(events, ev_terms):
        (always if e == "cycles" else cands).append(t)
    vif_cols = {t: f"{e}_per_cycle" for e, t in zip(events, ev_terms) if f"{e}_per_cycle" in df.columns}
    return cands, always, vif_cols


#: the events of the validated fixed Powmon set: the 13 events of the shipped XU3 A15 model
#: (``trained/power_armpm_xu3_a15.json``: leave-one-workload-out MAPE 3.93 % on the PARSEC file at sensor lag
#: 1, every event rate x V^2 with no selection). The default power term set wherever a table has them all.
VALIDATED_POWER_EVENTS: tuple[str, ...] = (
    "instructions", "cycles", "l1d_accesses", "l1i_accesses", "l1i_refills", "l2d_accesses", "dtlb_refills",
    "itlb_refills", "branches", "branch_misses", "mem_accesses", "exceptions_taken", "exceptions_returned")


def validated_power_features(df: pd.DataFrame) -> list[str]:
    """The validated fixed Powmon set on ``df``: every :data:`VALIDATED_POWER_EVENTS` rate x ``V^2`` plus the
    fixed terms of :func:`powmon_terms` (``freq_levels=True``), in :func:`power_features`' order; events of
    ``df`` outside the set are not used. Raises :class:`FeatureError` naming the events ``df`` lacks (a
    rate column that is missing, not finite or constant)."""
    present = set(power_event_names(df))
    missing = [e for e in VALIDATED_POWER_EVENTS if e not in present]
    if missing:
        raise FeatureError(f"the data lacks event(s) {', '.join(missing)} of the validated fixed power set")
    order = [e for e in EVENTS if e in VALIDATED_POWER_EVENTS]
    events, fixed = powmon_terms(df, order, freq_levels=True)
    return fixed + events


def power_features(df: pd.DataFrame, *, rate_suffix: str = "_per_s") -> list[str]:
    """The a-priori power feature set (no selection, so its cross-validated error is honest).

    Every event rate of the table times ``V^2`` (Powmon's events-per-cycle x f x V^2, summed over
    the active cores), ``V`` (static), ``T V`` (leakage, linearised in temperature), ``cores V^2 f``
    (per-core dynamic idle / clock tree) and a per-frequency intercept, which takes the place of
    ``V^2 f`` (:func:`powmon_terms` with ``freq_levels=True``). The list depends only on which columns
    exist, never on the target values.
    """
    events, fixed = powmon_terms(df, rate_suffix=rate_suffix, freq_levels=True)
    return fixed + events


def power_loglinear_features(df: pd.DataFrame) -> list[str]:
    """An a-priori *multiplicative* power feature set, for a log-target model.

    ``log P = b0 + b1 log V + b2 log f + b3 log(cycles/s) + b4 cores + b5 T + per-frequency intercepts
    + sum_i c_i <event_i>_per_cycle``: power scales as a power law in V, f and activity (cycles per
    second = cores x utilisation x f), and the mix of events per cycle (what every cycle does) shifts
    it by a factor. Additive Powmon terms suit a linear target; under a log target they do not (their
    sum is what is multiplicative), hence this separate set.
    """
    need = ["voltage_v", "freq_mhz", "cycles_per_s"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise FeatureError(f"log-linear power features need column(s) {', '.join(missing)}")
    feats = ["log(voltage_v)", "log(freq_mhz)", "log(cycles_per_s)"]
    if "cores" in df.columns and df["cores"].nunique() > 1:
        feats.append("cores")
    if "temperature_c" in df.columns:
        feats.append("temperature_c")
    feats += freq_level_terms(df)
    feats += [f"{e}_per_cycle" for e in EVENTS if e != "cycles" and f"{e}_per_cycle" in df.columns]
    return feats


# -- provenance ------------------------------------------------------------------------------------

#: columns that are keys / design variables rather than measurements: provenance ``"key"``
KEY_COLUMNS = frozenset(NON_FEATURES | {"cores", "macs"})


def resolve_provenance(attrs: Mapping, column: str) -> set[str] | None:
    """The provenances of the measurements behind ``column`` according to ``df.attrs``.

    Derived columns are followed through ``attrs["derived_from"]``; ``"real+simulated"`` splits into two.
    None when the attrs say nothing about the column.
    """
    from perfmodel.data.tables import provenance_leaves  # noqa: PLC0415 (data may be imported by model)

    out: set[str] = set()
    for col, p in provenance_leaves(attrs, column):
        if p is None:
            if col in KEY_COLUMNS:
                continue
            return None
        if p == "derived":  # marked derived without recorded inputs: bookkeeping
            continue
        out.update(str(p).split("+"))
    return out


def column_provenance(df: pd.DataFrame, columns: Iterable[str], override: str | Mapping[str, str] | None = None,
                      ) -> dict[str, list[str] | None]:
    """Base column -> sorted provenances (``["key"]`` for key columns, None when unknown).

    ``override``: one provenance for every measured column (``"real"``) or a column -> provenance
    mapping; it applies to columns the attrs do not describe (e.g. a CSV file).
    """
    attrs = getattr(df, "attrs", {}) or {}
    out: dict[str, list[str] | None] = {}
    for col in columns:
        if col in KEY_COLUMNS and col not in (attrs.get("provenance") or {}):
            out[col] = ["key"]
            continue
        p = resolve_provenance(attrs, col)
        if p is None and override is not None:
            if isinstance(override, str):
                p = {override}
            elif col in override:
                p = {override[col]}
        out[col] = sorted(p) if p is not None else None
    return out


def feature_provenance(df: pd.DataFrame, features: Sequence[str], override: str | Mapping[str, str] | None = None,
                       ) -> dict[str, list[str] | None]:
    """Feature -> sorted provenances of the columns behind it (None when any of them is unknown).

    Indicator factors (``framework=litert``) and key columns count as ``"key"``.
    """
    cols = column_provenance(df, base_columns(features), override)
    out: dict[str, list[str] | None] = {}
    for f in features:
        acc: set[str] = set()
        for fac in parse_feature(f):
            p = ["key"] if fac.op == "eq" else cols[fac.column]
            if p is None:
                acc = None  # type: ignore[assignment]
                break
            acc.update(p)
        out[f] = sorted(acc) if acc is not None else None
    return out


# -- simulated counts and throughput features -----------------------------------------------------


def _is_simulated_cell(df: pd.DataFrame) -> pd.Series:
    if "counter_source" in df.columns:
        return df["counter_source"].astype(str) == "valgrind"
    if "cell_id" in df.columns:
        return df["cell_id"].astype(str).str.split("__").str[-1] == "valgrind"
    raise FeatureError("cannot tell simulated cells apart: the table has neither 'counter_source' nor 'cell_id'")


def join_simulated(cell_df: pd.DataFrame, *, simulated: pd.Series | None = None,
                   keys: Sequence[str] = ("framework", "network")) -> pd.DataFrame:
    """Attach each (framework, network)'s simulated per-image counts to its timing cells.

    ``cell_df`` is a :func:`perfmodel.data.wide_per_cell` table holding both timing cells and the
    separate valgrind cells (``simulated``: a boolean mask of those rows; by default the rows whose
    ``cell_id`` ends in ``__valgrind``, the collect stage's naming, or whose ``counter_source`` is
    ``valgrind``). The result has the timing cells only (every thread count), with each
    ``<event>_per_image`` column the valgrind cells have replaced by the mean over the matching
    valgrind cells (repeats), provenance ``"simulated"``; ``<event>_per_s`` is recomputed from it and
    the cell's measured ``latency_ms``, miss rates from the simulated counts. A timing cell with no
    valgrind cell keeps NaN there (nothing is guessed); ``attrs["join_unmatched"]`` counts them.
    """
    from perfmodel.data.tables import MISS_RATES  # noqa: PLC0415 (data may be imported by model)
    from perfmodel.metrics import per_image, per_second

    keys = list(keys)
    missing = [k for k in keys if k not in cell_df.columns]
    if missing:
        raise FeatureError(f"join_simulated needs key column(s) {', '.join(missing)}")
    sim_mask = (_is_simulated_cell(cell_df) if simulated is None else pd.Series(simulated, index=cell_df.index)).astype(bool)
    if not sim_mask.any():
        raise FeatureError("join_simulated: the table has no simulated (valgrind) cells")
    if sim_mask.all():
        raise FeatureError("join_simulated: the table has no timing cells, only simulated ones")
    attrs = _copied_attrs(cell_df.attrs)
    prov = dict(attrs.get("provenance", {}) or {})
    derived = {k: list(v) for k, v in (attrs.get("derived_from", {}) or {}).items()}
    sim = cell_df.loc[sim_mask]
    timing = cell_df.loc[~sim_mask].copy()
    events = [e for e in EVENTS if per_image(e) in sim.columns and sim[per_image(e)].notna().any()]
    if not events:
        raise FeatureError("join_simulated: the simulated cells have no <event>_per_image counts")
    cols = [per_image(e) for e in events]
    means = sim.groupby(keys, sort=False)[cols].mean()
    joined = timing[keys].merge(means, left_on=keys, right_index=True, how="left")
    for c in cols:
        timing[c] = joined[c].to_numpy(dtype="float64")
        prov[c] = "simulated"
        derived.pop(c, None)
        for extra in (f"{c}_std", f"{c}_n"):
            if extra in timing.columns:
                timing = timing.drop(columns=extra)
                prov.pop(extra, None)
                derived.pop(extra, None)
    if "latency_ms" in timing.columns:
        secs = timing["latency_ms"].astype("float64") / 1000.0
        for e, c in zip(events, cols):
            timing[per_second(e)] = timing[c] / secs.where(secs > 0)
            prov[per_second(e)] = "derived"
            derived[per_second(e)] = [c, "latency_ms"]
    for name, (miss, acc) in MISS_RATES.items():
        mc, ac = per_image(miss), per_image(acc)
        if mc in cols and ac in cols:
            timing[name] = timing[mc] / timing[ac].where(timing[ac] > 0)
            prov[name] = "derived"
            derived[name] = [mc, ac]
    unmatched = int(timing[cols[0]].isna().sum())
    timing = timing.reset_index(drop=True)
    attrs.update({"provenance": prov, "derived_from": derived, "join_unmatched": unmatched,
                  "join_simulated_events": events})
    timing.attrs = attrs
    return timing


def _network_facts(df: pd.DataFrame, column: str, key: str | Callable[[str], float], what: str) -> dict[str, float]:
    """``{network: float(facts(network)[key])}`` for the networks in ``df[column]`` (:func:`perfmodel.zoo.facts`),
    or ``key(network)`` when ``key`` is a function of the network name; :class:`FeatureError` "no <what> for
    network ..." when a network is unknown or its facts cannot be computed."""
    from perfmodel.zoo import facts  # noqa: PLC0415 - may import TensorFlow on a cold cache

    value = key if callable(key) else (lambda name: facts(name)[key])
    out = {}
    for name in pd.unique(df[column].astype(str)):
        try:
            out[name] = float(value(name))
        except Exception as exc:  # noqa: BLE001 - unknown network, no TensorFlow, ...
            raise FeatureError(f"no {what} for network {name!r}: {exc}") from None
    return out


def attach_macs(df: pd.DataFrame, column: str = "network") -> pd.DataFrame:
    """A copy of ``df`` with a ``macs`` column from :func:`perfmodel.zoo.facts` (per network).

    Raises :class:`FeatureError` when a network is unknown or its facts cannot be computed.
    """
    if "macs" in df.columns:
        return df
    if column not in df.columns:
        raise FeatureError(f"MACs need a {column!r} column")
    macs = _network_facts(df, column, "macs", "MACs")
    out = df.copy()
    out["macs"] = out[column].astype(str).map(macs).astype("float64")
    out.attrs = _copied_attrs(df.attrs)
    return out


def attach_stream_time(df: pd.DataFrame, bandwidth_gbps: Mapping, *, column: str = "network") -> pd.DataFrame:
    """A copy of ``df`` with ``fc_stream_ms``: the time to stream the network's FC weights once (4 bytes x
    :func:`perfmodel.zoo.facts` ``fc_params``) at the machine's measured streaming bandwidth for the row's
    thread count, ``bandwidth_gbps`` = {threads: GB/s} (a calibration, :mod:`perfmodel.collect.calibrate`).

    At batch 1 every FC weight is read once per image and used for one multiply-add, so that part of the
    inference runs at memory speed, not at instruction speed (AlexNet: 58.6 M FC weights, 234 MB). The
    column is a time in ms (:data:`KNOWN_TIME_COLUMNS`: coefficient 1 in an ``overhead-linear`` model).
    Raises :class:`FeatureError` for an unknown network or a thread count the calibration did not measure.
    """
    for c in (column, "threads"):
        if c not in df.columns:
            raise FeatureError(f"the weight-streaming time needs a {c!r} column")
    with attrs_aside(df) as saved:
        out = _with_stream_time(df, bandwidth_gbps, column)
    out.attrs = _copied_attrs(saved)
    out.attrs.setdefault("provenance", {})["fc_stream_ms"] = "derived"  # zoo facts x a measured calibration
    return out


def _with_stream_time(df: pd.DataFrame, bandwidth_gbps: Mapping, column: str) -> pd.DataFrame:
    bw: dict[int, float] = {}
    for k, v in dict(bandwidth_gbps or {}).items():
        try:
            t, g = int(k), float(v)
        except (TypeError, ValueError):
            raise FeatureError(f"bandwidth {k!r}: {v!r} is not threads: GB/s") from None
        if not (np.isfinite(g) and g > 0):
            raise FeatureError(f"bandwidth for {t} thread(s) must be a finite number > 0 GB/s, got {v!r}")
        bw[t] = g
    fc_params = _network_facts(df, column, "fc_params", "FC weight count")
    thr = np.asarray(pd.to_numeric(df["threads"].to_numpy(), errors="coerce"), dtype="float64")
    if not (np.isfinite(thr) & (thr == np.round(thr))).all():
        raise FeatureError("the weight-streaming time needs whole thread counts in 'threads'")
    missing = sorted({int(t) for t in thr} - set(bw))
    if missing:
        have = ", ".join(map(str, sorted(bw))) or "none"
        raise FeatureError(f"no streaming bandwidth measured for {missing} thread(s) (calibration has "
                           f"{have}); calibrate with those thread counts (perfmodel calibrate --threads ...)")
    nets = df[column].astype(str).to_numpy()
    values = 4.0 * np.array([fc_params[n] for n in nets]) / (np.array([bw[int(t)] for t in thr]) * 1e6)
    if "fc_stream_ms" in df.columns:
        df = df.drop(columns="fc_stream_ms")
    # one concat, not an insert into a possibly fragmented frame (pandas warns about many inserts)
    return pd.concat([df, pd.DataFrame({"fc_stream_ms": values}, index=df.index)], axis=1)


#: name of the column :func:`attach_l2_overflow` adds
L2_OVERFLOW_COLUMN = "conv_over_l2_mb"


def conv_weights_over(network: str, cache_bytes: float) -> float:
    """MB (1e6 bytes) of float32 weights in ``network``'s convolution layers (not depthwise, not FC) whose
    weights alone are larger than ``cache_bytes`` (:func:`perfmodel.zoo.facts` per-layer params x 4)."""
    from perfmodel.zoo import facts  # noqa: PLC0415 - may import TensorFlow on a cold cache

    layers = facts(network, per_layer=True)["layers"]
    return sum(4.0 * lay["params"] for lay in layers
               if lay["kind"] == "conv" and 4.0 * lay["params"] > cache_bytes) / 1e6


def attach_l2_overflow(df: pd.DataFrame, l2_bytes: float, *, column: str = "network") -> pd.DataFrame:
    """A copy of ``df`` with ``conv_over_l2_mb``: the weights (MB) of the network's convolutions too big for
    the L2 cache of the machine the rows were timed on (``l2_bytes``, :func:`perfmodel.sysinfo.cache_info`).

    A convolution whose weights do not fit in a core's L2 has them re-read from the last-level cache or
    memory for every block of output pixels the library's GEMM tiles over, a cost per byte that counts
    simulated on a small Arm cache geometry do not carry. Fitted (one cost per thread count), not known.
    Raises :class:`FeatureError` for an unknown network or a cache size that is not a positive number.
    """
    try:
        size = float(l2_bytes)
    except (TypeError, ValueError):
        raise FeatureError(f"L2 cache size must be a number of bytes, got {l2_bytes!r}") from None
    if not (np.isfinite(size) and size > 0):
        raise FeatureError(f"L2 cache size must be a finite number of bytes > 0, got {l2_bytes!r}")
    if column not in df.columns:
        raise FeatureError(f"the L2-overflow weights need a {column!r} column")
    values = _network_facts(df, column, lambda name: conv_weights_over(name, size), "per-layer weights")
    with attrs_aside(df) as saved:
        out = df.drop(columns=L2_OVERFLOW_COLUMN) if L2_OVERFLOW_COLUMN in df.columns else df
        out = pd.concat([out, pd.DataFrame({L2_OVERFLOW_COLUMN: df[column].astype(str).map(values).astype("float64")},
                                           index=df.index)], axis=1)
    out.attrs = _copied_attrs(saved)
    out.attrs.setdefault("provenance", {})[L2_OVERFLOW_COLUMN] = "derived"  # zoo facts x a machine fact
    out.attrs["l2_bytes"] = size
    return out


def throughput_terms(df: pd.DataFrame, *, work: str = "instructions_per_image",
                     threads_model: str = "log") -> list[str]:
    """The throughput feature set for a log-target model: ``log(fps) ~ log(work) + framework + threads``.

    * ``log(<work>)`` - per-image work (simulated or real instruction count; ``macs`` also works);
    * ``framework=<fw>`` - one indicator per framework but the first (its CPI / overhead level);
    * threads: ``threads_model="log"`` gives ``log(threads)`` and ``log(threads)*framework=<fw>`` (a
      per-framework scaling slope); ``"levels"`` gives one indicator per (framework, threads > 1) pair.

    Columns that do not vary in ``df`` contribute no terms.
    """
    if work not in df.columns:
        raise FeatureError(f"throughput features need column {work!r}")
    terms = [f"log({work})"]
    fws = sorted(map(str, pd.unique(df["framework"]))) if "framework" in df.columns else []
    terms += [f"framework={fw}" for fw in fws[1:]]
    if "threads" in df.columns and df["threads"].nunique() > 1:
        if threads_model == "log":
            terms.append("log(threads)")
            terms += [f"log(threads)*framework={fw}" for fw in fws[1:]]
        elif threads_model == "levels":
            levels = sorted(int(t) for t in pd.unique(df["threads"]) if int(t) > 1)
            combos = fws if fws else [None]
            for fw in combos:
                for t in levels:
                    terms.append(f"threads={t}" + (f"*framework={fw}" if fw is not None else ""))
        else:
            raise FeatureError(f"threads_model must be 'log' or 'levels', got {threads_model!r}")
    return terms


def per_thread_terms(df: pd.DataFrame, column: str) -> list[str]:
    """``<column>*threads=<t>`` for every thread count in ``df`` (one cost per thread count), or ``[column]``
    when ``df`` has no thread counts."""
    thr = sorted(int(t) for t in pd.unique(df["threads"])) if "threads" in df.columns else []
    return [f"{column}*threads={t}" for t in thr] or [column]


def additive_throughput_terms(df: pd.DataFrame, *, work: str = "instructions_per_image",
                              memory: Sequence[str] = ("l2d_refills_per_image",)) -> list[str]:
    """Terms of an additive (CPI-stack) time model, ``t = sum c_j x_j`` (kind ``overhead-linear``):

    * ``<work>*framework=<fw>*threads=<t>`` - one time per unit of work for every framework and thread
      count present (the inverse of its instructions per second);
    * ``<memory col>`` - one shared cost per event for each memory column present with finite values
      (default: L2-d refills per image, the traffic beyond the last simulated / real cache level).
    """
    if work not in df.columns:
        raise FeatureError(f"throughput features need column {work!r}")
    if "framework" not in df.columns:
        raise FeatureError("additive throughput terms need a 'framework' column")
    fws = sorted(map(str, pd.unique(df["framework"])))
    thr = sorted(int(t) for t in pd.unique(df["threads"])) if "threads" in df.columns else []
    terms = [f"{work}*framework={fw}" + (f"*threads={t}" if thr else "") for fw in fws for t in (thr or [None])]
    terms += [c for c in memory if c in df.columns
              and np.isfinite(pd.to_numeric(df[c], errors="coerce").to_numpy(dtype="float64")).all()]
    return terms


def speed_scaled(df: pd.DataFrame, features: Sequence[str], ratio: Mapping[int, float], *,
                 known: Sequence[str] = ()) -> tuple[pd.DataFrame, list[str]]:
    """``(copy of df, columns scaled)``: in an additive time model (``t = sum c_j x_j``, kind
    ``overhead-linear``) the fitted time of a row scales with the machine's speed; multiplying the count
    column of every fitted term by ``ratio[threads]`` (= the training calibration's GEMM GFLOP/s / the
    prediction's, per thread count) prices the counts at the speed the machine has now. Terms in
    ``known`` (times computed from a measured figure, e.g. ``fc_stream_ms``) are left as they are.

    Every other feature must be one count column (power 1) times indicators, else :class:`FeatureError`;
    so must a row's thread count be in ``ratio``.
    """
    known = set(known)
    cols: list[str] = []
    for f in features:
        if f in known:
            continue
        numeric = [fac for fac in parse_feature(f) if fac.op != "eq"]
        if len(numeric) != 1 or numeric[0].op != "" or numeric[0].power != 1:
            raise FeatureError(f"feature {f!r} is not one count times indicators: its time cannot be rescaled "
                               "by a speed ratio")
        col = numeric[0].column
        if col in known or col in KEY_COLUMNS:
            raise FeatureError(f"feature {f!r} scales by {col!r}, which is not a count")
        if col not in cols:
            cols.append(col)
    if "threads" not in df.columns:
        raise FeatureError("a speed ratio per thread count needs a 'threads' column")
    absent = [c for c in cols if c not in df.columns]
    if absent:
        raise FeatureError(f"no column(s) {', '.join(absent)} to rescale")
    with attrs_aside(df):  # (pandas deep-copies attrs into every column lookup)
        thr = pd.to_numeric(df["threads"], errors="coerce").to_numpy(dtype="float64")
    r = {int(k): float(v) for k, v in ratio.items()}
    missing = sorted({int(t) for t in thr if np.isfinite(t)} - set(r)) or ([] if np.isfinite(thr).all() else ["NaN"])
    if missing:
        raise FeatureError(f"no speed ratio for thread count(s) {missing}")
    factor = np.array([r[int(t)] for t in thr])
    with attrs_aside(df) as saved:
        out = df.copy()
        for c in cols:
            out[c] = pd.to_numeric(out[c], errors="coerce").to_numpy(dtype="float64") * factor
    out.attrs = _copied_attrs(saved)
    return out, cols


#: columns that are already a per-image time (ms) computed from facts and a measured machine figure:
#: an ``overhead-linear`` model gives them coefficient 1 instead of fitting one (see :func:`attach_stream_time`)
KNOWN_TIME_COLUMNS: tuple[str, ...] = ("fc_stream_ms",)

#: per-image time outside inference: its mean is the overhead of an ``overhead-loglinear`` model
OVERHEAD_COLUMNS: tuple[str, ...] = ("read_ms", "preprocess_ms")


def frame_overhead(df: pd.DataFrame, columns: Sequence[str] = OVERHEAD_COLUMNS) -> float:
    """Mean per-image read + pre-process time (ms) over the rows of ``df``: the fixed part of a latency.

    Raises :class:`FeatureError` when a column is missing or has no finite value.
    """
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise FeatureError(f"the overhead (read + pre-process time) needs column(s) {', '.join(missing)}; "
                           "data sets collected by perfmodel have them (per cell: read_ms, preprocess_ms)")
    total = df[list(columns)].apply(pd.to_numeric, errors="coerce").sum(axis=1, min_count=len(columns))
    total = total[np.isfinite(total.to_numpy(dtype="float64"))]
    if total.empty:
        raise FeatureError(f"no row has finite {' + '.join(columns)}: the overhead cannot be estimated")
    return float(total.mean())


__all__ = [
    "OVERHEAD_COLUMNS", "KNOWN_TIME_COLUMNS", "frame_overhead", "attrs_aside", "additive_throughput_terms",
    "STUDY_FEATURES", "FeatureError", "parse_feature", "base_columns", "compute_feature", "feature_frame",
    "feature_matrix", "target_vector", "candidate_features", "powmon_terms", "freq_level_terms",
    "power_features", "power_loglinear_features", "resolve_provenance", "power_event_names",
    "power_selection_terms", "VALIDATED_POWER_EVENTS", "validated_power_features", "cycles_restate_cores",
    "voltage_fixed_per_frequency",
    "feature_provenance", "column_provenance", "Factor", "KEY_COLUMNS", "join_simulated", "attach_macs",
    "attach_stream_time", "attach_l2_overflow", "speed_scaled", "per_thread_terms", "conv_weights_over", "L2_OVERFLOW_COLUMN",
    "throughput_terms",
]

"""Term sets: which features a model of throughput or power is built from (Powmon power terms, the validated
fixed power set, the throughput sets of a log-target and of an additive time model)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from perfmodel.metrics import EVENTS, base_event

from ._grammar import NON_FEATURES, FeatureError, _key_str

#: the study's fixed feature list (L1-d loads/s, L2-d loads/s, instructions/s)
STUDY_FEATURES: tuple[str, ...] = ("l1d_accesses_per_s", "l2d_accesses_per_s", "instructions_per_s")


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

"""Data joins of the model layer: simulated counts onto timing cells, and the columns computed from zoo facts and
machine figures (MACs, the FC weight-streaming time, conv weights over the L2, speed-rescaled counts)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from perfmodel.data.cells import is_simulated
from perfmodel.data.provenance import Table, as_table, frame_of, like
from perfmodel.metrics import EVENTS

from ._grammar import FeatureError, parse_feature
from ._provenance import KEY_COLUMNS


def _simulated_rows(df: pd.DataFrame) -> pd.Series:
    if "counter_source" not in df.columns and "cell_id" not in df.columns:
        raise FeatureError("cannot tell simulated cells apart: the table has neither 'counter_source' nor 'cell_id'")
    return is_simulated(df)


def join_simulated(cells: Table | pd.DataFrame, *, simulated: pd.Series | None = None,
                   keys: Sequence[str] = ("framework", "network"), if_mixed: bool = False) -> Table | pd.DataFrame:
    """Attach each (framework, network)'s simulated per-image counts to its timing cells: the one join of
    simulated counts.

    ``cells`` is a :func:`perfmodel.data.wide_per_cell` table holding both timing cells and the separate
    valgrind cells (``simulated``: a boolean mask of those rows; by default
    :func:`perfmodel.data.is_simulated`, the ``counter_source`` column). The result has the timing cells
    only (every thread count), with each ``<event>_per_image`` column the valgrind cells have replaced by
    the mean over the matching valgrind cells (repeats), provenance ``"simulated"``; ``<event>_per_s`` is
    recomputed from it and the cell's measured ``latency_ms``, miss rates from the simulated counts. A timing
    cell with no valgrind cell keeps NaN there (nothing is guessed); ``meta["join_unmatched"]`` counts them
    and ``meta["join_simulated_events"]`` names the events joined. Returns the kind of table it is given.

    ``if_mixed``: a table without simulated cells, or with nothing else, is returned as it is (instead of
    :class:`FeatureError`): the counts are joined where there is something to join.
    """
    from perfmodel.data.tables import MISS_RATES  # noqa: PLC0415 (data may be imported by model)
    from perfmodel.metrics import per_image, per_second

    table = as_table(cells)
    cell_df = table.frame
    if if_mixed and (cell_df.empty or not ({"counter_source", "cell_id"} & set(cell_df.columns))):
        return cells
    keys = list(keys)
    missing = [k for k in keys if k not in cell_df.columns]
    if missing:
        raise FeatureError(f"join_simulated needs key column(s) {', '.join(missing)}")
    sim_mask = (_simulated_rows(cell_df) if simulated is None else pd.Series(simulated, index=cell_df.index)).astype(bool)
    if if_mixed and (sim_mask.all() or not sim_mask.any()):
        return cells
    if not sim_mask.any():
        raise FeatureError("join_simulated: the table has no simulated (valgrind) cells")
    if sim_mask.all():
        raise FeatureError("join_simulated: the table has no timing cells, only simulated ones")
    prov: dict[str, str] = {}
    derived: dict[str, list[str]] = {}
    dropped: list[str] = []
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
        for extra in (f"{c}_std", f"{c}_n"):
            if extra in timing.columns:
                timing = timing.drop(columns=extra)
                dropped.append(extra)
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
    out = Table(timing, table.provenance.without(dropped).with_columns(prov, derived_from=derived),
                {**table.meta, "join_unmatched": unmatched, "join_simulated_events": events})
    return like(cells, out)


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


def attach_macs(data: Table | pd.DataFrame, column: str = "network") -> Table | pd.DataFrame:
    """A copy of ``data`` with a ``macs`` column from :func:`perfmodel.zoo.facts` (per network; a key column,
    no provenance of its own). Returns the kind of table it is given.

    Raises :class:`FeatureError` when a network is unknown or its facts cannot be computed.
    """
    df = frame_of(data)
    if "macs" in df.columns:
        return data
    if column not in df.columns:
        raise FeatureError(f"MACs need a {column!r} column")
    macs = _network_facts(df, column, "macs", "MACs")
    out = df.copy()
    out["macs"] = out[column].astype(str).map(macs).astype("float64")
    return like(data, as_table(data).with_frame(out))


def attach_stream_time(data: Table | pd.DataFrame, bandwidth_gbps: Mapping, *,
                       column: str = "network") -> Table | pd.DataFrame:
    """A copy of ``data`` with ``fc_stream_ms``: the time to stream the network's FC weights once (4 bytes x
    :func:`perfmodel.zoo.facts` ``fc_params``) at the machine's measured streaming bandwidth for the row's
    thread count, ``bandwidth_gbps`` = {threads: GB/s} (a calibration, :mod:`perfmodel.collect.calibrate`).

    At batch 1 every FC weight is read once per image and used for one multiply-add, so that part of the
    inference runs at memory speed, not at instruction speed (AlexNet: 58.6 M FC weights, 234 MB). The
    column is a time in ms (:data:`KNOWN_TIME_COLUMNS`: coefficient 1 in an ``overhead-linear`` model).
    Its provenance is ``derived`` (zoo facts x a measured calibration). Returns the kind of table it is given.
    Raises :class:`FeatureError` for an unknown network or a thread count the calibration did not measure.
    """
    df = frame_of(data)
    for c in (column, "threads"):
        if c not in df.columns:
            raise FeatureError(f"the weight-streaming time needs a {c!r} column")
    out = _with_stream_time(df, bandwidth_gbps, column)
    table = as_table(data)
    return like(data, Table(out, table.provenance.with_columns({"fc_stream_ms": "derived"}), table.meta))


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


def attach_l2_overflow(data: Table | pd.DataFrame, l2_bytes: float, *,
                       column: str = "network") -> Table | pd.DataFrame:
    """A copy of ``data`` with ``conv_over_l2_mb``: the weights (MB) of the network's convolutions too big for
    the L2 cache of the machine the rows were timed on (``l2_bytes``, :func:`perfmodel.sysinfo.cache_info`).

    A convolution whose weights do not fit in a core's L2 has them re-read from the last-level cache or
    memory for every block of output pixels the library's GEMM tiles over, a cost per byte that counts
    simulated on a small Arm cache geometry do not carry. Fitted (one cost per thread count), not known.
    Its provenance is ``derived`` (zoo facts x a machine fact), ``meta["l2_bytes"]`` the size used. Returns the
    kind of table it is given. Raises :class:`FeatureError` for an unknown network or a cache size that is not
    a positive number.
    """
    df = frame_of(data)
    try:
        size = float(l2_bytes)
    except (TypeError, ValueError):
        raise FeatureError(f"L2 cache size must be a number of bytes, got {l2_bytes!r}") from None
    if not (np.isfinite(size) and size > 0):
        raise FeatureError(f"L2 cache size must be a finite number of bytes > 0, got {l2_bytes!r}")
    if column not in df.columns:
        raise FeatureError(f"the L2-overflow weights need a {column!r} column")
    values = _network_facts(df, column, lambda name: conv_weights_over(name, size), "per-layer weights")
    out = df.drop(columns=L2_OVERFLOW_COLUMN) if L2_OVERFLOW_COLUMN in df.columns else df
    out = pd.concat([out, pd.DataFrame({L2_OVERFLOW_COLUMN: df[column].astype(str).map(values).astype("float64")},
                                       index=df.index)], axis=1)
    table = as_table(data)
    return like(data, Table(out, table.provenance.with_columns({L2_OVERFLOW_COLUMN: "derived"}),
                            {**table.meta, "l2_bytes": size}))


def speed_scaled(data: Table | pd.DataFrame, features: Sequence[str], ratio: Mapping[int, float], *,
                 known: Sequence[str] = ()) -> tuple[Table | pd.DataFrame, list[str]]:
    """``(copy of data, columns scaled)``: in an additive time model (``t = sum c_j x_j``, kind
    ``overhead-linear``) the fitted time of a row scales with the machine's speed; multiplying the count
    column of every fitted term by ``ratio[threads]`` (= the training calibration's GEMM GFLOP/s / the
    prediction's, per thread count) prices the counts at the speed the machine has now. Terms in
    ``known`` (times computed from a measured figure, e.g. ``fc_stream_ms``) are left as they are.

    Every other feature must be one count column (power 1) times indicators, else :class:`FeatureError`;
    so must a row's thread count be in ``ratio``. The columns keep their provenance (the same measurements,
    priced at another speed); returns the kind of table it is given.
    """
    df = frame_of(data)
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
    thr = pd.to_numeric(df["threads"], errors="coerce").to_numpy(dtype="float64")
    r = {int(k): float(v) for k, v in ratio.items()}
    missing = sorted({int(t) for t in thr if np.isfinite(t)} - set(r)) or ([] if np.isfinite(thr).all() else ["NaN"])
    if missing:
        raise FeatureError(f"no speed ratio for thread count(s) {missing}")
    factor = np.array([r[int(t)] for t in thr])
    out = df.copy()
    for c in cols:
        out[c] = pd.to_numeric(out[c], errors="coerce").to_numpy(dtype="float64") * factor
    return like(data, as_table(data).with_frame(out)), cols

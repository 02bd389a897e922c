"""A quick sample (a few images of one framework x network measured now) ready for a model, and the
long-run estimate from a sample's own throughput (x the long-run / start ratio of long-run traces)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from perfmodel.errors import PerfmodelError
from perfmodel.workflows.defaults import default_counts_sources, default_reference, default_traces


def simulated_columns(model) -> list[str]:
    """The model's input columns measured by simulation (valgrind), e.g. ``instructions_per_image``."""
    return [c for c, p in model.column_provenance.items() if p and "simulated" in p]


def quick_sample_problems(model, framework: str, network: str, threads: int) -> list[str]:
    """Why a quick sample (``perfmodel predict --framework F --network N``) cannot serve ``model``, said
    before it runs (empty: it can): an unknown framework or network, a thread count or name the model's
    terms do not know, or figures a quick sample does not record (sensors, other keys)."""
    from perfmodel.metrics import SENSORS
    from perfmodel.runners import FRAMEWORKS
    from perfmodel.zoo import network_names

    out = []
    if framework not in FRAMEWORKS:
        out.append(f"unknown framework {framework!r} (one of {', '.join(FRAMEWORKS)})")
    if network not in network_names():
        out.append(f"unknown network {network!r} (one of {', '.join(network_names())})")
    if not 1 <= int(threads) <= 64:
        out.append(f"--threads must be 1-64, got {threads}")
    levels = {c: [str(v) for v in vals] for c, vals in (model.levels or {}).items()}
    for col, val in (("framework", framework), ("network", network), ("threads", str(int(threads)))):
        if col in levels and val not in levels[col] and not out:
            out.append(f"the model knows {col} {', '.join(levels[col])}, not {val!r}")
    sensors = [c for c in model.column_provenance if c in SENSORS and c != "cpu_percent"]
    others = [c for c in levels if c not in ("framework", "network", "threads")]
    if sensors or others:
        out.append(f"the model uses {', '.join(dict.fromkeys(others + sensors))}, which a quick sample does not "
                   "record (no sensor readings): measure with perfmodel collect or trace and predict that data "
                   "set (--dataset)")
    return out


def matching_counts_source(model, candidates: Sequence[Path]) -> Path | None:
    """The first of ``candidates`` whose simulated cache geometry is the model's (the first candidate when
    the model records none)."""
    from perfmodel.model.prepare import counts_geometry

    want = model.preparation.simulated_geometry
    for c in candidates:
        if not want:
            return c
        try:
            if counts_geometry([c]) == dict(want):
                return c
        except PerfmodelError:
            continue
    return None


def reference_simulated_records(reference: Path, framework: str, network: str):
    """``(records, note)``: the reference data set's valgrind records of ``framework`` x ``network``, or
    ``(None, reason)`` when the data set is missing, was recorded with other library versions
    (:func:`perfmodel.versions.counts_applicability`, the policy the pipeline follows too) or lacks the
    cell."""
    from perfmodel.data import Dataset
    from perfmodel.data.cells import SIMULATED, counter_source
    from perfmodel.versions import FRAMEWORK_LIBRARY, counts_applicability

    reference = Path(reference)
    if not (reference / "dataset.json").is_file():
        return None, f"no reference data set at {reference}"
    ds = Dataset.open(reference)
    fit = counts_applicability(ds.metadata, framework)
    if fit.refused:
        return None, f"the reference data set {reference} does not apply here: " + "; ".join(fit.reasons())
    prefix = f"{framework}__{network}__"
    cells = [c for c in ds.done_cells() if c.startswith(prefix) and counter_source(c) == SIMULATED]
    if not cells:
        return None, f"the reference data set {reference} has no finished valgrind cell for {framework} x {network}"
    notes = fit.notes()
    return ds.read(cells=cells), (f"valgrind-simulated counts of {framework} x {network} from the reference data "
                                  f"set {reference} (same {FRAMEWORK_LIBRARY.get(framework, framework)} version "
                                  "and architecture as here" + ("; " + "; ".join(notes) if notes else "") + ")")


def quick_sample_table(model, framework: str, network: str, *, threads: int = 1, images: int = 10,
                       counters: str = "auto", simulated_from: Path | None = None, simulate: bool = False,
                       sampler=None, status=None, seconds: float | None = None):
    """``(wide cell table ready to predict, note on where the counts came from, long records of the sample,
    the table as measured)``: the inputs the model needs are attached and its counts priced at the speed
    measured now (:func:`perfmodel.model.prepare.prepare_for_model` with the calibration taken with the
    sample); the table as measured is the one before that pricing (for the training-range check).

    ``seconds``: count images for that long instead of ``images`` (:func:`perfmodel.collect.quick_sample`).
    ``status``: called with a line of progress (a :data:`perfmodel.workflows.Say`).

    Measures a quick sample; when the model needs simulated counts the sample cannot give, they come
    from the reference data set (same library versions only), else from a valgrind pass of the sample
    when ``simulate`` (slow), else :class:`PerfmodelError`.
    """
    import pandas as pd

    from perfmodel.data import wide_per_cell
    from perfmodel.model.features import join_simulated

    if sampler is None:
        from perfmodel.collect.quick import quick_sample as sampler
    say = status or (lambda msg: None)
    timed = {} if seconds is None else {"seconds": seconds}
    need_sim = simulated_columns(model)
    sim_records, note = None, "the quick sample's own counters"
    if need_sim:
        if simulated_from is not None:
            from perfmodel.model.prepare import check_counts_geometry, counts_geometry

            ref = Path(simulated_from)
            check_counts_geometry(model, counts_geometry([ref]), str(ref), option="--simulated-from")
        else:  # the checkout's valgrind cells simulated with the model's caches
            ref = matching_counts_source(model, default_counts_sources()) or default_reference()
        sim_records, why = reference_simulated_records(ref, framework, network)
        if sim_records is None:
            if not simulate:
                raise PerfmodelError(
                    f"the model needs simulated counts ({', '.join(need_sim)}) that a quick sample does not "
                    f"measure, and {why}. Add --simulate to run the valgrind pass for this sample (slow: "
                    "minutes per image), or give --simulated-from DATASET with matching library versions")
            say(f"{why}; running the valgrind pass for this sample (slow: minutes)")
            records = sampler(framework, network, threads=threads, images=images, counters=counters, simulate=True,
                              **timed)
            note = f"valgrind-simulated counts of this quick sample ({why.split(':')[0]})"
        else:
            note = why
            say(f"simulated counts: {note}")
            records = sampler(framework, network, threads=threads, images=images, counters=counters, **timed)
    else:
        records = sampler(framework, network, threads=threads, images=images, counters=counters, **timed)
    both = records if sim_records is None else pd.concat([records, sim_records], ignore_index=True)
    wide = join_simulated(wide_per_cell(both), if_mixed=True)
    if need_sim and len(wide) and not wide.meta.get("join_simulated_events"):
        raise PerfmodelError("the quick sample has no simulated (valgrind) cell to take counts from")
    if "macs" in model.column_provenance and "macs" not in wide.columns:
        note += "; MACs from the zoo"
    from perfmodel.model.prepare import needs_stream_time, prepare_for_model

    now_gflops = now_bandwidth = None
    if needs_stream_time(model.features) or model.preparation.gemm_gflops:
        from perfmodel.collect.calibrate import safe_calibration
        from perfmodel.data import gemm_speed, stream_bandwidth

        say("measuring this machine's streaming bandwidth and GEMM speed (about 1 s)")
        cal = safe_calibration([threads], seconds=0.2)
        now_gflops, now_bandwidth = gemm_speed([cal]), stream_bandwidth([cal])
        if not now_bandwidth and cal.get("errors"):
            note += f"; measuring the bandwidth here failed: {'; '.join(cal['errors'].values())}"
    wide, as_measured, notes = prepare_for_model(wide, model, now_gflops=now_gflops, now_bandwidth=now_bandwidth)
    if "stream_bandwidth_from" in notes:
        note += f"; streaming bandwidth {notes['stream_bandwidth_from']}"
    speed = notes.get("speed_calibration")
    if speed is not None:
        note += (f"; counts priced at the speed measured now (x {speed['ratio'][int(threads)]:.3f}, {speed['source']})"
                 if speed["applied"] else f"; not rescaled to the speed now: {speed['reason']}")
        if speed.get("warning"):
            note += f"; warning: {speed['warning']}"
    return wide, note, records, as_measured


def sample_image_count(df) -> int | None:
    """Images a quick sample counted (``latency_ms_n`` of its wide cell table); None when unknown."""
    from perfmodel.data.provenance import frame_of

    try:
        n = float(frame_of(df)["latency_ms_n"].iloc[0])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return int(n) if math.isfinite(n) else None


def sample_rel_se(df) -> float:
    """Relative standard error of a quick sample's mean latency (sd / mean / sqrt(n)); 0 when unknown."""
    from perfmodel.data.provenance import frame_of

    try:
        m, sd, n = (float(frame_of(df)[c].iloc[0]) for c in ("latency_ms", "latency_ms_std", "latency_ms_n"))
    except (KeyError, IndexError, TypeError, ValueError):
        return 0.0
    return sd / m / math.sqrt(n) if all(math.isfinite(v) for v in (m, sd, n)) and m > 0 and n > 1 else 0.0


def long_run_from_sample(quick_fps: float, framework: str | None, threads: int, traces: list[Path] | None = None, *,
                         exclude_network=(), alpha: float = 0.05, quick_rel_se: float = 0.0,
                         window_s: float | None = None, state=None) -> dict:
    """The quick sample's throughput x the long-run / start-of-run ratio of long-run traces
    (:mod:`perfmodel.model.longrun`): ``{"pred", "lo", "hi", "ratio", "n_traces", "traces_from",
    "ratio_estimator", "ratio_estimator_reason"}`` (``state_model`` too where it was used), or ``{"reason"}``
    when no trace applies. Traces of the same framework and thread count are used when there are at least
    two, else all of them (said in ``traces_from``). ``window_s``: the traces' start window that stands for
    the sample (default :data:`~perfmodel.model.longrun.WINDOW_S`). ``state``: the sample's own
    :class:`~perfmodel.model.longrun.SampleState`; where the traces carry a temperature / frequency that
    varies, the ratio is modelled from it (:func:`~perfmodel.model.longrun.choose_ratio`:
    ``ratio_estimator`` ``"state-model"``), else the pooled ratio (``"pooled"``), the reason said."""
    import pandas as pd

    from perfmodel.data import read_dataset
    from perfmodel.model.longrun import WINDOW_S, choose_ratio, trace_ratios

    paths = list(traces) if traces else default_traces()
    if not paths:
        return {"reason": "no long-run trace data set (give --traces DIR; record one with perfmodel trace)"}
    try:
        table = pd.concat([trace_ratios(read_dataset(p), window_s=WINDOW_S if window_s is None else window_s)
                           for p in paths], ignore_index=True)
        table = table[~table["network"].isin(list(exclude_network))]
        same = table[(table["framework"] == framework) & (table["threads"] == int(threads))] if framework \
            else table.iloc[:0]
        if len(same) >= 2:
            used, where = same, f"of {framework}, {threads} thread(s)"
        else:
            used = table
            where = "of any framework / thread count " + (
                f"(fewer than 2 of {framework} x {threads})" if framework else "(no --framework named)")
        choice = choose_ratio(used, state)
        # the traces the ratio used (a state model: those carrying the sample's state), not all of them
        where = f"{choice.n} trace(s) " + (f"(of {len(used)}) " if choice.n != len(used) else "") + where
        pred, lo, hi = choice.predict(quick_fps, state, alpha, quick_rel_se)
        ratio = choice.ratio(state)
    except PerfmodelError as exc:
        return {"reason": str(exc)}
    out = {"pred": pred, "lo": lo, "hi": hi, "ratio": ratio, "n_traces": choice.n,
           "traces_from": where + " in " + ", ".join(map(str, paths)),
           "ratio_estimator": choice.estimator, "ratio_estimator_reason": choice.reason}
    if choice.state is not None:
        out["state_model"] = choice.state.to_dict()
    return out

"""A user's command (``perfmodel predict [--model M] -- CMD``): what it cannot give a model, said before it
runs, and its long-run throughput from a quick sample of it."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfmodel.errors import PerfmodelError
from perfmodel.readings import Reading, json_safe
from perfmodel.workflows.defaults import all_trace_datasets
from perfmodel.workflows.quick import long_run_from_sample, simulated_columns

#: columns of a zoo network's graph (not measured): a measured command needs --network for them
NETWORK_FACT_COLUMNS = ("fc_stream_ms", "macs", "conv_over_l2_mb")


def command_problems(model, *, framework: str | None, network: str | None, threads: int | None,
                     counters: str) -> list[str]:
    """Why a measured command (``perfmodel predict --model M -- CMD``) cannot give ``model``'s features, said
    before the command runs (empty: it can). A command's records carry the framework / network / threads
    the user names (``--framework/--network/--threads``), the per-image counts of ``counters``, its latency
    and CPU %, and nothing else: no sensor readings, no other keys (cores, frequency). A network's graph
    facts need a zoo network; simulated counts need the command run under valgrind, real counts outside it."""
    from perfmodel.metrics import SENSORS
    from perfmodel.zoo import network_names

    prov = model.column_provenance
    levels = {c: [str(v) for v in vals] for c, vals in (model.levels or {}).items()}
    named = {"framework": framework, "network": network, "threads": None if threads is None else str(int(threads))}
    out = []
    for col in ("framework", "network", "threads"):
        if col not in levels and "key" not in (prov.get(col) or []):
            continue
        if named[col] is None:
            out.append(f"the model's terms are per {col}: say what the command runs with --{col}")
        elif col in levels and named[col] not in levels[col]:
            out.append(f"the model knows {col} {', '.join(levels[col])}, not {named[col]!r}")
    others = [c for c in dict.fromkeys([*levels, *(c for c, p in prov.items() if "key" in (p or []))])
              if c not in named]
    sensors = [c for c in prov if c in SENSORS and c != "cpu_percent"]
    if others or sensors:
        out.append(f"the model uses {', '.join(dict.fromkeys(others + sensors))}, which a measured command does not record "
                   "(no sensor readings, no keys but framework / network / threads): measure on the machine with "
                   "perfmodel collect or trace and predict that data set (--dataset)")
    facts = [c for c in prov if c in NETWORK_FACT_COLUMNS]
    if facts and not network:
        out.append(f"the model uses {', '.join(facts)}, a fact of a zoo network's graph: name the network the "
                   "command runs with --network")
    elif facts and network not in network_names():
        out.append(f"the model uses {', '.join(facts)}, a fact of a zoo network's graph, and {network!r} is not a "
                   f"zoo network ({', '.join(network_names())})")
    sim = simulated_columns(model)
    real = [c for c, p in prov.items() if "real" in (p or []) and c not in SENSORS]
    if sim and counters != "valgrind":
        out.append(f"the model's {', '.join(sim)} are simulated (valgrind) counts: measure the command with "
                   "--counters valgrind (slow: the whole command runs under the cache simulator) - its "
                   f"{counters} counters are another source")
    elif real and counters == "valgrind":
        out.append(f"the model's {', '.join(real)} are real (PMU) counts: valgrind's simulated counts are another "
                   "source (use --counters perf on a machine with a PMU)")
    return out


@dataclass
class CommandSample:
    """A measured sample of a user's command, whatever measured it (its progress lines, the two-phase
    method, or a whole run for a model): its own throughput, how it was measured, the machine's state over
    it and its ``phase="command"`` records (per image: latency, counts) to store as a training cell."""

    command: list[str]
    fps: float
    rel_se: float  #: relative standard error of the per-image time (0: unknown)
    images: int
    window_s: float | None  #: the traces' start window that stands for it (None: the default 2 s)
    what: str  #: how it was measured, in words
    sample: dict[str, Any]
    state: Any  #: :class:`perfmodel.model.longrun.SampleState`
    records: Any = None  #: long records (pandas), phase="command"
    how: dict[str, Any] = field(default_factory=dict)  #: counter source and method of the records
    intervals_s: list[float] = field(default_factory=list)  #: per-image times (s) where the lines gave them
    #: why the measurement's time is no steady-state throughput (``fps`` then NaN; no long-run estimate and
    #: no ``throughput_fps`` saved): start-up included, or timed under valgrind's simulator
    no_throughput: str | None = None


#: why a run timed under valgrind gives no throughput (callgrind runs the command tens of times slower)
VALGRIND_TIMED = ("timed under valgrind's simulator (callgrind runs the command tens of times slower): its wall "
                  "time is no throughput")
#: why a model's whole run (no load-only command) gives no throughput for the long-run estimate
STARTUP_TIMED = ("the model's measurement times the whole run including start-up and model load (s1 / N): give "
                 "--load-command (the same command loading its model and running no image: per image = "
                 "(s1 - s2) / N) or run without --model for a line-timed sample")


def state_from_points(a, b, *, cpu_percent: Reading | None = None):
    """The sample's state (:class:`~perfmodel.model.longrun.SampleState`) from two
    :class:`~perfmodel.collect.lines.StatePoint` (at its start and end; either may be None): temperature at
    the start and its rise per second, mean frequency, CPU % of the command (``cpu_percent`` where the
    measurement gave its own). A figure no sensor gave is NaN with the reason."""
    from perfmodel.model.longrun import STATE_FEATURES, SampleState

    st = SampleState()
    pts = [p for p in (a, b) if p is not None]
    if not pts:
        st.reasons = dict.fromkeys(STATE_FEATURES, "no sensor read over the sample")
        return st

    def reading(p, name):
        r = p.readings.get(name) if p is not None else None
        return r if r is not None and r.available else None

    t0, t1 = reading(a, "temperature_c"), reading(b, "temperature_c")
    if t0 is not None:
        st.start_temp_c, st.sources["start_temp_c"] = t0.value, t0.source
        if t1 is not None and b.t > a.t:
            st.temp_rise_c_per_s = (t1.value - t0.value) / (b.t - a.t)
            st.sources["temp_rise_c_per_s"] = f"{t0.source}, at the sample's start and end"
    freqs = [r for r in (reading(a, "freq_mhz"), reading(b, "freq_mhz")) if r is not None]
    if freqs:
        st.freq_mhz = sum(r.value for r in freqs) / len(freqs)
        st.sources["freq_mhz"] = freqs[0].source
    if cpu_percent is not None and cpu_percent.available:
        st.cpu_percent, st.sources["cpu_percent"] = cpu_percent.value, cpu_percent.source
    elif cpu_percent is None and a is not None and b is not None and b.t > a.t \
            and math.isfinite(a.cpu_s) and math.isfinite(b.cpu_s):
        st.cpu_percent = 100.0 * (b.cpu_s - a.cpu_s) / (b.t - a.t)
        st.sources["cpu_percent"] = "psutil cpu_times of the command's process tree over the sample"
    for f, metric in (("start_temp_c", "temperature_c"), ("temp_rise_c_per_s", "temperature_c"),
                      ("freq_mhz", "freq_mhz")):
        if not math.isfinite(st.value(f)):
            r = next((p.readings.get(metric) for p in pts if p.readings.get(metric) is not None), None)
            st.reasons[f] = (r.reason if r is not None and not r.available and r.reason else
                             "read at one end of the sample only" if f == "temp_rise_c_per_s" and t0 is not None
                             else f"no {metric} reading")
    if not math.isfinite(st.cpu_percent):
        st.reasons["cpu_percent"] = (cpu_percent.reason if cpu_percent is not None and cpu_percent.reason else
                                     (a.cpu_reason if a is not None and a.cpu_reason else
                                      "the command's CPU time was not read at both ends of the sample"))
    return st


def _sensors(root: str | Path):
    from perfmodel.sensors import SensorSet

    return SensorSet(root)


def command_sample(command: Sequence[str], *, images: int | None = None, seconds: float | None = None,
                   regex: str | None = None, timeout: float = 600.0, two_phase: bool = False,
                   load_command: str | None = None, counters: str = "auto", framework: str | None = None,
                   network: str | None = None, threads: int | None = None,
                   sensor_root: str | Path = "/") -> CommandSample:
    """A quick sample of any command: its own throughput from its stdout progress lines
    (:func:`perfmodel.collect.command.sample_command_counted`: the counts per image of ``counters`` over the
    sample's own window) or, with ``two_phase``, the (s1 - s2) / N method of
    :func:`perfmodel.collect.command.measure_command`; the machine's state (sensors under ``sensor_root``)
    at its start and end."""
    import shlex

    from perfmodel.model.longrun import SKIP_S

    shown = shlex.join([str(c) for c in command])
    keys = dict(framework=framework or "", network=network or "", threads=1 if threads is None else int(threads))
    sset = _sensors(sensor_root)
    try:
        if two_phase:
            from perfmodel.collect.command import measure_command
            from perfmodel.collect.lines import StatePoint
            from perfmodel.data import wide_per_cell

            if counters == "valgrind":
                raise PerfmodelError(f"--two-phase times the command: {VALGRIND_TIMED}; give --counters auto, "
                                     "perf or software (valgrind's simulated counts: perfmodel predict --model M "
                                     "-- CMD, or perfmodel collect --command)")
            if not load_command:
                raise PerfmodelError("--two-phase needs --load-command (the same command loading its model and "
                                     "running no image): per image = (s1 - s2) / N")
            n = 10 if images is None else int(images)
            a = StatePoint(time.monotonic(), sset.read())
            rec, measured = measure_command(list(command), n, load_argv=load_command, counters=counters,
                                            timeout=timeout, **keys)
            b = StatePoint(time.monotonic(), sset.read())
            wide = wide_per_cell(rec).frame
            lat = float(wide["latency_ms"].iloc[0]) if "latency_ms" in wide else math.nan
            if not (math.isfinite(lat) and lat > 0):
                raise PerfmodelError(f"the two-phase method gave no per-image time for {shown} (the load-only run "
                                     "took as long as the full run: give more --images)")
            cpu = _reading(rec, "cpu_percent")
            return CommandSample([str(c) for c in command], 1e3 / lat, 0.0, n, None,
                                 f"two-phase (s1 - s2) / N over {n} image(s) ({shown} vs {load_command})",
                                 {"images": n, "method": "(s1 - s2) / N", "load_command": load_command,
                                  "wall_s": measured["wall_s"]},
                                 state_from_points(a, b, cpu_percent=cpu), rec,
                                 {k: v for k, v in measured.items() if k != "note"} | {"note": measured["note"]})
        if load_command:
            raise PerfmodelError("--load-command applies to --two-phase")
        from perfmodel.collect.command import sample_command_counted

        smp, readings, how = sample_command_counted(list(command), counters=counters, sensors=sset.read,
                                                    images=images, seconds=seconds, regex=regex, timeout=timeout)
    finally:
        sset.close()
    state = state_from_points(smp.state_start, smp.state_end)
    window = float(min(SKIP_S, max(1.0, round(smp.elapsed_s))))
    what = (f"quick sample of {smp.images} image(s) in {smp.elapsed_s:.2f} s from stdout progress lines (after a "
            f"warm-up of {smp.warmup_lines} line(s), {smp.warmup_s:.2f} s)")
    lines_src = "perfmodel.collect.lines (stdout progress lines, after the warm-up)"
    readings = dict(readings)
    readings["latency_ms"] = Reading("latency_ms", 1e3 / smp.fps, "ms", lines_src, "real")
    cpu = state.value("cpu_percent")
    readings["cpu_percent"] = (Reading("cpu_percent", cpu, "%", state.sources["cpu_percent"], "software")
                               if math.isfinite(cpu) else
                               Reading.missing("cpu_percent", state.reasons.get("cpu_percent", "not read"), "%"))
    return CommandSample([str(c) for c in command], smp.fps, smp.rel_se, smp.images, window, what, smp.to_dict(),
                         state, _command_records(command, readings, **keys), dict(how), list(smp.intervals_s))


def _reading(records, metric: str) -> Reading | None:
    """The one value of ``metric`` in a command's long records, as a Reading (None when absent)."""
    rows = records[records["metric"] == metric] if len(records) else records
    if not len(rows):
        return None
    r = rows.iloc[0]
    v = float(r["value"])
    return Reading(metric, v, str(r["unit"]), str(r["source"]), str(r["provenance"])) if math.isfinite(v) else \
        Reading.missing(metric, str(r["reason"] or "not measured"), str(r["unit"]), str(r["source"]))


def _command_records(command: Sequence[str], readings: dict[str, Reading], *, framework: str, network: str,
                     threads: int):
    from perfmodel.collect.meta import new_run_id, system_info, usable_readings
    from perfmodel.data.schema import records_from_readings, validate

    argv = [str(c) for c in command]
    name = Path(argv[0]).name  # as perfmodel collect --command names a command's workload
    df = records_from_readings(usable_readings(readings), run_id=new_run_id(), cell_id="command-sample", board=str(
        system_info().get("board") or "unknown"), framework=framework, network=network, threads=int(threads),
        workload=f"command:{name}", phase="command", repeat=0)
    return validate(df, what="command sample records")


def measure_command_sample(command: Sequence[str], *, images: int, counters: str, framework: str | None,
                           network: str | None, threads: int | None, timeout: float,
                           load_command: str | None = None, sensor_root: str | Path = "/") -> CommandSample:
    """A whole run of a command for a model's features (:func:`perfmodel.collect.command.measure_command`)
    and the machine's state before and after its full run; the command runs once (and its load-only
    command once). Its throughput is the sample of the long-run estimate beside the model's prediction
    only where it excludes start-up: with ``load_command`` (per image = (s1 - s2) / N). Without one (per
    image = s1 / N, start-up and model load included) or timed under valgrind, ``fps`` is NaN and
    ``no_throughput`` says why (never a start-up-inclusive or simulator-slowed throughput)."""
    import shlex

    from perfmodel.collect.command import measure_command
    from perfmodel.collect.lines import StatePoint
    from perfmodel.data import wide_per_cell

    sset = _sensors(sensor_root)
    points: dict[str, StatePoint] = {}

    def around_full(when: str) -> None:  # the state over the full run only (not the load-only run)
        if when not in points:
            points[when] = StatePoint(time.monotonic(), sset.read())

    try:
        rec, measured = measure_command(list(command), images, load_argv=load_command, counters=counters,
                                        framework=framework or "", network=network or "",
                                        threads=1 if threads is None else threads, timeout=timeout,
                                        around_full=around_full)
    finally:
        sset.close()
    wide = wide_per_cell(rec).frame
    lat = float(wide["latency_ms"].iloc[0]) if "latency_ms" in wide else math.nan
    n = int(images)
    shown = shlex.join([str(c) for c in command])
    why = VALGRIND_TIMED if measured["counters_used"] == "valgrind" else None if load_command else STARTUP_TIMED
    fps = 1e3 / lat if why is None and math.isfinite(lat) and lat > 0 else math.nan
    what = (f"whole run of {shown} / {n} image(s) ({measured['method']}"
            + (f", load-only {load_command}" if load_command else "") + ")")
    state = state_from_points(points.get("start"), points.get("end"),
                              cpu_percent=_reading(rec, "cpu_percent"))
    for f in ("start_temp_c", "temp_rise_c_per_s", "freq_mhz"):  # where each figure was read, said
        if f in state.sources:
            state.sources[f] += " (before and after the full run, start-up included)"
    return CommandSample([str(c) for c in command], fps, 0.0, n, None, what,
                         {"images": n, "method": measured["method"], "wall_s": measured["wall_s"],
                          "load_command": load_command},
                         state, rec, {k: v for k, v in measured.items() if k != "note"} | {"note": measured["note"]},
                         no_throughput=why)


def long_run_estimate(cs: CommandSample, *, framework: str | None = None, threads: int | None = None,
                      traces: list[Path] | None = None, alpha: float = 0.05) -> dict:
    """The sample's throughput x the long-run / start ratio of this machine's traces
    (:func:`~perfmodel.workflows.quick.long_run_from_sample`; the traces of ``framework`` x ``threads`` when
    there are two, else all pooled; modelled from the sample's state where the traces vary in temperature /
    frequency). The traces' start window is the sample's length rounded to whole seconds (at least 1 s:
    the traces' period), or 2 s for a whole run."""
    out = {"command": cs.command, "sample_fps": cs.fps, "images": cs.images, "sample": cs.sample, "alpha": alpha,
           "sample_state": cs.state.to_dict()}
    if cs.no_throughput or not (math.isfinite(cs.fps) and cs.fps > 0):
        reason = cs.no_throughput or "the measurement gave no per-image time"
        out.update(long_run_fps=math.nan, lo=math.nan, hi=math.nan, reason=reason,
                   estimator=f"{cs.what}; no long-run estimate: {reason}")
        return out
    lr = long_run_from_sample(cs.fps, framework, 1 if threads is None else threads, traces or all_trace_datasets(),
                              alpha=alpha, quick_rel_se=cs.rel_se, window_s=cs.window_s, state=cs.state)
    if "pred" in lr:
        win = f"{cs.window_s:g}" if cs.window_s is not None else "2"
        how = (f"predicted from the sample's state by a linear model of {lr['n_traces']} traces "
               f"({lr['state_model']['formula']})" if lr["ratio_estimator"] == "state-model" else "pooled")
        out.update(long_run_fps=lr["pred"], lo=lr["lo"], hi=lr["hi"], ratio=lr["ratio"], n_traces=lr["n_traces"],
                   traces_from=lr["traces_from"], ratio_estimator=lr["ratio_estimator"],
                   ratio_estimator_reason=lr["ratio_estimator_reason"],
                   estimator=f"{cs.what} x the long-run / first-{win}-s ratio {lr['ratio']:.3f} ({how}) of "
                             f"{lr['traces_from']}")
        if "state_model" in lr:
            out["state_model"] = lr["state_model"]
    else:
        out.update(long_run_fps=math.nan, lo=math.nan, hi=math.nan, reason=lr["reason"],
                   estimator=f"{cs.what}; no long-run ratio: {lr['reason']}")
    return out


def save_sample(out: str | Path, cs: CommandSample, est: dict, *, framework: str | None = None,
                network: str | None = None, threads: int | None = None) -> dict:
    """Store the sample as one training cell of the data set at ``out`` (the data-set format of
    ``perfmodel collect --command``: ``phase="command"`` records per image; the cell's meta holds the
    command, the per-image times, the sample's throughput and state, the long-run estimate and how the
    counts were made, or why there are none). Returns ``{"path", "cell_id"}``."""
    import hashlib

    from perfmodel.collect.command import save_command_cell
    from perfmodel.collect.meta import new_run_id

    if cs.records is None or not len(cs.records):
        raise PerfmodelError("the sample has no records to save")
    run_id = new_run_id()
    digest = hashlib.sha256("\0".join(cs.command).encode()).hexdigest()[:10]
    # the last part names the counter source (perfmodel.data.cells), as perfmodel collect --command's cells
    cell_id = f"command-sample__{digest}__{run_id}__{cs.how.get('counters_used') or 'software'}"
    rec = cs.records.copy()
    rec["cell_id"], rec["run_id"] = cell_id, run_id
    if cs.no_throughput:  # a start-up-inclusive or simulator-slowed time is never stored as a throughput
        timed = rec["metric"].isin(["latency_ms", "throughput_fps"])
        rec.loc[timed, "value"] = math.nan
        rec.loc[timed, "reason"] = cs.no_throughput
        rec.loc[timed, "provenance"] = "none"
    from perfmodel.metrics import EVENTS

    missing = rec[rec["value"].isna() & rec["metric"].isin(list(EVENTS))]
    counts_note = cs.how.get("no_hardware_counts") or (
        "; ".join(sorted({f"{m}: {r}" for m, r in zip(missing["metric"], missing["reason"])}))[:2000]
        if len(missing) else "")
    meta = {"mode": "command-sample", "command": cs.command, "framework": framework, "network": network,
            "threads": threads, "images": cs.images, "method": cs.what, "per_image_s": cs.intervals_s,
            "sample_fps": cs.fps, "no_throughput": cs.no_throughput, "sample": cs.sample, "sample_state": cs.state.to_dict(),
            "long_run_fps": est.get("long_run_fps"), "lo": est.get("lo"), "hi": est.get("hi"),
            "estimator": est.get("estimator"), "ratio_estimator": est.get("ratio_estimator"),
            "counters": cs.how.get("counters"), "counters_used": cs.how.get("counters_used"),
            "counts_method": cs.how.get("method"), "counts_missing": counts_note or None,
            "note": cs.how.get("note") or ("per image = the sample's counts / the images it counted; hardware "
                                           "counts: " + (counts_note or "as recorded"))}
    spec = {"mode": "command-sample", "counters": cs.how.get("counters"),
            "counters_used": cs.how.get("counters_used")}
    path = save_command_cell(out, rec, json_safe(meta), cell_id=cell_id, run_id=run_id, spec=spec)
    return {"path": path, "cell_id": cell_id}


def command_sample_estimate(command: Sequence[str], *, images: int | None = None, seconds: float | None = None,
                            regex: str | None = None, timeout: float = 600.0, two_phase: bool = False,
                            load_command: str | None = None, framework: str | None = None, threads: int | None = None,
                            traces: list[Path] | None = None, alpha: float = 0.05, counters: str = "auto",
                            network: str | None = None, save: str | Path | None = None,
                            sensor_root: str | Path = "/") -> dict:
    """Long-run throughput of any command from a quick sample of it (:func:`command_sample`,
    :func:`long_run_estimate`); with ``save`` the sample is stored as a training cell (:func:`save_sample`,
    ``saved`` in the result)."""
    if save is not None:
        from perfmodel.data.store import check_target

        check_target(Path(save))  # before minutes of sampling
    cs = command_sample(command, images=images, seconds=seconds, regex=regex, timeout=timeout, two_phase=two_phase,
                        load_command=load_command, counters=counters, framework=framework, network=network,
                        threads=threads, sensor_root=sensor_root)
    return command_estimate(cs, framework=framework, network=network, threads=threads, traces=traces, alpha=alpha,
                            save=save)


def command_estimate(cs: CommandSample, *, framework: str | None = None, network: str | None = None,
                     threads: int | None = None, traces: list[Path] | None = None, alpha: float = 0.05,
                     save: str | Path | None = None) -> dict:
    """:func:`long_run_estimate` of a measured sample, with how its counts were made (``counters``) and,
    with ``save``, where it was stored as a training cell (``saved``)."""
    est = long_run_estimate(cs, framework=framework, threads=threads, traces=traces, alpha=alpha)
    est["counters"] = {k: cs.how.get(k) for k in ("counters", "counters_used", "method", "no_hardware_counts")
                       if cs.how.get(k) is not None}
    if save is not None:
        est["saved"] = save_sample(save, cs, est, framework=framework, network=network, threads=threads)
    return est

"""A user's command (``perfmodel predict [--model M] -- CMD``): what it cannot give a model, said before it
runs, and its long-run throughput from a quick sample of it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from perfmodel.errors import PerfmodelError
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


def command_sample_estimate(command: Sequence[str], *, images: int | None = None, seconds: float | None = None,
                            regex: str | None = None, timeout: float = 600.0, two_phase: bool = False,
                            load_command: str | None = None, framework: str | None = None, threads: int | None = None,
                            traces: list[Path] | None = None, alpha: float = 0.05) -> dict:
    """Long-run throughput of any command from a quick sample of it: its own throughput (from its stdout
    progress lines, :func:`perfmodel.collect.lines.sample_command`; or with ``two_phase`` the
    (s1 - s2) / N method of :func:`perfmodel.collect.command.measure_command`) x the long-run / start
    ratio of this machine's traces (:func:`~perfmodel.workflows.quick.long_run_from_sample`; the traces of
    ``framework`` x ``threads`` when there are two, else all pooled). The traces' start window is the
    sample's length rounded to whole seconds (at least 1 s: the traces' period), or 2 s for two-phase."""
    import shlex

    from perfmodel.model.longrun import SKIP_S

    shown = shlex.join([str(c) for c in command])
    if two_phase:
        from perfmodel.collect.command import measure_command
        from perfmodel.data import wide_per_cell

        if not load_command:
            raise PerfmodelError("--two-phase needs --load-command (the same command loading its model and "
                                 "running no image): per image = (s1 - s2) / N")
        n = 10 if images is None else int(images)
        rec, measured = measure_command(list(command), n, load_argv=load_command, counters="software", timeout=timeout)
        wide = wide_per_cell(rec).frame
        lat = float(wide["latency_ms"].iloc[0]) if "latency_ms" in wide else math.nan
        if not (math.isfinite(lat) and lat > 0):
            raise PerfmodelError(f"the two-phase method gave no per-image time for {shown} (the load-only run took "
                                 "as long as the full run: give more --images)")
        fps, rel_se, window = 1e3 / lat, 0.0, None
        sample = {"images": n, "method": "(s1 - s2) / N", "load_command": load_command,
                  "wall_s": measured["wall_s"]}
        what = f"two-phase (s1 - s2) / N over {n} image(s) ({shown} vs {load_command})"
    else:
        if load_command:
            raise PerfmodelError("--load-command applies to --two-phase")
        from perfmodel.collect.lines import sample_command

        smp = sample_command(list(command), images=images, seconds=seconds, regex=regex, timeout=timeout)
        fps, rel_se, n = smp.fps, smp.rel_se, smp.images
        window = float(min(SKIP_S, max(1.0, round(smp.elapsed_s))))
        sample = smp.to_dict()
        what = (f"quick sample of {n} image(s) in {smp.elapsed_s:.2f} s from stdout progress lines (after a warm-up "
                f"of {smp.warmup_lines} line(s), {smp.warmup_s:.2f} s)")
    lr = long_run_from_sample(fps, framework, 1 if threads is None else threads, traces or all_trace_datasets(),
                              alpha=alpha,
                              quick_rel_se=rel_se, window_s=window)
    out = {"command": [str(c) for c in command], "sample_fps": fps, "images": n, "sample": sample, "alpha": alpha}
    if "pred" in lr:
        win = f"{window:g}" if window is not None else "2"
        out.update(long_run_fps=lr["pred"], lo=lr["lo"], hi=lr["hi"], ratio=lr["ratio"], n_traces=lr["n_traces"],
                   traces_from=lr["traces_from"], estimator=f"{what} x the long-run / first-{win}-s ratio "
                   f"{lr['ratio']:.3f} of {lr['traces_from']}")
    else:
        out.update(long_run_fps=math.nan, lo=math.nan, hi=math.nan, reason=lr["reason"],
                   estimator=f"{what}; no long-run ratio: {lr['reason']}")
    return out

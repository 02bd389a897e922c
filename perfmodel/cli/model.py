"""``perfmodel fit | evaluate | predict``: regressors from hardware metrics to throughput / power."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from perfmodel.cli.options import list_option, split_list

from perfmodel.readings import json_safe

from perfmodel.errors import PerfmodelError

#: names of :mod:`perfmodel.model.prepare` also reachable here (imported on first use: importing the model
#: stage loads pandas, scipy and scikit-learn, which every command would pay for at start-up)
_FROM_PREPARE = ("OWN_CALIBRATIONS", "check_counts_geometry", "counts_geometry", "needs_l2_overflow", "needs_stream_time", "prepare_for_model",
                 "speed_ratio_text", "training_speed", "with_l2_overflow", "with_speed_calibration",
                 "with_stream_time")


def __getattr__(name: str):
    if name in _FROM_PREPARE:
        from perfmodel.model import prepare

        return getattr(prepare, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

KINDS = ("linear", "loglinear", "loglog", "ridge", "overhead-loglinear", "overhead-linear")
CV_CHOICES = ("lono", "lofo", "lowo", "lobo", "kfold")
TABLES = ("auto", "cell", "image", "sample")

_DATASET_HELP = ("A data set folder, a records file (.parquet), a wide table (.csv), armpm:PATH (an ARMPM power "
                 "file), powmon:PATH (Powmon per-workload data; PATH@A7 picks a cluster) or csv:PATH with --map "
                 "(any power / PMU log).")


def _wide_from_records(records, table: str):
    from perfmodel.data import wide_per_cell, wide_per_image, wide_per_sample
    from perfmodel.model.features import join_simulated

    phases = set(records["phase"].unique())
    if table == "auto":
        table = "sample" if phases == {"trace"} else "cell"
    if table == "sample":
        return wide_per_sample(records)
    if table == "image":
        return wide_per_image(records)
    wide = wide_per_cell(records)
    if "cell_id" in wide.columns and len(wide):
        sim = wide["cell_id"].astype(str).str.split("__").str[-1] == "valgrind"
        if sim.any() and not sim.all():
            wide = join_simulated(wide)
    return wide


def _cluster_suffix(text: str) -> tuple[str, str | None]:
    """``PATH@A7`` -> (``PATH``, ``A7``); a path without ``@`` -> (path, None)."""
    path, at, cluster = text.rpartition("@")
    if at and cluster and "/" not in cluster and not Path(text).exists():
        return path, cluster
    return text, None


def say_import(df) -> None:
    """Print on stderr what an importer recognised and ignored (``attrs["import_report"]``)."""
    rep = (df.attrs or {}).get("import_report")
    if not rep:
        return
    from rich.console import Console

    from perfmodel.data.importers.columns import ImportReport

    Console(stderr=True).print("\n".join(ImportReport(**rep).lines()), highlight=False, markup=False)


def load_table(dataset: str, *, table: str = "auto", sensor_lag: int = 0, strict: bool = True,
               mapping: str | None = None, cores: int | None = None, quiet: bool = False):
    """The wide table for ``dataset`` (see ``_DATASET_HELP``). A CSV is checked on load
    (:func:`perfmodel.data.read_wide_csv`): ``strict`` refuses rows with values that are not numbers or are
    impossible, else they are listed in ``attrs["row_problems"]`` for the caller to report. ``mapping``
    (``--map``): read a CSV through the mapped importer; ``cores``: the core count of a power file without
    one. Importers say on stderr what they recognised and ignored."""
    import pandas as pd

    from perfmodel.errors import check_choice

    check_choice("table", table, TABLES)
    if mapping is None and cores is not None and not dataset.startswith(("armpm:", "csv:")):
        raise PerfmodelError("--cores is for power files without a core-count column (armpm:PATH, csv:PATH / --map)")
    df = None
    if dataset.startswith("armpm:"):
        from perfmodel.data.importers.armpm import load_armpm

        path, cluster = _cluster_suffix(dataset[len("armpm:"):])
        df = load_armpm(path, sensor_lag=sensor_lag, cores=cores, cluster=cluster)
    elif dataset.startswith("powmon:"):
        from perfmodel.data.importers.powmon import load_powmon

        path, cluster = _cluster_suffix(dataset[len("powmon:"):])
        df = load_powmon(path, sensor_lag=sensor_lag, cluster=cluster)
    elif dataset.startswith("csv:") or mapping is not None:
        if mapping is None:
            raise PerfmodelError("csv:PATH needs --map time=COLUMN,power_w=COLUMN,... (or --map MAPPING_FILE)")
        from perfmodel.data.importers.mapped import load_mapped

        path, cluster = _cluster_suffix(dataset[len("csv:"):] if dataset.startswith("csv:") else dataset)
        df = load_mapped(path, mapping, sensor_lag=sensor_lag, cores=cores, cluster=cluster)
    if df is not None:
        if not quiet:
            say_import(df)
        return df
    path = Path(dataset)
    if path.suffix.lower() == ".csv":
        from perfmodel.data import read_wide_csv

        return read_wide_csv(path, strict=strict)
    from perfmodel.cli.select import check_records_readable
    from perfmodel.data import read_dataset

    check_records_readable(path)
    return _with_code_paths(_wide_from_records(read_dataset(path), table), [path])


def _with_code_paths(wide, paths: list[Path]):
    """``wide`` with ``attrs["code_path_differences"]`` when simulated counts were joined to timing cells of
    data set folders ``paths`` whose kernel-selecting settings differ (:mod:`perfmodel.model.codepath`);
    :func:`warn_code_paths` says them for the rows a command keeps."""
    folders = [p for p in paths if Path(p).is_dir()]
    if wide.attrs.get("join_simulated_events") and "framework" in wide.columns:
        from perfmodel.runners import FRAMEWORKS, runner_class

        files = [str(p) for p in paths if not Path(p).is_dir()]
        choosing = [f for f in sorted(set(wide["framework"].astype(str)))
                    if f in FRAMEWORKS and runner_class(f).code_path_keys]
        if files and choosing:  # a records file keeps no per-cell sidecar: the check cannot run, and that is said
            wide.attrs["code_paths_unchecked"] = {"files": files, "frameworks": choosing}
    if folders and wide.attrs.get("join_simulated_events"):
        from perfmodel.model.codepath import code_path_differences

        found = code_path_differences(folders)
        if found:
            wide.attrs["code_path_differences"] = found
    return wide


def warn_code_paths(df) -> list[str]:
    """Say on stderr (and return) the code-path differences of ``df`` (see :func:`_with_code_paths`) that
    concern its remaining rows (after ``--exclude`` etc.); say too when simulated counts came from a records
    file, whose cells' settings cannot be compared."""
    unchecked = (df.attrs or {}).get("code_paths_unchecked") or {}
    fws = [f for f in unchecked.get("frameworks", [])
           if "framework" in df.columns and f in set(df["framework"].astype(str))]
    if fws:
        from rich.console import Console

        Console(stderr=True).print(
            f"note: code paths of {', '.join(fws)} not checked for {', '.join(unchecked['files'])}: a records file "
            "keeps no per-cell runner settings (give the data set folder to compare the simulated and timed "
            "cells' kernel choices)", highlight=False)
    found = (df.attrs or {}).get("code_path_differences") or []
    if not found or not {"framework", "network"} <= set(df.columns):
        return []
    pairs = set(zip(df["framework"].astype(str), df["network"].astype(str)))
    notes = [d.sentence() for d in (f.restricted_to(pairs) for f in found) if d is not None]
    if notes:
        from rich.console import Console
        from rich.markup import escape

        for note in notes:
            Console(stderr=True).print(f"[yellow]warning: {escape(note)}", highlight=False)
    return notes


TERM_SETS = ("throughput", "throughput-levels", "throughput-macs", "throughput-additive", "throughput-stream",
             "throughput-stream-l1d", "throughput-l2")


#: columns of a zoo network's graph (not measured): a measured command needs --network for them
NETWORK_FACT_COLUMNS = ("fc_stream_ms", "macs", "conv_over_l2_mb")


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


def named_terms(df, name: str):
    """``(df, features)``: the features of a named term set (see ``perfmodel fit --terms``) on ``df``
    (``df`` gains a ``macs`` column for ``throughput-macs``)."""
    from perfmodel.errors import check_choice
    from perfmodel.model.features import (L2_OVERFLOW_COLUMN, additive_throughput_terms, attach_macs,
                                          per_thread_terms, throughput_terms)

    check_choice("term set", name, TERM_SETS)
    if name == "throughput-additive":
        return df, additive_throughput_terms(df)
    if name == "throughput-stream":  # needs fc_stream_ms (with_stream_time)
        return df, additive_throughput_terms(df) + ["fc_stream_ms"]
    if name == "throughput-stream-l1d":  # + L1-d refills, one cost per thread count
        return df, additive_throughput_terms(df) + ["fc_stream_ms"] + per_thread_terms(df, "l1d_refills_per_image")
    if name == "throughput-l2":  # + conv_over_l2_mb (with_l2_overflow), one cost per thread count
        return df, additive_throughput_terms(df) + ["fc_stream_ms"] + per_thread_terms(df, L2_OVERFLOW_COLUMN)
    if name == "throughput-macs":
        df = attach_macs(df)
        return df, throughput_terms(df, work="macs")
    return df, throughput_terms(df, threads_model="levels" if name.endswith("levels") else "log")


def exclude_rows(df, rules: list[str]):
    """``(df without the rows matching any COLUMN=VALUE rule, number of rows removed)``."""
    from perfmodel.model.features import _key_str

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
    out = df.loc[keep].reset_index(drop=True)
    out.attrs = df.attrs
    if out.empty:
        raise PerfmodelError(f"--exclude {' '.join(rules)} leaves no data")
    return out, int((~keep).sum())


def load_with_simulated(dataset: str, extra: list[Path], *, table: str = "auto", replace: bool = False):
    """The wide table of ``dataset`` with the valgrind cells of the ``extra`` data sets added (``replace``:
    instead of its own valgrind cells, e.g. the same workloads simulated with another cache geometry)."""
    import pandas as pd

    from perfmodel.data import read_dataset

    from perfmodel.cli.select import check_records_readable

    for p in (dataset, *extra):
        check_records_readable(Path(p))
    records = read_dataset(Path(dataset))
    if replace:
        records = records[~records["cell_id"].astype(str).str.endswith("__valgrind")]
    have = set(records["cell_id"].astype(str))
    parts = [records]
    for p in extra:
        e = read_dataset(Path(p))
        cid = e["cell_id"].astype(str)
        parts.append(e[cid.str.endswith("__valgrind") & ~cid.isin(have)])
    wide = _wide_from_records(pd.concat(parts, ignore_index=True), table)
    return _with_code_paths(wide, [Path(dataset), *map(Path, extra)])


def load_counted(dataset: str, *, counts_from: Path | None = None, simulated_from: Sequence[Path] = (),
                 table: str = "auto", sensor_lag: int = 0, mapping: str | None = None, cores: int | None = None):
    """The wide table of ``dataset`` for ``fit`` / ``predict --dataset``: with ``counts_from``'s valgrind
    cells instead of its own, or ``simulated_from``'s added to them, or as it is."""
    if counts_from is not None and simulated_from:
        raise PerfmodelError("give --counts-from (replaces the data set's valgrind cells) or --simulated-from "
                             "(adds to them), not both")
    if counts_from is not None:
        return load_with_simulated(dataset, [counts_from], table=table, replace=True)
    if simulated_from:  # valgrind cells of other data sets joined to this one's timing cells
        return load_with_simulated(dataset, list(simulated_from), table=table)
    return load_table(dataset, table=table, sensor_lag=sensor_lag, mapping=mapping, cores=cores)


_IMPORT_PREFIXES = ("armpm:", "powmon:", "csv:")
_MAP_HELP = ("Read DATASET (a CSV, or csv:PATH) through the mapped importer: key=COLUMN pairs (time=, workload=, "
             "freq_mhz=, voltage_v=, temperature_c=, power_w=, cores=, an event such as INST_RETIRED= or 0x08=) or "
             "a mapping file (JSON object / key=COLUMN lines); other columns are recognised by meaning.")
_CORES_HELP = "Core count of every sample of a power file without a core-count column (else the core terms are dropped)."


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


def check_excluded(model, df) -> None:
    """Refuse samples that match a row class the model was fitted without (``perfmodel fit --exclude``)."""
    from perfmodel.model import IncompatibleSampleError
    from perfmodel.model.features import _key_str

    rules = model.preparation.excluded.rules if model.preparation.excluded else []
    for rule in rules:
        col, _, value = str(rule).partition("=")
        if col in df.columns and (_key_str(df[col]) == value).any():
            raise IncompatibleSampleError(
                f"the model was fitted without {rule} (excluded: {', '.join(rules)}); it cannot predict it")


def drop_incomplete(df, target: str, features: list[str] | None):
    """``(df without rows lacking the target or a feature's columns, labels of the dropped rows)``."""
    import numpy as np
    import pandas as pd

    from perfmodel.model.features import feature_frame

    ok = np.isfinite(pd.to_numeric(df[target], errors="coerce").to_numpy(dtype="float64")) \
        if target in df.columns else np.ones(len(df), dtype=bool)
    if features:
        ok &= np.isfinite(feature_frame(df, features, allow_nan=True).to_numpy(dtype="float64")).all(axis=1)
    label = df["cell_id"].astype(str) if "cell_id" in df.columns else pd.Series(df.index.astype(str), index=df.index)
    dropped = list(label[~ok])
    out = df.loc[ok].reset_index(drop=True)
    out.attrs = df.attrs
    return out, dropped


def _is_auto(features: str | Sequence[str] | None) -> bool:
    """``--features auto``: the automatic power term set, whatever events the data has."""
    items = [features] if isinstance(features, str) else list(features or [])
    return len(items) == 1 and str(items[0]).strip().lower() == "auto"


def _parse_features(features: str | Sequence[str] | None) -> list[str] | None:
    if not features:
        return None
    return split_list(features, "--features")


def _fmt(x: Any, spec: str = ".2f") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return format(x, spec) if isinstance(x, (int, float)) else str(x)


def _print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right", overflow="fold")
    for r in rows:
        t.add_row(*r)
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)
    console.print(t)


def _cv_rows(rows: list[dict]) -> list[list[str]]:
    out = []
    for r in rows:
        if r.get("status") == "not evaluated":
            out.append([r["model"], "not evaluated: " + str(r.get("reason", ""))[:80], "", "", "", "", "", ""])
        else:
            out.append([r["model"], _fmt(r["mape"]), _fmt(r["rmspe"]), _fmt(r["within_5"], ".0f"),
                        _fmt(r["within_10"], ".0f"), _fmt(r["within_15"], ".0f"), _fmt(r["r2"], ".3f"),
                        _fmt(r["spearman"], ".3f")])
    return out


# -- quick-sample prediction: where simulated counts come from ------------------------------------

def default_reference() -> Path:
    """``datasets/reference`` of the source checkout perfmodel runs from (it may not exist)."""
    import perfmodel

    return Path(perfmodel.__file__).resolve().parents[1] / "datasets" / "reference"


def default_counts_sources() -> list[Path]:
    """Data sets of this checkout whose valgrind cells a quick sample may take its simulated counts from:
    the reference (Cortex-A53 caches) and the same workloads simulated with this VM's caches."""
    return [default_reference(), default_reference().parent / "simulated-l2-2mib"]


def default_traces() -> list[Path]:
    """The trace data sets in ``datasets/traces`` of the source checkout (may be none)."""
    d = default_reference().parent / "traces"
    return sorted(p for p in d.iterdir() if (p / "dataset.json").is_file()) if d.is_dir() else []


def all_trace_datasets() -> list[Path]:
    """Every trace data set shipped in ``datasets/traces*`` of the source checkout (one or two folders deep),
    the default of a command's sample: its long-run ratio pools traces of any framework and network."""
    root = default_reference().parent
    found = [p.parent for pat in ("traces*/*/dataset.json", "traces*/*/*/dataset.json") for p in root.glob(pat)]
    return sorted(set(found))


def sample_image_count(df) -> int | None:
    """Images a quick sample counted (``latency_ms_n`` of its wide cell table); None when unknown."""
    try:
        n = float(df["latency_ms_n"].iloc[0])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return int(n) if math.isfinite(n) else None


def sample_rel_se(df) -> float:
    """Relative standard error of a quick sample's mean latency (sd / mean / sqrt(n)); 0 when unknown."""
    try:
        m, sd, n = (float(df[c].iloc[0]) for c in ("latency_ms", "latency_ms_std", "latency_ms_n"))
    except (KeyError, IndexError, TypeError, ValueError):
        return 0.0
    return sd / m / math.sqrt(n) if all(math.isfinite(v) for v in (m, sd, n)) and m > 0 and n > 1 else 0.0


def long_run_from_sample(quick_fps: float, framework: str | None, threads: int, traces: list[Path] | None = None, *,
                         exclude_network=(), alpha: float = 0.05, quick_rel_se: float = 0.0,
                         window_s: float | None = None) -> dict:
    """The quick sample's throughput x the long-run / start-of-run ratio of long-run traces
    (:mod:`perfmodel.model.longrun`): ``{"pred", "lo", "hi", "ratio", "n_traces", "traces_from"}``, or
    ``{"reason"}`` when no trace applies. Traces of the same framework and thread count are used when
    there are at least two, else all of them (said in ``traces_from``). ``window_s``: the traces' start
    window that stands for the sample (default :data:`~perfmodel.model.longrun.WINDOW_S`)."""
    import pandas as pd

    from perfmodel.data import read_dataset
    from perfmodel.model.longrun import WINDOW_S, LongRunRatio, trace_ratios

    paths = list(traces) if traces else default_traces()
    if not paths:
        return {"reason": "no long-run trace data set (give --traces DIR; record one with perfmodel trace)"}
    try:
        table = pd.concat([trace_ratios(read_dataset(p), window_s=WINDOW_S if window_s is None else window_s)
                           for p in paths], ignore_index=True)
        same = table[(table["framework"] == framework) & (table["threads"] == int(threads))
                     & ~table["network"].isin(list(exclude_network))] if framework else table.iloc[:0]
        if len(same) >= 2:
            lr, where = LongRunRatio.fit(same), f"{len(same)} trace(s) of {framework}, {threads} thread(s)"
        else:
            lr = LongRunRatio.fit(table, exclude_network=exclude_network)
            where = f"{lr.n} trace(s) of any framework / thread count " + (
                f"(fewer than 2 of {framework} x {threads})" if framework else "(no --framework named)")
        pred, lo, hi = lr.predict(quick_fps, alpha, quick_rel_se)
    except PerfmodelError as exc:
        return {"reason": str(exc)}
    return {"pred": pred, "lo": lo, "hi": hi, "ratio": lr.ratio, "n_traces": lr.n,
            "traces_from": where + " in " + ", ".join(map(str, paths))}


def command_sample_estimate(command: Sequence[str], *, images: int | None = None, seconds: float | None = None,
                            regex: str | None = None, timeout: float = 600.0, two_phase: bool = False,
                            load_command: str | None = None, framework: str | None = None, threads: int | None = None,
                            traces: list[Path] | None = None, alpha: float = 0.05) -> dict:
    """Long-run throughput of any command from a quick sample of it: its own throughput (from its stdout
    progress lines, :func:`perfmodel.collect.lines.sample_command`; or with ``two_phase`` the
    (s1 - s2) / N method of :func:`perfmodel.collect.command.measure_command`) x the long-run / start
    ratio of this machine's traces (:func:`long_run_from_sample`; the traces of ``framework`` x ``threads``
    when there are two, else all pooled). The traces' start window is the sample's length rounded to
    whole seconds (at least 1 s: the traces' period), or 2 s for two-phase."""
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
        rec = measure_command(list(command), n, load_argv=load_command, counters="software", timeout=timeout)
        lat = float(wide_per_cell(rec)["latency_ms"].iloc[0]) if "latency_ms" in wide_per_cell(rec) else math.nan
        if not (math.isfinite(lat) and lat > 0):
            raise PerfmodelError(f"the two-phase method gave no per-image time for {shown} (the load-only run took "
                                 "as long as the full run: give more --images)")
        fps, rel_se, window = 1e3 / lat, 0.0, None
        sample = {"images": n, "method": "(s1 - s2) / N", "load_command": load_command,
                  "wall_s": rec.attrs["meta"]["wall_s"]}
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


def print_command_estimate(est: dict, refusal: str | None = None) -> None:
    import shlex

    typer.echo(f"command: {shlex.join(est['command'])}")
    if math.isfinite(est["long_run_fps"]):
        typer.echo(f"  long-run estimate: {_fmt(est['long_run_fps'], '.4g')} [{_fmt(est['lo'], '.4g')}, "
                   f"{_fmt(est['hi'], '.4g')}] images/s ({1 - est['alpha']:.0%} prediction interval)")
    else:
        typer.echo(f"  long-run estimate: not evaluated: {est['reason']}")
    typer.echo(f"  sample: {_fmt(est['sample_fps'], '.4g')} images/s over {est['images']} image(s)")
    typer.echo(f"  estimator: {est['estimator']}")
    if refusal:
        typer.echo(f"  model: not applied: {refusal}")


def simulated_columns(model) -> list[str]:
    """The model's input columns measured by simulation (valgrind), e.g. ``instructions_per_image``."""
    return [c for c, p in model.column_provenance.items() if p and "simulated" in p]


def reference_mismatch(ref_meta: dict, frameworks: str | Sequence[str], *, here_meta: dict | None = None) -> list[str]:
    """Why the reference's simulated counts do not apply to ``frameworks`` here (empty: they do).

    Per framework (:func:`perfmodel.versions.counts_applicability`): its own library's version and the
    architecture decide; a pre-processing library (OpenCV, NumPy) or Python that differs keeps the counts
    with a note. ``here_meta``: the metadata of the other side (the pipeline passes its fresh campaign's);
    what it does not record, and everything when it is None, is this machine's.
    """
    from perfmodel.versions import counts_applicability

    return counts_applicability(ref_meta, frameworks, here_meta=here_meta).reasons()


def reference_simulated_records(reference: Path, framework: str, network: str):
    """``(records, note)``: the reference data set's valgrind records of ``framework`` x ``network``, or
    ``(None, reason)`` when the data set is missing, was recorded with other library versions or lacks
    the cell."""
    from perfmodel.data import Dataset
    from perfmodel.versions import FRAMEWORK_LIBRARY, counts_applicability

    reference = Path(reference)
    if not (reference / "dataset.json").is_file():
        return None, f"no reference data set at {reference}"
    ds = Dataset.open(reference)
    fit = counts_applicability(ds.metadata, framework)
    if fit.refused:
        return None, f"the reference data set {reference} does not apply here: " + "; ".join(fit.reasons())
    prefix = f"{framework}__{network}__"
    cells = [c for c in ds.done_cells() if c.startswith(prefix) and c.endswith("__valgrind")]
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
    wide = wide_per_cell(both)
    if "cell_id" in wide.columns and len(wide):
        sim = wide["cell_id"].astype(str).str.split("__").str[-1] == "valgrind"
        if sim.any() and not sim.all():
            wide = join_simulated(wide)
        elif need_sim:
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


_CV_COLS = ["model", "MAPE %", "RMSPE %", "<=5 %", "<=10 %", "<=15 %", "R2", "Spearman"]


def _check_provenance(provenance: str | None) -> None:
    from perfmodel.readings import PROVENANCES

    if provenance is not None and provenance not in PROVENANCES:
        raise PerfmodelError(f"unknown provenance {provenance!r}; valid: {', '.join(PROVENANCES)}")


def _check_cv_options(folds: int, jobs: int) -> None:
    if folds < 2:
        raise PerfmodelError(f"--folds must be >= 2, got {folds}")
    if jobs == 0 or jobs < -1:
        raise PerfmodelError(f"--jobs must be >= 1 (or -1 for all cores), got {jobs}")


def _check_option(name: str, value, *, minimum: float | None = None, above: float | None = None,
                  below: float | None = None, maximum: float | None = None, what: str = "") -> None:
    """Refuse an option value up front, naming the option (NaN and infinities included): ``minimum`` /
    ``maximum`` inclusive, ``above`` / ``below`` exclusive bounds."""
    if value is None:
        return
    x = float(value)
    bounds = [f">= {minimum:g}" if minimum is not None else None, f"> {above:g}" if above is not None else None,
              f"< {below:g}" if below is not None else None, f"<= {maximum:g}" if maximum is not None else None]
    want = " and ".join(b for b in bounds if b) or "finite"
    ok = math.isfinite(x) and (minimum is None or x >= minimum) and (above is None or x > above) \
        and (below is None or x < below) and (maximum is None or x <= maximum)
    if not ok:
        raise PerfmodelError(f"{name} must be a number {want}{what}, got {value}")


def _check_fit_options(*, max_features: int, vif_cap: float, sensor_lag: int, l2_kib: float | None) -> None:
    _check_option("--max-features", max_features, minimum=1, what=" (the most events to add)")
    _check_option("--vif-cap", vif_cap, minimum=1, what=" (a variance inflation factor is never below 1)")
    _check_option("--sensor-lag", sensor_lag, minimum=0)
    _check_option("--l2-kib", l2_kib, above=0)


def _check_features_exist(df, feats) -> None:
    from perfmodel.model.features import compute_feature

    bad = []
    for f in feats or []:
        try:
            compute_feature(df, f)
        except Exception as exc:  # noqa: BLE001 - FeatureError or any failure: the user's feature name
            bad.append(f"{f} ({exc})")
    if bad:
        raise PerfmodelError("unknown or uncomputable feature(s): " + "; ".join(bad))


def register(app: typer.Typer) -> None:
    @app.command("fit")
    def fit_cmd(
        dataset: str = typer.Argument(..., help=_DATASET_HELP),
        target: str = typer.Option(..., "--target", "-t", help="Column to predict: throughput_fps, power_w, ..."),
        output: Path = typer.Option(..., "--out", "--output", "-o", help="Model file to write (JSON)."),
        kind: str = typer.Option("linear", "--kind", help="linear (OLS), loglinear (log target), loglog (log "
                                 "target and features), ridge (alpha by inner CV) or overhead-loglinear "
                                 "(throughput = 1000 / (overhead + inference ms), the overhead being the training "
                                 "cells' mean read + pre-process time and log(inference ms) linear in the "
                                 "features) or overhead-linear (the same with inference ms = a non-negative sum "
                                 "of per-image counts x cost, a CPI stack; --terms throughput-additive)."),
        features: list[str] = list_option(None, "--features", help="Features: with --select fixed the model's "
                                          "features, else the stepwise candidates. Products a*b^2, log(a) and "
                                          "indicators framework=litert are allowed. Power without --features: the "
                                          "validated fixed Powmon set where the data has all its events, else the "
                                          "automatic set; 'auto' forces the automatic set."),
        select: str = typer.Option(None, "--select", help="stepwise (default without --features) or fixed "
                                   "(default with --features or --terms)."),
        terms: str = typer.Option(None, "--terms", help="A named term set (fixed selection; --features are added "
                                  "to it): 'throughput' = log(instructions_per_image) + framework + log(threads) "
                                  "x framework; 'throughput-levels' = the same with one indicator per (framework, "
                                  "threads > 1); 'throughput-macs' = log(macs) instead of instructions; "
                                  "'throughput-additive' = instructions x (framework, threads) + L2-d refills, "
                                  "for --kind overhead-linear; 'throughput-stream' = the same + fc_stream_ms, the "
                                  "time to stream the network's FC weights at the calibrated bandwidth "
                                  "(coefficient 1; needs a calibration, see perfmodel calibrate); "
                                  "'throughput-stream-l1d' = the same + L1-d refills x threads (trained/); "
                                  "'throughput-l2' = throughput-stream + conv_over_l2_mb x threads, the weights of the "
                                  "convolutions too big for the machine's L2 cache (see --l2-kib). Simulated "
                                  "counts of a data set's valgrind cells are joined to its timing cells."),
        l2_kib: float = typer.Option(None, "--l2-kib", help="L2 cache size (KiB) a core of the machine the data "
                                     "was timed on sees (a cluster-shared L2: the cluster's), for --terms "
                                     "throughput-l2; overrides what the data set's runs recorded (Linux "
                                     "cacheinfo), which is the default, else this machine's when the data set "
                                     "recorded this CPU model."),
        simulated_from: list[Path] = list_option(None, "--simulated-from", help="Other data sets whose valgrind "
                                                 "cells are added to DATASET's (their timing cells are ignored), "
                                                 "e.g. a valgrind pass run into a second folder."),
        exclude: list[str] = list_option(None, "--exclude", help="Leave out rows where COLUMN=VALUE (e.g. "
                                         "--exclude framework=tensorflow); recorded in the model file, and the "
                                         "model then refuses to predict values it never saw."),
        dropna: bool = typer.Option(False, "--dropna", help="Drop rows that lack a value of a model feature or of "
                                    "the target (e.g. timing cells whose valgrind cell is not finished); the "
                                    "dropped rows are listed. Without it such rows are an error."),
        cv: str = typer.Option("kfold", "--cv", help="CV scheme: lono / lofo / lowo / lobo (leave one network / "
                               "framework / workload / board out) or kfold."),
        folds: int = typer.Option(5, "--folds", help="Folds for --cv kfold."),
        max_features: int = typer.Option(8, "--max-features", help="Stepwise: most events to add."),
        vif_cap: float = typer.Option(10.0, "--vif-cap", help="Stepwise: largest VIF allowed among chosen events."),
        table: str = typer.Option("auto", "--table", help="Wide table of a data set: auto, cell, image or sample."),
        sensor_lag: int = typer.Option(0, "--sensor-lag", help="armpm: pair counters of sample t with sensors of "
                                       "t + LAG (1 fits the published XU3 file best)."),
        mapping: str = typer.Option(None, "--map", help=_MAP_HELP),
        cores: int = typer.Option(None, "--cores", help=_CORES_HELP),
        provenance: str = typer.Option(None, "--provenance", help="Provenance of columns the data does not "
                                       "describe (CSV): real, simulated or software."),
        jobs: int = typer.Option(1, "--jobs", "-j", help="Parallel CV jobs."),
        json_out: bool = typer.Option(False, "--json", help="Print the fit summary as JSON."),
        force: bool = typer.Option(False, "--force", help="Replace an existing model file at --out."),
        counts_from: Path = typer.Option(None, "--counts-from", help="Use this data set's valgrind cells "
                                         "instead of DATASET's own (e.g. the same workloads simulated with "
                                         "another cache geometry; the model records the geometry and refuses "
                                         "counts of another)."),
    ) -> None:
        """Fit a model of --target on DATASET and write it as a JSON model file.

        Features are chosen by stepwise forward selection (CV MAPE, VIF cap) unless --select fixed. The
        file holds the coefficients, the interval covariance, feature provenance and the CV scores of the
        model beside the mean / per-frequency / MACs-only baselines.
        """
        from perfmodel.model import fit_model, save_model

        from rich.console import Console

        _check_cv_options(folds, jobs)
        _check_fit_options(max_features=max_features, vif_cap=vif_cap, sensor_lag=sensor_lag, l2_kib=l2_kib)
        _check_provenance(provenance)
        if output.exists() and output.is_dir():
            raise PerfmodelError(f"--out {output} is a folder; give a file name such as {output / 'model.json'}")
        src = None if dataset.startswith(_IMPORT_PREFIXES) else Path(dataset)
        if src is not None and src.exists() and output.exists() and output.resolve() == src.resolve():
            raise PerfmodelError(f"--out {output} is the data being fitted: give another file name")
        if output.exists() and not force:
            raise PerfmodelError(f"--out {output} exists: give another name, or --force to replace it")

        df = load_counted(dataset, counts_from=counts_from, simulated_from=simulated_from or (), table=table,
                          sensor_lag=sensor_lag, mapping=mapping, cores=cores)
        force_auto = _is_auto(features)
        feats = None if force_auto else _parse_features(features)
        from perfmodel.model.schema import Excluded, Preparation

        meta: dict[str, Any] = {"dataset": dataset, "simulated_from": [str(p) for p in simulated_from or []] or None}
        prep = Preparation(sensor_lag=sensor_lag if dataset.startswith(_IMPORT_PREFIXES) or mapping else None)
        if df.attrs.get("import_report"):  # a power file: the board / cluster and the events it recorded
            meta.update({"board": df.attrs.get("board"), "cluster": df.attrs.get("cluster"),
                         "events": list(df.attrs.get("events") or [])})
            if mapping:
                prep.map = mapping
        if counts_from is not None:
            meta["counts_from"] = str(counts_from)
        from perfmodel.model.prepare import counts_geometry

        geometry = counts_geometry([counts_from] if counts_from is not None else [dataset, *(simulated_from or [])])
        if geometry:
            prep.simulated_geometry = geometry
        if exclude:
            df, removed = exclude_rows(df, exclude)
            prep.excluded = Excluded(rules=list(exclude), rows=removed)
        if terms:
            df, named = named_terms(df, terms)
            feats = named + [f for f in (feats or []) if f not in named]
            prep.terms = terms
        from perfmodel.model.prepare import (needs_l2_overflow, needs_stream_time, training_speed,
                                             with_l2_overflow, with_stream_time)

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
        notes = warn_code_paths(df)
        if notes:  # kept with the model
            meta["code_path_differences"] = notes
        from perfmodel.model.fit import is_power_auto, power_term_set

        power_terms = None
        if feats is None and (force_auto or (select is None and not terms and is_power_auto(df, target))):
            power_terms = power_term_set(df, target, force_auto=force_auto)
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
                Console(stderr=True).print(f"dropped {len(dropped)} row(s) without a value of a feature or the "
                                           f"target: {', '.join(dropped[:12])}{' ...' if len(dropped) > 12 else ''}")
                meta["dropped_rows"] = dropped
        with Console(stderr=True).status(f"fitting {kind} model of {target} ({sel} selection, {cv} CV)"):
            model = fit_model(df, target, feats, kind=kind, groups=cv, select=sel, max_features=max_features,
                              vif_cap=vif_cap, n_splits=folds, n_jobs=jobs, provenance=provenance, metadata=meta,
                              preparation=prep)
        save_model(model, output)
        summary = {"model": str(output), "target": target, "kind": kind, "features": model.features,
                   **({"term_set": meta["power_terms"]} if power_terms is not None else {}),
                   "cv": {k: v for k, v in model.cv.items() if k != "results"}, "results": model.cv["results"]}
        if json_out:
            typer.echo(json.dumps(json_safe(summary), indent=2))
            return
        if power_terms is not None:
            typer.echo(f"term set: {power_terms['set']} - {power_terms['reason']}")
        typer.echo(f"wrote {output}: {kind} model of {target} on {len(model.features)} features")
        for f in model.features:
            prov = model.provenance.get(f)
            typer.echo(f"  {f}  [{'?' if prov is None else '+'.join(prov) or 'derived'}]")
        _print_table(f"{model.cv['scheme']} cross-validation", _CV_COLS,
                     _cv_rows([{k: v for k, v in r.items()} for r in model.cv["results"]]))

    @app.command("evaluate")
    def evaluate_cmd(
        dataset: str = typer.Argument(..., help=_DATASET_HELP),
        target: str = typer.Option(..., "--target", "-t", help="Column to predict: throughput_fps, power_w, ..."),
        features: list[str] = list_option(None, "--features", help="Features (default: for power the validated "
                                          "fixed Powmon set where the data has all its events, else the automatic "
                                          "set; otherwise the stepwise choice of a linear model), or auto (power: "
                                          "the automatic set of the events present, selected in the folds)."),
        cv: str = typer.Option("kfold", "--cv", help="lono / lofo / lowo / lobo / kfold."),
        folds: int = typer.Option(5, "--folds", help="Folds for --cv kfold."),
        table: str = typer.Option("auto", "--table", help="auto, cell, image or sample."),
        sensor_lag: int = typer.Option(0, "--sensor-lag", help="armpm / csv: sensor lag in samples."),
        mapping: str = typer.Option(None, "--map", help=_MAP_HELP),
        cores: int = typer.Option(None, "--cores", help=_CORES_HELP),
        jobs: int = typer.Option(1, "--jobs", "-j", help="Parallel CV jobs."),
        shrink: bool = typer.Option(False, "--shrink", help="Power, automatic term set: add the row of ridge on "
                                    "every event term (no selection), the event terms' penalty chosen in inner "
                                    "folds grouped like --cv."),
        json_out: bool = typer.Option(False, "--json", help="Print the table as JSON."),
    ) -> None:
        """Cross-validate linear, log-linear and ridge models beside the baselines (mean, per-frequency
        mean for power, MACs-only for throughput) on the same splits; print MAPE, RMSPE, share within
        +-5/10/15 %, R^2 and Spearman rho. A model that cannot be evaluated is listed with the reason."""
        from perfmodel.model.fit import _is_throughput, evaluate, fit_model, scheme_group

        _check_cv_options(folds, jobs)
        _check_option("--sensor-lag", sensor_lag, minimum=0)
        df = load_table(dataset, table=table, sensor_lag=sensor_lag, mapping=mapping, cores=cores)
        warn_code_paths(df)
        force_auto = _is_auto(features)
        feats = None if force_auto else _parse_features(features)
        _check_features_exist(df, feats)
        from perfmodel.model.fit import evaluate_power_nested, is_power_auto, power_term_set

        terms = None
        if feats is None and (force_auto or is_power_auto(df, target)):
            terms = power_term_set(df, target, force_auto=force_auto)
            if not json_out:
                typer.echo(f"term set: {terms['set']} - {terms['reason']}")
            if terms["set"] == "fixed":
                feats = terms["features"]
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
            if json_out:
                typer.echo(json.dumps(json_safe({"target": target, "term_set": {k: terms[k] for k in ("set", "reason")},
                                                 "features": feats, "results": rows}), indent=2))
                return
            typer.echo(f"Powmon-form terms of the events present; always kept: {', '.join(feats['always'])}")
            typer.echo(f"event candidates (chosen inside every outer fold): {', '.join(feats['candidates'])}")
            scheme = next((r["scheme"] for r in rows if r.get("scheme")), cv)
            _print_table(f"{target}: {scheme} cross-validation", _CV_COLS, _cv_rows(rows))
            return
        if feats is None:
            feats = fit_model(df, target, kind="linear", groups=cv, n_splits=folds, n_jobs=jobs, baselines=False,
                              statistics=False, provenance="real").features
        kinds = ("linear", "loglinear", "ridge")
        if _is_throughput(target):  # "not evaluated" with the reason where read/pre-process times are missing
            kinds += ("overhead-loglinear",)  # overhead-linear needs its own terms (--kind on fit)
        _, rows = evaluate(df, target, feats, kinds=kinds, group=scheme_group(cv),
                           n_splits=folds, n_jobs=jobs)
        if json_out:
            extra = {"term_set": {k: terms[k] for k in ("set", "reason")}} if terms is not None else {}
            typer.echo(json.dumps(json_safe({"target": target, **extra, "features": feats, "results": rows}), indent=2))
            return
        typer.echo(f"features: {', '.join(feats)}")
        scheme = next((r["scheme"] for r in rows if r.get("scheme")), cv)
        _print_table(f"{target}: {scheme} cross-validation", _CV_COLS, _cv_rows(rows))

    @app.command("predict", context_settings={"allow_interspersed_args": False})
    def predict_cmd(
        command: list[str] = typer.Argument(None, help="After --: a command to measure (perfmodel predict --model "
                                            "M -- CMD ARGS...)."),
        model_path: Path = typer.Option(None, "--model", "-m", help="Model file written by perfmodel fit (not "
                                        "needed for -- CMD: without it the command's long-run throughput is "
                                        "estimated from a quick sample of it)."),
        dataset: str = typer.Option(None, "--dataset", help=_DATASET_HELP),
        csv: Path = typer.Option(None, "--csv", help="A wide table as CSV (one sample per row)."),
        framework: str = typer.Option(None, "--framework", help="Measure a quick sample of this framework ... "
                                      "(with -- CMD: the framework the command runs, for a model with terms per "
                                      "framework)."),
        network: str = typer.Option(None, "--network", help="... running this network (with -- CMD: the zoo "
                                    "network the command runs, for a model that uses its graph facts)."),
        threads: int = typer.Option(None, "--threads", help="Threads of the quick sample (default 1; with -- "
                                    "CMD: the threads the command uses, required when the model's terms are per "
                                    "thread count)."),
        images: int = typer.Option(None, "--images", help="Images of the quick sample (1-10, counted after a "
                                   "warm-up; default 10) / of the measured command (default 10; a command's "
                                   "sample from its lines: stop after this many lines past the warm-up)."),
        seconds: float = typer.Option(None, "--seconds", help="Quick sample: count images for this many seconds "
                                      "(more than 0, at most 10) instead of --images: averages over the "
                                      "second-to-second jitter that ten images of a fast network see. A "
                                      "command's sample: stop once an image ends this long after the warm-up "
                                      "(default 3 s when neither --images nor --seconds is given)."),
        progress_regex: str = typer.Option(None, "--progress-regex", help="-- CMD sample: only stdout lines "
                                           "matching this regular expression count as one finished image each "
                                           "(default: every stdout line)."),
        two_phase: bool = typer.Option(False, "--two-phase", help="-- CMD sample: time the command by the "
                                       "two-phase method (whole run of --images images minus --load-command's "
                                       "run, / N) instead of its lines."),
        load_command: str = typer.Option(None, "--load-command", help="With --two-phase: the command loading "
                                         "the model and running no image (one string, shell-quoted)."),
        counters: str = typer.Option("auto", "--counters", help="Counter source of the quick sample."),
        simulated_from: Path = typer.Option(None, "--simulated-from", help="Data set whose valgrind cells supply "
                                            "the simulated counts a model needs. With --dataset: added to its "
                                            "own valgrind cells (as perfmodel fit --simulated-from). Quick "
                                            "sample: used only when its library versions and architecture match "
                                            "this machine (default: datasets/reference of this checkout)."),
        traces: list[Path] = list_option(None, "--traces", help="Quick sample: long-run trace data sets (perfmodel "
                                         "trace) whose long-run / first-2-s throughput ratio turns the sample's "
                                         "own throughput into a long-run estimate (default: datasets/traces of "
                                         "this checkout)."),
        simulate: bool = typer.Option(False, "--simulate", help="Quick sample: when no matching reference has the "
                                      "simulated counts, run the valgrind pass for the sample (slow: minutes) "
                                      "instead of refusing."),
        provenance: str = typer.Option(None, "--provenance", help="Provenance of CSV columns: real, simulated, "
                                       "software (a CSV does not record it)."),
        alpha: float = typer.Option(0.05, "--alpha", help="1 - confidence of the prediction interval."),
        table: str = typer.Option("auto", "--table", help="Wide table of a data set: auto, cell, image, sample."),
        sensor_lag: int = typer.Option(None, "--sensor-lag", help="armpm: sensor lag in samples (default: the "
                                       "lag the model was trained with, preparation.sensor_lag, else 0)."),
        mapping: str = typer.Option(None, "--map", help=_MAP_HELP + " With --dataset; default for csv:PATH: the "
                                    "mapping the model was fitted with (preparation.map)."),
        cores: int = typer.Option(None, "--cores", help=_CORES_HELP + " With --dataset."),
        json_out: bool = typer.Option(False, "--json", help="Print the predictions as JSON."),
        timeout: float = typer.Option(600.0, "--timeout", help="With -- CMD: seconds each run of the command may "
                                      "take; past it the command and its child processes (its process group) "
                                      "are ended and the prediction refused, saying so."),
        counts_from: Path = typer.Option(None, "--counts-from", help="With --dataset: use this data set's valgrind "
                                         "cells instead of the data set's own (counts simulated with the "
                                         "model's cache geometry, preparation.simulated_geometry)."),
    ) -> None:
        """Predict the model's target, with a prediction interval, for every row of a data set or CSV, for
        a quick sample (--framework/--network) or for a command (-- CMD...). The sample must have the
        model's features from the same counter source (real PMU vs simulated) or the prediction is refused.

        Quick sample: measures a few images of FRAMEWORK x NETWORK after a warm-up and prints the model's
        predicted long-run value with its interval, the sample's own measured throughput, and that
        throughput x the long-run / start-of-run ratio of long-run traces (--traces) with its interval.
        Simulated counts the model needs come from --simulated-from (same library versions only) or, with
        --simulate, from a valgrind pass of the sample; the output says which.

        An overhead-linear model's fitted costs are of the hour its data was timed: its counts are
        multiplied by its training data's GEMM speed / the GEMM speed of the data predicted (the data set's
        calibration, or one measured with a quick sample), i.e. priced at the machine's speed now; without
        a GEMM figure nothing is rescaled, and the output says so."""
        import pandas as pd

        from perfmodel.model import load_model

        _check_option("--alpha", alpha, above=0, below=1, what=" (1 - the confidence of the interval)")
        _check_option("--images", images, minimum=1)
        _check_option("--seconds", seconds, above=0)
        _check_option("--threads", threads, minimum=1)
        _check_option("--sensor-lag", sensor_lag, minimum=0)
        _check_option("--timeout", timeout, above=0)
        if (progress_regex or two_phase or load_command) and not command:
            raise PerfmodelError("--progress-regex / --two-phase / --load-command apply to a command (-- CMD)")
        if model_path is None and not command:
            raise PerfmodelError("--model is needed for --dataset, --csv or a quick sample (--framework/--network); "
                                 "only a command (-- CMD) is estimated without one")
        sample_args = dict(images=images, seconds=seconds, regex=progress_regex, timeout=timeout,
                           two_phase=two_phase, load_command=load_command, framework=framework, threads=threads,
                           traces=traces, alpha=alpha)
        if model_path is None:  # a command's long-run throughput from a quick sample of it
            if dataset or csv:
                raise PerfmodelError("give one of --dataset, --csv or -- CMD")
            est = command_sample_estimate(list(command), **sample_args)
            typer.echo(json.dumps(json_safe(est), indent=2)) if json_out else print_command_estimate(est)
            return
        model = load_model(model_path)
        if command and not (dataset or csv):
            refused = command_problems(model, framework=framework, network=network, threads=threads,
                                       counters=counters)
            if refused or progress_regex or two_phase or seconds is not None:
                # the model's terms cannot be supplied (or a sample was asked for): the sample estimate,
                # and why the model was not applied in one line
                reason = "; ".join(refused) if refused else \
                    "a sample option (--seconds / --progress-regex / --two-phase) was given: sample estimate only"
                est = command_sample_estimate(list(command), **sample_args)
                est["model"] = {"path": str(model_path), "applied": False, "reason": reason}
                if json_out:
                    typer.echo(json.dumps(json_safe(est), indent=2))
                else:
                    print_command_estimate(est, f"{model_path}: {reason}")
                return
        if images is None:
            images = 10
        _check_provenance(provenance)
        if sensor_lag is None:
            sensor_lag = model.preparation.sensor_lag or 0
        counts_note = None
        given = [x for x in (dataset, csv, None if command else framework or network, command) if x]
        if len(given) != 1:
            raise PerfmodelError("give exactly one of --dataset, --csv, --framework/--network or -- CMD "
                                 "(with a command, --framework/--network/--threads name what it runs)")
        if seconds is not None and (dataset or csv or command or not (framework and network)):
            raise PerfmodelError("--seconds applies to a quick sample (--framework/--network), not to a data set, "
                                 "a CSV or a measured command (which takes --images)")
        if simulated_from is not None and (csv or command):
            raise PerfmodelError("--simulated-from applies to --dataset or a quick sample (--framework/--network), "
                                 "not to a CSV or a measured command")
        if counts_from is not None and not dataset:
            raise PerfmodelError("--counts-from applies to --dataset (a quick sample takes --simulated-from)")
        if (mapping is not None or cores is not None) and not dataset:
            raise PerfmodelError("--map / --cores apply to --dataset (a power file: armpm:PATH, csv:PATH)")
        if dataset and mapping is None and dataset.startswith("csv:"):
            mapping = model.preparation.map
        if dataset:
            df = load_counted(dataset, counts_from=counts_from, table=table, sensor_lag=sensor_lag,
                              simulated_from=[simulated_from] if simulated_from is not None else (),
                              mapping=mapping, cores=cores)
            if simulated_columns(model):  # counts of a simulated run joined to timed cells
                warn_code_paths(df)
        elif csv:  # a row with an impossible or non-numeric value gets n/a and its reason, the others an answer
            df = load_table(str(csv), strict=False)
        else:
            from perfmodel.data import wide_per_cell

            if command:
                try:
                    from perfmodel.collect.command import measure_command
                except ImportError:
                    raise PerfmodelError("measuring a command (perfmodel.collect.command) is not available yet") from None
                problems = command_problems(model, framework=framework, network=network, threads=threads,
                                            counters=counters)
                if problems:
                    raise PerfmodelError(f"this model cannot be applied to a measured command as asked: "
                                         f"{'; '.join(problems)}")
                records = measure_command(list(command), images, counters=counters, framework=framework or "",
                                          network=network or "", threads=1 if threads is None else threads,
                                          timeout=timeout)
                df = wide_per_cell(records)
            else:
                if not (framework and network):
                    raise PerfmodelError("a quick sample needs both --framework and --network")
                threads = 1 if threads is None else threads
                problems = quick_sample_problems(model, framework, network, threads)
                if problems:  # said before minutes of sampling and calibration
                    raise PerfmodelError(f"no quick sample for this model as asked: {'; '.join(problems)}")
                from rich.console import Console

                con = Console(stderr=True)
                length = f"{seconds:g} s" if seconds is not None else f"{images} image(s)"
                with con.status(f"quick sample: {framework} x {network}, {threads} thread(s), {length}"):
                    df, counts_note, _, quick_measured = quick_sample_table(
                        model, framework, network, threads=threads, images=images, counters=counters,
                        simulated_from=simulated_from, simulate=simulate, status=con.print, seconds=seconds)
        if df.empty:
            raise PerfmodelError("no samples to predict")
        check_excluded(model, df)
        from perfmodel.model.prepare import OWN_CALIBRATIONS, prepare_for_model, speed_ratio_text

        if counts_note is None:
            counts = None if not dataset else [counts_from] if counts_from is not None else [dataset] + (
                [simulated_from] if simulated_from is not None else [])
            df, as_measured, notes = prepare_for_model(df, model, dataset=dataset, counts_from=counts)
        else:  # a quick sample: prepared by quick_sample_table with the calibration measured with it
            as_measured, notes = quick_measured, {}
        bw_source, speed = notes.get("stream_bandwidth_from"), notes.get("speed_calibration")
        from rich.console import Console

        if bw_source is not None and not bw_source.startswith(OWN_CALIBRATIONS):  # not the data's own: say so
            Console(stderr=True).print(f"note: streaming bandwidth from {bw_source}")
        if speed is not None:
            Console(stderr=True).print(
                "note: " + (f"counts priced at the machine's speed now (x {speed_ratio_text(speed)}; "
                            f"{speed['source']})" if speed["applied"] else speed["reason"]), highlight=False)
            if speed.get("warning"):
                Console(stderr=True).print(f"[yellow]warning: {speed['warning']}", highlight=False)
        from perfmodel.model.prepare import predict_each

        bad_rows = dict(df.attrs.get("row_problems") or {})
        if bad_rows and len(bad_rows) == len(df):
            raise PerfmodelError(f"no row of {csv} can be predicted: {'; '.join(list(bad_rows.values())[:5])}")
        good = df.drop(index=list(bad_rows)) if bad_rows else df
        good.attrs = df.attrs
        pred, failed = predict_each(model, good, alpha=alpha, provenance=provenance)
        failed = {**failed, **bad_rows}
        pred = pred.reindex(df.index)  # rows that could not be predicted: NaN, with the reason below
        keys = [c for c in ("framework", "network", "threads", "workload", "freq_mhz", "cores") if c in df.columns]
        out = pd.concat([df[keys].reset_index(drop=True), pred.reset_index(drop=True)], axis=1)
        if failed:
            out["not_evaluated"] = [failed.get(i, "") for i in df.index]
            from rich.console import Console
            from rich.markup import escape

            Console(stderr=True).print(
                f"[yellow]warning: {len(failed)} of {len(df)} row(s) could not be predicted (pred n/a), e.g. "
                f"{escape(next(iter(failed.values())))}", highlight=False)
        outside = model.out_of_range(as_measured).reset_index(drop=True)  # the counts as measured
        if (outside != "").any():
            out["outside_training"] = outside
            from rich.console import Console

            Console(stderr=True).print(
                f"[yellow]warning: {int((outside != '').sum())} of {len(outside)} sample(s) lie outside the "
                f"model's training range (an extrapolation; the interval assumes the fitted form still holds), "
                f"e.g. {outside[outside != ''].iloc[0]}")
        if model.target in df.columns:
            out["measured"] = pd.to_numeric(df[model.target], errors="coerce").to_numpy()
        quick = None
        if counts_note is not None:
            fps = pd.to_numeric(df["throughput_fps"], errors="coerce") if "throughput_fps" in df else None
            measured = float(fps.iloc[0]) if fps is not None and len(fps) else None
            quick = {"framework": framework, "network": network, "threads": threads, "images": sample_image_count(df),
                     "seconds": seconds,
                     "measured_fps": measured, "counts_from": counts_note,
                     "long_run_from_sample": (long_run_from_sample(measured, framework, threads, traces, alpha=alpha,
                                                                   quick_rel_se=sample_rel_se(df))
                                              if measured else {"reason": "the sample has no throughput"}),
                     "note": "pred = the counter model's long-run estimate (from counts, not from the sample's "
                             "timing); measured_fps = this short sample's own throughput; long_run_from_sample "
                             "= measured_fps x the long-run / start ratio of long-run traces"}
        if json_out:
            payload = {"target": model.target, "alpha": alpha, "rows": out.to_dict("records")}
            if bw_source is not None:
                payload["stream_bandwidth_from"] = bw_source
            if speed is not None:
                payload["speed_calibration"] = speed
            if quick is not None:
                payload["quick_sample"] = quick
            typer.echo(json.dumps(json_safe(payload), indent=2))
            return
        if quick is not None:
            r = out.iloc[0]
            typer.echo(f"{framework} x {network}, {threads} thread(s): predicted long-run {model.target} "
                       f"{_fmt(r['pred'], '.4g')} [{_fmt(r['lo'], '.4g')}, {_fmt(r['hi'], '.4g')}] "
                       f"({1 - alpha:.0%} prediction interval)")
            length = f"{_fmt(quick['images'], 'd')} images" + (f" in {seconds:g} s" if seconds is not None else "")
            typer.echo(f"  quick sample ({length} after warm-up) measured "
                       f"{_fmt(quick['measured_fps'], '.4g')} images/s")
            lrs = quick["long_run_from_sample"]
            if "pred" in lrs:
                typer.echo(f"  long-run from the sample: {_fmt(lrs['pred'], '.4g')} [{_fmt(lrs['lo'], '.4g')}, "
                           f"{_fmt(lrs['hi'], '.4g')}] images/s (x {lrs['ratio']:.3f}, the long-run / first-2-s "
                           f"ratio of {lrs['traces_from']})")
            else:
                typer.echo(f"  long-run from the sample: not evaluated: {lrs['reason']}")
            typer.echo(f"  counts from: {counts_note}")
            return
        cols = keys + ["pred", f"lo ({1 - alpha:.0%})", "hi"] + (["measured"] if "measured" in out else [])
        cols += ["not evaluated"] if "not_evaluated" in out else []
        rows = []
        for r in out.to_dict("records"):
            row = [str(r[k]) for k in keys] + [_fmt(r["pred"], ".4g"), _fmt(r["lo"], ".4g"), _fmt(r["hi"], ".4g")]
            if "measured" in out:
                row.append(_fmt(r["measured"], ".4g"))
            if "not_evaluated" in out:  # a row that could not be predicted says why, beside the others' answers
                row.append(str(r["not_evaluated"]))
            rows.append(row)
        if not keys:
            cols = ["row"] + cols
            rows = [[str(i)] + r for i, r in enumerate(rows)]
        _print_table(f"predicted {model.target} ({model.kind} model, {len(model.features)} features)", cols, rows)

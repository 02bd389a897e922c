"""``perfmodel collect`` (campaigns and whole commands) and ``perfmodel trace`` (long runs)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import typer

from perfmodel.cli.options import json_option, list_option, split_list
from perfmodel.cli.show import fmt
from perfmodel.workflows.collect import check_calibration_target

COUNTERS_HELP = ("Counter source: auto (perf_event_open hardware + software events where they work, plus OS "
                 "counters; events this machine cannot count are recorded as NaN with the reason), perf, "
                 "software (OS counters only) or valgrind (simulated cache/branch counts only).")


# sensor options shared by collect and trace
SAMPLER_PERIOD = typer.Option(0.1, "--sampler-period", help="Sensor sampling period (s).")
_POWER_LOG_FORMATS = ("External power-analyzer log (timestamped CSV: generic time_s,power_w or current/voltage, "
                      "Otii, Keysight N6705C datalog), parsed before anything is measured (a log that does not "
                      "parse is refused)")
COLLECT_POWER_LOG = typer.Option(None, "--power-log", help=_POWER_LOG_FORMATS + "; power_w is the log's mean "
                                 "over each cell's counted images, on the per-cell record (per-image records "
                                 "carry no power). Not used with --command.")
TRACE_POWER_LOG = typer.Option(None, "--power-log", help=_POWER_LOG_FORMATS + "; power_w of each interval is "
                               "the log's mean over that interval.")
POWER_LOG_OFFSET = typer.Option(0.0, "--power-log-offset", help="Seconds to add to our monotonic clock to get "
                                "the log's clock (align the two timelines); a finite number.")

#: collect options that only describe a framework x network campaign: refused with --command
CAMPAIGN_ONLY = {"frameworks": "--frameworks", "networks": "--networks", "threads": "--threads",
                 "image_folder": "--image-folder", "simulate": "--simulate/--no-simulate",
                 "valgrind_images": "--valgrind-images", "sampler_period": "--sampler-period",
                 "power_log": "--power-log", "power_log_offset": "--power-log-offset",
                 "warmup_images": "--warmup-images", "warmup_min_s": "--warmup-min-s",
                 "calibrate": "--calibrate/--no-calibrate"}


#: collect options that only apply to a fleet campaign: refused without --scheduler
FLEET_ONLY = {"boards": "--boards", "all_boards": "--all-boards", "board_timeout": "--board-timeout",
              "tls_ca_file": "--tls-ca-file", "tls_cert": "--tls-cert", "tls_key": "--tls-key"}


def _note(message: str) -> None:
    typer.echo(f"note: {message}", err=True)


def _list(values: str | list[str] | None, what: str) -> list[str] | None:
    """A list option's values (repeated and / or comma lists); a value given twice is kept once (it would
    measure the same cell twice), with a note."""
    items = split_list(values, f"--{what}")
    return None if items is None else _dedupe(items, what)


def _dedupe(items: list, what: str) -> list:
    from perfmodel.collect.spec import unique

    out = unique(items)
    if len(out) < len(items):
        repeated = unique(v for i, v in enumerate(items) if v in items[:i])
        _note(f"repeated --{what} value(s) ignored: {', '.join(map(str, repeated))} (each cell is measured once)")
    return out


def _ints(values: str | list | None) -> list[int] | None:
    items = split_list(values, "--threads", int)
    return None if items is None else _dedupe(items, "threads")


def _given(ctx: typer.Context, names) -> list[str]:
    """The parameters of ``names`` the user gave on the command line (or in the environment)."""
    given = []
    for name in names:
        try:
            src = ctx.get_parameter_source(name)
        except Exception:  # noqa: BLE001 - unknown parameter: not given
            src = None
        if src is not None and getattr(src, "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP"):
            given.append(name)
    return given


def collect(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", "-o", help="Data set folder to create, or to resume (see --resume)."),
    frameworks: list[str] = list_option(None, "--frameworks", help="Frameworks (default: tensorflow,litert,"
                                        "onnxruntime,opencv)."),
    networks: list[str] = list_option(None, "--networks", help="Zoo networks (default: squeezenet1_1)."),
    # converted to integers by _ints after the --command check (which refuses --threads whatever its value)
    threads: list[str] = list_option(None, "--threads", metavar="INT[,INT...]", help="Thread counts (default: 1)."),
    images: int = typer.Option(50, "--images", help="Counted images per cell (cycled over the image set); "
                               "with --command: images the command processes."),
    image_folder: Path = typer.Option(None, "--image-folder", help="Folder of JPEG/PNG images (default: "
                                      "deterministic synthetic 500x375 JPEGs)."),
    repeats: int = typer.Option(1, "--repeats", help="Repeats of every cell (each in a fresh worker); with "
                                "--command: s1/s2 pairs."),
    counters: str = typer.Option("auto", "--counters", help=COUNTERS_HELP),
    simulate: bool = typer.Option(False, "--simulate/--no-simulate", help="Also run the valgrind pass: one "
                                  "callgrind run per framework x network (threads=1) with per-image counts."),
    valgrind_images: int = typer.Option(3, "--valgrind-images", help="Images of each simulated (valgrind) run "
                                        "(slow: ~10-100x native)."),
    geometry: str = typer.Option(None, "--geometry", help="Simulated caches, e.g. 'I1=32K,4,64;D1=32K,4,64;"
                                 "LL=512K,16,64' (size,assoc,line; default Cortex-A53-like as on a Pi 3)."),
    sampler_period: float = SAMPLER_PERIOD,
    power_log: Path = COLLECT_POWER_LOG,
    power_log_offset: float = POWER_LOG_OFFSET,
    warmup_images: int = typer.Option(3, "--warmup-images", help="Untimed images before counting."),
    warmup_min_s: float = typer.Option(0.5, "--warmup-min-s", help="Minimum warm-up time (s)."),
    cell_timeout: float = typer.Option(3600.0, "--cell-timeout", help="Seconds before a worker is killed and "
                                       "its cell marked failed."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Skip cells already done in --out "
                                "(default). A data set of another machine, library versions, counter source "
                                "or measurement spec is refused."),
    merge: bool = typer.Option(False, "--merge", help="Add to a data set collected with a different spec "
                               "(images, warm-up, ...): only its missing cells are measured."),
    force: bool = typer.Option(False, "--force", help="Add to an incompatible data set anyway; with "
                               "--no-resume re-measure and replace every cell."),
    command: str = typer.Option(None, "--command", help="Whole-command mode: measure this command (s1) with "
                                "perf stat / OS counters / callgrind; per image = (s1 - s2) / --images."),
    load_command: str = typer.Option(None, "--load-command", help="The load-only command (s2) for --command."),
    calibrate: bool = typer.Option(True, "--calibrate/--no-calibrate", help="Before the timing cells, measure "
                                   "the machine's streaming bandwidth and compute speed at the campaign's thread "
                                   "counts (~2 s, stored in the run metadata; the throughput model prices FC "
                                   "weights with it). See `perfmodel calibrate`."),
    json_out: bool = json_option("Print a JSON summary instead of the table."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the frameworks' own output (TensorFlow / "
                                 "absl / oneDNN banners, converter warnings) on the terminal; by default it goes to "
                                 "OUT/logs/perfmodel.log."),
    scheduler: str = typer.Option(None, "--scheduler", help="Run the campaign on the boards of a fleet (perfmodel "
                                  "fleet scheduler / worker; docs/fleet.md): every board measures every cell, "
                                  "the records land here in one data set."),
    boards: list[str] = list_option(None, "--boards", help="With --scheduler: boards to measure on (default: every "
                                    "connected board, as --all-boards)."),
    all_boards: bool = typer.Option(False, "--all-boards", help="With --scheduler: every connected board."),
    board_timeout: float = typer.Option(300.0, "--board-timeout", help="With --scheduler: seconds a lost board "
                                        "may stay away before its cells are marked failed (they are re-run if "
                                        "it returns sooner)."),
    tls_ca_file: Path = typer.Option(None, "--tls-ca-file", help="With --scheduler: TLS CA certificate."),
    tls_cert: Path = typer.Option(None, "--tls-cert", help="With --scheduler: TLS certificate."),
    tls_key: Path = typer.Option(None, "--tls-key", help="With --scheduler: TLS private key."),
) -> None:
    """Measure a framework x network x threads campaign into a data set folder.

    Every cell runs in a fresh worker process: counters are opened before the model loads, then warm-up,
    then per image read + pre-process + inference is timed (batch 1) with per-image counter deltas;
    per cell CPU % and sensor windows (temperature, frequency, power: NaN + reason where the machine has
    no sensor). Each finished cell is written atomically, so an interrupted campaign keeps its finished
    cells; run the same command again to measure only the missing or failed ones.

    With --command only --out, --images, --repeats, --counters, --geometry (with --counters valgrind),
    --load-command, --cell-timeout, --resume, --merge (keep a done cell measured with other settings),
    --force and --json apply; the campaign options are refused.
    """
    from perfmodel.errors import PerfmodelError
    from perfmodel.runlog import set_run_log

    set_run_log(Path(out) / "logs" / "perfmodel.log", verbose=verbose)
    if command is not None and scheduler is not None:
        raise PerfmodelError("--command does not apply to --scheduler (a fleet runs framework x network cells)")
    if command is not None:
        from perfmodel.collect.command import COMMAND_COUNTERS, collect_command
        from perfmodel.collect.spec import parse_geometry
        from perfmodel.errors import check_choice

        not_applicable = [CAMPAIGN_ONLY[n] for n in _given(ctx, CAMPAIGN_ONLY)]
        if not_applicable:
            verb = "does" if len(not_applicable) == 1 else "do"
            raise PerfmodelError(f"{', '.join(not_applicable)} {verb} not apply to --command (a whole command is "
                                 "measured with perf stat / OS counters / callgrind only: no framework x network "
                                 "matrix, warm-up, calibration or sensor readings); leave them out")
        check_choice("counter source", counters, COMMAND_COUNTERS)
        if geometry is not None and counters != "valgrind":
            raise PerfmodelError("--geometry applies to --command only with --counters valgrind (the simulated "
                                 "caches); leave it out")
        if images < 1 or repeats < 1:
            raise PerfmodelError("--images and --repeats must be >= 1")
        summary = collect_command(out, command, images, load_command, counters, repeats,
                                  geometry_dict=parse_geometry(geometry) if counters == "valgrind" else None,
                                  resume=resume, force=force, merge=merge, timeout=cell_timeout)
        if json_out:
            typer.echo(json.dumps(summary, indent=2))
        else:
            _print_command(summary)
        return
    if load_command is not None:
        raise PerfmodelError("--load-command needs --command")

    fleet_given = _given(ctx, FLEET_ONLY)
    if scheduler is None and fleet_given:
        raise PerfmodelError(f"{', '.join(FLEET_ONLY[n] for n in fleet_given)} need(s) --scheduler")
    if boards is not None and all_boards:
        raise PerfmodelError("give --boards or --all-boards, not both")

    from perfmodel.collect.campaign import run_campaign
    from perfmodel.collect.spec import CampaignSpec, parse_geometry

    defaults = CampaignSpec()
    spec = CampaignSpec(
        frameworks=_list(frameworks, "frameworks") or defaults.frameworks,
        networks=_list(networks, "networks") or defaults.networks,
        threads=_ints(threads) or defaults.threads,
        images=images, image_folder=str(image_folder) if image_folder is not None else None, repeats=repeats,
        warmup_images=warmup_images, warmup_min_s=warmup_min_s, counters=counters,
        geometry=parse_geometry(geometry), valgrind_images=valgrind_images, sampler_period_s=sampler_period,
        cell_timeout_s=cell_timeout, simulate=simulate,
        power_log=str(power_log) if power_log is not None else None, power_log_offset_s=power_log_offset,
    ).validate()
    if scheduler is not None:
        from perfmodel.collect.fleet import make_security, run_fleet_campaign

        if _given(ctx, ["calibrate"]):
            raise PerfmodelError("--calibrate/--no-calibrate does not apply to --scheduler (a fleet campaign does "
                                 "not calibrate the boards; run perfmodel calibrate --attach on each board)")
        security = make_security(*(str(x) if x is not None else None for x in (tls_ca_file, tls_cert, tls_key)))
        result = run_fleet_campaign(spec, out, scheduler, boards=_list(boards, "boards"), security=security,
                                    board_timeout_s=board_timeout, resume=resume, merge=merge, force=force,
                                    progress=not json_out)
    else:
        result = run_campaign(spec, out, resume=resume, progress=not json_out, merge=merge, force=force,
                              calibrate=calibrate)
    if json_out:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _print_campaign(result)
    if result.interrupted:
        typer.echo("interrupted: finished cells are saved; run the same command again to resume", err=True)
        raise SystemExit(130)
    if result.failed:
        typer.echo(f"error: {len(result.failed)} cell(s) failed (reasons stored in the data set); run the same "
                   "command again to retry them", err=True)
        raise SystemExit(1)


def trace(
    framework: str = typer.Option("onnxruntime", "--framework", "-f", help="tensorflow, litert, onnxruntime "
                                  "or opencv."),
    network: str = typer.Option("squeezenet1_1", "--network", "-n", help="Zoo network."),
    threads: int = typer.Option(1, "--threads", "-t", help="Thread count."),
    duration: str = typer.Option("6m", "--duration", "-d", help="How long to run: seconds or 90s, 6m, 1h."),
    period: float = typer.Option(1.0, "--period", help="Seconds per trace record (closed at the first image "
                                 "end after it)."),
    sampler_period: float = SAMPLER_PERIOD,
    power_log: Path = TRACE_POWER_LOG,
    power_log_offset: float = POWER_LOG_OFFSET,
    counters: str = typer.Option("auto", "--counters", help="auto, perf or software (events per interval)."),
    images: int = typer.Option(50, "--images", help="Distinct synthetic images to cycle over, 1-100 (without --image-folder)."),
    image_folder: Path = typer.Option(None, "--image-folder", help="Folder of JPEG/PNG images."),
    out: Path = typer.Option(None, "--out", "-o", help="Data set folder to store the trace cell in (created or "
                             "resumed); without it the series is only printed."),
    force: bool = typer.Option(False, "--force", help="Run again even if this trace cell is done in --out, and "
                               "add it to a data set collected with a different spec (duration, period, images, "
                               "...; refused otherwise, with the differences listed)."),
    json_out: bool = json_option("Print the per-interval series as JSON."),
    command: str = typer.Option(None, "--command", help="Trace a user's inference command instead (one "
                                "string, shell-quoted): images per interval from its stdout lines (one line per "
                                "image, or --progress-regex), stored as framework 'command' so that "
                                "perfmodel predict --traces DS learns the long-run ratio from it."),
    progress_regex: str = typer.Option(None, "--progress-regex", help="With --command: only stdout lines "
                                       "matching this regular expression count as one image each."),
    line_timeout: float = typer.Option(60.0, "--line-timeout", help="With --command: seconds to wait for one "
                                       "progress line before ending the command as hung."),
) -> None:
    """Long run: continuous inference over the image set for --duration, one record per --period with
    throughput (images / interval), CPU %, temperature, frequency, power and event rates. With --command:
    a trace of any command, its throughput per interval from the lines it prints (after a warm-up of 2
    lines and 0.5 s), ended (its process group) after --duration.

    Stored as phase="trace" records; perfmodel.data.wide_per_sample gives the time series (throughput
    and temperature over time).
    """
    from perfmodel.collect.spec import parse_duration
    from perfmodel.collect.trace import run_trace
    from perfmodel.data import wide_per_sample

    seconds = parse_duration(duration)
    if command is not None:
        _trace_command(command, seconds, period, out=out, regex=progress_regex, timeout=line_timeout, force=force,
                       json_out=json_out)
        return
    if progress_regex is not None:
        from perfmodel.errors import PerfmodelError

        raise PerfmodelError("--progress-regex applies to --command")
    if image_folder is None and not 1 <= images <= 100:
        from perfmodel.errors import PerfmodelError

        raise PerfmodelError(f"--images must be between 1 and 100 distinct synthetic images, got {images}")
    res = run_trace(framework, network, threads, seconds, period, out=out, counters=counters, images=images,
                    image_folder=str(image_folder) if image_folder is not None else None,
                    sampler_period_s=sampler_period, force=force, progress=not json_out,
                    power_log=str(power_log) if power_log is not None else None,
                    power_log_offset_s=power_log_offset)
    if res.interrupted and not len(res.records):
        typer.echo("interrupted (Ctrl-C) before the first interval finished: nothing measured, nothing stored",
                   err=True)
        raise SystemExit(130)
    wide = wide_per_sample(res.records).frame
    cols = [c for c in ("t_rel_s", "dt_s", "images", "throughput_fps", "cpu_percent", "temperature_c", "freq_mhz",
                        "power_w", "task_clock_ms_per_s", "instructions_per_s") if c in wide.columns]
    if json_out:
        rows = json.loads(wide[cols].to_json(orient="records"))
        typer.echo(json.dumps({"cell_id": res.cell_id, "path": res.path, "skipped": res.skipped,
                               "interrupted": res.interrupted, "partial_cell_id": res.partial_cell_id,
                               "intervals": rows}, indent=2))
        _trace_interrupted(res)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"perfmodel trace {res.cell_id}" + (" (already done; --force to re-run)" if res.skipped
                                                             else " (interrupted: partial)" if res.interrupted
                                                             else ""))
    for c in cols:
        table.add_column(c, justify="right")
    step = max(1, len(wide) // 40)
    for _, row in wide.iloc[::step].iterrows():
        table.add_row(*[_fmt(row[c]) for c in cols])
    Console().print(table)
    if res.path and not res.interrupted:
        typer.echo(f"stored in {res.path}")
    _trace_interrupted(res)


def _trace_command(command: str, seconds: float, period: float, *, out, regex, timeout: float, force: bool,
                   json_out: bool) -> None:
    from perfmodel.collect.command import _argv
    from perfmodel.collect.lines import trace_command
    from perfmodel.data import wide_per_sample
    from perfmodel.errors import PerfmodelError

    if not (timeout > 0 and math.isfinite(timeout)):
        raise PerfmodelError(f"--line-timeout must be > 0, got {timeout}")
    df, meta = trace_command(_argv(command), seconds, period, out=out, regex=regex, timeout=timeout, force=force)
    wide = wide_per_sample(df).frame
    cols = [c for c in ("t_rel_s", "dt_s", "images", "throughput_fps") if c in wide.columns]
    if json_out:
        typer.echo(json.dumps({"cell_id": str(df["cell_id"].iloc[0]), "path": meta.get("path"),
                               "stopped_by": meta["stopped_by"],
                               "intervals": json.loads(wide[cols].to_json(orient="records"))}, indent=2))
        return
    for _, row in wide.iterrows():
        typer.echo("  ".join(f"{c}={_fmt(row[c])}" for c in cols))
    if meta["stopped_by"] == "exit":
        typer.echo(f"the command exited before {seconds:g} s: {meta['intervals']} interval(s) traced", err=True)
    if meta.get("path"):
        typer.echo(f"stored in {meta['path']}")


def _trace_interrupted(res) -> None:
    """After Ctrl-C: one line saying what was kept, exit code 130."""
    if not res.interrupted:
        return
    n = int(res.meta.get("intervals", 0))
    covered = float(res.meta.get("covered_s", 0.0))
    if res.partial_cell_id:
        where = (f"kept as partial trace cell {res.partial_cell_id} (status partial) in {res.path}; the trace "
                 "itself is not done: run the same command again to measure it whole")
    else:
        where = "printed above, not stored (no --out)"
    typer.echo(f"interrupted (Ctrl-C): {n} finished interval(s) ({covered:.1f} s) {where}", err=True)
    raise SystemExit(130)


def _fmt(v) -> str:
    return fmt(v, ".4g", "nan")


def _print_campaign(result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"perfmodel collect -> {result.path} (run {result.run_id}, {result.wall_s:.1f} s)")
    for c in ("cell", "status", "rows", "s", "reason"):
        table.add_column(c, overflow="fold")
    for o in result.outcomes:
        table.add_row(o.cell_id, o.status, str(o.rows), f"{o.wall_s:.1f}", o.reason.splitlines()[0][:120]
                      if o.reason else "")
    Console().print(table)
    if hasattr(result, "per_board"):
        for board, counts in result.per_board().items():
            typer.echo(f"board {board}: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n))
    typer.echo(f"{len(result.done)} done, {len(result.skipped)} skipped, {len(result.failed)} failed")


def _print_command(summary: dict) -> None:
    typer.echo(f"{summary['cell_id']}: {summary['status']} -> {summary['path']}")
    if summary.get("reason"):
        typer.echo(f"  {summary['reason']}")
    if summary.get("note"):
        typer.echo(f"note: {summary['note']}")
    for k, v in (summary.get("per_image") or {}).items():
        typer.echo(f"  {k:24s} {_fmt(v) if v is not None else 'nan'}")


def calibrate(
    threads: list[str] = list_option(["1,2"], "--threads", item=int, help="Thread counts to measure."),
    buffer_mib: int = typer.Option(256, "--buffer-mib", help="Size of the streamed matrix (MiB); larger than "
                                   "the caches to see past (256 ~ AlexNet's FC weights), and it must fit in the "
                                   "available memory."),
    seconds: float = typer.Option(0.5, "--seconds", help="Measuring time per figure (s), > 0 and at most "
                                  "600."),
    attach: Path = typer.Option(None, "--attach", help="Add the result to this data set folder (dataset.json "
                                "'calibrations'), e.g. one collected before calibrations existed."),
    note: str = typer.Option("", "--note", help="With --attach: why / when (stored with it)."),
    force: bool = typer.Option(False, "--force", help="With --attach: attach even though the data set's metadata "
                               "names another board / CPU than this machine."),
    json_out: bool = json_option("Print the calibration as JSON."),
) -> None:
    """Measure this machine's streaming memory bandwidth and compute speed (about 2 s).

    stream GB/s: a float32 matrix-vector product over --buffer-mib (what a fully connected layer does at
    batch 1: every weight read once); gemm GFLOP/s: a 256x256 matrix product (in cache), an index of the
    machine's speed at the time. Each at every --threads count. `perfmodel collect` measures this itself
    before its timing cells; the throughput model turns a network's FC weight bytes into a time with it.
    Run it while nothing else runs.
    """
    from perfmodel.collect.calibrate import measure_calibration
    from perfmodel.errors import PerfmodelError

    thr = _ints(threads)
    if not thr or min(thr) < 1:
        raise PerfmodelError("--threads must be integers >= 1")
    from perfmodel.collect.calibrate import MAX_SECONDS, check_buffer_fits

    if buffer_mib < 1:
        raise PerfmodelError(f"--buffer-mib must be >= 1, got {buffer_mib}")
    if not 0 < seconds <= MAX_SECONDS:  # also refuses nan and inf (a calibration that never ends)
        raise PerfmodelError(f"--seconds must be > 0 and at most {MAX_SECONDS:g} s, got {seconds}")
    check_buffer_fits(buffer_mib)
    if note and attach is None:
        raise PerfmodelError("--note needs --attach")
    if attach is not None:  # refuse a bad folder, or another machine's data set, before measuring
        check_calibration_target(attach, force=force)
    cal = measure_calibration(thr, buffer_mib=buffer_mib, seconds=seconds)
    if attach is not None and not cal["stream_gbps"]:
        raise PerfmodelError(f"nothing measured, nothing attached: {cal['errors']}")
    if attach is not None:
        from perfmodel.data import attach_calibration

        cal = attach_calibration(attach, cal, note)
    if json_out:
        typer.echo(json.dumps(cal, indent=2))
    else:
        for t in thr:
            key = str(t)
            if key in cal["stream_gbps"]:
                typer.echo(f"threads {t}: stream {cal['stream_gbps'][key]:.2f} GB/s, gemm "
                           f"{cal['gemm_gflops'][key]:.1f} GFLOP/s")
            else:
                typer.echo(f"threads {t}: not measured: {cal['errors'].get(key, 'unknown reason')}")
        if attach is not None:
            typer.echo(f"attached to {attach}")
    if cal["errors"]:
        raise SystemExit(1)


def register(app: typer.Typer) -> None:
    app.command("collect")(collect)
    app.command("trace")(trace)
    app.command("calibrate")(calibrate)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(0)

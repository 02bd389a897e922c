"""``perfmodel fit | evaluate | predict``: regressors from hardware metrics to throughput / power.

Each command parses its options, runs its workflow (:mod:`perfmodel.workflows.fit`,
:mod:`perfmodel.workflows.predict`) and prints what it returns."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import typer

from perfmodel.cli.checks import check_option as _check_option
from perfmodel.cli.graph import predict_graph_command
from perfmodel.cli.options import (CORES, CORES_HELP, DATASET_ARG, DATASET_HELP, FOLDS, JOBS, MAP, MAP_HELP, TARGET,
                                   json_option, list_option, split_list)
from perfmodel.cli.show import fmt, print_table, say
from perfmodel.errors import PerfmodelError
from perfmodel.readings import json_safe
from perfmodel.workflows.command import command_estimate, command_sample_estimate
from perfmodel.workflows.fit import check_fit_output, evaluate_lagged, evaluation_lag, evaluation_table, \
    evaluation_terms, fit_planned, lagged_trace, parse_sensor_lag, plan_fit
from perfmodel.workflows.predict import (command_samples, csv_samples, dataset_samples, predict_samples,
                                         prediction_payload, prepare_samples, quick_sample_summary,
                                         sample_only_reason)
from perfmodel.workflows.quick import quick_sample_problems, quick_sample_table


def _is_auto(features: str | Sequence[str] | None) -> bool:
    """``--features auto``: the automatic power term set, whatever events the data has."""
    items = [features] if isinstance(features, str) else list(features or [])
    return len(items) == 1 and str(items[0]).strip().lower() == "auto"


def _parse_features(features: str | Sequence[str] | None) -> list[str] | None:
    if not features:
        return None
    return split_list(features, "--features")


def _fmt(x, spec: str = ".2f") -> str:
    return fmt(x, spec, finite=True)


_CV_COLS = ["model", "MAPE %", "RMSPE %", "<=5 %", "<=10 %", "<=15 %", "R2", "Spearman"]


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


def _check_provenance(provenance: str | None) -> None:
    from perfmodel.readings import PROVENANCES

    if provenance is not None and provenance not in PROVENANCES:
        raise PerfmodelError(f"unknown provenance {provenance!r}; valid: {', '.join(PROVENANCES)}")


def _check_cv_options(folds: int, jobs: int) -> None:
    if folds < 2:
        raise PerfmodelError(f"--folds must be >= 2, got {folds}")
    if jobs == 0 or jobs < -1:
        raise PerfmodelError(f"--jobs must be >= 1 (or -1 for all cores), got {jobs}")


def _check_fit_options(*, max_features: int, vif_cap: float, l2_kib: float | None) -> None:
    _check_option("--max-features", max_features, minimum=1, what=" (the most events to add)")
    _check_option("--vif-cap", vif_cap, minimum=1, what=" (a variance inflation factor is never below 1)")
    _check_option("--l2-kib", l2_kib, above=0)


SENSOR_LAG_HELP = ("Power traces (armpm:PATH, csv:PATH): pair the counters of sample t with the sensors of t + "
                   "LAG. auto (default): the lag 0-3 at which the within-run correlation of power with the cycle "
                   "(else another event) rate peaks (1 on the published XU3 file); 0, with the reason said, where "
                   "no lag can be chosen (about one sample per run, no event rate)")


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
    if est.get("ratio_estimator"):
        typer.echo(f"  ratio: {est['ratio_estimator']} - {est['ratio_estimator_reason']}")
    if est.get("saved"):
        typer.echo(f"  saved: cell {est['saved']['cell_id']} in {est['saved']['path']}")
    if refusal:
        typer.echo(f"  model: not applied: {refusal}")


def fit_cmd(
    dataset: str = DATASET_ARG,
    target: str = TARGET,
    output: Path = typer.Option(..., "--out", "--output", "-o", help="Model file to write (JSON)."),
    kind: str = typer.Option(None, "--kind", help="linear (OLS, the default; ridge with --shrink), loglinear (log target), loglog (log "
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
    folds: int = FOLDS,
    max_features: int = typer.Option(8, "--max-features", help="Stepwise: most events to add."),
    vif_cap: float = typer.Option(10.0, "--vif-cap", help="Stepwise: largest VIF allowed among chosen events."),
    table: str = typer.Option("auto", "--table", help="Wide table of a data set: auto, cell, image or sample."),
    sensor_lag: str = typer.Option("auto", "--sensor-lag", help=SENSOR_LAG_HELP + ", chosen on all the data "
                                   "(not re-chosen inside the CV folds: the CV title says so) and recorded in the "
                                   "model file (preparation.sensor_lag), which predict applies."),
    shrink: bool = typer.Option(False, "--shrink", help="Power: fit ridge on every Powmon-form term of the "
                                "events present (no selection), the event terms' penalty chosen by the MAPE of "
                                "inner folds grouped like --cv (evaluate --shrink's row); the penalty and the "
                                "terms are recorded in the model file (selection)."),
    mapping: str = MAP,
    cores: int = CORES,
    provenance: str = typer.Option(None, "--provenance", help="Provenance of columns the data does not "
                                   "describe (CSV): real, simulated or software."),
    jobs: int = JOBS,
    json_out: bool = json_option("Print the fit summary as JSON."),
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
    from rich.console import Console

    _check_cv_options(folds, jobs)
    _check_fit_options(max_features=max_features, vif_cap=vif_cap, l2_kib=l2_kib)
    sensor_lag = parse_sensor_lag(sensor_lag)
    _check_provenance(provenance)
    check_fit_output(dataset, output, force=force)
    force_auto = _is_auto(features)
    plan = plan_fit(dataset, target, kind=kind, features=None if force_auto else _parse_features(features),
                    force_auto=force_auto, select=select, terms=terms, l2_kib=l2_kib,
                    simulated_from=simulated_from or (), exclude=exclude or (), dropna=dropna, table=table,
                    sensor_lag=sensor_lag, mapping=mapping, cores=cores, counts_from=counts_from, shrink=shrink,
                    say=say)
    kind = plan.kind  # a missing --kind resolved by the workflow (ridge with --shrink)
    with Console(stderr=True).status(f"fitting {kind} model of {target} ({plan.select} selection, {cv} CV)"):
        result = fit_planned(plan, output, cv=cv, folds=folds, max_features=max_features, vif_cap=vif_cap,
                             jobs=jobs, provenance=provenance)
    model = result.model
    if json_out:
        typer.echo(json.dumps(json_safe(result.summary()), indent=2))
        return
    if result.power_terms is not None:
        typer.echo(f"term set: {result.power_terms['set']} - {result.power_terms['reason']}")
    if result.sensor_lag is not None:
        typer.echo(result.sensor_lag.text())
    typer.echo(f"wrote {output}: {kind} model of {target} on {len(model.features)} features")
    sel = model.selection
    if sel.get("method") == "shrink":
        typer.echo(f"penalty: lambda {sel['lambda']:.3g} (alpha {sel['alpha']:.3g} on the {len(sel['penalised'])} "
                   f"event terms; the {len(sel['unpenalised'])} other terms unpenalised), chosen by {sel['inner_cv']} "
                   f"MAPE {sel['inner_mape']:.2f} % on all the data")
    for f in model.features:
        prov = model.provenance.get(f)
        typer.echo(f"  {f}  [{'?' if prov is None else '+'.join(prov) or 'derived'}]")
    lag_note = model.cv.get("sensor_lag")  # chosen on all rows: evaluate chooses it inside the folds
    print_table(f"{model.cv['scheme']} cross-validation" + (f" ({lag_note}; evaluate with a grouped "
                                                            "--cv chooses it inside every fold)" if lag_note else ""), _CV_COLS,
                _cv_rows([{k: v for k, v in r.items()} for r in model.cv["results"]]))


def evaluate_cmd(
    dataset: str = DATASET_ARG,
    target: str = TARGET,
    features: list[str] = list_option(None, "--features", help="Features (default: for power the validated "
                                      "fixed Powmon set where the data has all its events, else the automatic "
                                      "set; otherwise the stepwise choice of a linear model), or auto (power: "
                                      "the automatic set of the events present, selected in the folds)."),
    cv: str = typer.Option("kfold", "--cv", help="lono / lofo / lowo / lobo / kfold."),
    folds: int = FOLDS,
    table: str = typer.Option("auto", "--table", help="auto, cell, image or sample."),
    sensor_lag: str = typer.Option("auto", "--sensor-lag", help=SENSOR_LAG_HELP + ", chosen inside every outer "
                                   "fold from its training rows only with a grouped --cv (lono / lofo / lowo / "
                                   "lobo); with kfold once on all rows (shuffled folds are not whole runs)."),
    mapping: str = MAP,
    cores: int = CORES,
    jobs: int = JOBS,
    shrink: bool = typer.Option(False, "--shrink", help="Power, automatic term set: add the row of ridge on "
                                "every event term (no selection), the event terms' penalty chosen in inner "
                                "folds grouped like --cv."),
    json_out: bool = json_option("Print the table as JSON."),
) -> None:
    """Cross-validate linear, log-linear and ridge models beside the baselines (mean, per-frequency
    mean for power, MACs-only for throughput) on the same splits; print MAPE, RMSPE, share within
    +-5/10/15 %, R^2 and Spearman rho. A model that cannot be evaluated is listed with the reason."""
    _check_cv_options(folds, jobs)
    lag = evaluation_lag(dataset, parse_sensor_lag(sensor_lag), cv=cv, folds=folds, table=table, mapping=mapping,
                         cores=cores, target=target)
    df = evaluation_table(dataset, table=table, sensor_lag=lag.lags()[0], mapping=mapping, cores=cores, say=say)
    force_auto = _is_auto(features)
    feats, terms = evaluation_terms(df, target, None if force_auto else _parse_features(features),
                                    force_auto=force_auto)
    if terms is not None and not json_out:
        typer.echo(f"term set: {terms['set']} - {terms['reason']}")
    if not json_out and (lagged_trace(dataset, mapping) or dataset.startswith("powmon:")):
        typer.echo(lag.text())
    ev = evaluate_lagged(dataset, df, lag, target, feats, terms, cv=cv, folds=folds, jobs=jobs, shrink=shrink,
                         table=table, mapping=mapping, cores=cores)
    if json_out:
        typer.echo(json.dumps(json_safe(ev.to_dict()), indent=2))
        return
    if ev.nested:
        typer.echo(f"Powmon-form terms of the events present; always kept: {', '.join(ev.features['always'])}")
        typer.echo(f"event candidates (chosen inside every outer fold): {', '.join(ev.features['candidates'])}")
    else:
        typer.echo(f"features: {', '.join(ev.features)}")
    lag_note = ev.sensor_lag.cv_note() if ev.sensor_lag is not None else None
    print_table(f"{target}: {ev.scheme(cv)} cross-validation" + (f" ({lag_note})" if lag_note else ""), _CV_COLS,
                _cv_rows(ev.rows))


def predict_cmd(
    command: list[str] = typer.Argument(None, help="After --: a command to measure (perfmodel predict --model "
                                        "M -- CMD ARGS...)."),
    model_path: Path = typer.Option(None, "--model", "-m", help="Model file written by perfmodel fit (not "
                                    "needed for -- CMD: without it the command's long-run throughput is "
                                    "estimated from a quick sample of it)."),
    dataset: str = typer.Option(None, "--dataset", help=DATASET_HELP),
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
    load_command: str = typer.Option(None, "--load-command", help="With --two-phase, or with --model and "
                                     "-- CMD: the command loading the model and running no image (one string, "
                                     "shell-quoted); per image = (s1 - s2) / N, start-up excluded. With --model "
                                     "and without it, the run's per-image time includes start-up and gives no "
                                     "long-run estimate."),
    counters: str = typer.Option("auto", "--counters", help="Counter source of the quick sample. With -- CMD: "
                                 "perf (the command under perf stat; a line sample: its -I 100 intervals "
                                 "over the sample's own window, / images), software (CPU time, OS counters) "
                                 "or auto (perf where it counts: with a model, where perf is installed; a "
                                 "line sample, where the kernel also exposes a CPU PMU; else software). "
                                 "Hardware events a machine cannot count are recorded as missing with the "
                                 "reason, never as numbers."),
    save: Path = typer.Option(None, "--save", help="With -- CMD: store the sample as one training cell of "
                              "this data set (created when absent; the format of perfmodel collect "
                              "--command): the command, --framework/--network/--threads where named, the "
                              "per-image times and counts of --counters (or why there are none), the "
                              "sample's throughput and state, and the long-run estimate."),
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
    mapping: str = typer.Option(None, "--map", help=MAP_HELP + " With --dataset; default for csv:PATH: the "
                                "mapping the model was fitted with (preparation.map)."),
    cores: int = typer.Option(None, "--cores", help=CORES_HELP + " With --dataset."),
    json_out: bool = json_option("Print the predictions as JSON."),
    timeout: float = typer.Option(600.0, "--timeout", help="With -- CMD: seconds each run of the command may "
                                  "take; past it the command and its child processes (its process group) "
                                  "are ended and the prediction refused, saying so."),
    counts_from: Path = typer.Option(None, "--counts-from", help="With --dataset: use this data set's valgrind "
                                     "cells instead of the data set's own (counts simulated with the "
                                     "model's cache geometry, preparation.simulated_geometry)."),
    graph: str = typer.Option(None, "--graph", help="A network never run: a .onnx or .keras file or a zoo "
                              "network name. Needs an operator model (trained/throughput_operator.json): its "
                              "fps with the interval for every framework x threads of the model, or those of "
                              "--framework and --threads only."),
) -> None:
    """Predict the model's target, with a prediction interval, for every row of a data set or CSV, for
    a quick sample (--framework/--network), for a command (-- CMD...) or, with an operator model, for a
    network's graph (--graph FILE: fps of each framework x threads from the kernels each framework runs). The sample must have the
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
    _check_option("--alpha", alpha, above=0, below=1, what=" (1 - the confidence of the interval)")
    if graph is not None:  # before the network-level model's imports (pandas, scipy, scikit-learn)
        predict_graph_command(graph, model_path, framework, threads, alpha, json_out,
                              others=[dataset, csv, command, network])
        return
    from perfmodel.model import load_model

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
    if save is not None:
        if not command:
            raise PerfmodelError("--save applies to a measured command (-- CMD)")
        from perfmodel.data.store import check_target

        check_target(save)  # before the command runs
    sample_args = dict(images=images, seconds=seconds, regex=progress_regex, timeout=timeout,
                       two_phase=two_phase, load_command=load_command, framework=framework, threads=threads,
                       traces=traces, alpha=alpha, counters=counters, network=network, save=save)
    if model_path is None:  # a command's long-run throughput from a quick sample of it
        if dataset or csv:
            raise PerfmodelError("give one of --dataset, --csv or -- CMD")
        est = command_sample_estimate(list(command), **sample_args)
        typer.echo(json.dumps(json_safe(est), indent=2)) if json_out else print_command_estimate(est)
        return
    model = load_model(model_path)
    if command and not (dataset or csv):
        # the model's terms cannot be supplied (or a sample was asked for): the sample estimate, and why the
        # model was not applied in one line
        reason = sample_only_reason(model, framework=framework, network=network, threads=threads,
                                    counters=counters, progress_regex=progress_regex, two_phase=two_phase,
                                    seconds=seconds)
        if reason is not None:
            if counters == "valgrind":  # the sample is timed: never under valgrind's simulator
                sample_args["counters"] = "software"
                reason += ("; the sample was timed with software counters (--counters valgrind runs the command "
                           "under the cache simulator, tens of times slower: no timing)")
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
    counts_note = quick_measured = command_est = None
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
    if dataset:
        df = dataset_samples(model, dataset, counts_from=counts_from, simulated_from=simulated_from, table=table,
                             sensor_lag=sensor_lag, mapping=mapping, cores=cores, say=say)
    elif csv:  # a row with an impossible or non-numeric value gets n/a and its reason, the others an answer
        df = csv_samples(csv)
    elif command:  # one run: the model's features and the sample beside its prediction (stored with --save)
        df, measured = command_samples(model, list(command), images=images, counters=counters, framework=framework,
                                       network=network, threads=threads, timeout=timeout,
                                       load_command=load_command)
        command_est = command_estimate(measured, framework=framework, network=network, threads=threads,
                                       traces=traces, alpha=alpha, save=save)
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
    prepared = prepare_samples(model, df, dataset=dataset, counts_from=counts_from, simulated_from=simulated_from,
                               quick_measured=quick_measured)
    from rich.console import Console
    from rich.markup import escape

    from perfmodel.model.prepare import OWN_CALIBRATIONS, speed_ratio_text

    bw_source, speed = prepared.bandwidth_source, prepared.speed
    if bw_source is not None and not bw_source.startswith(OWN_CALIBRATIONS):  # not the data's own: say so
        Console(stderr=True).print(f"note: streaming bandwidth from {bw_source}")
    if speed is not None:
        Console(stderr=True).print(
            "note: " + (f"counts priced at the machine's speed now (x {speed_ratio_text(speed)}; "
                        f"{speed['source']})" if speed["applied"] else speed["reason"]), highlight=False)
        if speed.get("warning"):
            Console(stderr=True).print(f"[yellow]warning: {speed['warning']}", highlight=False)
    prediction = predict_samples(model, prepared, alpha=alpha, provenance=provenance, source=csv)
    out, keys, failed = prediction.table, prediction.keys, prediction.failed
    if failed:
        Console(stderr=True).print(
            f"[yellow]warning: {len(failed)} of {prediction.rows} row(s) could not be predicted (pred n/a), e.g. "
            f"{escape(next(iter(failed.values())))}", highlight=False)
    if prediction.n_outside:
        Console(stderr=True).print(
            f"[yellow]warning: {prediction.n_outside} of {len(prediction.outside)} sample(s) lie outside the "
            f"model's training range (an extrapolation; the interval assumes the fitted form still holds), "
            f"e.g. {prediction.first_outside()}")
    quick = None
    if counts_note is not None:
        quick = quick_sample_summary(prepared.df, counts_note, framework=framework, network=network, threads=threads,
                                     seconds=seconds, traces=traces, alpha=alpha)
    if json_out:
        payload = prediction_payload(model, prediction, prepared, alpha=alpha, quick=quick)
        if command_est is not None:
            payload["command_sample"] = command_est
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
    print_table(f"predicted {model.target} ({model.kind} model, {len(model.features)} features)", cols, rows)
    if command_est is not None:
        print_command_estimate(command_est)


def register(app: typer.Typer) -> None:
    app.command("fit")(fit_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("predict", context_settings={"allow_interspersed_args": False})(predict_cmd)

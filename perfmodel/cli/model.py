"""``perfmodel fit | evaluate | predict``: regressors from hardware metrics to throughput / power."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

from perfmodel.errors import PerfmodelError

KINDS = ("linear", "loglinear", "loglog", "ridge")
CV_CHOICES = ("lono", "lofo", "lowo", "lobo", "kfold")
TABLES = ("auto", "cell", "image", "sample")

_DATASET_HELP = ("A data set folder, a records file (.parquet), a wide table (.csv), or armpm:PATH for an "
                 "ARMPM / PARSEC power file.")


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            return _json_safe(obj.item())
        except (ValueError, AttributeError):
            return str(obj)
    return obj


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


def load_table(dataset: str, *, table: str = "auto", sensor_lag: int = 0):
    """The wide table for ``dataset`` (see ``_DATASET_HELP``)."""
    import pandas as pd

    from perfmodel.errors import check_choice

    check_choice("table", table, TABLES)
    if dataset.startswith("armpm:"):
        from perfmodel.data.importers.armpm import load_armpm

        return load_armpm(dataset[len("armpm:"):], sensor_lag=sensor_lag)
    path = Path(dataset)
    if path.suffix.lower() == ".csv":
        if not path.is_file():
            raise PerfmodelError(f"{path} does not exist")
        try:
            return pd.read_csv(path)
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise PerfmodelError(f"cannot read CSV {path}: {exc}") from None
    from perfmodel.data import read_dataset

    return _wide_from_records(read_dataset(path), table)


def _parse_features(features: str | None) -> list[str] | None:
    if not features:
        return None
    out = [f.strip() for f in features.split(",") if f.strip()]
    return out or None


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


_CV_COLS = ["model", "MAPE %", "RMSPE %", "<=5 %", "<=10 %", "<=15 %", "R2", "Spearman"]


def register(app: typer.Typer) -> None:
    @app.command("fit")
    def fit_cmd(
        dataset: str = typer.Argument(..., help=_DATASET_HELP),
        target: str = typer.Option(..., "--target", "-t", help="Column to predict: throughput_fps, power_w, ..."),
        output: Path = typer.Option(..., "--output", "-o", help="Model file to write (JSON)."),
        kind: str = typer.Option("linear", "--kind", help="linear (OLS), loglinear (log target), loglog (log "
                                 "target and features) or ridge (alpha by inner CV)."),
        features: str = typer.Option(None, "--features", help="Comma-separated features: with --select fixed the "
                                     "model's features, else the stepwise candidates. Products a*b^2, log(a) and "
                                     "indicators framework=litert are allowed."),
        select: str = typer.Option(None, "--select", help="stepwise (default without --features) or fixed "
                                   "(default with --features)."),
        cv: str = typer.Option("kfold", "--cv", help="CV scheme: lono / lofo / lowo / lobo (leave one network / "
                               "framework / workload / board out) or kfold."),
        folds: int = typer.Option(5, "--folds", help="Folds for --cv kfold."),
        max_features: int = typer.Option(8, "--max-features", help="Stepwise: most events to add."),
        vif_cap: float = typer.Option(10.0, "--vif-cap", help="Stepwise: largest VIF allowed among chosen events."),
        table: str = typer.Option("auto", "--table", help="Wide table of a data set: auto, cell, image or sample."),
        sensor_lag: int = typer.Option(0, "--sensor-lag", help="armpm: pair counters of sample t with sensors of "
                                       "t + LAG (1 fits the published XU3 file best)."),
        provenance: str = typer.Option(None, "--provenance", help="Provenance of columns the data does not "
                                       "describe (CSV): real, simulated or software."),
        jobs: int = typer.Option(1, "--jobs", "-j", help="Parallel CV jobs."),
        json_out: bool = typer.Option(False, "--json", help="Print the fit summary as JSON."),
    ) -> None:
        """Fit a model of --target on DATASET and write it as a JSON model file.

        Features are chosen by stepwise forward selection (CV MAPE, VIF cap) unless --select fixed. The
        file holds the coefficients, the interval covariance, feature provenance and the CV scores of the
        model beside the mean / per-frequency / MACs-only baselines.
        """
        from perfmodel.model import fit_model, save_model

        df = load_table(dataset, table=table, sensor_lag=sensor_lag)
        feats = _parse_features(features)
        sel = select or ("fixed" if feats else "stepwise")
        from rich.console import Console

        with Console(stderr=True).status(f"fitting {kind} model of {target} ({sel} selection, {cv} CV)"):
            model = fit_model(df, target, feats, kind=kind, groups=cv, select=sel, max_features=max_features,
                              vif_cap=vif_cap, n_splits=folds, n_jobs=jobs, provenance=provenance,
                              metadata={"dataset": dataset, "sensor_lag": sensor_lag if dataset.startswith("armpm:") else None})
        save_model(model, output)
        summary = {"model": str(output), "target": target, "kind": kind, "features": model.features,
                   "cv": {k: v for k, v in model.cv.items() if k != "results"}, "results": model.cv["results"]}
        if json_out:
            typer.echo(json.dumps(_json_safe(summary), indent=2))
            return
        typer.echo(f"wrote {output}: {kind} model of {target} on {len(model.features)} features")
        for f in model.features:
            typer.echo(f"  {f}  [{'+'.join(model.provenance.get(f) or ['?'])}]")
        _print_table(f"{model.cv['scheme']} cross-validation", _CV_COLS,
                     _cv_rows([{k: v for k, v in r.items()} for r in model.cv["results"]]))

    @app.command("evaluate")
    def evaluate_cmd(
        dataset: str = typer.Argument(..., help=_DATASET_HELP),
        target: str = typer.Option(..., "--target", "-t", help="Column to predict: throughput_fps, power_w, ..."),
        features: str = typer.Option(None, "--features", help="Comma-separated features (default: the stepwise "
                                     "choice of a linear model)."),
        cv: str = typer.Option("kfold", "--cv", help="lono / lofo / lowo / lobo / kfold."),
        folds: int = typer.Option(5, "--folds", help="Folds for --cv kfold."),
        table: str = typer.Option("auto", "--table", help="auto, cell, image or sample."),
        sensor_lag: int = typer.Option(0, "--sensor-lag", help="armpm: sensor lag in samples."),
        jobs: int = typer.Option(1, "--jobs", "-j", help="Parallel CV jobs."),
        json_out: bool = typer.Option(False, "--json", help="Print the table as JSON."),
    ) -> None:
        """Cross-validate linear, log-linear and ridge models beside the baselines (mean, per-frequency
        mean for power, MACs-only for throughput) on the same splits; print MAPE, RMSPE, share within
        +-5/10/15 %, R^2 and Spearman rho. A model that cannot be evaluated is listed with the reason."""
        from perfmodel.model.fit import evaluate, fit_model, scheme_group

        df = load_table(dataset, table=table, sensor_lag=sensor_lag)
        feats = _parse_features(features)
        if feats is None:
            feats = fit_model(df, target, kind="linear", groups=cv, n_splits=folds, n_jobs=jobs, baselines=False,
                              statistics=False, provenance="real").features
        _, rows = evaluate(df, target, feats, kinds=("linear", "loglinear", "ridge"), group=scheme_group(cv),
                           n_splits=folds, n_jobs=jobs)
        if json_out:
            typer.echo(json.dumps(_json_safe({"target": target, "features": feats, "results": rows}), indent=2))
            return
        typer.echo(f"features: {', '.join(feats)}")
        scheme = next((r["scheme"] for r in rows if r.get("scheme")), cv)
        _print_table(f"{target}: {scheme} cross-validation", _CV_COLS, _cv_rows(rows))

    @app.command("predict", context_settings={"allow_interspersed_args": False})
    def predict_cmd(
        command: list[str] = typer.Argument(None, help="After --: a command to measure (perfmodel predict --model "
                                            "M -- CMD ARGS...)."),
        model_path: Path = typer.Option(..., "--model", "-m", help="Model file written by perfmodel fit."),
        dataset: str = typer.Option(None, "--dataset", help=_DATASET_HELP),
        csv: Path = typer.Option(None, "--csv", help="A wide table as CSV (one sample per row)."),
        framework: str = typer.Option(None, "--framework", help="Measure a quick sample of this framework ..."),
        network: str = typer.Option(None, "--network", help="... running this network."),
        threads: int = typer.Option(1, "--threads", help="Threads of the quick sample."),
        images: int = typer.Option(10, "--images", help="Images of the quick sample / measured command."),
        counters: str = typer.Option("auto", "--counters", help="Counter source of the quick sample."),
        provenance: str = typer.Option(None, "--provenance", help="Provenance of CSV columns: real, simulated, "
                                       "software (a CSV does not record it)."),
        alpha: float = typer.Option(0.05, "--alpha", help="1 - confidence of the prediction interval."),
        table: str = typer.Option("auto", "--table", help="Wide table of a data set: auto, cell, image, sample."),
        sensor_lag: int = typer.Option(0, "--sensor-lag", help="armpm: sensor lag in samples."),
        json_out: bool = typer.Option(False, "--json", help="Print the predictions as JSON."),
    ) -> None:
        """Predict the model's target, with a prediction interval, for every row of a data set or CSV, for
        a quick sample (--framework/--network) or for a command (-- CMD...). The sample must have the
        model's features from the same counter source (real PMU vs simulated) or the prediction is refused."""
        import pandas as pd

        from perfmodel.model import load_model

        model = load_model(model_path)
        given = [x for x in (dataset, csv, framework or network, command) if x]
        if len(given) != 1:
            raise PerfmodelError("give exactly one of --dataset, --csv, --framework/--network or -- CMD")
        if dataset:
            df = load_table(dataset, table=table, sensor_lag=sensor_lag)
        elif csv:
            df = load_table(str(csv))
        else:
            from perfmodel.data import wide_per_cell

            if command:
                try:
                    from perfmodel.collect.command import measure_command
                except ImportError:
                    raise PerfmodelError("measuring a command (perfmodel.collect.command) is not available yet") from None
                records = measure_command(list(command), images, counters=counters)
            else:
                if not (framework and network):
                    raise PerfmodelError("a quick sample needs both --framework and --network")
                try:
                    from perfmodel.collect.quick import quick_sample
                except ImportError:
                    raise PerfmodelError("quick samples (perfmodel.collect.quick) are not available yet") from None
                records = quick_sample(framework, network, threads=threads, images=images, counters=counters)
            df = wide_per_cell(records)
        if df.empty:
            raise PerfmodelError("no samples to predict")
        pred = model.predict_frame(df, alpha=alpha, provenance=provenance)
        keys = [c for c in ("framework", "network", "threads", "workload", "freq_mhz", "cores") if c in df.columns]
        out = pd.concat([df[keys].reset_index(drop=True), pred.reset_index(drop=True)], axis=1)
        if model.target in df.columns:
            out["measured"] = pd.to_numeric(df[model.target], errors="coerce").to_numpy()
        if json_out:
            typer.echo(json.dumps(_json_safe({"target": model.target, "alpha": alpha,
                                              "rows": out.to_dict("records")}), indent=2))
            return
        cols = keys + ["pred", f"lo ({1 - alpha:.0%})", "hi"] + (["measured"] if "measured" in out else [])
        rows = []
        for r in out.to_dict("records"):
            row = [str(r[k]) for k in keys] + [_fmt(r["pred"], ".4g"), _fmt(r["lo"], ".4g"), _fmt(r["hi"], ".4g")]
            if "measured" in out:
                row.append(_fmt(r["measured"], ".4g"))
            rows.append(row)
        if not keys:
            cols = ["row"] + cols
            rows = [[str(i)] + r for i, r in enumerate(rows)]
        _print_table(f"predicted {model.target} ({model.kind} model, {len(model.features)} features)", cols, rows)

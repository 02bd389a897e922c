"""The HTML report and the correlation tables.

:func:`build_report` writes ``report.html`` and its PNG figures into one folder (relative links only,
so the folder can be moved or zipped). The page is rendered from the Jinja2 template
``templates/report.html.j2`` (package data, autoescape on), in the order a reader wants it: a one-screen
summary (the spec, the choice and the runner-up with values, intervals and their source labels as
:mod:`perfmodel.select` gives them, the models' cross-validated accuracy beside their baselines, what could
not be evaluated and why, machine and dates); analogues of the study's Figs. 1-5, each with a generated
caption (:mod:`.captions`: what it shows, whose data, a finding computed from the data); correlation tables;
the CV tables and the full selection; an appendix (collapsed) with the metadata and the source of every
figure. A figure with nothing to draw is replaced by a sentence saying why.

:mod:`.correlate` - :func:`correlation_table` (Pearson with Fisher-z CI and p, Spearman).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from perfmodel.data.cells import is_simulated
from perfmodel.data.provenance import Table
from perfmodel.errors import PerfmodelError

from .correlate import correlation_table, default_features, fisher_ci

REPORT_NAME = "report.html"
#: the page template (package data, rendered with autoescape on)
TEMPLATE = "report.html.j2"


def _env():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("perfmodel.report", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=False)


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return str(v)


def _table(df: pd.DataFrame | None, columns: Iterable[str] | None = None, max_rows: int = 200) -> dict:
    """A table for the template: ``{"columns", "rows": [[{"text", "num"}]], "more"}``."""
    if df is None or len(df) == 0:
        return {"columns": [], "rows": [], "more": 0}
    cols = [c for c in (columns or df.columns) if c in df.columns]
    rows = []
    for _, r in df.head(max_rows).iterrows():
        row = []
        for c in cols:
            v = r[c]
            num = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            row.append({"text": _fmt(float(v) if isinstance(v, np.floating) else v), "num": num})
        rows.append(row)
    return {"columns": [str(c) for c in cols], "rows": rows, "more": max(0, len(df) - max_rows)}


#: the figure files a report writes (removed first: a figure with nothing to draw writes no file)
FIGURE_FILES = ("fig1_timeseries.png", "fig2_cpu_throughput.png", "fig3_events.png", "fig4_power_events.png",
                "fig5_throughput_metric.png")


@dataclass
class FigureSource:
    """Other data a figure may be drawn from when the report's own data cannot draw it (e.g. the shipped
    reference data set and traces for a fresh campaign on a machine without a PMU). ``label`` says whose
    data it is (shown under the figure); ``records``: long records."""

    label: str
    records: pd.DataFrame

    @classmethod
    def from_datasets(cls, paths: Sequence[str | os.PathLike], what: str) -> FigureSource:
        """The records of ``paths`` (data set folders), labelled with ``what``, the first one's CPU model and
        date, and the paths."""
        from perfmodel.data import dataset_metadata, read_dataset

        paths = [Path(p) for p in paths]
        if not paths:
            raise PerfmodelError("FigureSource.from_datasets: no data sets")
        meta, _ = dataset_metadata(paths[0])
        system = meta.get("system") or {}
        cpu = system.get("cpu_model") or meta.get("cpu_model") or meta.get("board") or "unknown CPU"
        when = str(meta.get("created") or "")[:10]
        if not when:
            import json as _json

            try:
                when = str(_json.loads((paths[0] / "dataset.json").read_text()).get("created", ""))[:10]
            except (OSError, ValueError):
                when = ""
        where = ", ".join(map(str, paths)) if len(paths) <= 3 else f"{paths[0]} and {len(paths) - 1} more"
        label = f"{what} ({cpu}{', ' + when if when else ''}): {where}"
        return cls(label, pd.concat([read_dataset(p) for p in paths], ignore_index=True))


def _figure_tables(long_df: pd.DataFrame) -> tuple[Table, Table, dict[str, str]]:
    """``(cells with simulated counts joined, samples, missing reasons)`` of long records."""
    from perfmodel.data import wide_per_cell, wide_per_sample
    from perfmodel.select import join_simulated_cells, missing_reasons

    return join_simulated_cells(wide_per_cell(long_df)), wide_per_sample(long_df), missing_reasons(long_df)


def _load_models(models: Iterable[Any]) -> list[Any]:
    out = []
    for m in models:
        if isinstance(m, (str, os.PathLike)):
            try:
                from perfmodel.model import load_model
            except ImportError as exc:  # the modelling stage is not installed / written yet
                raise PerfmodelError(f"cannot load model files: perfmodel.model is not available ({exc})") from None
            out.append(load_model(m))
        else:
            out.append(m)
    return out


def sources_table(long_df: pd.DataFrame) -> pd.DataFrame:
    """Per metric: provenance(s), source(s), values present / missing and the commonest missing reason."""
    if long_df is None or long_df.empty:
        return pd.DataFrame(columns=["metric", "provenance", "source", "unit", "present", "missing", "reason"])
    rows = []
    for metric, g in long_df.groupby("metric", sort=True):
        present = g.loc[g["value"].notna()]
        miss = g.loc[g["value"].isna()]
        rows.append({
            "metric": metric,
            "provenance": "+".join(sorted(set(present["provenance"]))) or "none",
            "source": ", ".join(sorted(set(present["source"]) - {""})) or "-",
            "unit": ", ".join(sorted(set(g["unit"]) - {""})),
            "present": int(len(present)),
            "missing": int(len(miss)),
            "reason": (str(miss["reason"].value_counts().index[0]) if len(miss) else ""),
        })
    return pd.DataFrame(rows)


def _cv_models(models: list[Any], files: Sequence[str | None] = ()) -> list[dict]:
    """Per model: name, target, features, provenance and its CV results as template blocks."""
    out = []
    for i, m in enumerate(models):
        feats = getattr(m, "features", None)
        prov = getattr(m, "provenance", None)
        cv = getattr(m, "cv", None)
        out.append({"name": _model_name(m, i, files), "target": getattr(m, "target", "?"),
                    "features": ", ".join(map(str, feats)) if feats else "",
                    "provenance": json.dumps(prov, default=str) if prov else "",
                    "blocks": _cv_blocks(cv) if cv else
                    [{"kind": "missing", "text": "no cross-validation results stored in this model"}]})
    return out


def _model_name(m: Any, i: int, files: Sequence[str | None] = ()) -> str:
    """The model's name, else the file it was loaded from (``files[i]``), else its target, kind and data."""
    meta = getattr(m, "metadata", None) or {}
    name = getattr(m, "name", None) or meta.get("path") or (files[i] if i < len(files) else None)
    if name:
        return str(name)
    data = meta.get("dataset")
    return f"model {i + 1}" + (f" (trained on {data})" if data else "")


def _cv_blocks(cv: Any) -> list[dict]:
    """A model's ``cv`` dict as template blocks: lists of records as tables, flat scalars as one table."""
    if isinstance(cv, list) and cv and all(isinstance(r, Mapping) for r in cv):
        flat = [{k: v for k, v in r.items() if not isinstance(v, (list, dict))} for r in cv]
        return [{"kind": "table", "table": _table(pd.DataFrame(flat))}]
    if not isinstance(cv, Mapping):
        return [{"kind": "pre", "text": json.dumps(cv, indent=1, default=str)}]
    scalars = {k: v for k, v in cv.items() if not isinstance(v, (list, dict))}
    out: list[dict] = []
    if scalars:
        out.append({"kind": "table", "table": _table(pd.DataFrame([scalars]))})
    for k, v in cv.items():
        if isinstance(v, (list, dict)):
            out.append({"kind": "h4", "text": str(k)})
            if isinstance(v, list) and v and all(isinstance(r, Mapping) for r in v):
                out.extend(_cv_blocks(v))
            elif isinstance(v, Mapping) and v and all(isinstance(r, Mapping) for r in v.values()):
                out.append({"kind": "table", "table": _table(pd.DataFrame(
                    [{"name": n, **{a: b for a, b in r.items() if not isinstance(b, (list, dict))}}
                     for n, r in v.items()]))})
            else:
                out.append({"kind": "pre", "text": json.dumps(v, indent=1, default=str)})
    return out


RANKED_COLUMNS = ["rank", "candidate", "objective", "throughput_fps", "throughput_fps_source", "power_w",
                  "power_w_source", "energy_j", "energy_j_source", "top1", "top1_source", "max_rss_mb",
                  "temperature_c", "unknown", "uncertain"]


def _selection(result: Any) -> dict | None:
    if result is None:
        return None
    spec = result.spec
    return {"spec": "; ".join(c.describe() for c in spec.constraints) or "no constraints",
            "objective": spec.describe_objective(), "notes": list(result.notes),
            "binding": (result.binding or {}).get("message", "infeasible") if result.binding else "",
            "ranked": _table(result.ranked, RANKED_COLUMNS),
            "excluded": _table(result.excluded, ["candidate", "constraint", "text", "value", "limit", "shortfall",
                                                 "source"]),
            "unevaluable": _table(result.unevaluable, ["candidate", "constraint", "text", "reason"]),
            "pareto_axes": " vs ".join(result.pareto_axes) or "no axes", "pareto": _table(result.pareto)}


def selection_html(result: Any) -> str:
    """HTML of a :class:`perfmodel.select.SelectionResult` (the report's selection section)."""
    return _env().get_template(TEMPLATE).render(fragment="selection", selection=_selection(result))


#: the candidate figures the summary shows for the choice and the runner-up, with units
SUMMARY_VALUES: tuple[tuple[str, str, str], ...] = (
    ("throughput_fps", "throughput", "img/s"), ("top1", "top-1", ""), ("power_w", "power", "W"),
    ("energy_j", "energy", "J/img"))


def _summary_value(r: Mapping, col: str, unit: str) -> dict:
    """A candidate's value with its source label (as select labels it) and its interval."""
    v = r.get(col, math.nan)
    src = str(r.get(f"{col}_source", "") or "")
    label = src.split(":")[0].strip() if src else ""
    missing = v is None or (isinstance(v, float) and math.isnan(v))
    out = {"text": "n/a" if missing else f"{float(v):.4g}{' ' + unit if unit else ''}",
           "source": label, "source_class": label if label in ("measured", "predicted", "published", "derived",
                                                                  "unavailable") else "",
           "interval": ""}
    if missing:
        out["interval"] = "reason under 'could not be evaluated'" if label == "unavailable" else ""
        return out
    lo, hi = r.get(f"{col}_lo", math.nan), r.get(f"{col}_hi", math.nan)
    if label == "predicted" and lo is not None and hi is not None and not (math.isnan(lo) or math.isnan(hi)):
        model = r.get(f"{col}_model") or ""
        out["interval"] = f"prediction interval {lo:.4g}-{hi:.4g}" + (f" ({model})" if model else "")
    elif label == "measured":
        sd, n = r.get(f"{col}_std", math.nan), r.get(f"{col}_n", math.nan)
        if sd is not None and n is not None and not (math.isnan(sd) or math.isnan(n)) and n > 1:
            half = 1.96 * float(sd) / math.sqrt(float(n))
            out["interval"] = f"95 % CI of the mean {v - half:.4g}-{v + half:.4g} (n = {int(n)})"
    elif label == "published":
        ref = r.get("accuracy_source") or ""
        out["interval"] = str(ref)
    return out


def _model_accuracy(models: list[Any], files: Sequence[str | None] = ()) -> list[dict]:
    """Per model with CV results: the model's and its baselines' cross-validated accuracy."""
    out = []
    for i, m in enumerate(models):
        cv = getattr(m, "cv", None)
        results = cv.get("results") if isinstance(cv, Mapping) else (cv if isinstance(cv, list) else None)
        if not results or not all(isinstance(r, Mapping) for r in results):
            continue
        rows = []
        for r in results:
            rows.append({"model": str(r.get("model", "?")), "MAPE %": r.get("mape", math.nan),
                         "within 10 %": r.get("within_10", math.nan), "R2": r.get("r2", math.nan),
                         "n": r.get("n", math.nan), "status": str(r.get("status", ""))})
        scheme = str(cv.get("scheme", "")) if isinstance(cv, Mapping) else ""
        out.append({"name": _model_name(m, i, files), "target": getattr(m, "target", "?"),
                    "kind": str(getattr(m, "kind", "") or ""), "scheme": scheme or "cross-validation",
                    "table": _table(pd.DataFrame(rows))})
    return out


def _not_evaluated(selection: Any, figs: Mapping[str, dict], reasons: Mapping[str, str], models: list[Any],
                   files: Sequence[str | None] = ()) -> list[str]:
    out = []
    if selection is not None and len(selection.unevaluable):
        u = selection.unevaluable
        for (text, reason), g in u.groupby(["text", "reason"], sort=True):
            out.append(f"{text}: {len(g)} candidate{'s' if len(g) != 1 else ''} not evaluated - {reason}")
    if selection is not None:
        out.extend(selection.notes)
    for f in figs.values():
        if not f.get("src"):
            out.append(f"{f['heading']}: {f['missing']}")
    for col in ("power_w", "energy_j", "temperature_c", "freq_mhz"):
        if col in reasons and not any(reasons[col] in o for o in out):
            out.append(f"{col}: {reasons[col]}")
    if selection is not None and len(selection.ranked):
        for col, _lab, _unit in SUMMARY_VALUES:
            src = selection.ranked[f"{col}_source"] if f"{col}_source" in selection.ranked.columns else None
            if src is None:
                continue
            why = src[src.astype(str).str.startswith("unavailable")].astype(str)
            if len(why) and not any(col in o for o in out):
                out.append(f"{col}: {why.iloc[0].split(':', 1)[-1].strip()} ({len(why)} ranked candidates)")
    for i, m in enumerate(models):
        if not getattr(m, "cv", None):
            out.append(f"{_model_name(m, i, files)}: no cross-validation results stored")
    return list(dict.fromkeys(out))


def _counts_note(cells: Table | None, key: str) -> str:
    """'; counts: simulated' etc. for the figures drawn from per-image counts (Figs. 3 and 5)."""
    if key not in ("fig3", "fig5") or cells is None or "instructions_per_image" not in cells.columns:
        return ""
    prov = cells.provenance.get("instructions_per_image")
    return f"; per-image counts: {prov}" if prov else ""


def build_report(dataset_path_or_df: str | os.PathLike | pd.DataFrame, out_dir: str | os.PathLike,
                 models: Iterable[Any] = (), selection: Any = None, *, title: str | None = None,
                 progress: Any = None, extra_records: pd.DataFrame | None = None,
                 fallbacks: Sequence[FigureSource] = (), extra_label: str | None = None,
                 source_name: str | None = None, extra_sources: Mapping[str, str] | None = None) -> Path:
    """Write the report into ``out_dir`` (created) and return the HTML path.

    ``dataset_path_or_df``: a data set folder / records file, or a long records DataFrame.
    ``extra_records``: more long records to include (e.g. the simulated cells of a reference data set).
    ``models``: :class:`perfmodel.model.ModelFile` objects or paths. ``selection``: a
    :class:`perfmodel.select.SelectionResult`, or a :class:`perfmodel.select.Spec` to rank the data set's
    candidates (with ``models``) here. ``progress``: optional callable(str) told of each step.
    ``fallbacks``: :class:`FigureSource` objects, tried in order for a figure the data set cannot draw; the
    figure then says whose data it shows and why the data set's own could not be used. ``extra_label``: what
    ``extra_records`` are (shown with the data set's name under each figure drawn from them).
    ``source_name``: the name of a records DataFrame given as the data set (default ``DataFrame``);
    ``extra_sources``: run_id -> the data set each run of ``extra_records`` came from.
    """
    from perfmodel.data import dataset_metadata, read_dataset
    from perfmodel.select import Spec, candidates_from_cells, rank

    from . import captions, figures

    step = progress or (lambda _msg: None)
    meta: dict = {}
    campaign = None
    if isinstance(dataset_path_or_df, pd.DataFrame):
        long_df = dataset_path_or_df
        source_name = str(source_name or "DataFrame")
    else:
        path = Path(dataset_path_or_df)
        long_df = read_dataset(path)
        meta, campaign = dataset_metadata(path)
        source_name = str(path)
    # run_id -> the data set it came from (the extra records may say theirs: extra_sources)
    run_sources = {str(r): source_name for r in long_df["run_id"].unique()} if "run_id" in long_df.columns else {}
    if extra_records is not None and len(extra_records):
        extra_name = extra_label or "extra records"
        given = dict(extra_sources or {})
        for r in extra_records["run_id"].unique():
            run_sources.setdefault(str(r), str(given.get(str(r), extra_name)))
        long_df = pd.concat([long_df, extra_records], ignore_index=True)
    extra_counts = None  # where per-image counts joined from the extra records came from
    if extra_records is not None and len(extra_records) and is_simulated(extra_records).any():
        extra_counts = extra_label or "the records added"
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise PerfmodelError(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    models = list(models)
    model_files = [str(m) if isinstance(m, (str, os.PathLike)) else None for m in models]
    models = _load_models(models)

    step("tables")
    # simulated (valgrind) cells have counts and no timing: attach them to the timing cells they describe
    cells, samples, reasons = _figure_tables(long_df)
    if isinstance(selection, Spec):
        step("selection")
        cand = candidates_from_cells(cells, models=models, reasons=reasons,
                                     dataset=None if isinstance(dataset_path_or_df, pd.DataFrame) else path)
        selection = rank(cand, selection)

    step("figures")
    for name in FIGURE_FILES:  # a figure left by an earlier report into this folder is not this data's
        (out / name).unlink(missing_ok=True)
    # key: (file, heading, draw(cells, samples, reasons, path), what(c, s), finding(c, s)); cells and samples
    # are Tables (Fig. 1 says a series' provenance), the other figures and captions draw from their frames
    drawers = {
        "fig1": ("fig1_timeseries.png", "Fig. 1 - throughput, CPU %, temperature and frequency over each trace",
                 lambda c, s, r, p: figures.fig_timeseries(s, p, r),
                 lambda c, s: captions.what_fig1(s.frame), lambda c, s: captions.finding_fig1(s.frame)),
        "fig2": ("fig2_cpu_throughput.png", "Fig. 2 - average CPU % and throughput per framework x network",
                 lambda c, s, r, p: figures.fig_cpu_throughput(c.frame, p, r),
                 lambda c, s: captions.what_fig2(c.frame), lambda c, s: captions.finding_fig2(c.frame)),
        "fig3": ("fig3_events.png", "Fig. 3 - hardware events per image per framework x network",
                 lambda c, s, r, p: figures.fig_events(c.frame, p),
                 lambda c, s: captions.what_fig3(c.frame), lambda c, s: captions.finding_fig3(c.frame)),
        "fig4": ("fig4_power_events.png", "Fig. 4 - power vs event rates, per framework",
                 lambda c, s, r, p: figures.fig_power_events(s.frame, c.frame, p, r),
                 lambda c, s: captions.what_fig4(s.frame, c.frame),
                 lambda c, s: captions.finding_fig4(s.frame, c.frame)),
        "fig5": ("fig5_throughput_metric.png", "Fig. 5 - throughput vs a per-image hardware metric (log-log)",
                 lambda c, s, r, p: figures.fig_throughput_metric(c.frame, p),
                 lambda c, s: captions.what_fig5(c.frame), lambda c, s: captions.finding_fig5(c.frame)),
    }
    def own_label(tables: tuple) -> str:
        """'this data set (PATH)' / 'this report's data (the data sets the figure's rows came from)'."""
        names = sorted({run_sources.get(str(r), source_name) for t in tables if t is not None and len(t)
                        and "run_id" in t.columns for r in t.frame["run_id"].unique()})
        if names and (len(names) > 1 or names[0] != source_name):
            return f"this report's data ({', '.join(names)})"
        return f"this data set ({source_name})"

    fallback_tables: dict[int, tuple] = {}
    figs: dict[str, dict] = {}
    # the table each figure draws from (Fig. 4: the trace samples when they have power, else the cells)
    uses = {"fig1": lambda c, s: (s,), "fig2": lambda c, s: (c,), "fig3": lambda c, s: (c,),
            "fig4": lambda c, s: (s,) if s is not None and "power_w" in s.columns
            and s.frame["power_w"].notna().any() else (c,), "fig5": lambda c, s: (c,)}
    for key, (fname, heading, draw, what, finding) in drawers.items():
        res = draw(cells, samples, reasons, out / fname)
        own = own_label(uses[key](cells, samples))
        note = f"data: {own}" + _counts_note(cells, key)
        if key in ("fig3", "fig5") and extra_counts:  # counts joined onto this data set's cells from elsewhere
            note += f" (from {extra_counts})"
        used = (cells, samples)
        if not isinstance(res, Path):
            own_reason = str(res)
            for i, fb in enumerate(fallbacks):
                if i not in fallback_tables:
                    fallback_tables[i] = _figure_tables(fb.records)
                fc, fs, fr = fallback_tables[i]
                alt = draw(fc, fs, fr, out / fname)
                if isinstance(alt, Path):
                    res, used = alt, (fc, fs)
                    note = (f"data: {fb.label}{_counts_note(fc, key)} - {own} has none for this "
                            f"figure ({own_reason})")
                    break
        fig = {"key": key, "heading": heading.split(" - ")[0], "title": heading, "data_note": note,
               "src": "", "missing": "", "what": "", "finding": ""}
        if isinstance(res, Path):
            fig["src"] = os.path.relpath(res, out).replace(os.sep, "/")
            fig["what"] = what(*used)
            fig["finding"] = finding(*used)
        else:
            fig["missing"] = str(res)
        figs[key] = fig

    step("correlations")
    corr: list[dict] = []
    cells, samples = cells.frame, samples.frame
    if not samples.empty and "power_w" in samples.columns and samples["power_w"].notna().any():
        feats = default_features(samples, "sample")
        if feats:
            corr.append({"kind": "h4", "text": "Table II analogue: power vs event rates over the trace, per "
                                               "framework"})
            corr.append({"kind": "table", "table": _table(correlation_table(samples, "power_w", feats,
                                                                            by="framework"))})
    else:
        corr.append({"kind": "missing", "text": "Table II analogue (power vs event rates): "
                     + (f"no power data: {reasons['power_w']}" if "power_w" in reasons
                        else "no power samples in any trace")})
    if not cells.empty and "throughput_fps" in cells.columns:
        feats = default_features(cells, "cell")
        if feats:
            corr.append({"kind": "h4", "text": "Fig. 5 analogue: per-cell throughput vs per-image counts, all "
                                               "cells"})
            corr.append({"kind": "table", "table": _table(correlation_table(cells, "throughput_fps", feats))})
        else:
            corr.append({"kind": "missing", "text": "no per-image event counts to correlate throughput with"})

    step("html")
    now = _dt.datetime.now().isoformat(timespec="seconds")
    board = sorted(set(long_df["board"])) if "board" in long_df.columns and len(long_df) else []
    sysinfo = meta.get("system") or meta.get("sysinfo") or {}
    created = _dataset_created(dataset_path_or_df)
    meta_rows = [("data set", source_name), ("board(s)", ", ".join(board) or "n/a"),
                 ("records", f"{len(long_df)} rows, {long_df['cell_id'].nunique() if len(long_df) else 0} cells"),
                 ("data set created", created or "n/a"), ("generated", now)]
    if isinstance(sysinfo, Mapping):
        for k in ("cpu_model", "arch", "kernel", "virtualisation", "governor"):
            if k in sysinfo:
                meta_rows.append((k, json.dumps(sysinfo[k], default=str) if not isinstance(sysinfo[k], str)
                                  else sysinfo[k]))
    machine = (sysinfo.get("cpu_model") if isinstance(sysinfo, Mapping) else None) or meta.get("cpu_model") \
        or ", ".join(board) or "n/a"
    if isinstance(sysinfo, Mapping) and sysinfo.get("arch"):
        machine += f" ({sysinfo['arch']})"
    header = [("machine", machine), ("data set", source_name), ("measured", created or "n/a"),
              ("report generated", now)]
    other_meta = {k: v for k, v in meta.items() if k not in ("system", "sysinfo")}
    summary = {"spec": "", "objective": "", "n_candidates": 0, "n_ranked": 0, "binding": "", "choice": [],
               "value_columns": [], "models": _model_accuracy(models, model_files),
               "models_note": ("No models given (perfmodel report --model M.json)." if not models
                               else "No cross-validation results stored in the models."),
               "not_evaluated": _not_evaluated(selection, figs, reasons, models, model_files)}
    if selection is not None:
        spec = selection.spec
        summary.update(spec="; ".join(c.describe() for c in spec.constraints) or "no constraints",
                       objective=spec.describe_objective(), n_candidates=int(len(selection.candidates)),
                       n_ranked=int(len(selection.ranked)),
                       binding=(selection.binding or {}).get("message", "") if selection.binding else "")
        cols = [v for v in SUMMARY_VALUES if v[0] in selection.ranked.columns]
        summary["value_columns"] = [f"{lab}{f' ({unit})' if unit else ''}" for _, lab, unit in cols]
        for role, (_, r) in zip(("choice", "runner-up"), selection.ranked.head(2).iterrows()):
            summary["choice"].append({"role": role, "candidate": str(r.get("candidate", "?")),
                                      "values": [_summary_value(r, c, "") for c, _, _ in cols]})
    doc = _env().get_template(TEMPLATE).render(
        fragment="", title=title or "perfmodel report", header=header, summary=summary,
        figures=[figs[k] for k in ("fig1", "fig2", "fig3", "fig4", "fig5")], correlations=corr,
        models_cv=_cv_models(models, model_files), selection=_selection(selection), meta_rows=meta_rows,
        full_metadata=json.dumps(other_meta, indent=1, default=str)[:20000] if other_meta else "",
        campaign=json.dumps(campaign, indent=1, default=str)[:20000] if campaign else "",
        sources=_table(sources_table(long_df)))
    html_path = out / REPORT_NAME
    tmp = html_path.with_suffix(".html.tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(html_path)
    return html_path


def _dataset_created(src: Any) -> str:
    """The data set's creation date (dataset.json ``created``), '' when unknown."""
    if isinstance(src, pd.DataFrame):  # records given as a frame: no dataset.json to say it
        return ""
    path = Path(src)
    try:
        return str(json.loads((path / "dataset.json").read_text()).get("created", ""))[:19].replace("T", " ")
    except (OSError, ValueError, AttributeError):
        return ""


__all__ = ["FIGURE_FILES", "REPORT_NAME", "FigureSource", "build_report", "correlation_table", "default_features", "fisher_ci",
           "selection_html", "sources_table"]

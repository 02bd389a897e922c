"""The HTML report and the correlation tables.

:func:`build_report` writes ``report.html`` and its PNG figures into one folder (relative links only,
so the folder can be moved or zipped): metadata and the source of every figure (real / simulated /
software / derived / external), analogues of the study's Figs. 1-5, correlation tables (Table II:
power vs event rates per framework; Fig. 5: throughput vs per-image counts), the CV tables of the models
and the selection result. A figure with nothing to draw is replaced by a sentence saying why.

:mod:`.correlate` - :func:`correlation_table` (Pearson with Fisher-z CI and p, Spearman).
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from perfmodel.errors import PerfmodelError

from .correlate import correlation_table, default_features, fisher_ci

REPORT_NAME = "report.html"

_CSS = """
body{font-family:system-ui,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222;
line-height:1.4;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}th,td{border:1px solid #ccc;padding:.2em .5em;
text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}
.missing{color:#8a4b00;background:#fff6e8;border-left:4px solid #e0a040;padding:.4em .8em}
.note{color:#555;font-size:.9em}img{max-width:100%;border:1px solid #eee}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


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


def _table(df: pd.DataFrame, columns: Iterable[str] | None = None, max_rows: int = 200) -> str:
    if df is None or len(df) == 0:
        return '<p class="note">(none)</p>'
    cols = [c for c in (columns or df.columns) if c in df.columns]
    head = "".join(f'<th class="l">{_e(c)}</th>' for c in cols)
    body = []
    for _, r in df.head(max_rows).iterrows():
        cells = []
        for c in cols:
            v = r[c]
            num = isinstance(v, (int, float)) and not isinstance(v, bool)
            cells.append(f'<td{"" if num else " class=l"}>{_e(_fmt(v))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = f'<p class="note">{len(df) - max_rows} more rows not shown</p>' if len(df) > max_rows else ""
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def _missing(text: str) -> str:
    return f'<p class="missing">{_e(text)}</p>'


#: the figure files a report writes (removed first: a figure with nothing to draw writes no file)
FIGURE_FILES = ("fig1_timeseries.png", "fig2_cpu_throughput.png", "fig3_events.png", "fig4_power_events.png",
                "fig5_throughput_metric.png")


def _figure(result: Path | str, out_dir: Path, caption: str, data_note: str = "") -> str:
    if isinstance(result, Path):
        rel = os.path.relpath(result, out_dir).replace(os.sep, "/")
        note = f'<br><span class="note">{_e(data_note)}</span>' if data_note else ""
        return (f'<figure><a href="{_e(rel)}"><img src="{_e(rel)}" alt="{_e(caption)}"></a>'
                f"<figcaption>{_e(caption)}{note}</figcaption></figure>")
    return _missing(str(result))


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


def _figure_tables(long_df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
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


def _cv_tables(models: list[Any]) -> str:
    if not models:
        return '<p class="note">No models given (perfmodel report --model M.json).</p>'
    parts = []
    for i, m in enumerate(models):
        name = getattr(m, "name", None) or (getattr(m, "metadata", None) or {}).get("path") or f"model {i + 1}"
        feats = getattr(m, "features", None)
        parts.append(f"<h3>{_e(name)}: target {_e(getattr(m, 'target', '?'))}</h3>")
        if feats:
            parts.append(f"<p>features: {_e(', '.join(map(str, feats)))}</p>")
        prov = getattr(m, "provenance", None)
        if prov:
            parts.append(f'<p class="note">trained on provenance: {_e(json.dumps(prov, default=str))}</p>')
        cv = getattr(m, "cv", None)
        if not cv:
            parts.append(_missing("no cross-validation results stored in this model"))
            continue
        parts.append(_cv_html(cv))
    return "\n".join(parts)


def _cv_html(cv: Any) -> str:
    """Render a model's ``cv`` dict: lists of records as tables, flat scalars as one table."""
    if isinstance(cv, list) and cv and all(isinstance(r, Mapping) for r in cv):
        flat = [{k: v for k, v in r.items() if not isinstance(v, (list, dict))} for r in cv]
        return _table(pd.DataFrame(flat))
    if not isinstance(cv, Mapping):
        return f"<pre>{_e(json.dumps(cv, indent=1, default=str))}</pre>"
    scalars = {k: v for k, v in cv.items() if not isinstance(v, (list, dict))}
    out = []
    if scalars:
        out.append(_table(pd.DataFrame([scalars])))
    for k, v in cv.items():
        if isinstance(v, (list, dict)):
            out.append(f"<h4>{_e(k)}</h4>")
            if isinstance(v, list) and v and all(isinstance(r, Mapping) for r in v):
                out.append(_cv_html(v))
            elif isinstance(v, Mapping) and v and all(isinstance(r, Mapping) for r in v.values()):
                out.append(_table(pd.DataFrame([{"name": n, **{a: b for a, b in r.items()
                                                               if not isinstance(b, (list, dict))}}
                                                 for n, r in v.items()])))
            else:
                out.append(f"<pre>{_e(json.dumps(v, indent=1, default=str))}</pre>")
    return "\n".join(out)


def selection_html(result: Any) -> str:
    """HTML of a :class:`perfmodel.select.SelectionResult`."""
    if result is None:
        return '<p class="note">No selection spec given (perfmodel report --min-fps ... / --max-power ...).</p>'
    spec = result.spec
    parts = [f"<p>Spec: {_e('; '.join(c.describe() for c in spec.constraints) or 'no constraints')}; "
             f"objective: {_e(spec.describe_objective())}.</p>"]
    for n in result.notes:
        parts.append(f'<p class="note">{_e(n)}</p>')
    if result.binding:
        parts.append(_missing(result.binding.get("message", "infeasible")))
    show = ["rank", "candidate", "objective", "throughput_fps", "throughput_fps_source", "power_w", "power_w_source",
            "energy_j", "energy_j_source", "top1", "top1_source", "max_rss_mb", "temperature_c", "unknown",
            "uncertain"]
    parts.append("<h3>Ranked</h3>" + _table(result.ranked, show))
    parts.append("<h3>Excluded (the constraint that excluded each candidate)</h3>"
                 + _table(result.excluded, ["candidate", "constraint", "text", "value", "limit", "shortfall", "source"]))
    parts.append("<h3>Cannot evaluate</h3>" + _table(result.unevaluable, ["candidate", "constraint", "text", "reason"]))
    parts.append(f"<h3>Pareto front ({_e(' vs '.join(result.pareto_axes) or 'no axes')})</h3>"
                 + _table(result.pareto))
    return "\n".join(parts)


def _counts_note(cells: pd.DataFrame, key: str) -> str:
    """'; counts: simulated' etc. for the figures drawn from per-image counts (Figs. 3 and 5)."""
    if key not in ("fig3", "fig5") or cells is None or "instructions_per_image" not in cells.columns:
        return ""
    prov = (cells.attrs or {}).get("provenance", {}).get("instructions_per_image")
    return f"; per-image counts: {prov}" if prov else ""


def build_report(dataset_path_or_df: str | os.PathLike | pd.DataFrame, out_dir: str | os.PathLike,
                 models: Iterable[Any] = (), selection: Any = None, *, title: str | None = None,
                 progress: Any = None, extra_records: pd.DataFrame | None = None,
                 fallbacks: Sequence[FigureSource] = (), extra_label: str | None = None) -> Path:
    """Write the report into ``out_dir`` (created) and return the HTML path.

    ``dataset_path_or_df``: a data set folder / records file, or a long records DataFrame.
    ``extra_records``: more long records to include (e.g. the simulated cells of a reference data set).
    ``models``: :class:`perfmodel.model.ModelFile` objects or paths. ``selection``: a
    :class:`perfmodel.select.SelectionResult`, or a :class:`perfmodel.select.Spec` to rank the data set's
    candidates (with ``models``) here. ``progress``: optional callable(str) told of each step.
    ``fallbacks``: :class:`FigureSource` objects, tried in order for a figure the data set cannot draw; the
    figure then says whose data it shows and why the data set's own could not be used. ``extra_label``: what
    ``extra_records`` are (shown with the data set's name under each figure drawn from them).
    """
    from perfmodel.data import dataset_metadata, read_dataset
    from perfmodel.select import Spec, candidates_from_cells, rank

    from . import figures

    step = progress or (lambda _msg: None)
    meta: dict = {}
    campaign = None
    if isinstance(dataset_path_or_df, pd.DataFrame):
        long_df = dataset_path_or_df
        source_name = str(long_df.attrs.get("dataset", "DataFrame"))
    else:
        path = Path(dataset_path_or_df)
        long_df = read_dataset(path)
        meta, campaign = dataset_metadata(path)
        source_name = str(path)
    if extra_records is not None and len(extra_records):
        long_df = pd.concat([long_df, extra_records], ignore_index=True)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise PerfmodelError(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
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
    drawers = {
        "fig1": ("fig1_timeseries.png", "Fig. 1 - throughput, CPU %, temperature and frequency over each trace",
                 lambda c, s, r, p: figures.fig_timeseries(s, p, r)),
        "fig2": ("fig2_cpu_throughput.png", "Fig. 2 - average CPU % and throughput per framework x network",
                 lambda c, s, r, p: figures.fig_cpu_throughput(c, p, r)),
        "fig3": ("fig3_events.png", "Fig. 3 - hardware events per image per framework x network",
                 lambda c, s, r, p: figures.fig_events(c, p)),
        "fig4": ("fig4_power_events.png", "Fig. 4 - power vs event rates, per framework",
                 lambda c, s, r, p: figures.fig_power_events(s, c, p, r)),
        "fig5": ("fig5_throughput_metric.png", "Fig. 5 - throughput vs a per-image hardware metric (log x)",
                 lambda c, s, r, p: figures.fig_throughput_metric(c, p)),
    }
    own_label = f"this data set ({source_name})"
    if extra_records is not None and len(extra_records):
        own_label += f" with {extra_label or 'the records added to it'}"
    fallback_tables: dict[int, tuple] = {}
    figs: dict[str, tuple[Path | str, str, str]] = {}
    for key, (fname, caption, draw) in drawers.items():
        res = draw(cells, samples, reasons, out / fname)
        note = f"data: {own_label}" + _counts_note(cells, key)
        if not isinstance(res, Path):
            own_reason = str(res)
            for i, fb in enumerate(fallbacks):
                if i not in fallback_tables:
                    fallback_tables[i] = _figure_tables(fb.records)
                fc, fs, fr = fallback_tables[i]
                alt = draw(fc, fs, fr, out / fname)
                if isinstance(alt, Path):
                    res = alt
                    note = (f"data: {fb.label}{_counts_note(fc, key)} - {own_label} has none for this "
                            f"figure ({own_reason})")
                    break
        figs[key] = (res, caption, note)

    step("correlations")
    corr_parts = []
    if not samples.empty and "power_w" in samples.columns and samples["power_w"].notna().any():
        feats = default_features(samples, "sample")
        if feats:
            t = correlation_table(samples, "power_w", feats, by="framework")
            corr_parts.append("<h3>Table II analogue: power vs event rates over the trace, per framework</h3>"
                              + _table(t))
    else:
        corr_parts.append(_missing("Table II analogue (power vs event rates): "
                                   + (f"no power data: {reasons['power_w']}" if "power_w" in reasons
                                      else "no power samples in any trace")))
    if not cells.empty and "throughput_fps" in cells.columns:
        feats = default_features(cells, "cell")
        if feats:
            t = correlation_table(cells, "throughput_fps", feats)
            corr_parts.append("<h3>Fig. 5 analogue: per-cell throughput vs per-image counts, all cells</h3>"
                              + _table(t))
        else:
            corr_parts.append(_missing("no per-image event counts to correlate throughput with"))

    step("html")
    board = sorted(set(long_df["board"])) if "board" in long_df.columns and len(long_df) else []
    sysinfo = meta.get("system") or meta.get("sysinfo") or {}
    meta_rows = [("data set", source_name), ("board(s)", ", ".join(board) or "n/a"),
                 ("records", f"{len(long_df)} rows, {long_df['cell_id'].nunique() if len(long_df) else 0} cells"),
                 ("generated", _dt.datetime.now().isoformat(timespec="seconds"))]
    if isinstance(sysinfo, Mapping):
        for k in ("cpu_model", "arch", "kernel", "virtualisation", "governor"):
            if k in sysinfo:
                meta_rows.append((k, json.dumps(sysinfo[k], default=str) if not isinstance(sysinfo[k], str)
                                  else sysinfo[k]))
    meta_html = "<table>" + "".join(f'<tr><th class="l">{_e(k)}</th><td class="l">{_e(v)}</td></tr>'
                                    for k, v in meta_rows) + "</table>"
    other_meta = {k: v for k, v in meta.items() if k not in ("system", "sysinfo")}
    if other_meta:
        meta_html += ("<details><summary>full metadata</summary><pre>"
                      + _e(json.dumps(other_meta, indent=1, default=str)[:20000]) + "</pre></details>")
    if campaign:
        meta_html += ("<details><summary>campaign</summary><pre>"
                      + _e(json.dumps(campaign, indent=1, default=str)[:20000]) + "</pre></details>")

    doc = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{_e(title or 'perfmodel report')}</title>"
           f"<style>{_CSS}</style></head><body>",
           f"<h1>{_e(title or 'perfmodel report')}</h1>",
           "<h2>Metadata</h2>", meta_html,
           "<h2>Source of each figure</h2><p class=note>provenance: real = hardware PMU or physical sensor, "
           "simulated = valgrind, software = OS / kernel software events, derived = computed, external = "
           "imported.</p>", _table(sources_table(long_df))]
    for key in ("fig1", "fig2", "fig3", "fig4", "fig5"):
        res, cap, note = figs[key]
        doc.append(f"<h2>{_e(cap.split(' - ')[0])}</h2>" + _figure(res, out, cap, note))
    doc.append("<h2>Correlations</h2>")
    doc.extend(corr_parts)
    doc.append("<h2>Models (cross-validation)</h2>")
    doc.append(_cv_tables(models))
    doc.append("<h2>Selection</h2>")
    doc.append(selection_html(selection))
    doc.append("</body></html>")
    html_path = out / REPORT_NAME
    tmp = html_path.with_suffix(".html.tmp")
    tmp.write_text("\n".join(doc), encoding="utf-8")
    tmp.replace(html_path)
    return html_path


__all__ = ["FIGURE_FILES", "REPORT_NAME", "FigureSource", "build_report", "correlation_table", "default_features", "fisher_ci",
           "selection_html", "sources_table"]

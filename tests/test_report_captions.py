"""Report captions are computed from the data (change the data, the finding changes); Fig. 1 leaves a trace's
partial last interval out; the page comes from the packaged Jinja2 template with autoescape on."""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perfmodel.data import records_from_readings, validate, wide_per_sample
from perfmodel.readings import Reading

from test_report import synthetic_records  # tests/ is on sys.path (no package: pytest prepends it)

REPO = Path(__file__).resolve().parents[1]


def _caption(html_text: str, key: str) -> str:
    """The plain text of a figure's caption in the report."""
    m = re.search(rf'<h2 id="{key}">.*?<figcaption>(.*?)</figcaption>', html_text, re.S)
    assert m, f"no caption for {key}"
    return html.unescape(re.sub(r"<[^>]+>", "", m.group(1)))


def _finding(html_text: str, key: str) -> str:
    cap = _caption(html_text, key)
    return cap.split("Finding:", 1)[1].split("data:", 1)[0].strip()


def test_fig2_finding_follows_the_data(tmp_path):
    """Fastest framework per thread count is counted from the cells: make onnxruntime faster on one network
    and the caption says so."""
    from perfmodel.report import build_report

    recs = synthetic_records(power=False)
    before = _finding(build_report(recs, tmp_path / "a").read_text("utf-8"), "fig2")
    assert "at 1 thread litert on 2 of 2 networks" in before, before
    fast = recs.copy()
    sel = ((fast["framework"] == "onnxruntime") & (fast["network"] == "resnet50") & (fast["metric"] == "latency_ms"))
    fast.loc[sel, "value"] = fast.loc[sel, "value"] / 3  # onnxruntime now 2.3x faster than litert on resnet50
    after = _finding(build_report(fast, tmp_path / "b").read_text("utf-8"), "fig2")
    assert "at 1 thread litert on 1, onnxruntime on 1 of 2 networks" in after, after
    assert before != after


def test_fig5_finding_is_the_log_log_correlation_with_its_fisher_interval(tmp_path):
    from perfmodel.data import wide_per_cell
    from perfmodel.report import build_report, captions, fisher_ci
    from perfmodel.select import join_simulated_cells

    recs = synthetic_records(power=False)
    text = build_report(recs, tmp_path / "r").read_text("utf-8")
    cells = join_simulated_cells(wide_per_cell(recs)).frame
    g = cells.groupby(["framework", "network", "threads"])[["instructions_per_image", "throughput_fps"]].mean()
    r = float(np.corrcoef(np.log10(g.iloc[:, 0]), np.log10(g.iloc[:, 1]))[0, 1])
    lo, hi = fisher_ci(r, len(g))
    expect = f"r = {r:+.2f} (95 % CI {lo:+.2f} to {hi:+.2f}), n = {len(g)}"
    assert expect in _finding(text, "fig5")
    assert captions.finding_fig5(cells) in _caption(text, "fig5")
    # a data set where throughput does not depend on the metric says 'weakly'
    flat = cells.copy()
    rng = np.random.default_rng(1)
    flat["throughput_fps"] = 50 * (1 + 0.3 * rng.standard_normal(len(flat))).clip(0.2)
    assert "weakly" in captions.finding_fig5(flat) or "moderately" in captions.finding_fig5(flat)
    assert "strongly" in captions.finding_fig5(cells)


def test_fig1_finding_and_fig3_finding_follow_the_data():
    from perfmodel.data import wide_per_cell
    from perfmodel.report import captions
    from perfmodel.select import join_simulated_cells

    recs = synthetic_records(power=True)
    cells = join_simulated_cells(wide_per_cell(recs)).frame
    # the synthetic frameworks run the same instructions per image: a tie, said as one
    f3 = captions.finding_fig3(cells)
    assert f3.startswith("Fewest instructions per image: litert = onnxruntime (tie) on 2 of 2 networks"), f3
    fewer = cells.copy()
    fewer.loc[fewer["framework"] == "onnxruntime", "instructions_per_image"] *= 0.5
    assert captions.finding_fig3(fewer).startswith("Fewest instructions per image: onnxruntime on 2 of 2"), \
        captions.finding_fig3(fewer)
    assert "differs by up to 2.00x" in captions.finding_fig3(fewer)
    fewer.loc[(fewer["framework"] == "onnxruntime") & (fewer["network"] == "resnet50"), "instructions_per_image"] *= 4
    assert captions.finding_fig3(fewer).startswith(
        "Fewest instructions per image: litert on 1, onnxruntime on 1 of 2"), captions.finding_fig3(fewer)
    samples = wide_per_sample(recs).frame
    f1 = captions.finding_fig1(samples)
    assert "Median throughput:" in f1 and "litert/resnet50 x1" in f1
    assert captions.finding_fig4(samples, cells).startswith("Event rate that tracks power most strongly")


def _trace(dts: list[float], fps: float = 100.0, net: str = "squeezenet1_1") -> pd.DataFrame:
    frames, t = [], 100.0
    keys = dict(run_id="r1", cell_id=f"onnxruntime-{net}-t1-trace", board="b", framework="onnxruntime", network=net,
                threads=1, workload="w", repeat=0)
    for dt in dts:
        imgs = max(1, round(fps * dt))
        frames.append(records_from_readings(
            [Reading("images", imgs, "count", "runner", "software"),
             Reading("cpu_percent", 100.0, "%", "psutil", "software")], **keys, phase="trace",
            t_start_s=t, t_end_s=t + dt))
        t += dt
    return validate(pd.concat(frames, ignore_index=True))


def test_fig1_drops_a_partial_last_interval(tmp_path, monkeypatch):
    """The last interval of a trace stopped 0.01 s into it holds 1 image: 100 img/s would plot as ~100 img/s
    only by chance; here 1 image / 0.013 s = 77 img/s, a drop that never happened. It is left out, said so in
    the caption; a full last interval is kept."""
    import matplotlib.axes

    from perfmodel.report import figures

    partial = wide_per_sample(_trace([1.0] * 20 + [0.013]))
    plotted: list[np.ndarray] = []
    real_plot = matplotlib.axes.Axes.plot

    def spy(self, x, y, *a, **kw):
        if self.get_ylabel().startswith("throughput"):
            plotted.append(np.asarray(y, float))
        return real_plot(self, x, y, *a, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    assert isinstance(figures.fig_timeseries(partial, tmp_path / "f1.png", {}), Path)
    assert plotted and len(plotted[0]) == 20 and plotted[0].min() > 95, plotted
    from perfmodel.report import captions

    partial = partial.frame
    kept, dropped = figures.trace_intervals(partial)
    assert len(kept) == 20 and len(dropped) == 1 and math.isclose(float(dropped["dt_s"].iloc[0]), 0.013,
                                                                   rel_tol=1e-6)
    assert "partial last interval of 1 trace (0.013 s" in captions.what_fig1(partial)
    full = wide_per_sample(_trace([1.0] * 21)).frame
    assert len(figures.trace_intervals(full)[0]) == 21 and "partial" not in captions.what_fig1(full)
    # only the last interval is tested: a short one in the middle (a hiccup) is data, kept
    middle = wide_per_sample(_trace([1.0] * 10 + [0.2] + [1.0] * 10)).frame
    assert len(figures.trace_intervals(middle)[0]) == 21


def test_template_is_package_data_and_autoescaped(tmp_path):
    import importlib.resources
    import tomllib

    from perfmodel.report import TEMPLATE, build_report

    assert (importlib.resources.files("perfmodel.report") / "templates" / TEMPLATE).is_file()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["perfmodel.report"]
    assert any(Path("templates", TEMPLATE).match(g) for g in globs), globs
    assert any(d.replace(" ", "").startswith("jinja2>=") for d in pyproject["project"]["dependencies"])
    text = build_report(synthetic_records(power=False), tmp_path / "r", title="<script>alert(1)</script>"
                        ).read_text("utf-8")
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_summary_comes_first_and_the_tables_go_to_a_closed_appendix(tmp_path):
    from perfmodel.report import build_report
    from perfmodel.select import Spec

    from perfmodel.data import write_dataset

    write_dataset(tmp_path / "ds", synthetic_records(power=True), {"system": {"cpu_model": "test cpu",
                                                                            "arch": "x86_64"}})
    text = build_report(tmp_path / "ds", tmp_path / "r",
                        selection=Spec.from_options(min_fps=3, max_power=2.0)).read_text("utf-8")
    order = [text.index(s) for s in ('id="summary"', 'id="fig1"', 'id="fig5"', 'id="appendix"',
                                     "Source of each figure")]
    assert order == sorted(order)
    summary = text[text.index('id="summary"'):text.index('id="fig1"')]
    assert "choice" in summary and "runner-up" in summary and "measured" in summary
    assert "published" in summary  # top-1 from the zoo
    assert "machine: test cpu (x86_64)" in text[:text.index('id="summary"')]
    appendix = text[text.index('id="appendix"'):]
    assert "<details" in appendix and "open" not in re.findall(r"<details[^>]*>", appendix)[0]
    assert "metric" in appendix and "provenance" in appendix


@pytest.fixture(scope="module")
def plain_report(tmp_path_factory) -> str:
    from perfmodel.report import build_report

    return build_report(synthetic_records(power=False), tmp_path_factory.mktemp("caps")).read_text("utf-8")


@pytest.mark.parametrize("key", ["fig1", "fig2", "fig3", "fig5"])
def test_every_drawn_figure_has_what_finding_and_data(plain_report, key):
    cap = _caption(plain_report, key)
    assert "Finding:" in cap and "data: this data set" in cap and len(cap.split("Finding:")[0]) > 30


def test_each_figure_names_the_data_sets_it_draws(tmp_path):
    """Fig. 1 is drawn from the added trace data set, Fig. 2 from the main one: each caption names its own."""
    from perfmodel.report import build_report

    recs = synthetic_records(power=False)
    trace = recs["phase"] == "trace"
    main, extra = recs[~trace].reset_index(drop=True), recs[trace].assign(run_id="r2").reset_index(drop=True)
    text = build_report(main, tmp_path / "r", extra_records=extra, source_name="main-ds",
                        extra_label="traces-ds").read_text("utf-8")
    assert _caption(text, "fig1").endswith("data: this report's data (traces-ds)"), _caption(text, "fig1")
    assert _caption(text, "fig2").endswith("data: this data set (main-ds)"), _caption(text, "fig2")

"""The HTML report renders from a small synthetic data set; links resolve; missing data is said so."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perfmodel.data import records_from_readings, validate, write_dataset
from perfmodel.readings import Reading


def synthetic_records(power: bool = True) -> pd.DataFrame:
    """2 frameworks x 2 networks x 2 threads: image records (simulated counts), cell and trace records."""
    rng = np.random.default_rng(0)
    frames = []
    for fw, fs in (("litert", 1.0), ("onnxruntime", 1.3)):
        for net, g in (("squeezenet1_1", 0.35), ("resnet50", 4.1)):
            for threads in (1, 2):
                keys = dict(run_id="r1", cell_id=f"{fw}-{net}-t{threads}", board="testboard", framework=fw,
                            network=net, threads=threads, workload=f"{fw}/{net}", repeat=0)
                for i in range(3):
                    lat = 100 * g * fs / threads ** 0.7 * (1 + 0.05 * rng.standard_normal())
                    rs = [Reading("latency_ms", lat, "ms", "perf_counter", "software"),
                          Reading("instructions", g * 2e9, "count", "callgrind", "simulated"),
                          Reading("l1d_accesses", g * 8e8, "count", "callgrind", "simulated"),
                          Reading("l2d_accesses", g * 5e7 * fs, "count", "callgrind", "simulated")]
                    rs.append(Reading("power_w", 1.5 + 0.3 * threads, "W", "ina219", "real") if power
                              else Reading.missing("power_w", "no power sensor on this machine", "W"))
                    frames.append(records_from_readings(rs, **keys, phase="image", image_index=i))
                frames.append(records_from_readings(
                    [Reading("cpu_percent", 95.0 * threads, "%", "psutil", "software"),
                     Reading("max_rss_mb", 50 + 100 * g, "MiB", "getrusage", "software")], **keys, phase="cell"))
                for k in range(5):
                    imgs = 3 + (k % 2)
                    rs = [Reading("images", imgs, "count", "runner", "software"),
                          Reading("instructions", imgs * g * 2e9 * (1 + 0.1 * k), "count", "perf", "software"),
                          Reading("cpu_percent", 90 + k, "%", "psutil", "software"),
                          Reading.missing("temperature_c", "no thermal zone", "degC"),
                          Reading.missing("freq_mhz", "no cpufreq", "MHz")]
                    rs.append(Reading("power_w", 1.5 + 0.1 * k * g, "W", "ina219", "real") if power
                              else Reading.missing("power_w", "no power sensor on this machine", "W"))
                    frames.append(records_from_readings(rs, **keys, phase="trace", t_start_s=10.0 + k,
                                                        t_end_s=11.0 + k))
    return validate(pd.concat(frames, ignore_index=True))


def _links(html_path: Path) -> list[str]:
    text = html_path.read_text("utf-8")
    return re.findall(r'(?:src|href)="([^"]+)"', text)


def _check_links(html_path: Path) -> list[str]:
    links = _links(html_path)
    for link in links:
        assert not link.startswith(("/", "file:", "http")), f"non-relative link {link}"
        assert (html_path.parent / link).is_file(), f"{link} does not resolve"
    return links


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report") / "ds"
    write_dataset(path, synthetic_records(power=True), {"system": {"cpu_model": "test cpu", "arch": "x86_64"}})
    return path


def test_report_renders_and_links_resolve(dataset, tmp_path):
    from PIL import Image

    from perfmodel.report import build_report
    from perfmodel.select import Spec

    out = tmp_path / "rep"
    html_path = build_report(dataset, out, selection=Spec.from_options(min_fps=3, max_power=2.0))
    assert html_path == out / "report.html"
    links = _check_links(html_path)
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 5 and {p.name for p in pngs} <= {Path(link).name for link in links}
    for p in pngs:
        with Image.open(p) as im:
            im.verify()
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200
    text = html_path.read_text("utf-8")
    # missing sensors are reported with their reason, the provenance of figures is listed
    assert "no thermal zone" in text and "no cpufreq" in text
    assert "simulated" in text and "real" in text and "callgrind" in text
    assert "Table II analogue" in text and "instructions_per_s" in text
    assert "test cpu" in text
    # selection: power budget 2.0 W excludes the 2-thread cells (2.1 W)
    assert "max_power" in text and "Pareto front" in text
    # the folder works when moved
    moved = tmp_path / "elsewhere" / "moved"
    shutil.move(str(out), str(moved))
    _check_links(moved / "report.html")


def test_report_without_power_says_so(tmp_path):
    from perfmodel.report import build_report

    html_path = build_report(synthetic_records(power=False), tmp_path / "rep")
    text = html_path.read_text("utf-8")
    assert "no power data: no power sensor on this machine" in text
    assert not (tmp_path / "rep" / "fig4_power_events.png").exists()
    _check_links(html_path)


def test_report_into_a_used_folder_drops_the_old_figures(tmp_path):
    """Figures an earlier report left are not this data's: removed, never listed or kept beside the new ones."""
    from perfmodel.report import FIGURE_FILES, build_report

    out = tmp_path / "rep"
    out.mkdir()
    for name in FIGURE_FILES:
        (out / name).write_bytes(b"stale")
    build_report(synthetic_records(power=False), out)
    assert not (out / "fig4_power_events.png").exists()  # nothing to draw now: the old one is gone
    assert all((out / n).read_bytes() != b"stale" for n in FIGURE_FILES if (out / n).exists())


class _FakeModel:
    target = "power_w"
    name = "fake power model"
    features = ["instructions_per_s"]
    provenance = {"instructions_per_s": ["software"]}
    cv = {"scheme": "leave-one-network-out", "mape": 4.2, "folds": [{"held_out": "resnet50", "mape": 3.0}]}

    def predict_frame(self, df, alpha=0.05):
        raise AssertionError("not called: power is measured")


def test_report_lists_model_cv(dataset, tmp_path):
    from perfmodel.report import build_report

    text = build_report(dataset, tmp_path / "rep", models=[_FakeModel()]).read_text("utf-8")
    assert "fake power model" in text and "leave-one-network-out" in text and "resnet50" in text


def test_cli_report(dataset, tmp_path):
    out = tmp_path / "cli-rep"
    res = subprocess.run([sys.executable, "-m", "perfmodel", "report", str(dataset), "--out", str(out),
                          "--min-fps", "5", "--json"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert Path(d["report"]) == out / "report.html" and Path(d["report"]).is_file()
    _check_links(out / "report.html")
    missing = subprocess.run([sys.executable, "-m", "perfmodel", "report", str(tmp_path / "nope"), "--out",
                              str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and missing.stderr.startswith("error:") and "Traceback" not in missing.stderr
    bad = subprocess.run([sys.executable, "-m", "perfmodel", "report", str(dataset), "--out", str(tmp_path / "y"),
                          "--objective", "speed"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown objective" in bad.stderr


def test_cli_report_refuses_to_replace_a_report_without_force(dataset, tmp_path):
    """report -o DIR replaced an existing report.html silently while fit -o refuses: one policy (--force)."""
    out = tmp_path / "rep"
    out.mkdir()
    (out / "report.html").write_text("an earlier report")
    cmd = [sys.executable, "-m", "perfmodel", "report", str(dataset), "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"already holds a report: {out / 'report.html'}" in res.stderr and "--force" in res.stderr
    assert (out / "report.html").read_text() == "an earlier report"
    res = subprocess.run(cmd + ["--force"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "an earlier report" not in (out / "report.html").read_text()

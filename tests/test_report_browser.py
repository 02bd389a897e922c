"""The report opened in a real browser: headless Chromium loads it over loopback HTTP, every figure image
loads (naturalWidth > 0), no request fails and nothing is logged to the console.

Chromium is Debian's package; the test setup installs it where it can (root with apt-get). Elsewhere the test is
skipped with the reason, except under CI (CI=true), where a missing browser is a failure.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser")


@functools.lru_cache(maxsize=1)
def _chromium() -> tuple[str | None, str]:
    for name in BROWSERS:
        if shutil.which(name):
            return shutil.which(name), ""
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "no chromium on PATH and not root with apt-get to install Debian's chromium package"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600, check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"], env=env,
                       capture_output=True, timeout=900, check=True)
    except (subprocess.SubprocessError, OSError) as exc:
        out = getattr(exc, "stderr", b"") or b""
        return None, f"installing Debian's chromium failed: {exc} {out.decode(errors='replace')[-300:]}"
    path = next((shutil.which(n) for n in BROWSERS if shutil.which(n)), None)
    return path, "" if path else "apt-get installed chromium but no chromium is on PATH"


@pytest.fixture(scope="module")
def chromium() -> str:
    path, why = _chromium()
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI needs headless Chromium for the report check: {why}")
        pytest.skip(why)
    return path


CHECK_PAGE = """<!DOCTYPE html><html><body>
<iframe id="f" src="report.html" style="width:1200px;height:900px"></iframe>
<script>
document.getElementById('f').addEventListener('load', () => {
  const d = document.getElementById('f').contentDocument;
  const imgs = Array.from(d.images);
  const done = imgs.map(i => i.complete ? Promise.resolve() :
    new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); }));
  Promise.all(done).then(() => {
    const top = e => e.getBoundingClientRect().top + d.defaultView.scrollY;
    const summary = d.getElementById('summary');
    const out = {title: d.title, h2: Array.from(d.querySelectorAll('h2')).map(h => h.textContent),
                 images: imgs.map(i => ({src: i.getAttribute('src'), width: i.naturalWidth})),
                 missing: Array.from(d.querySelectorAll('p.missing')).map(p => p.textContent),
                 summary_bottom: summary ? summary.getBoundingClientRect().bottom + d.defaultView.scrollY : null,
                 viewport: d.defaultView.innerHeight,
                 figures: Array.from(d.querySelectorAll('figure')).map(f => {
                   const c = f.querySelector('figcaption'), i = f.querySelector('img');
                   return {caption: c ? c.textContent : '', caption_top: c ? top(c) : null,
                           img_top: i ? top(i) : null}; }),
                 details: Array.from(d.querySelectorAll('#appendix ~ details')).map(x => ({open: x.open,
                   summary: x.querySelector('summary').textContent}))};
    const pre = document.createElement('pre'); pre.id = 'result'; pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  });
});
</script></body></html>"""


class _Server:
    """A loopback HTTP server over one folder that records every request's path and status."""

    def __init__(self, root: Path):
        self.log: list[tuple[str, int]] = []
        log = self.log

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def log_request(self, code="-", size="-"):  # noqa: ARG002
                log.append((self.path, int(code) if str(code).isdigit() else 0))

            def log_message(self, *a):  # quiet
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _browse(chromium: str, url: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0",
            "--virtual-time-budget=15000", *extra, url]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def shipped_report(tmp_path_factory) -> Path:
    """A report of a shipped trace data set, with the reference data set as the fallback for the figures the
    trace cannot draw (per-image counts, per-cell bars) - what the main job does on a machine without a PMU."""
    from perfmodel.report import FigureSource, build_report

    out = tmp_path_factory.mktemp("browser-report")
    build_report(REPO / "datasets" / "traces" / "squeezenet1_1", out,
                 fallbacks=[FigureSource.from_datasets([REPO / "datasets" / "reference"], "the reference data set")])
    return out


def test_report_figures_load_in_headless_chromium(chromium: str, shipped_report: Path, tmp_path: Path):
    (shipped_report / "_check.html").write_text(CHECK_PAGE, encoding="utf-8")
    with _Server(shipped_report) as srv:
        proc = _browse(chromium, srv.url + "/_check.html", tmp_path, "--dump-dom")
    m = re.search(r'<pre id="result">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"the check page produced no result; chromium stderr: {proc.stderr[-2000:]}"
    import html

    result = json.loads(html.unescape(m.group(1)))
    # Figs. 1, 2, 3 and 5 drawn (from the trace or the reference), Fig. 4 an honest 'no power data' panel
    assert len(result["images"]) == 4, result
    assert all(img["width"] > 0 for img in result["images"]), result["images"]
    assert any("no power data" in t for t in result["missing"]), result["missing"]
    failed = [(p, code) for p, code in srv.log if code >= 400 and not p.endswith("favicon.ico")]
    assert not failed, f"requests failed: {failed}"
    assert {Path(p).name for p, _ in srv.log} >= {Path(i["src"]).name for i in result["images"]}
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln and "_check.html" not in ln]
    assert not console, "console messages from the report: " + "\n".join(console)


def test_report_screenshot_shows_the_page(chromium: str, shipped_report: Path, tmp_path: Path):
    """A screenshot of the first screen is a real, non-blank picture."""
    shot = tmp_path / "first-screen.png"
    with _Server(shipped_report) as srv:
        proc = _browse(chromium, srv.url + "/report.html", tmp_path, f"--screenshot={shot}",
                       "--window-size=1200,900", "--hide-scrollbars")
    assert shot.is_file() and shot.stat().st_size > 5000, proc.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1200, 900)
        extrema = im.convert("L").getextrema()
        assert extrema[0] < 100 < 200 < extrema[1], f"blank screenshot (grey range {extrema})"


@pytest.fixture(scope="module")
def issue_report(tmp_path_factory) -> Path:
    """What `perfmodel report datasets/reference datasets/traces/* -m trained/throughput_reference.json
    --min-fps 20 --min-top1 0.6` writes."""
    import pandas as pd

    from perfmodel.workflows.load import load_long
    from perfmodel.report import build_report
    from perfmodel.select import Spec

    traces = sorted((REPO / "datasets" / "traces").iterdir())
    extra = pd.concat([load_long(p) for p in traces], ignore_index=True)
    out = tmp_path_factory.mktemp("issue-report")
    build_report(REPO / "datasets" / "reference", out, models=[REPO / "trained" / "throughput_reference.json"],
                 selection=Spec.from_options(min_fps=20, min_top1=0.6), extra_records=extra)
    return out


def test_summary_fits_the_first_screen_and_figures_explain_themselves(chromium: str, issue_report: Path,
                                                                     tmp_path: Path):
    """In a 1200x900 window the whole summary (choice, runner-up, models vs baselines, what could not be
    evaluated) is visible without scrolling; each figure's caption (what, finding, data) comes before its
    picture; the appendix tables are collapsed."""
    (issue_report / "_check.html").write_text(CHECK_PAGE, encoding="utf-8")
    with _Server(issue_report) as srv:
        proc = _browse(chromium, srv.url + "/_check.html", tmp_path, "--dump-dom", "--window-size=1200,900")
    m = re.search(r'<pre id="result">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"the check page produced no result; chromium stderr: {proc.stderr[-2000:]}"
    import html

    result = json.loads(html.unescape(m.group(1)))
    assert result["h2"][0] == "Summary", result["h2"]
    assert result["summary_bottom"] is not None and result["summary_bottom"] <= result["viewport"] == 900, result
    assert len(result["figures"]) == 4 and all(img["width"] > 0 for img in result["images"])
    for f in result["figures"]:
        assert "Finding:" in f["caption"] and "data:" in f["caption"], f
        assert f["caption_top"] < f["img_top"], f
    assert result["details"] and not any(d["open"] for d in result["details"]), result["details"]
    assert {"Metadata", "Source of each figure (provenance)"} <= {d["summary"] for d in result["details"]}
    failed = [(p, code) for p, code in srv.log if code >= 400 and not p.endswith("favicon.ico")]
    assert not failed, f"requests failed: {failed}"
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln and "_check.html" not in ln]
    assert not console, "console messages from the report: " + "\n".join(console)

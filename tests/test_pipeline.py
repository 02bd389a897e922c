"""The main job end to end: perfmodel pipeline (collect -> fit -> select -> report) on a tiny campaign."""

from __future__ import annotations

import json
import re
from pathlib import Path

import subprocess
import sys

import pytest

from perfmodel.workflows.defaults import reference_dataset

REPO = Path(__file__).resolve().parents[1]


class _Res:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.exit_code = proc.returncode
        self.stdout = proc.stdout
        self.output = proc.stdout + proc.stderr


def _run(args: list[str]) -> _Res:
    """The real console entry point (python -m perfmodel), so exit codes and error messages are the user's."""
    proc = subprocess.run([sys.executable, "-m", "perfmodel", *args], capture_output=True, text=True,
                          timeout=600, cwd=REPO, env={**__import__("os").environ, "COLUMNS": "200"})
    return _Res(proc)


def _summary(res: _Res) -> dict:
    return json.loads(res.stdout)


def test_pipeline_small_campaign_end_to_end(tmp_path: Path, squeezenet_exports):
    out = tmp_path / "run"
    args = ["pipeline", "--out", str(out), "--frameworks", "onnxruntime,opencv", "--networks", "squeezenet1_1",
            "--threads", "1", "--images", "3", "--min-fps", "1", "--min-top1", "0.5", "--json"]
    res = _run(args)
    assert res.exit_code == 0, res.output
    summary = _summary(res)
    # the campaign is a real, resumable data set
    assert (out / "campaign" / "dataset.json").is_file()
    assert summary["selected"] in {"onnxruntime/squeezenet1_1 x1", "opencv/squeezenet1_1 x1"}
    assert summary["feasible"] is True
    # the report renders and its links resolve
    html = Path(summary["report"])
    assert html.is_file()
    text = html.read_text()
    for ref in re.findall(r'(?:src|href)="([^"#:]+)"', text):
        assert (html.parent / ref).is_file(), ref
    # with the reference data set's simulated counts, a model is fitted and checked against the campaign
    ref = reference_dataset()
    n_sim = 0 if ref is None else sum(p.name.endswith("__valgrind.parquet") for p in (ref / "records").iterdir())
    if n_sim >= 8:
        assert "simulated" in summary["work_source"]
        assert Path(summary["model"]).is_file()
        assert summary["cv"]["scheme"] == "leave-one-network-out"
        from perfmodel.data import dataset_calibrations
        from perfmodel.model import load_model

        prep = load_model(summary["model"]).preparation
        if dataset_calibrations(ref):  # the reference's timing cells are priced with the reference's bandwidth
            assert "fc_stream_ms" in load_model(summary["model"]).features
            assert str(ref) in prep.stream_bandwidth_source and prep.stream_bandwidth_gbps
            assert prep.gemm_gflops_source == f"the calibrations of {ref}"
        # per framework: a framework whose release differs from the reference's (e.g. OpenCV 5.1 outside the
        # lock) loses only its own counts, named with both versions; the others are fitted and checked
        used = set(summary["counts_frameworks"])
        assert "onnxruntime" in used or any(n.startswith("onnxruntime:") for n in summary["count_notes"])
        assert {r["framework"] for r in summary["prediction_check"]} == used & {"onnxruntime", "opencv"}
        for fw in {"onnxruntime", "opencv"} - used:
            assert any(n.startswith(f"{fw}: ") and "(reference) vs" in n for n in summary["count_notes"])
    else:  # no usable reference: the fit step says why and the pipeline still selects and reports
        assert summary["model"] is None or "MACs" in summary["work_source"]
    # all five figure panels: four drawn (a figure this campaign cannot draw comes from the shipped traces /
    # reference, saying so), Fig. 4 the honest 'no power data' panel on a machine without a power sensor
    if ref is not None:
        drawn = {p.name for p in html.parent.glob("fig*.png")}
        assert drawn >= {"fig1_timeseries.png", "fig2_cpu_throughput.png", "fig3_events.png",
                         "fig5_throughput_metric.png"}, drawn
        assert "the shipped long-run traces" in text or "fig1" not in drawn
        if summary["counts_frameworks"]:  # Figs. 3 / 5 say their counts are the reference's
            assert "from the simulated per-image counts of the reference data set" in text
        assert "fig4_power_events.png" in drawn or "no power data" in text
    # quiet: the frameworks' own output went to the run's log, not the terminal
    for noise in ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard"):
        assert noise not in res.output
    assert (out / "perfmodel.log").is_file()
    # a re-run resumes: nothing is measured twice
    res2 = _run(args)
    assert res2.exit_code == 0, res2.output
    assert "0 cells measured, 2 already done" in res2.output.replace("\n", " ")


def test_pipeline_power_budget_is_reported_unevaluable_not_dropped(tmp_path: Path, squeezenet_exports):
    out = tmp_path / "run"
    res = _run(["pipeline", "--out", str(out), "--frameworks", "onnxruntime", "--networks",
                              "squeezenet1_1", "--threads", "1", "--images", "2", "--max-power", "3",
                              "--min-top1", "0", "--json"])
    assert res.exit_code == 0, res.output
    summary = _summary(res)
    assert summary["feasible"] is False and summary["selected"] is None
    flat = res.output.replace("\n", " ")
    assert "power" in flat and ("cannot evaluate" in flat or "unevaluable" in flat or "cannot be evaluated" in flat)


def test_pipeline_bad_input_is_a_clear_error(tmp_path: Path):
    res = _run(["pipeline", "--out", str(tmp_path / "x"), "--networks", "vgg19"])
    assert res.exit_code == 2
    assert "vgg19" in res.output and "squeezenet1_1" in res.output
    res = _run(["pipeline", "--out", str(tmp_path / "y"), "--reference", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "reference data set" in res.output


@pytest.mark.parametrize("opt", ["--threads", "--images"])
def test_pipeline_rejects_bad_numbers(tmp_path: Path, opt: str):
    res = _run(["pipeline", "--out", str(tmp_path / "z"), opt, "0"])
    assert res.exit_code == 2


def test_simulated_counts_are_reused_only_for_the_same_builds():
    """One policy for the pipeline and predict (perfmodel.versions.counts_applicability)."""
    from perfmodel.versions import counts_applicability

    def reference_mismatch(ref_meta, frameworks, *, here_meta):
        return counts_applicability(ref_meta, frameworks, here_meta=here_meta).reasons()

    def _here(versions, arch):  # a campaign's run metadata
        return {"versions": versions, "system": {"arch": arch}}

    vers = {"onnxruntime": "1.32.0", "ai-edge-litert": "2.3.0", "opencv": "5.0.0.93", "numpy": "2.4.6",
            "python": "3.11.7"}
    ref = {"versions": dict(vers), "system": {"arch": "x86_64"}}
    assert reference_mismatch(ref, ["onnxruntime", "litert"], here_meta=_here(dict(vers), "x86_64")) == []
    newer = {**vers, "onnxruntime": "1.33.0"}
    assert reference_mismatch(ref, ["onnxruntime"], here_meta=_here(newer, "x86_64")) == [
        "onnxruntime 1.32.0 (reference) vs 1.33.0 (here)"]
    assert reference_mismatch(ref, ["litert"], here_meta=_here(newer, "x86_64")) == []  # not a library it uses
    assert reference_mismatch(ref, ["onnxruntime"], here_meta=_here(dict(vers), "aarch64")) == [
        "architecture x86_64 (reference) vs aarch64 (here)"]
    # a version the reference does not record is a mismatch (the pipeline used to let it pass)
    assert reference_mismatch(ref, ["tensorflow"], here_meta=_here({**vers, "tensorflow": "2.21.0"}, "x86_64")) == [
        "the reference does not record its tensorflow version"]


def test_other_versions_degrade_per_framework_not_globally():
    """A newer OpenCV costs only the opencv framework its simulated counts (named with both versions); the
    other frameworks keep theirs, with a note that their pre-processing runs on the other OpenCV."""
    from perfmodel.versions import counts_applicability

    vers = {"onnxruntime": "1.32.0", "ai-edge-litert": "2.3.0", "opencv": "5.0.0.93", "numpy": "2.4.6",
            "tensorflow": "2.21.0", "python": "3.11.7"}
    ref = {"versions": dict(vers), "system": {"arch": "x86_64"}}
    here = {"versions": {**vers, "opencv": "5.1.0.95"}, "system": {"arch": "x86_64"}}
    fit = counts_applicability(ref, ["tensorflow", "litert", "onnxruntime", "opencv"], here_meta=here)
    assert fit.refused == {"opencv": ["opencv 5.0.0.93 (reference) vs 5.1.0.95 (here)"]}
    assert sorted(fit.usable) == ["litert", "onnxruntime", "tensorflow"]
    assert all("opencv 5.0.0.93 (reference) vs 5.1.0.95 (here)" in n[0] and "pre-processing" in n[0]
               for n in fit.kept.values())
    assert "opencv: counts not used (opencv 5.0.0.93 (reference) vs 5.1.0.95 (here))" in fit.describe()
    # a framework's own library decides; NumPy alone only adds a note
    fit = counts_applicability(ref, ["onnxruntime"], here_meta={"versions": {**vers, "numpy": "2.5.0"},
                                                                "system": {"arch": "x86_64"}})
    assert fit.usable == ["onnxruntime"] and "numpy 2.4.6 (reference) vs 2.5.0 (here)" in fit.notes()[0]


def test_training_table_keeps_the_frameworks_whose_version_matches(monkeypatch):
    """The pipeline's fit takes the reference's counts of the frameworks whose version matches, names the
    others, and does not fall back to MACs for all of them."""
    from perfmodel.workflows import pipeline
    from perfmodel.data import dataset_metadata, read_dataset

    ref = pipeline.reference_dataset()
    if ref is None:
        pytest.skip("no datasets/reference in this checkout")
    meta, _ = dataset_metadata(ref)
    here = {**meta, "versions": {**meta["versions"], "opencv": "5.1.0.95"}}
    long_df = read_dataset(ref)
    campaign = long_df[~long_df["cell_id"].astype(str).str.endswith("__valgrind")]
    table, work, note, used, notes = pipeline.training_table(campaign, here, ref)
    assert work == "instructions_per_image"
    assert used == ["litert", "onnxruntime", "tensorflow"]
    assert set(table.frame["framework"].astype(str)) == {"litert", "onnxruntime", "tensorflow"}
    assert table.provenance.get("instructions_per_image") == "simulated"
    assert "not opencv" in note
    assert any(n.startswith("opencv: ") and "5.0.0.93 (reference) vs 5.1.0.95 (here)" in n for n in notes)

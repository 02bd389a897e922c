"""Simulated cells that ran other kernels than the timing cells are reported (perfmodel.model.codepath)."""

from __future__ import annotations

import pandas as pd
import pytest

from perfmodel.data import Dataset, records_from_readings, validate
from perfmodel.model.codepath import code_path_differences
from perfmodel.readings import Reading


def _cell(ds, fw, net, *, valgrind, onednn=None, threads=1, repeat=0):
    cid = f"{fw}__{net}__t{threads}__r{repeat}__{'valgrind' if valgrind else 'auto'}"
    keys = dict(run_id="r1", cell_id=cid, board="vm", framework=fw, network=net, threads=threads,
                workload=f"{fw}/{net}", repeat=repeat)
    if valgrind:
        rs = [Reading("instructions", 1e8, "count", "callgrind", "simulated")]
    else:
        rs = [Reading("latency_ms", 10.0, "ms", "perf_counter", "software")]
    df = validate(pd.concat([records_from_readings(rs, **keys, phase="image", image_index=0)], ignore_index=True))
    effective = {"intra_op_threads": threads}
    if onednn is not None:
        effective["onednn_opts"] = onednn
    ds.write_cell(cid, df, {"framework": fw, "network": net, "counter_source": "valgrind" if valgrind else "auto",
                            "runner": {"effective": effective}})


@pytest.fixture
def ds(tmp_path):
    return Dataset.create(tmp_path / "ds", {"board": "vm"})


def _sentences(path):
    return [d.sentence() for d in code_path_differences(path)]


def test_tensorflow_oneDNN_switch_differing_between_simulated_and_timed_cells_is_reported(ds):
    for net in ("resnet18", "squeezenet1_1"):
        _cell(ds, "tensorflow", net, valgrind=True, onednn=False)
        _cell(ds, "tensorflow", net, valgrind=False, onednn=True)
        _cell(ds, "tensorflow", net, valgrind=False, onednn=True, threads=2)  # thread counts are not a code path
    found = code_path_differences(ds.path)
    assert [(d.framework, d.key, d.simulated, d.timed, d.networks) for d in found] == [
        ("tensorflow", "onednn_opts", "False", "True", ("resnet18", "squeezenet1_1"))]
    assert found[0].sentence().startswith("tensorflow: onednn_opts = False in the simulated cells but True in the "
                                          "timing cells (resnet18, squeezenet1_1)")
    assert found[0].restricted_to({("tensorflow", "resnet18")}).networks == ("resnet18",)
    assert found[0].restricted_to({("onnxruntime", "resnet18")}) is None


def test_same_settings_other_frameworks_and_unrecorded_settings_are_quiet(ds):
    _cell(ds, "tensorflow", "resnet18", valgrind=True, onednn=True)
    _cell(ds, "tensorflow", "resnet18", valgrind=False, onednn=True)
    _cell(ds, "tensorflow", "googlenet", valgrind=True)            # an older cell: nothing recorded
    _cell(ds, "tensorflow", "googlenet", valgrind=False, onednn=True)
    _cell(ds, "tensorflow", "nin", valgrind=True, onednn=False)     # no timing cell to compare with
    _cell(ds, "onnxruntime", "resnet18", valgrind=True)
    _cell(ds, "onnxruntime", "resnet18", valgrind=False)
    assert code_path_differences(ds.path) == []


def test_every_simulated_cell_counts_whatever_its_order_and_failed_cells_do_not(ds):
    _cell(ds, "tensorflow", "resnet18", valgrind=False, onednn=True)
    _cell(ds, "tensorflow", "resnet18", valgrind=True, onednn=True)
    _cell(ds, "tensorflow", "resnet18", valgrind=True, onednn=False, repeat=1)  # a second simulated run disagrees
    assert [d.simulated for d in code_path_differences(ds.path)] == ["False/True"]


def test_a_failed_cell_is_not_compared(ds):
    _cell(ds, "tensorflow", "resnet18", valgrind=False, onednn=True)
    _cell(ds, "tensorflow", "resnet18", valgrind=True, onednn=True)
    ds.mark_failed("tensorflow__resnet18__t1__r1__valgrind", "killed",
                   {"framework": "tensorflow", "network": "resnet18", "counter_source": "valgrind",
                    "runner": {"effective": {"onednn_opts": False}}})
    assert code_path_differences(ds.path) == []


def test_a_separate_valgrind_folder_is_pooled_with_the_timing_folder(tmp_path):
    timing = Dataset.create(tmp_path / "timing", {"board": "vm"})
    vg = Dataset.create(tmp_path / "vg", {"board": "vm"})
    _cell(timing, "tensorflow", "nin", valgrind=False, onednn=True)
    _cell(vg, "tensorflow", "nin", valgrind=True, onednn=False)
    assert code_path_differences(timing.path) == [] and code_path_differences(vg.path) == []
    assert [d.networks for d in code_path_differences([timing.path, vg.path])] == [("nin",)]


def test_load_table_keeps_them_and_warn_says_those_of_the_rows_left(ds, capsys):
    from perfmodel.workflows.fit import exclude_rows
    from perfmodel.workflows.load import load_table, warn_code_paths

    said = []
    _cell(ds, "tensorflow", "resnet18", valgrind=True, onednn=False)
    _cell(ds, "tensorflow", "resnet18", valgrind=False, onednn=True)
    _cell(ds, "onnxruntime", "resnet18", valgrind=True)
    _cell(ds, "onnxruntime", "resnet18", valgrind=False)
    wide = load_table(str(ds.path))
    assert wide.meta["code_path_differences"] == code_path_differences(ds.path) != []
    assert "code_paths_unchecked" not in wide.meta  # a folder is checked
    assert capsys.readouterr().err == ""  # said by the command, for the rows it keeps
    assert warn_code_paths(wide, lambda text, warn=False: said.append((text, warn))) == _sentences(ds.path)
    assert any(w and t.startswith("warning: tensorflow: onednn_opts = False in the simulated cells") for t, w in said)
    said.clear()
    kept, _ = exclude_rows(wide, ["framework=tensorflow"])
    assert warn_code_paths(kept, lambda text, warn=False: said.append(text)) == [] and said == []


@pytest.mark.slow
def test_a_real_tensorflow_campaign_records_the_switch_in_both_cells(tmp_path, squeezenet_exports):
    """Both cells record TensorFlow's own report; on a CPU whose AVX-512 features turn oneDNN on natively,
    valgrind's CPU (no AVX-512) turns it off and the difference is reported."""
    from perfmodel.collect import run_campaign
    from perfmodel.collect.spec import CampaignSpec
    from perfmodel.counters.valgrind import valgrind_available

    ok, why = valgrind_available()
    if not ok:
        pytest.skip(why)
    spec = CampaignSpec(frameworks=["tensorflow"], networks=["squeezenet1_1"], threads=[1], images=2,
                        warmup_images=1, warmup_min_s=0.0, simulate=True, valgrind_images=1)
    res = run_campaign(spec, tmp_path / "tf", progress=False, calibrate=False)
    assert res.ok, res.to_dict()
    ds = Dataset.open(tmp_path / "tf")
    timed = ds.cell_meta("tensorflow__squeezenet1_1__t1__r0__auto")["runner"]["effective"]["onednn_opts"]
    simulated = ds.cell_meta("tensorflow__squeezenet1_1__t1__r0__valgrind")["runner"]["effective"]["onednn_opts"]
    assert timed in (True, False) and simulated in (True, False)
    notes = code_path_differences(ds.path)
    assert bool(notes) == (timed != simulated)


def test_fit_keeps_the_notes_of_its_rows_and_json_stays_clean(tmp_path):
    import json

    from typer.testing import CliRunner

    from perfmodel.cli.app import app
    from perfmodel.model import load_model
    from perfmodel.model.synthetic import synthetic_throughput_records

    recs = synthetic_throughput_records(networks=("squeezenet1_1", "mobilenet_v2", "googlenet", "resnet50"),
                                        frameworks=("tensorflow", "onnxruntime"), threads=(1, 2), seed=4,
                                        overhead_ms=300.0)
    ds = Dataset.create(tmp_path / "ds", {"board": "vm"})
    for cid, cell in recs.groupby("cell_id"):
        fw, net = str(cell["framework"].iloc[0]), str(cell["network"].iloc[0])
        sim = str(cid).endswith("__valgrind")
        eff = {"onednn_opts": not sim} if fw == "tensorflow" else {}
        ds.write_cell(str(cid), validate(cell.reset_index(drop=True)),
                      {"framework": fw, "network": net, "counter_source": "valgrind" if sim else "auto",
                       "runner": {"effective": eff}})
    fit = ["fit", str(ds.path), "-t", "throughput_fps", "--kind", "overhead-linear", "--cv", "lono",
           "--terms", "throughput-additive", "--json"]
    r = CliRunner().invoke(app, fit + ["-o", str(tmp_path / "m.json")])
    assert r.exit_code == 0, r.output
    json.loads(r.stdout)  # the warning went to stderr
    assert "warning: tensorflow: onednn_opts = False in the simulated cells" in r.stderr
    notes = load_model(tmp_path / "m.json").metadata["code_path_differences"]
    assert len(notes) == 1 and "(googlenet, mobilenet_v2, resnet50, squeezenet1_1)" in notes[0]
    r = CliRunner().invoke(app, fit + ["-o", str(tmp_path / "m2.json"), "--exclude", "framework=tensorflow"])
    assert r.exit_code == 0, r.output
    assert "code_path_differences" not in load_model(tmp_path / "m2.json").metadata and "warning" not in r.stderr


def test_a_records_file_says_its_code_paths_are_not_checked(tmp_path, capsys):
    """A flat records file has no per-cell sidecars: the check cannot run, and the command says so."""
    from perfmodel.data import write_records
    from perfmodel.workflows.fit import exclude_rows
    from perfmodel.workflows.load import load_table, warn_code_paths
    from perfmodel.model.synthetic import synthetic_throughput_records

    recs = synthetic_throughput_records(networks=("squeezenet1_1", "googlenet", "resnet50"), threads=(1,))
    path = tmp_path / "recs.parquet"
    write_records(path, recs)
    wide = load_table(str(path))
    # only TensorFlow's runner declares a kernel-selecting setting
    assert wide.meta["code_paths_unchecked"] == {"files": [str(path)], "frameworks": ["tensorflow"]}
    said = []
    assert warn_code_paths(wide, lambda text, warn=False: said.append(text)) == []
    assert len(said) == 1 and "code paths of tensorflow not checked" in said[0] and "recs.parquet" in said[0]
    said.clear()
    kept, _ = exclude_rows(wide, ["framework=tensorflow"])
    assert warn_code_paths(kept, lambda text, warn=False: said.append(text)) == [] and said == []  # nothing said
    write_records(path, recs[recs["framework"] != "tensorflow"])
    assert "code_paths_unchecked" not in load_table(str(path)).meta

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


def test_tensorflow_oneDNN_switch_differing_between_simulated_and_timed_cells_is_reported(ds):
    for net in ("resnet18", "squeezenet1_1"):
        _cell(ds, "tensorflow", net, valgrind=True, onednn=False)
        _cell(ds, "tensorflow", net, valgrind=False, onednn=True)
        _cell(ds, "tensorflow", net, valgrind=False, onednn=True, threads=2)  # thread counts are not a code path
    notes = code_path_differences(ds.path)
    assert len(notes) == 1
    assert notes[0].startswith("tensorflow: onednn_opts = False in the simulated cells but True in the timing "
                               "cells (resnet18, squeezenet1_1)")


def test_same_settings_other_frameworks_and_unrecorded_settings_are_quiet(ds):
    _cell(ds, "tensorflow", "resnet18", valgrind=True, onednn=True)
    _cell(ds, "tensorflow", "resnet18", valgrind=False, onednn=True)
    _cell(ds, "tensorflow", "googlenet", valgrind=True)            # an older cell: nothing recorded
    _cell(ds, "tensorflow", "googlenet", valgrind=False, onednn=True)
    _cell(ds, "tensorflow", "nin", valgrind=True, onednn=False)     # no timing cell to compare with
    _cell(ds, "onnxruntime", "resnet18", valgrind=True)
    _cell(ds, "onnxruntime", "resnet18", valgrind=False)
    assert code_path_differences(ds.path) == []


def test_load_table_warns_and_keeps_the_notes_in_attrs(ds, tmp_path, capsys):
    from perfmodel.cli.model import load_table

    _cell(ds, "tensorflow", "resnet18", valgrind=True, onednn=False)
    _cell(ds, "tensorflow", "resnet18", valgrind=False, onednn=True)
    wide = load_table(str(ds.path))
    assert wide.attrs["code_path_differences"] == code_path_differences(ds.path) != []
    assert "warning: tensorflow: onednn_opts = False in the simulated cells" in capsys.readouterr().err


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

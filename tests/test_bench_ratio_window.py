"""benchmarks/bench_ratio_window.py: rescoring stored quick-sample pairs with another start window (stand-in
traces and pairs, known answers)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from perfmodel.data import write_dataset

from test_longrun import _trace  # tests/ is on sys.path (no package: pytest prepends it)



@pytest.fixture()
def bench():
    from conftest import load_benchmark

    return load_benchmark("bench_ratio_window")


def test_rescores_each_pair_with_the_other_networks_traces(bench, tmp_path, capsys):
    # two traces: 110 images/s for 2 s, then 105 for 2 s, then 100 (the long run after 10 s)
    for net in ("googlenet", "resnet50"):
        write_dataset(tmp_path / net, _trace(f"onnxruntime__{net}", net, [110.0] * 2 + [105.0] * 2 + [100.0] * 26),
                      {"board": "kvm"})
    rows = [{"status": "ok", "framework": "onnxruntime", "network": "squeezenet1_1", "threads": 1,
             "quick_fps": 110.0, "timed_quick_fps": 107.5, "long_run_fps": 100.0},
            {"status": "failed", "framework": "onnxruntime", "network": "googlenet", "threads": 1}]
    src = tmp_path / "bench.json"
    src.write_text(json.dumps({"rows": rows}))
    out = tmp_path / "win.json"
    argv = [str(src), "--window", "2", "--window", "4", "--json", str(out),
            "--ratio-traces", str(tmp_path / "googlenet"), "--ratio-traces", str(tmp_path / "resnet50")]
    assert bench.main(argv) == 0
    table = {(r["sample"], r["window_s"]): r for r in json.loads(out.read_text())["table"]}
    # window 2 s: ratio 100/110, exact for the 110-images/s sample; 4 s: 100/107.5, exact for the timed one
    assert table[("quick_fps", 2.0)]["mean_abs_pct"] == pytest.approx(0.0, abs=1e-9)
    assert table[("timed_quick_fps", 4.0)]["mean_abs_pct"] == pytest.approx(0.0, abs=1e-9)
    assert table[("timed_quick_fps", 2.0)]["mean_abs_pct"] == pytest.approx(100 * abs(107.5 / 110 - 1))
    assert table[("quick_fps", 4.0)]["n"] == 1 and table[("quick_fps", 4.0)]["within_5"] == 1
    assert np.isfinite(table[("quick_fps", 4.0)]["per_network"]["squeezenet1_1"])
    assert "1 pairs" in capsys.readouterr().out


def test_refuses_files_without_scored_pairs(bench, tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("[1, 2]")
    with pytest.raises(SystemExit):
        bench.main([str(bad)])
    bad.write_text(json.dumps({"rows": [{"status": "failed"}]}))
    with pytest.raises(SystemExit):
        bench.main([str(bad)])
    with pytest.raises(SystemExit):
        bench.main([str(bad), "--window", "0"])

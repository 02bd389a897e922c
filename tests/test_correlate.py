"""Correlation tables against scipy / pandas, degenerate inputs, the correlate CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from perfmodel.errors import PerfmodelError
from perfmodel.report.correlate import correlation_table, default_features, fisher_ci


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    n = 40
    x1 = rng.normal(size=n)
    x2 = rng.exponential(size=n)
    y = 2 * x1 + 0.5 * x2 ** 2 + rng.normal(scale=0.8, size=n)
    df = pd.DataFrame({"power_w": y, "a_per_s": x1, "b_per_s": x2, "framework": ["f1", "f2"] * (n // 2)})
    df.loc[3, "b_per_s"] = np.nan  # pairwise deletion
    return df


def test_matches_scipy_and_pandas(data):
    t = correlation_table(data, "power_w", ["a_per_s", "b_per_s"])
    assert list(t["group"]) == ["all", "all"]
    for _, row in t.iterrows():
        sub = data[["power_w", row["feature"]]].dropna()
        pr = stats.pearsonr(sub[row["feature"]], sub["power_w"])
        sr = stats.spearmanr(sub[row["feature"]], sub["power_w"])
        assert row["n"] == len(sub)
        assert row["pearson_r"] == pytest.approx(pr.statistic, rel=1e-12)
        assert row["p_value"] == pytest.approx(pr.pvalue, rel=1e-9)
        assert row["spearman_rho"] == pytest.approx(sr.statistic, rel=1e-12)
        assert row["spearman_p"] == pytest.approx(sr.pvalue, rel=1e-9)
        # pandas pairwise correlation agrees
        assert row["pearson_r"] == pytest.approx(data["power_w"].corr(data[row["feature"]]), rel=1e-12)
        assert row["spearman_rho"] == pytest.approx(
            data["power_w"].corr(data[row["feature"]], method="spearman"), rel=1e-12)
        # Fisher-z CI equals scipy's
        ci = pr.confidence_interval(0.95)
        assert (row["ci_low"], row["ci_high"]) == (pytest.approx(ci.low, rel=1e-9), pytest.approx(ci.high, rel=1e-9))
        assert row["ci_low"] < row["pearson_r"] < row["ci_high"]
        assert row["reason"] == ""


def test_group_by(data):
    t = correlation_table(data, "power_w", ["a_per_s"], by="framework")
    assert list(t["group"]) == ["f1", "f2"]
    for _, row in t.iterrows():
        sub = data.loc[data["framework"] == row["group"]]
        assert row["n"] == len(sub)
        assert row["pearson_r"] == pytest.approx(stats.pearsonr(sub["a_per_s"], sub["power_w"]).statistic)


def test_perfect_and_anti_correlation():
    x = np.arange(10.0)
    df = pd.DataFrame({"y": 3 * x + 1, "up": x, "down": -x ** 3})
    t = correlation_table(df, "y", ["up", "down"]).set_index("feature")
    assert t.loc["up", "pearson_r"] == pytest.approx(1.0)
    assert t.loc["up", "ci_low"] == pytest.approx(1.0)
    assert t.loc["down", "spearman_rho"] == pytest.approx(-1.0)
    assert t.loc["down", "pearson_r"] < -0.9


def test_constant_and_too_few_samples_are_nan_with_reason():
    df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], "const": [5.0] * 4, "few": [1.0, np.nan, np.nan, 2.0],
                       "ok": [1.0, 3.0, 2.0, 5.0]})
    t = correlation_table(df, "y", ["const", "few", "ok", "absent"]).set_index("feature")
    assert math.isnan(t.loc["const", "pearson_r"]) and "constant" in t.loc["const", "reason"]
    assert t.loc["few", "n"] == 2 and math.isnan(t.loc["few", "spearman_rho"])
    assert "need >= 3" in t.loc["few", "reason"]
    assert not math.isnan(t.loc["ok", "pearson_r"]) and t.loc["ok", "reason"] == ""
    assert "no column absent" in t.loc["absent", "reason"]
    df2 = df.assign(y=1.0)
    assert "target" in correlation_table(df2, "y", ["ok"]).iloc[0]["reason"]


def test_fisher_ci_edge_cases():
    assert all(math.isnan(v) for v in fisher_ci(0.5, 2))
    assert fisher_ci(0.5, 3) == (-1.0, 1.0)
    lo, hi = fisher_ci(0.5, 100)
    assert lo == pytest.approx(math.tanh(math.atanh(0.5) - 1.959963984540054 / math.sqrt(97)))
    assert hi == pytest.approx(math.tanh(math.atanh(0.5) + 1.959963984540054 / math.sqrt(97)))


def test_bad_arguments():
    df = pd.DataFrame({"y": [1.0, 2.0, 3.0], "x": [1.0, 2.0, 4.0]})
    with pytest.raises(PerfmodelError):
        correlation_table(df, "y", [])
    with pytest.raises(PerfmodelError):
        correlation_table(df, "y", ["x"], by="framework")


def test_default_features():
    df = pd.DataFrame({"instructions_per_s": [1.0], "l2d_accesses_per_s": [1.0], "branches_per_image": [1.0],
                       "l1d_accesses_per_s": [np.nan], "power_w": [1.0], "x_per_s": [1.0]})
    assert default_features(df, "sample") == ["instructions_per_s", "l2d_accesses_per_s"]
    assert default_features(df, "cell") == ["branches_per_image"]


def _trace_dataset(path):
    from perfmodel.data import records_from_readings, validate, write_dataset
    from perfmodel.readings import Reading

    rng = np.random.default_rng(1)
    frames = []
    for fw in ("litert", "onnxruntime"):
        keys = dict(run_id="r", cell_id=f"{fw}-sq", board="vm", framework=fw, network="squeezenet1_1", threads=1,
                    workload=f"{fw}/squeezenet1_1", repeat=0)
        for k in range(8):
            ins = 1e9 * (1 + rng.random())
            rs = [Reading("instructions", ins, "count", "perf", "software"),
                  Reading("l1d_accesses", ins * 0.4 * (1 + 0.1 * rng.random()), "count", "perf", "software"),
                  Reading("images", 5, "count", "runner", "software"),
                  Reading("power_w", 1.0 + ins / 1e9 + 0.05 * rng.random(), "W", "ina", "real")]
            frames.append(records_from_readings(rs, **keys, phase="trace", t_start_s=float(k), t_end_s=k + 1.0))
    write_dataset(path, validate(pd.concat(frames, ignore_index=True)), {})
    return path


def test_cli_correlate(tmp_path):
    ds = _trace_dataset(tmp_path / "ds")
    res = subprocess.run([sys.executable, "-m", "perfmodel", "correlate", str(ds), "--by", "framework", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["level"] == "sample" and d["target"] == "power_w"
    feats = {r["feature"] for r in d["rows"]}
    assert {"instructions_per_s", "l1d_accesses_per_s"} <= feats
    assert {r["group"] for r in d["rows"]} == {"litert", "onnxruntime"}
    ins = [r for r in d["rows"] if r["feature"] == "instructions_per_s"]
    assert all(r["n"] == 8 and r["pearson_r"] > 0.9 for r in ins)
    table = subprocess.run([sys.executable, "-m", "perfmodel", "correlate", str(ds)], capture_output=True,
                           text=True, timeout=120)
    assert table.returncode == 0 and "instructions_per_s" in table.stdout
    bad = subprocess.run([sys.executable, "-m", "perfmodel", "correlate", str(ds), "--target", "nope"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error:")

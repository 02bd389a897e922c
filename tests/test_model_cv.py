"""Features, CV splitters, metrics, baselines and stepwise selection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perfmodel.errors import PerfmodelError
from perfmodel.model.cv import MacsBaseline, make_splits, regression_metrics
from perfmodel.model.estimators import LinearModel
from perfmodel.model.features import (FeatureError, compute_feature, feature_provenance, join_simulated,
                                      parse_feature, throughput_terms)
from perfmodel.model.selection import stepwise_select, vif
from perfmodel.model.synthetic import synthetic_power_table, synthetic_throughput_records


def test_feature_grammar_products_logs_indicators():
    df = pd.DataFrame({"a": [1.0, 2.0, 4.0], "b": [3.0, 1.0, 2.0], "framework": ["x", "y", "x"], "threads": [1, 2, 4]})
    np.testing.assert_allclose(compute_feature(df, "a*b^2"), df.a * df.b**2)
    np.testing.assert_allclose(compute_feature(df, "log(a)*framework=x"), np.log(df.a) * (df.framework == "x"))
    np.testing.assert_allclose(compute_feature(df, "threads=2"), [0, 1, 0])
    for bad in ("a+b", "log(a", "a^0", "", "import os"):
        with pytest.raises(FeatureError):
            parse_feature(bad)
    with pytest.raises(FeatureError, match="needs column"):
        compute_feature(df, "c")
    with pytest.raises(FeatureError, match="<= 0"):
        compute_feature(df.assign(a=[1.0, 0.0, 2.0]), "log(a)")


def test_regression_metrics_known_values():
    m = regression_metrics(np.array([100.0, 100.0, 100.0, 100.0]), np.array([104.0, 92.0, 100.0, 120.0]))
    assert m["mape"] == pytest.approx((4 + 8 + 0 + 20) / 4)
    assert m["within_5"] == 50 and m["within_10"] == 75 and m["within_15"] == 75
    assert m["rmspe"] == pytest.approx(100 * np.sqrt((0.04**2 + 0.08**2 + 0.2**2) / 4))


@pytest.mark.parametrize("group", ["network", "framework", "workload"])
def test_leave_one_group_out_splits(group):
    df = pd.DataFrame({"network": list("aabbccdd"), "framework": list("xyxyxyxy"),
                       "workload": ["w1", "w2", "w3", "w1", "w2", "w3", "w1", "w2"]})
    splits = make_splits(df, group=group)
    assert len(splits) == df[group].nunique()
    seen = np.concatenate([te for _, te in splits])
    assert sorted(seen) == list(range(len(df)))  # every sample held out exactly once
    for tr, te in splits:
        held = set(df[group].iloc[te])
        assert len(held) == 1 and held.isdisjoint(df[group].iloc[tr])


def test_splits_errors_and_kfold():
    df = pd.DataFrame({"network": ["a"] * 6})
    with pytest.raises(PerfmodelError, match="at least 2"):
        make_splits(df, group="network")
    with pytest.raises(PerfmodelError, match="not in the data"):
        make_splits(df, group="board")
    ks = make_splits(df, n_splits=3)
    assert len(ks) == 3 and sorted(np.concatenate([te for _, te in ks])) == list(range(6))


def test_vif_detects_collinearity():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.normal(size=200)
    v = vif(np.column_stack([a, b, a + 0.01 * rng.normal(size=200)]))
    assert v[1] < 1.5 and v[0] > 100 and v[2] > 100


def test_stepwise_picks_the_true_power_events():
    df = synthetic_power_table(seed=2).frame
    splits = make_splits(df, group="workload")
    always = ["voltage_v", "voltage_v^2*freq_mhz"]
    cands = [f"{e}_per_s*voltage_v^2" for e in ("cycles", "instructions", "l2d_accesses", "branches", "l1i_accesses")]
    res = stepwise_select(df, "power_w", cands, LinearModel(), splits, always=always)
    assert set(res.features) - set(always) == {"instructions_per_s*voltage_v^2", "l2d_accesses_per_s*voltage_v^2"}
    errs = [h["cv_mape"] for h in res.history]
    assert errs == sorted(errs, reverse=True)


def test_stepwise_respects_vif_cap():
    df = synthetic_power_table(seed=2).frame
    df["instr_copy_per_s"] = df["instructions_per_s"] * (1 + 1e-4 * np.arange(len(df)) / len(df))
    splits = make_splits(df, group="workload")
    res = stepwise_select(df, "power_w", ["instructions_per_s", "instr_copy_per_s", "l2d_accesses_per_s"],
                          LinearModel(), splits, vif_cap=10, min_improvement=0.0)
    assert not {"instructions_per_s", "instr_copy_per_s"} <= set(res.features)


def test_join_simulated_attaches_counts_to_every_thread_count():
    from perfmodel.data import wide_per_cell

    rec = synthetic_throughput_records(networks=("squeezenet1_1", "resnet50"), frameworks=("litert",), threads=(1, 2))
    table = wide_per_cell(rec)
    wide = table.frame
    joined_table = join_simulated(table)
    joined = joined_table.frame
    assert len(joined) == 4 and not joined["cell_id"].str.endswith("__valgrind").any()
    sim = wide[wide.cell_id.str.endswith("__valgrind")].set_index("network")["instructions_per_image"]
    for _, row in joined.iterrows():
        assert row["instructions_per_image"] == sim[row["network"]]
    assert joined_table.provenance.get("instructions_per_image") == "simulated"
    assert feature_provenance(joined_table, ["log(instructions_per_image)*framework=litert"]) == {
        "log(instructions_per_image)*framework=litert": ["key", "simulated"]}
    # timing measured under valgrind is never used as a timing cell
    assert (joined["latency_ms"] < 10000).all()
    # a timing cell without a simulated cell keeps NaN, never a guess
    j2 = join_simulated(table.rows(~((wide.network == "resnet50") & wide.cell_id.str.endswith("__valgrind"))))
    assert j2.frame.loc[j2.frame.network == "resnet50", "instructions_per_image"].isna().all()
    assert j2.meta["join_unmatched"] == 2


def test_throughput_terms_and_macs_baseline():
    df = pd.DataFrame({"framework": ["a", "b"] * 4, "threads": [1, 1, 2, 2] * 2, "instructions_per_image": 1e9,
                       "macs": [1e8] * 4 + [4e8] * 4, "throughput_fps": [10.0, 5, 20, 10, 2.5, 1.25, 5, 2.5]})
    terms = throughput_terms(df)
    assert terms == ["log(instructions_per_image)", "framework=b", "log(threads)", "log(threads)*framework=b"]
    base = MacsBaseline(group=["framework", "threads"]).fit(df, df["throughput_fps"].to_numpy())
    np.testing.assert_allclose(base.predict(df), df["throughput_fps"], rtol=1e-12)

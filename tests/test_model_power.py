"""Power features (Powmon terms, a-priori sets) and nested selection that never sees the held-out group."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perfmodel.model.features import (FeatureError, feature_frame, freq_level_terms, power_features,
                                      power_loglinear_features, powmon_terms)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "armpm-parsec" / "xu3_cset_perfcpu_PARSEC_eMMC_big.data"
MODEL = ROOT / "trained" / "power_armpm_xu3_a15.json"
needs_data = pytest.mark.skipif(not DATA.is_file(), reason=f"ARMPM data file not present at {DATA}")


@pytest.fixture
def tiny():
    return pd.DataFrame({
        "freq_mhz": [1000.0, 1000.0, 1400.0, 1400.0, 1800.0, 1800.0],
        "voltage_v": [0.9, 0.9, 1.0, 1.0, 1.1, 1.2],
        "temperature_c": [33.0, 35.0, 38.0, 40.0, 45.0, 50.0],
        "cores": [1, 2, 1, 2, 1, 2],
        "cycles_per_s": [0.98e9, 1.96e9, 1.37e9, 2.74e9, 1.76e9, 3.5e9],
        "instructions_per_s": [1.2e9, 2.0e9, 1.5e9, 3.1e9, 2.2e9, 4.0e9],
        "instructions_per_cycle": [1.22, 1.02, 1.09, 1.13, 1.25, 1.14],
        "power_w": [0.6, 0.9, 1.0, 1.5, 1.6, 2.6],
    })


def test_powmon_terms_default_set_unchanged(tiny):
    events, fixed = powmon_terms(tiny)
    assert events == ["instructions_per_s*voltage_v^2", "cycles_per_s*voltage_v^2"]
    assert fixed == ["voltage_v", "voltage_v^2*freq_mhz", "temperature_c*voltage_v", "cores*voltage_v^2*freq_mhz"]
    # one core count only: no core term
    _, fixed1 = powmon_terms(tiny.assign(cores=1))
    assert not any("cores" in f for f in fixed1)


def test_power_features_values(tiny):
    feats = power_features(tiny)
    assert feats == ["voltage_v", "temperature_c*voltage_v", "cores*voltage_v^2*freq_mhz", "freq_mhz=1400",
                     "freq_mhz=1800", "instructions_per_s*voltage_v^2", "cycles_per_s*voltage_v^2"]
    X = feature_frame(tiny, feats)
    V, f, T, c = (tiny[k].to_numpy() for k in ("voltage_v", "freq_mhz", "temperature_c", "cores"))
    np.testing.assert_allclose(X["temperature_c*voltage_v"], T * V)
    np.testing.assert_allclose(X["cores*voltage_v^2*freq_mhz"], c * V**2 * f)
    np.testing.assert_array_equal(X["freq_mhz=1400"], [0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(X["freq_mhz=1800"], [0, 0, 0, 0, 1, 1])
    np.testing.assert_allclose(X["instructions_per_s*voltage_v^2"], tiny["instructions_per_s"].to_numpy() * V**2)
    # core_static adds the per-core leakage term
    _, fixed = powmon_terms(tiny, freq_levels=True, core_static=True)
    assert "cores*voltage_v" in fixed and "voltage_v^2*freq_mhz" not in fixed


def test_freq_levels_and_loglinear_features(tiny):
    assert freq_level_terms(tiny) == ["freq_mhz=1400", "freq_mhz=1800"]
    assert freq_level_terms(tiny[tiny.freq_mhz == 1000.0]) == []
    feats = power_loglinear_features(tiny)
    assert feats[:3] == ["log(voltage_v)", "log(freq_mhz)", "log(cycles_per_s)"]
    assert "instructions_per_cycle" in feats and "cores" in feats
    X = feature_frame(tiny, feats)
    np.testing.assert_allclose(X["log(voltage_v)"], np.log(tiny["voltage_v"]))
    np.testing.assert_allclose(X["log(cycles_per_s)"], np.log(tiny["cycles_per_s"]))


def test_power_features_errors(tiny):
    with pytest.raises(FeatureError, match="voltage_v"):
        power_features(tiny.drop(columns="voltage_v"))
    with pytest.raises(FeatureError, match="l2d_accesses_per_s"):
        powmon_terms(tiny, ["instructions", "l2d_accesses"])
    with pytest.raises(FeatureError, match="cycles_per_s"):
        power_loglinear_features(tiny.drop(columns="cycles_per_s"))


# -- nested selection ------------------------------------------------------------------------------


def _grouped(seed=0, groups=5, n=40):
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(groups):
        a, b, c, d = (rng.uniform(1, 3, n) for _ in range(4))
        y = 2.0 + 1.5 * a + 0.7 * b + rng.normal(0, 0.05, n)
        rows.append(pd.DataFrame({"workload": f"w{g}", "a_per_s": a, "b_per_s": b, "c_per_s": c, "d_per_s": d,
                                  "power_w": y}))
    return pd.concat(rows, ignore_index=True)


def test_nested_cv_selection_sees_training_groups_only(monkeypatch):
    import perfmodel.model.fit as fit

    df = _grouped()
    seen = []
    real = fit.stepwise_select

    def spy(train, target, cands, est, splits, **kw):
        groups = set(train["workload"])
        # inner splits index the training rows only, and are leave-one-group-out among them
        assert all(int(max(tr.max(), te.max())) < len(train) for tr, te in splits)
        assert len(splits) == len(groups)
        seen.append(groups)
        return real(train, target, cands, est, splits, **kw)

    monkeypatch.setattr(fit, "stepwise_select", spy)
    cvr, chosen = fit.nested_cv(df, "power_w", ["a_per_s", "b_per_s", "c_per_s", "d_per_s"], "linear", "workload")
    held = [f["held_out"] for f in cvr.folds]
    assert sorted(held) == [f"w{g}" for g in range(5)] and len(seen) == 5
    for h, groups in zip(held, seen):
        assert h not in groups and len(groups) == 4
    assert set(chosen) == set(held)
    for feats in chosen.values():  # the true terms are found in every fold
        assert {"a_per_s", "b_per_s"} <= set(feats)
    assert cvr.metrics["n"] == len(df) and np.isfinite(cvr.predictions).all()
    assert "nested" in cvr.scheme


def test_nested_cv_held_out_target_does_not_matter():
    """Scrambling the held-out group's target changes neither its features nor its predictions."""
    from perfmodel.model.fit import nested_cv

    df = _grouped(seed=1)
    cands = ["a_per_s", "b_per_s", "c_per_s", "d_per_s"]
    base, chosen = nested_cv(df, "power_w", cands, "linear", "workload")
    w = df["workload"] == "w2"
    other = df.copy()
    other.loc[w, "power_w"] = other.loc[w, "power_w"].to_numpy()[::-1] * 3.0 + 10.0
    alt, chosen_alt = nested_cv(other, "power_w", cands, "linear", "workload")
    assert chosen_alt["w2"] == chosen["w2"]
    np.testing.assert_allclose(alt.predictions[w.to_numpy()], base.predictions[w.to_numpy()])
    # ... while the other folds, which trained on w2, do see the change
    assert not np.allclose(alt.predictions[~w.to_numpy()], base.predictions[~w.to_numpy()])


def test_nested_cv_needs_three_groups():
    from perfmodel.errors import PerfmodelError
    from perfmodel.model.fit import nested_cv

    df = _grouped(groups=2)
    with pytest.raises(PerfmodelError):
        nested_cv(df, "power_w", ["a_per_s"], "linear", "workload")


# -- on the ARMPM file -----------------------------------------------------------------------------


@needs_data
def test_power_features_on_armpm_full_rank_and_beat_baseline():
    from perfmodel.data.importers.armpm import load_armpm
    from perfmodel.model.fit import evaluate

    df = load_armpm(DATA, sensor_lag=1).frame
    feats = power_features(df)
    X = np.column_stack([np.ones(len(df)), feature_frame(df, feats).to_numpy()])
    assert np.linalg.matrix_rank(X) == X.shape[1]
    _, rows = evaluate(df, "power_w", feats, kinds=("linear",), group="workload")
    by = {r["model"]: r for r in rows}
    assert by["linear"]["scheme"] == "leave-one-workload-out"
    assert by["linear"]["mape"] < by["baseline: mean per freq_mhz"]["mape"] < by["baseline: mean"]["mape"]


@needs_data
@pytest.mark.skipif(not MODEL.is_file(), reason="trained power model not present")
def test_trained_power_model_applies_to_armpm():
    from perfmodel.data.importers.armpm import load_armpm
    from perfmodel.model import load_model

    model = load_model(MODEL)
    assert model.preparation.sensor_lag == 1  # the lag it was trained with (metadata of this schema 1 file)
    df = load_armpm(DATA, sensor_lag=model.preparation.sensor_lag)
    assert model.features == power_features(df.frame)
    pred = model.predict_frame(df)
    assert len(pred) == len(df) and np.isfinite(pred["pred"]).all()
    assert model.cv["scheme"] == "leave-one-workload-out" and np.isfinite(model.cv["mape"])

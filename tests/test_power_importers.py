"""Power importers for any event set (ARMPM, Powmon, mapped CSV), the ARM event table, and the automatic
power model (fit / evaluate without named features) on synthetic files of each format."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from perfmodel.cli.app import app
from perfmodel.errors import InputFileError

from power_fixtures import MAPPING, write_armpm, write_mapped_csv, write_powmon

runner = CliRunner()


def test_arm_event_table_numbers():
    from perfmodel.armpmu import canonical_event, event_name

    assert [event_name(n) for n in (0x01, 0x03, 0x04, 0x08, 0x10, 0x11, 0x12, 0x13, 0x14, 0x16, 0x17)] == [
        "l1i_refills", "l1d_refills", "l1d_accesses", "instructions", "branch_misses", "cycles", "branches",
        "mem_accesses", "l1i_accesses", "l2d_accesses", "l2d_refills"]
    assert (event_name(0x19), event_name(0x1B), event_name(0x1D), event_name(0x00)) == (
        "bus_access", "inst_spec", "bus_cycles", "sw_incr")
    assert event_name(0x4E) == "event_0x4e" and event_name(0xEE) == "event_0xee"
    assert canonical_event("Core 4 Event 0x08") is None  # per-core labels are the Powmon importer's
    assert canonical_event("0x13") == "mem_accesses" and canonical_event("DATA_MEM_ACCESS") == "mem_accesses"
    assert canonical_event("CID_WRITE_RETIRED") == "cid_write_retired" and canonical_event("Benchmark") is None


def test_armpm_other_event_set_without_core_column(tmp_path):
    from perfmodel.data.importers.armpm import load_armpm
    from perfmodel.metrics import base_event

    path = write_armpm(tmp_path / "other.data")
    table = load_armpm(path, sensor_lag=1)
    df = table.frame
    assert {"sw_incr", "cid_write_retired", "l1d_refills", "instructions", "branch_misses", "cycles"} == set(
        table.meta["events"])
    assert "cores" not in df.columns and base_event("sw_incr_per_s") == "sw_incr"
    rep = table.meta["import_report"]
    assert rep["ignored"] == ["Comment"] and any("core terms" in n for n in rep["notes"])
    with_cores = load_armpm(path, cores=2).frame
    assert (with_cores["cores"] == 2).all()
    np.testing.assert_allclose(df["l1d_refills_per_s"], df["l1d_refills"] / df["dt_s"])


def test_powmon_sums_cluster_cores_and_maps_numbers(tmp_path):
    import pandas as pd

    from perfmodel.data.importers.powmon import load_powmon

    path = write_powmon(tmp_path / "pm.csv")
    raw = pd.read_csv(path)
    table = load_powmon(path)
    df = table.frame
    assert table.meta["cluster"] == "a15" and table.meta["cluster_cores"] == [4, 5, 6, 7]
    assert set(table.meta["events"]) == {"cycles", "instructions", "l1d_accesses", "l2d_refills", "bus_access",
                                      "event_0x4e"}
    assert df["cores"].tolist() == raw["Core Mask"].map({"0x10": 1, "0x30": 2, "0x70": 3, "0xF0": 4}).tolist()
    # counts summed over the cluster's cores in the mask (core 0-3 are the A7's and never counted)
    i = int(np.flatnonzero(raw["Core Mask"] == "0x30")[0])
    assert df["instructions"].iloc[i] == raw.loc[i, "Core 4 Event 0x08"] + raw.loc[i, "Core 5 Event 0x08"]
    per_s = sum(raw.loc[i, f"Core {c} Event 0x08"] / raw.loc[i, f"Core {c} CycleCount"] for c in (4, 5))
    assert df["instructions_per_s"].iloc[i] == pytest.approx(per_s * df["freq_mhz"].iloc[i] * 1e6)
    assert df["temperature_c"].tolist() == raw["Average Temperature A15"].tolist()
    a7 = load_powmon(path, cluster="A7").frame
    assert (a7["power_w"] == 0.1).all() and (a7["cores"] == 0).all()
    with pytest.raises(InputFileError, match="sensor lag"):
        load_powmon(path, sensor_lag=1)


def test_mapped_csv_units_and_report(tmp_path):
    from perfmodel.data.importers.mapped import load_mapped

    path = write_mapped_csv(tmp_path / "log.csv")
    table = load_mapped(path, MAPPING)
    df = table.frame
    assert df["freq_mhz"].isin([1000.0, 1400.0, 1800.0]).all()
    assert df["voltage_v"].between(0.9, 1.25).all() and df["power_w"].max() < 50
    assert df["dt_s"].round(3).eq(0.2).all()
    assert table.meta["import_report"]["ignored"] == ["note"]
    mfile = tmp_path / "map.json"
    mfile.write_text(json.dumps(dict(p.split("=") for p in MAPPING.split(","))))
    assert load_mapped(path, mfile).frame.shape == df.shape
    with pytest.raises(InputFileError, match="no column"):
        load_mapped(path, "time=nope,power_w=p_mw")
    with pytest.raises(InputFileError, match="neither a role"):
        load_mapped(path, MAPPING + ",frobs=note")


@pytest.mark.parametrize("fmt", ["armpm", "powmon", "csv"])
def test_fit_and_evaluate_without_named_features(tmp_path, fmt):
    if fmt == "armpm":
        data, extra = f"armpm:{write_armpm(tmp_path / 'a.data')}", ["--sensor-lag", "1"]
    elif fmt == "powmon":
        data, extra = f"powmon:{write_powmon(tmp_path / 'p.csv')}", []
    else:
        data, extra = f"csv:{write_mapped_csv(tmp_path / 'm.csv')}", ["--map", MAPPING]
    r = runner.invoke(app, ["evaluate", data, "--target", "power_w", "--cv", "lowo", *extra])
    assert r.exit_code == 0, r.output
    assert "selection nested" in r.output and "baseline: mean per freq_mhz" in r.output
    assert "recognised" in r.output and "ignored" in r.output
    assert "term set: auto" in r.output and "sensor lag: " in r.output
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["fit", data, "--target", "power_w", "--cv", "lowo", "--out", str(out), *extra])
    assert r.exit_code == 0, r.output
    assert "term set: auto" in r.output and "sensor lag: " in r.output and "cross-validation" in r.output
    model = json.loads(out.read_text())
    meta = model["metadata"]
    assert meta["events"] and meta["board"] and "selection nested" in model["cv"]["scheme"]
    assert model["cv"]["mape"] < model["cv"]["results"][-1]["mape"]  # beats the per-frequency mean


def test_predict_from_data_without_the_events_is_refused(tmp_path):
    from perfmodel.data.importers.armpm import load_armpm
    from perfmodel.model import load_model
    from perfmodel.model.modelfile import IncompatibleSampleError

    mapped = write_mapped_csv(tmp_path / "m.csv")
    r = runner.invoke(app, ["fit", f"csv:{mapped}", "--target", "power_w", "--cv", "lowo", "--select", "fixed",
                            "--features", "l2d_refills_per_s*voltage_v^2,voltage_v", "--map", MAPPING,
                            "--out", str(tmp_path / "m.json")])
    assert r.exit_code == 0, r.output
    other = load_armpm(write_armpm(tmp_path / "a.data"))  # no L2D_CACHE_REFILL
    with pytest.raises(IncompatibleSampleError, match="lacks event.s. l2d_refills"):
        load_model(tmp_path / "m.json").predict_frame(other)


def _json_out(output: str) -> dict:
    return json.loads(output[output.index("{"):])  # the importer's report goes to stderr, mixed in by CliRunner


def test_default_power_terms_are_the_validated_fixed_set_where_the_data_has_its_events(tmp_path):
    """Issue 22 follow-up: the default on data with every event of the validated set (the PARSEC file's) is
    that fixed set, no selection - not the automatic set, which was worse on PARSEC (5.60 % vs 3.93 %)."""
    from perfmodel.data.importers.armpm import load_armpm
    from perfmodel.model.features import validated_power_features
    from perfmodel.model.fit import evaluate

    from power_fixtures import PARSEC_EVENTS

    path = write_armpm(tmp_path / "full.data", events=PARSEC_EVENTS, cores_column=True, samples=12)
    df = load_armpm(path, sensor_lag=1).frame
    fixed = validated_power_features(df)
    assert len(fixed) == 18 and "l1d_refills_per_s*voltage_v^2" not in fixed  # the set, not every event present
    r = runner.invoke(app, ["evaluate", f"armpm:{path}", "--target", "power_w", "--cv", "lowo", "--sensor-lag", "1",
                            "--json"])
    assert r.exit_code == 0, r.output
    out = _json_out(r.output)
    assert out["term_set"]["set"] == "fixed" and "validated fixed" in out["term_set"]["reason"]
    assert out["features"] == fixed
    _, rows = evaluate(df, "power_w", fixed, kinds=("linear",), group="workload", baselines=False)
    lin = next(x for x in out["results"] if x["model"] == "linear")
    assert lin["mape"] == pytest.approx(rows[0]["mape"]) and lin["scheme"] == "leave-one-workload-out"
    # the table says which set and why
    r = runner.invoke(app, ["evaluate", f"armpm:{path}", "--target", "power_w", "--cv", "lowo", "--sensor-lag", "1"])
    assert "term set: fixed - the data holds all 13 events" in r.output
    # fit: the same set, fixed selection, recorded in the model file
    out_file = tmp_path / "fixed.json"
    r = runner.invoke(app, ["fit", f"armpm:{path}", "--target", "power_w", "--cv", "lowo", "--sensor-lag", "1",
                            "--out", str(out_file)])
    assert r.exit_code == 0, r.output
    model = json.loads(out_file.read_text())
    assert model["features"] == fixed and model["selection"]["method"] == "fixed"
    assert model["metadata"]["power_terms"]["set"] == "fixed" and "term set: fixed" in r.output


def test_features_auto_forces_the_automatic_set_and_missing_events_fall_back_to_it(tmp_path):
    from power_fixtures import PARSEC_EVENTS

    full = write_armpm(tmp_path / "full.data", events=PARSEC_EVENTS, cores_column=True, samples=8, workloads=4)
    r = runner.invoke(app, ["evaluate", f"armpm:{full}", "--target", "power_w", "--cv", "lowo", "--sensor-lag", "1",
                            "--features", "auto", "--json"])
    assert r.exit_code == 0, r.output
    out = _json_out(r.output)
    assert out["term_set"]["set"] == "auto" and out["term_set"]["reason"].startswith("--features auto")
    assert "l1d_refills_per_s*voltage_v^2" in out["features"]["candidates"]  # every event present is a candidate
    assert "selection nested" in next(x for x in out["results"] if x["model"] == "linear")["scheme"]
    other = write_armpm(tmp_path / "other.data", samples=8, workloads=4)  # lacks most of the set's events
    r = runner.invoke(app, ["evaluate", f"armpm:{other}", "--target", "power_w", "--cv", "lowo", "--sensor-lag", "1"])
    assert r.exit_code == 0, r.output
    assert "term set: auto - the data lacks event(s) l1d_accesses" in r.output
    r = runner.invoke(app, ["evaluate", f"armpm:{other}", "--target", "cycles_per_s", "--features", "auto"])
    from perfmodel.errors import PerfmodelError  # the CLI's main prints it as "error: ..." (exit 2)

    assert isinstance(r.exception, PerfmodelError) and "need a power target" in str(r.exception)


def test_cv_fast_paths_equal_the_estimators():
    """Stepwise / nested selection scores ridge and log-linear without scikit-learn (the nested ridge row took
    over 10 minutes on PARSEC through RidgeCV): the same predictions as the estimators' own fit / predict."""
    from sklearn.base import clone

    from perfmodel.model.estimators import make_estimator
    from perfmodel.model.selection import cv_mape, ridge_loo_predict

    rng = np.random.default_rng(3)
    n = 240
    X = rng.normal(size=(n, 5)) * [1, 10, 0.1, 5, 2] + [0, 50, 1, 20, 5]
    X[:, 4] = 2 * X[:, 1] + 0.001 * rng.normal(size=n)  # nearly collinear: the penalty matters
    y = 3 + X @ [0.5, 0.02, 4, 0.1, 0.01] + rng.normal(0, 0.3, size=n)
    splits = [(np.flatnonzero(np.arange(n) % 4 != k), np.flatnonzero(np.arange(n) % 4 == k)) for k in range(4)]
    for kind in ("ridge", "loglinear", "linear"):
        est = make_estimator(kind)
        for cols in ([0], [0, 1, 2], [0, 1, 2, 3, 4]):
            pred = np.empty(n)
            for tr, te in splits:
                pred[te] = clone(est).fit(X[tr][:, cols], y[tr]).predict(X[te][:, cols])
            slow = float(100 * np.mean(np.abs(pred - y) / np.abs(y)))
            assert cv_mape(est, X[:, cols], y, splits) == pytest.approx(slow, rel=1e-7), (kind, cols)
    tr, te = splits[0]
    ridge = make_estimator("ridge").fit(X[tr], y[tr])
    np.testing.assert_allclose(ridge_loo_predict(X[tr], y[tr], X[te], ridge.alphas), ridge.predict(X[te]),
                               rtol=1e-9)
    Xc = X.copy()
    Xc[:, 2] = 1.0  # a constant column: coefficient 0, as the estimator's unit scale gives
    np.testing.assert_allclose(ridge_loo_predict(Xc[tr], y[tr], Xc[te], ridge.alphas),
                               make_estimator("ridge").fit(Xc[tr], y[tr]).predict(Xc[te]), rtol=1e-9)


def test_shrunk_power_model_penalises_only_the_event_terms(tmp_path):
    """The registered design change: every event term kept and shrunk (penalty from inner folds grouped by
    workload). A huge penalty leaves the unpenalised terms' OLS; a negligible one the OLS on every term."""
    from perfmodel.data.importers.armpm import load_armpm
    from perfmodel.model.cv import FeatureModel
    from perfmodel.model.estimators import make_estimator
    from perfmodel.model.features import power_selection_terms
    from perfmodel.model.fit import ShrunkPowerModel, evaluate_power_shrunk

    df = load_armpm(write_armpm(tmp_path / "a.data", samples=10), sensor_lag=1).frame
    y = df["power_w"].to_numpy()
    cands, always, _ = power_selection_terms(df)
    feats = always + cands
    big = ShrunkPowerModel(feats, cands, "workload", lambdas=(1e9,)).fit(df, y)
    np.testing.assert_allclose(big.predict(df), FeatureModel(make_estimator("linear"), always).fit(df, y).predict(df),
                               rtol=1e-5)
    tiny = ShrunkPowerModel(feats, cands, "workload", lambdas=(1e-14,)).fit(df, y)
    np.testing.assert_allclose(tiny.predict(df), FeatureModel(make_estimator("linear"), feats).fit(df, y).predict(df),
                               rtol=1e-6)
    both = ShrunkPowerModel(feats, cands, "workload", lambdas=(1e9, 1e-14)).fit(df, y)
    assert both.lambda_ == 1e-14  # the data follows the event terms: the inner folds want them
    row = evaluate_power_shrunk(df, "power_w", group="workload")
    assert row["status"] == "ok" and row["scheme"] == "leave-one-workload-out, penalty nested"
    assert set(row["lambda"]) == set(df["workload"]) and row["penalised"] == cands
    r = runner.invoke(app, ["evaluate", f"armpm:{tmp_path / 'a.data'}", "--target", "power_w", "--cv", "lowo",
                            "--sensor-lag", "1", "--shrink", "--json"])
    assert r.exit_code == 0, r.output
    shrunk = [x for x in _json_out(r.output)["results"] if x["model"].startswith("ridge, all event terms shrunk")]
    assert len(shrunk) == 1 and shrunk[0]["mape"] == pytest.approx(row["mape"])


def test_powmon_cycles_term_dropped_where_it_restates_the_core_term(tmp_path):
    """Powmon rates (events per cycle x f over the active cores) make cycles/s = cores x f: the automatic set
    left both cycles/s V^2 and cores V^2 f in, a rank-deficient design (statsmodels' warning on every fit)."""
    import warnings

    from statsmodels.tools.sm_exceptions import SingularMatrixWarning

    from perfmodel.data.importers.powmon import load_powmon
    from perfmodel.model.features import power_selection_terms
    from perfmodel.model.fit import power_term_set
    from perfmodel.model.stats import ols_statistics

    df = load_powmon(write_powmon(tmp_path / "p.csv")).frame
    cands, always, _ = power_selection_terms(df)
    assert "cores*voltage_v^2*freq_mhz" in always and "cycles_per_s*voltage_v^2" not in always + cands
    with warnings.catch_warnings():
        warnings.simplefilter("error", SingularMatrixWarning)
        ols_statistics(df, "power_w", always + cands)
    assert "voltage_v" not in always  # one voltage per frequency in these averaged rows: the levels carry it
    reason = power_term_set(df, "power_w")["reason"]
    assert "cycles/s x V^2 left out" in reason and "V left out" in reason
    # an ARMPM file (rates from the interval) keeps it
    armpm = __import__("perfmodel.data.importers.armpm", fromlist=["load_armpm"]).load_armpm(
        write_armpm(tmp_path / "a.data", cores_column=True, samples=6, workloads=3), sensor_lag=1).frame
    assert "cycles_per_s*voltage_v^2" in power_selection_terms(armpm)[1]


def test_predict_reads_a_mapped_csv_with_the_models_mapping_or_map(tmp_path):
    mapped = write_mapped_csv(tmp_path / "m.csv", samples=6, workloads=3)
    model = tmp_path / "m.json"
    r = runner.invoke(app, ["fit", f"csv:{mapped}", "--target", "power_w", "--cv", "lowo", "--select", "fixed",
                            "--features", "l2d_refills_per_s*voltage_v^2,voltage_v", "--map", MAPPING,
                            "--out", str(model)])
    assert r.exit_code == 0, r.output
    from perfmodel.data.importers.mapped import load_mapped

    n = len(load_mapped(mapped, MAPPING))  # every sample with a known interval
    for extra in ([], ["--map", MAPPING]):  # the model's own mapping by default
        r = runner.invoke(app, ["predict", "--model", str(model), "--dataset", f"csv:{mapped}", "--json", *extra])
        assert r.exit_code == 0, r.output
        rows = _json_out(r.output)["rows"]
        assert len(rows) == n and all(np.isfinite(x["pred"]) and x["pred"] > 0 for x in rows)
    r = runner.invoke(app, ["predict", "--model", str(model), "--csv", str(mapped), "--cores", "2"])
    assert r.exit_code != 0 and "--map / --cores apply to --dataset" in str(r.exception)


@pytest.mark.parametrize("fmt, lag", [("armpm", 1), ("csv", 0), ("powmon", 0)])
def test_sensor_lag_auto_is_chosen_in_the_folds_and_recorded(tmp_path, fmt, lag):
    """--sensor-lag auto (the default): the ARMPM fixture's power follows the counters by one sample, the mapped
    CSV's does not, Powmon rows are averages (no lag). evaluate chooses it inside every outer fold from the
    training workloads; fit on all the data, recording it in preparation.sensor_lag, which predict applies."""
    if fmt == "armpm":
        data, extra = f"armpm:{write_armpm(tmp_path / 'a.data', samples=12, workloads=4)}", []
    elif fmt == "powmon":
        data, extra = f"powmon:{write_powmon(tmp_path / 'p.csv', workloads=4)}", []
    else:
        data, extra = f"csv:{write_mapped_csv(tmp_path / 'm.csv', samples=12, workloads=4)}", ["--map", MAPPING]
    r = runner.invoke(app, ["evaluate", data, "--target", "power_w", "--cv", "lowo", "--json", *extra])
    assert r.exit_code == 0, r.output
    out = _json_out(r.output)
    assert out["sensor_lag"]["lag"] == lag
    if fmt == "powmon":
        assert not out["sensor_lag"]["chosen"] and "averages" in out["sensor_lag"]["reason"]
    else:
        assert out["sensor_lag"]["chosen"] and set(out["sensor_lag"]["per_fold"]) == {f"wl{i}" for i in range(4)}
        assert "training workloads only" in out["sensor_lag"]["reason"]
        given = runner.invoke(app, ["evaluate", data, "--target", "power_w", "--cv", "lowo", "--json",
                                    "--sensor-lag", str(lag), *extra])
        assert given.exit_code == 0, given.output
        want = {x["model"]: x.get("mape") for x in _json_out(given.output)["results"]}
        assert {x["model"]: x.get("mape") for x in out["results"]} == want  # the same lag: the same table
        assert _json_out(given.output)["sensor_lag"]["reason"] == "given (--sensor-lag)"
    model = tmp_path / "fit.json"
    r = runner.invoke(app, ["fit", data, "--target", "power_w", "--cv", "lowo", "-o", str(model), *extra])
    assert r.exit_code == 0, r.output
    assert f"sensor lag: {lag} - " in r.output
    saved = json.loads(model.read_text())
    assert saved["preparation"]["sensor_lag"] == lag and saved["metadata"]["sensor_lag_choice"]["lag"] == lag
    r = runner.invoke(app, ["predict", "--model", str(model), "--dataset", data, "--json", *extra])
    assert r.exit_code == 0, r.output
    if fmt == "armpm":  # the recorded lag drops the last sample of every run: 4 workloads x 3 frequencies
        from perfmodel.data.importers.armpm import load_armpm

        assert len(_json_out(r.output)["rows"]) == len(load_armpm(tmp_path / "a.data", sensor_lag=1))
        r = runner.invoke(app, ["fit", data, "--target", "power_w", "--cv", "lowo", "-o", str(model), "--force",
                                "--sensor-lag", "0"])
        assert r.exit_code == 0 and json.loads(model.read_text())["preparation"]["sensor_lag"] == 0
        assert "sensor lag: 0 - given" in r.output


def test_sensor_lags_that_differ_between_folds_are_each_used_for_their_fold(tmp_path, monkeypatch):
    """Where the training workloads of the outer folds point at different lags, every fold is predicted by the
    evaluation at its own lag, and MAPE / +-10 % are pooled over the folds (the other figures are not)."""
    import perfmodel.model.lag as lagmod

    path = write_armpm(tmp_path / "a.data", samples=12, workloads=4)
    data = f"armpm:{path}"
    chosen = {"wl0": 0, "wl1": 1, "wl2": 1, "wl3": 1}
    monkeypatch.setattr(lagmod, "fold_sensor_lags", lambda *a, **k: dict(chosen))
    r = runner.invoke(app, ["evaluate", data, "--target", "power_w", "--cv", "lowo", "--json"])
    assert r.exit_code == 0, r.output
    out = _json_out(r.output)
    assert out["sensor_lag"]["lag"] is None and out["sensor_lag"]["per_fold"] == chosen
    at = {}
    for lag in (0, 1):
        g = runner.invoke(app, ["evaluate", data, "--target", "power_w", "--cv", "lowo", "--json", "--sensor-lag",
                                str(lag)])
        assert g.exit_code == 0, g.output
        at[lag] = {x["model"]: x for x in _json_out(g.output)["results"]}
    for row in out["results"]:
        assert row["status"] == "ok" and row["scheme"].endswith("sensor lag per fold") and row["r2"] is None
        folds = [next(f for f in at[chosen[w]][row["model"]]["folds"] if f["held_out"] == w) for w in chosen]
        n = sum(f["n_test"] for f in folds)
        assert row["mape"] == pytest.approx(sum(f["n_test"] * f["mape"] for f in folds) / n)
        assert row["n"] == n and [f["sensor_lag"] for f in row["folds"]] == list(chosen.values())
    r = runner.invoke(app, ["evaluate", data, "--target", "power_w", "--cv", "lowo"])
    assert r.exit_code == 0 and "sensor lag: per fold wl0: 0, wl1: 1" in r.output


def test_choose_sensor_lag_uses_the_given_rows_only(tmp_path):
    from perfmodel.data.importers.armpm import load_armpm
    from perfmodel.data.importers.mapped import load_mapped
    from perfmodel.model.lag import choose_sensor_lag

    a = load_armpm(write_armpm(tmp_path / "a.data", samples=12, workloads=3)).frame.reset_index(drop=True)
    m = load_mapped(write_mapped_csv(tmp_path / "m.csv", samples=12, workloads=3), MAPPING).frame
    assert choose_sensor_lag(a)["lag"] == 1 and choose_sensor_lag(m)["lag"] == 0
    # the rows of one workload replaced by the lag-0 CSV's pattern: excluded, they change nothing
    rows = (a["workload"] != "wl0").to_numpy()
    mixed = a.copy()
    mixed.loc[~rows, "power_w"] = 1.0 + np.arange((~rows).sum()) % 2  # noise, unrelated to the counters
    assert choose_sensor_lag(mixed, rows=rows)["r"] == choose_sensor_lag(a, rows=rows)["r"]
    assert choose_sensor_lag(mixed, rows=rows)["r"] != choose_sensor_lag(mixed)["r"]


def test_fit_shrink_saves_the_shrunk_model_and_predict_uses_it(tmp_path):
    """fit --shrink: the row evaluate --shrink shows, fitted and saved (kind ridge; penalty and terms recorded),
    its CV figure the nested one; predict gives the fitted model's values."""
    from perfmodel.data.importers.armpm import load_armpm
    from perfmodel.model import load_model
    from perfmodel.model.fit import ShrunkPowerModel, evaluate_power_shrunk

    path = write_armpm(tmp_path / "a.data", samples=10, workloads=5)
    out = tmp_path / "s.json"
    r = runner.invoke(app, ["fit", f"armpm:{path}", "--target", "power_w", "--cv", "lowo", "--shrink", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "term set: auto, shrunk" in r.output and "penalty: lambda" in r.output
    model = load_model(out)
    sel = model.selection
    assert model.kind == "ridge" and sel["method"] == "shrink" and model.features == sel["unpenalised"] + sel["penalised"]
    assert model.preparation.sensor_lag == 1 and sel["lambda"] in sel["lambdas"]
    table = load_armpm(path, sensor_lag=1)
    df = table.frame
    row = evaluate_power_shrunk(df, "power_w", group="workload")
    assert model.cv["mape"] == pytest.approx(row["mape"]) and model.cv["scheme"].endswith("penalty nested")
    y = df["power_w"].to_numpy()
    ref = ShrunkPowerModel(model.features, sel["penalised"], "workload").fit(df, y)
    assert ref.lambda_ == sel["lambda"] and model.params.alpha == pytest.approx(ref.lambda_ * len(df))
    np.testing.assert_allclose(model.predict_frame(table)["pred"], ref.predict(df), rtol=1e-10)
    r = runner.invoke(app, ["predict", "--model", str(out), "--dataset", f"armpm:{path}", "--json"])
    assert r.exit_code == 0, r.output
    pred = [x["pred"] for x in _json_out(r.output)["rows"]]
    np.testing.assert_allclose(pred, ref.predict(df), rtol=1e-10)
    for extra, msg in ((["--features", "instructions_per_s*voltage_v^2"], "not with --features"),
                       (["--kind", "linear"], "fits a ridge model")):
        r = runner.invoke(app, ["fit", f"armpm:{path}", "--target", "power_w", "--shrink", "-o",
                                str(tmp_path / "x.json"), *extra])
        assert r.exit_code != 0 and msg in str(r.exception)


def test_sensor_lag_auto_under_kfold_is_one_lag_on_all_rows_not_pooled_folds(tmp_path, monkeypatch):
    """Shuffled k-fold (evaluate's default --cv): a lag-1 table is shorter (the last sample of every run dropped),
    so its fold i is other rows than the lag-0 table's fold i; pooling per-fold lags by fold name counted rows
    twice and missed others (132-row lag-0 table, 120-row lag-1 table, pooled n 125). Under k-fold one lag is
    chosen on all rows, and the output says so; the folds would disagree here, yet every model's n is the
    length of the table and the folds partition it."""
    import perfmodel.model.lag as lagmod
    from perfmodel.data.importers.armpm import load_armpm

    path = write_armpm(tmp_path / "a.data", samples=12, workloads=4)
    data = f"armpm:{path}"
    monkeypatch.setattr(lagmod, "fold_sensor_lags",
                        lambda df0, splits, **k: {f"fold{i}": i % 2 for i in range(len(splits))})
    r = runner.invoke(app, ["evaluate", data, "--target", "power_w", "--cv", "kfold", "--json"])
    assert r.exit_code == 0, r.output
    out = _json_out(r.output)
    sl = out["sensor_lag"]
    assert sl["lag"] == 1 and sl["per_fold"] is None and sl["chosen"] and sl["chosen_on"] == "all rows"
    assert "chosen on all rows" in sl["reason"] and "k-fold" in sl["reason"]
    n = len(load_armpm(path, sensor_lag=1))
    assert n != len(load_armpm(path, sensor_lag=0))
    ok = [row for row in out["results"] if row.get("status") == "ok"]
    assert ok
    for row in ok:
        held = [f["held_out"] for f in row["folds"]]
        assert row["n"] == n and sum(f["n_test"] for f in row["folds"]) == n  # every row once
        assert len(set(held)) == len(held) and "sensor lag per fold" not in row["scheme"]
    r = runner.invoke(app, ["evaluate", data, "--target", "power_w", "--cv", "kfold"])
    assert r.exit_code == 0, r.output
    assert "sensor lag: 1 - auto, chosen on all rows" in r.output
    assert "sensor lag 1 chosen on all rows, not re-chosen inside the folds" in " ".join(r.output.split())  # title


def test_pool_fold_rows_refuses_kfold_folds():
    from perfmodel.errors import PerfmodelError
    from perfmodel.model.lag import fold_sensor_lags, pool_fold_rows

    row = {"model": "linear", "scheme": "5-fold", "status": "ok",
           "folds": [{"held_out": "fold0", "n_test": 3, "mape": 1.0, "within_10": 1.0}]}
    with pytest.raises(PerfmodelError, match="grouped CV"):
        pool_fold_rows({0: [row], 1: [row]}, {"fold0": 0, "fold1": 1})
    with pytest.raises(PerfmodelError, match="grouped CV"):
        fold_sensor_lags(None, [], group=None)


@pytest.mark.parametrize("command", ["fit", "evaluate"])
def test_sensor_lag_auto_falls_back_to_zero_where_none_can_be_chosen(tmp_path, command):
    """A trace of about one usable sample per run (no within-run variance) has no lag to choose: auto (the
    default) uses 0, as before it existed, and says why (output, JSON, the model file's metadata)."""
    path = write_mapped_csv(tmp_path / "m.csv", samples=2, workloads=4)
    data = [f"csv:{path}", "--map", MAPPING, "--target", "power_w", "--cv", "lowo"]
    model = tmp_path / "m.json"
    extra = ["--select", "fixed", "--features", "voltage_v", "-o", str(model)] if command == "fit" else []
    r = runner.invoke(app, [command, *data, *extra])
    assert r.exit_code == 0, r.output
    assert "sensor lag: 0 - auto: no sensor lag can be chosen (" in r.output and "0 used" in r.output
    if command == "fit":
        saved = json.loads(model.read_text())
        choice = saved["metadata"]["sensor_lag_choice"]
        assert saved["preparation"]["sensor_lag"] == 0
        assert choice["fallback"] and not choice["chosen"] and "no sensor lag can be chosen" in choice["reason"]
        assert "sensor_lag" not in saved["cv"]  # nothing chosen on the held-out rows
        r = runner.invoke(app, [command, *data, *extra, "--force", "--json"])
    else:
        r = runner.invoke(app, [command, *data, "--json"])
    assert r.exit_code == 0, r.output
    sl = _json_out(r.output)["sensor_lag"]
    assert sl["lag"] == 0 and sl["fallback"] and sl["chosen_on"] is None


def test_choose_sensor_lag_fallback_without_an_event_rate():
    import pandas as pd

    from perfmodel.errors import PerfmodelError
    from perfmodel.model.lag import choose_sensor_lag

    df = pd.DataFrame({"segment": [0, 0, 0, 1, 1, 1], "power_w": [1.0, 2.0, 1.5, 1.1, 2.2, 1.7]})
    with pytest.raises(PerfmodelError, match="event rate"):
        choose_sensor_lag(df)
    c = choose_sensor_lag(df, fallback=0)
    assert c["lag"] == 0 and c["fallback"] and "event rate" in c["reason"]


def test_fit_sensor_lag_chosen_on_all_rows_is_said_in_the_cv_title_and_json(tmp_path):
    """fit chooses the lag on all rows (held-out ones included), so its CV figure is slightly optimistic: the
    CV title, the JSON summary and the model file's cv say so; a given lag says nothing of the kind."""
    path = write_armpm(tmp_path / "a.data", samples=12, workloads=4)
    model = tmp_path / "m.json"
    base = ["fit", f"armpm:{path}", "--target", "power_w", "--cv", "lowo", "-o", str(model), "--force"]
    r = runner.invoke(app, base)
    assert r.exit_code == 0, r.output
    note = "sensor lag 1 chosen on all rows, not re-chosen inside the folds"
    assert f"cross-validation ({note}" in " ".join(r.output.split())
    assert json.loads(model.read_text())["cv"]["sensor_lag"].startswith(note)
    r = runner.invoke(app, [*base, "--json"])
    assert r.exit_code == 0, r.output
    out = _json_out(r.output)
    assert out["cv"]["sensor_lag"].startswith(note) and out["sensor_lag"]["chosen_on"] == "all rows"
    r = runner.invoke(app, [*base, "--sensor-lag", "1", "--json"])
    assert r.exit_code == 0, r.output
    assert "sensor_lag" not in _json_out(r.output)["cv"]


def test_plan_fit_shrink_without_a_kind_is_ridge_like_the_cli(tmp_path):
    """The workflow, not only the CLI, maps a missing kind to ridge under shrink; a conflicting kind given
    explicitly is refused."""
    from perfmodel.errors import PerfmodelError
    from perfmodel.workflows.fit import plan_fit

    path = write_armpm(tmp_path / "a.data", samples=10, workloads=5)
    plan = plan_fit(f"armpm:{path}", "power_w", shrink=True, sensor_lag=1)
    assert plan.kind == "ridge" and plan.select == "shrink"
    assert plan_fit(f"armpm:{path}", "power_w", sensor_lag=1).kind == "linear"
    assert plan_fit(f"armpm:{path}", "power_w", kind="ridge", shrink=True, sensor_lag=1).kind == "ridge"
    with pytest.raises(PerfmodelError, match="fits a ridge model"):
        plan_fit(f"armpm:{path}", "power_w", kind="linear", shrink=True, sensor_lag=1)
    from perfmodel.workflows.fit import fit_kind

    assert (fit_kind(None), fit_kind(None, shrink=True), fit_kind("loglinear")) == ("linear", "ridge", "loglinear")

"""perfmodel fit / evaluate / predict through typer's CliRunner on a small synthetic records file."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from perfmodel.cli.app import app
from perfmodel.data import write_records
from perfmodel.model.synthetic import synthetic_power_table, synthetic_throughput_records

runner = CliRunner()


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "synth.parquet"
    write_records(path, synthetic_throughput_records(networks=("squeezenet1_1", "mobilenet_v2", "googlenet", "resnet50"),
                                                     frameworks=("litert", "onnxruntime"), threads=(1, 2)))
    return path


def test_fit_evaluate_predict(records, tmp_path):
    model = tmp_path / "tp.json"
    r = runner.invoke(app, ["fit", str(records), "--target", "throughput_fps", "--kind", "loglinear", "--cv", "lono",
                            "-o", str(model), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert "log(instructions_per_image)" in out["features"] and out["cv"]["scheme"] == "leave-one-network-out"
    assert {x["model"] for x in out["results"]} >= {"loglinear", "baseline: mean", "baseline: MACs-only"}

    r = runner.invoke(app, ["evaluate", str(records), "-t", "throughput_fps", "--cv", "lono", "--json",
                            "--features", "log(instructions_per_image),framework=onnxruntime,log(threads)"])
    assert r.exit_code == 0, r.output
    rows = {x["model"]: x for x in json.loads(r.output)["results"]}
    assert {"linear", "loglinear", "ridge", "baseline: mean"} <= set(rows)
    assert rows["loglinear"]["mape"] < rows["baseline: mean"]["mape"]

    r = runner.invoke(app, ["predict", "--model", str(model), "--dataset", str(records), "--json"])
    assert r.exit_code == 0, r.output
    pred = json.loads(r.output)["rows"]
    assert len(pred) == 16 and all(p["lo"] <= p["pred"] <= p["hi"] for p in pred)
    assert all(abs(p["pred"] - p["measured"]) / p["measured"] < 0.2 for p in pred)

    r = runner.invoke(app, ["predict", "--model", str(model), "--dataset", str(records)])
    assert r.exit_code == 0 and "predicted throughput_fps" in r.output


def test_predict_csv_needs_provenance(tmp_path):
    df = synthetic_power_table(seed=1)
    csv = tmp_path / "p.csv"
    df.to_csv(csv, index=False)
    model = tmp_path / "p.json"
    r = runner.invoke(app, ["fit", str(csv), "-t", "power_w", "--cv", "lowo", "--provenance", "real", "-o", str(model),
                            "--features", "voltage_v,instructions_per_s*voltage_v^2"])
    assert r.exit_code == 0, r.output
    from perfmodel.cli.app import main

    with pytest.raises(SystemExit) as exc:
        main(["predict", "--model", str(model), "--csv", str(csv)])
    assert exc.value.code == 2
    r = runner.invoke(app, ["predict", "--model", str(model), "--csv", str(csv), "--provenance", "real", "--json"])
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.output)["rows"]) == len(df)


def test_user_errors_exit_2_without_traceback(tmp_path, capsys):
    from perfmodel.cli.app import main

    for argv in (["predict", "--model", str(tmp_path / "none.json"), "--csv", "x.csv"],
                 ["fit", str(tmp_path / "missing"), "-t", "power_w", "-o", str(tmp_path / "m.json")]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err


def test_help_explains_commands():
    for cmd in ("fit", "evaluate", "predict"):
        r = runner.invoke(app, [cmd, "--help"])
        assert r.exit_code == 0 and "--json" in r.output

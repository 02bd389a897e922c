"""Model and input checks (issue 18): a loglog fit keeps indicators linear, implausible and malformed inputs
are refused at load naming column / row / reason, options are checked up front, one bad row costs only
itself, model files whose readable copy disagrees with their parameters are refused, a failed write
leaves no temp file, misleading messages say what is really wrong."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perfmodel.errors import PerfmodelError

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "datasets" / "reference"
THROUGHPUT = ROOT / "trained" / "throughput_reference.json"


def _cli(argv, capsys):
    """``(exit code, stdout, stderr)`` of ``perfmodel ARGV`` run in-process."""
    from perfmodel.cli.app import main

    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _loglog_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    fw = np.array(["a", "b", "c"])[np.arange(n) % 3]
    instr = rng.uniform(1e8, 5e9, n)
    faults = rng.integers(0, 3, n).astype(float)  # a count holding zeros
    faults[0] = 0.0
    fps = 1e10 / instr ** 0.9 * np.where(fw == "b", 1.5, 1.0) * np.exp(0.05 * faults) * rng.lognormal(0, 0.02, n)
    return pd.DataFrame({"framework": fw, "instructions_per_image": instr, "major_faults_per_image": faults,
                         "throughput_fps": fps})


# -- 1. loglog: indicators and columns holding 0 stay linear, and the file says which were logged -------------


def test_loglog_keeps_indicators_and_zero_columns_linear_and_predicts_the_same_after_load(tmp_path):
    from perfmodel.model import fit_model, load_model, save_model

    df = _loglog_frame()
    feats = ["instructions_per_image", "framework=b", "framework=c", "major_faults_per_image"]
    model = fit_model(df, "throughput_fps", feats, kind="loglog", select="fixed", provenance="real")
    d = model.to_dict()
    assert d["transforms"]["log_columns"] == ["instructions_per_image"]
    assert [r["term"] for r in d["coefficients"]] == ["intercept", "log(instructions_per_image)", "framework=b",
                                                       "framework=c", "major_faults_per_image"]
    # the fit recovers the power law: log(fps) = c - 0.9 log(instr) + log(1.5) [b] + 0.05 faults
    coef = dict(zip(model.coefficients()["term"], model.coefficients()["coef"]))
    assert coef["log(instructions_per_image)"] == pytest.approx(-0.9, abs=0.02)
    assert coef["framework=b"] == pytest.approx(np.log(1.5), abs=0.02)
    assert coef["major_faults_per_image"] == pytest.approx(0.05, abs=0.02)
    path = save_model(model, tmp_path / "m.json")
    back = load_model(path)
    a = model.predict_frame(df, provenance="real")["pred"]
    b = back.predict_frame(df, provenance="real")["pred"]
    assert np.array_equal(a.to_numpy(), b.to_numpy())
    by_hand = np.exp(coef["intercept"] + coef["log(instructions_per_image)"] * np.log(df["instructions_per_image"])
                     + coef["framework=b"] * (df["framework"] == "b") + coef["framework=c"] * (df["framework"] == "c")
                     + coef["major_faults_per_image"] * df["major_faults_per_image"])
    assert np.allclose(a, by_hand, rtol=1e-9)


def test_loglog_file_with_partial_logs_needs_schema_3(tmp_path):
    """A reader of schema 2 would log every feature: such a file must not claim to be schema 2."""
    from perfmodel.model import ModelFileError, fit_model
    from perfmodel.model.modelfile import ModelFile

    model = fit_model(_loglog_frame(), "throughput_fps", ["instructions_per_image", "framework=b"], kind="loglog",
                      select="fixed", provenance="real")
    d = model.to_dict()
    assert d["schema_version"] == 3
    d["schema_version"] = 2
    with pytest.raises(ModelFileError, match="log_columns.*schema_version >= 3"):
        ModelFile.from_dict(_resealed(d))


def test_loglog_on_the_reference_fits_through_the_cli(tmp_path, capsys):
    out = tmp_path / "ll.json"
    code, stdout, err = _cli(["fit", REFERENCE, "--target", "throughput_fps", "--kind", "loglog", "--terms",
                              "throughput", "-o", out], capsys)
    assert code in (0, None), err
    d = json.loads(out.read_text())
    logged = d["transforms"]["log_columns"]
    assert not any("=" in f for f in logged)  # no indicator, nor a term with one, is logged
    assert "log(instructions_per_image)" in logged


def _resealed(d: dict) -> dict:
    import hashlib

    from perfmodel.model.modelfile import _canonical

    body = {k: v for k, v in d.items() if k != "checksum"}
    d["checksum"] = "sha256:" + hashlib.sha256(_canonical(body)).hexdigest()
    return d


# -- 14. the readable coefficients must agree with the parameters; a failed write leaves no temp file ------------


def test_coefficients_that_disagree_with_the_parameters_are_refused(tmp_path):
    from perfmodel.model import ModelFileError, load_model

    d = json.loads(THROUGHPUT.read_text())
    d["coefficients"][1]["coef"] = d["coefficients"][1]["coef"] * 2 + 1.0  # what a reader sees, not what predicts
    bad = tmp_path / "forged.json"
    bad.write_text(json.dumps(_resealed(d)))  # a valid checksum: integrity alone does not catch it
    with pytest.raises(ModelFileError, match="'coefficients'.*disagrees"):
        load_model(bad)
    d = json.loads(THROUGHPUT.read_text())
    d["coefficients"][2]["term"] = "log(something_else)"
    bad.write_text(json.dumps(_resealed(d)))
    with pytest.raises(ModelFileError, match="'coefficients' lists terms"):
        load_model(bad)
    load_model(THROUGHPUT)  # the shipped file agrees with itself


def test_failed_model_write_leaves_no_temp_file(tmp_path):
    from perfmodel.model import load_model, save_model

    model = load_model(THROUGHPUT)
    out = tmp_path / "m.json"
    out.mkdir()
    (out / "x").write_text("a folder in the way: the rename fails")
    with pytest.raises((PerfmodelError, OSError)):
        save_model(model, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_atomic_write_removes_its_temp_file_on_a_full_disk(tmp_path, monkeypatch):
    import errno

    from perfmodel import paths

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(paths.os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        paths.atomic_write_bytes(tmp_path / "f.json", b"{}")
    assert list(tmp_path.iterdir()) == []


# -- 11. model paths: a device is refused for what it is, a pipe is read -------------------------------------


def test_model_from_dev_zero_is_refused_for_what_it_is():
    from perfmodel.model import ModelFileError, load_model

    with pytest.raises(ModelFileError) as exc:
        load_model("/dev/zero")
    assert "does not exist" not in str(exc.value) and "never ends" in str(exc.value)


def test_model_from_a_pipe_is_read(tmp_path):
    import threading

    from perfmodel.model import load_model

    fifo = tmp_path / "m.fifo"
    os.mkfifo(fifo)
    text = THROUGHPUT.read_bytes()

    def feed():
        with open(fifo, "wb") as fh:
            fh.write(text)

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    model = load_model(fifo)
    t.join(10)
    assert model.target == "throughput_fps"


ARMPM = ROOT.parent / "shared" / "data" / "armpm-parsec" / "xu3_cset_perfcpu_PARSEC_eMMC_big.data"


@pytest.fixture
def small_armpm(tmp_path) -> Path:
    """The first 200 lines of the published ARMPM file."""
    if not ARMPM.is_file():
        pytest.skip("shared ARMPM data not present")
    path = tmp_path / "small.data"
    with open(ARMPM, encoding="utf-8") as fh:
        path.write_text("".join(next(fh) for _ in range(200)), encoding="utf-8")
    return path


def test_armpm_extra_trailing_column_is_named_as_such(small_armpm):
    from perfmodel.data.importers.armpm import load_armpm

    lines = small_armpm.read_text().splitlines()
    small_armpm.write_text("\n".join([lines[0]] + [ln + "\t7" for ln in lines[1:]]) + "\n")
    with pytest.raises(PerfmodelError) as exc:
        load_armpm(small_armpm)
    msg = str(exc.value)
    assert "data line 1 has 23" in msg and "header names 22" in msg and "extra trailing column" in msg
    assert "non-numeric" not in msg


def test_armpm_folder_is_not_called_missing(tmp_path, capsys):
    code, _, err = _cli(["fit", f"armpm:{tmp_path}", "--target", "power_w", "-o", tmp_path / "m.json"], capsys)
    assert code == 2 and "is a folder, not an ARMPM file" in err and "not found" not in err


def _copy_dataset(tmp_path) -> Path:
    import shutil

    dst = tmp_path / "ds"
    shutil.copytree(REFERENCE, dst)
    return dst


def test_unreadable_records_folder_is_said_not_no_cells(tmp_path, capsys, monkeypatch):
    ds = _copy_dataset(tmp_path)
    records = str(ds / "records")
    real = os.listdir

    def listdir(path="."):  # as a non-root user with chmod 000 records/ sees it (root reads anything)
        if str(path) == records:
            raise PermissionError(13, "Permission denied", records)
        return real(path)

    monkeypatch.setattr(os, "listdir", listdir)
    monkeypatch.setattr("pathlib.Path.glob", lambda self, pattern: iter(()))  # what glob gives on such a folder
    code, _, err = _cli(["select", ds], capsys)
    assert code == 2 and "cannot be read (Permission denied)" in err and "no framework x network" not in err
    code, _, err = _cli(["fit", ds, "--target", "throughput_fps", "-o", tmp_path / "m.json"], capsys)
    assert code == 2 and "cannot be read (Permission denied)" in err


# -- 9. numeric options are checked up front, naming the option ------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--vif-cap", "nan"], "--vif-cap must be a number >= 1"),
    (["--vif-cap", "-1"], "--vif-cap must be a number >= 1"),
    (["--vif-cap", "inf"], "--vif-cap must be a number >= 1"),
    (["--max-features", "0"], "--max-features must be a number >= 1"),
    (["--sensor-lag", "-1"], "--sensor-lag must be auto or a whole number >= 0"),
    (["--l2-kib", "0", "--terms", "throughput-l2"], "--l2-kib must be a number > 0"),
], ids=["vif-nan", "vif-negative", "vif-inf", "max-features-0", "sensor-lag", "l2-kib"])
def test_fit_options_are_checked_up_front(tmp_path, capsys, args, message):
    code, _, err = _cli(["fit", REFERENCE, "--target", "throughput_fps", "-o", tmp_path / "m.json", *args], capsys)
    assert code == 2 and message in err and "stepwise selection" not in err
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("args, message", [
    (["--alpha", "nan"], "--alpha must be a number > 0 and < 1"),
    (["--alpha", "1.5"], "--alpha must be a number > 0 and < 1"),
    (["--images", "0"], "--images must be a number >= 1"),
    (["--seconds", "nan"], "--seconds must be a number > 0"),
    (["--threads", "0"], "--threads must be a number >= 1"),
], ids=["alpha-nan", "alpha-big", "images-0", "seconds-nan", "threads-0"])
def test_predict_options_are_checked_up_front(tmp_path, capsys, args, message):
    code, _, err = _cli(["predict", "-m", THROUGHPUT, "--framework", "litert", "--network", "squeezenet1_1",
                         *args], capsys)
    assert code == 2 and message in err


def test_evaluate_sensor_lag_is_checked_up_front(capsys):
    code, _, err = _cli(["evaluate", REFERENCE, "--target", "throughput_fps", "--sensor-lag", "-2"], capsys)
    assert code == 2 and "--sensor-lag must be auto or a whole number >= 0" in err


def test_fit_model_api_checks_its_numbers():
    from perfmodel.model import fit_model

    for kw in ({"vif_cap": float("nan")}, {"vif_cap": -1.0}, {"max_features": 0}):
        with pytest.raises(PerfmodelError, match="max_features|vif_cap"):
            fit_model(_loglog_frame(), "throughput_fps", kind="linear", **kw)


# -- 10. predict --csv: one bad row gets n/a and its reason, the others are printed -------------------------


@pytest.mark.parametrize("bad", [-3.0, "abc", float("nan")], ids=["negative", "string", "nan"])
def test_one_bad_row_in_a_log_feature_costs_only_itself(tmp_path, capsys, bad):
    from perfmodel.model import fit_model, save_model

    df = _loglog_frame(30)
    feats = ["instructions_per_image", "framework=b", "framework=c"]
    save_model(fit_model(df, "throughput_fps", feats, kind="loglog", select="fixed", provenance="real"),
               tmp_path / "m.json")
    sample = df.drop(columns="throughput_fps").astype({"instructions_per_image": object})
    sample.loc[4, "instructions_per_image"] = bad
    sample.to_csv(tmp_path / "s.csv", index=False)
    code, out, err = _cli(["predict", "-m", tmp_path / "m.json", "--csv", tmp_path / "s.csv", "--provenance",
                           "real", "--json"], capsys)
    assert code in (0, None), err
    rows = json.loads(out)["rows"]
    assert len(rows) == 30
    assert rows[4]["pred"] is None and all(r["pred"] > 0 for i, r in enumerate(rows) if i != 4)
    if bad != bad:  # NaN: no value, said as such
        assert "NaN" in rows[4]["not_evaluated"]
    else:
        assert "instructions_per_image" in rows[4]["not_evaluated"]
        assert ("<= 0" if bad == -3.0 else "'abc' is not a number") in rows[4]["not_evaluated"]
    code, out, err = _cli(["predict", "-m", tmp_path / "m.json", "--csv", tmp_path / "s.csv", "--provenance",
                           "real"], capsys)
    assert code in (0, None) and "not evaluated" in out and "1 of 30 row(s) could not be predicted" in err


# -- 7. physically impossible and non-numeric values are refused at load: column, row, reason ---------------


def test_implausible_latency_in_records_is_refused_at_load(tmp_path):
    from perfmodel.data import SchemaError, read_dataset, write_dataset

    records = read_dataset(REFERENCE)
    cell = records["cell_id"].iloc[0]
    records = records[records["cell_id"] == cell].reset_index(drop=True)
    hit = records.index[(records["metric"] == "latency_ms") & records["value"].notna()][3]
    records.loc[hit, "value"] = 1e308
    with pytest.raises(SchemaError) as exc:  # refused before it is written ...
        write_dataset(tmp_path / "ds", records, {})
    msg = str(exc.value)
    assert "physically possible" in msg and "latency_ms" in msg and "1e+308" in msg and str(hit) in msg


def test_implausible_latency_in_a_records_file_is_refused_on_read(tmp_path):
    """... and on read, where a file was edited or written by another tool (not a mean that drops it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from perfmodel.data import SchemaError, read_records, write_records

    records = pd.read_parquet(next((REFERENCE / "records").glob("*.parquet")))
    path = tmp_path / "r.parquet"
    write_records(path, records)
    table = pq.read_table(path)
    values = table.column("value").to_numpy(zero_copy_only=False).copy()
    metric = table.column("metric").to_pylist()
    i = next(j for j, m in enumerate(metric) if m == "latency_ms" and np.isfinite(values[j]))
    values[i] = 1e308
    pq.write_table(table.set_column(table.schema.get_field_index("value"), "value", pa.array(values)), path)
    with pytest.raises(SchemaError, match=r"physically possible.*latency_ms"):
        read_records(path)


def _csv_of_reference(tmp_path) -> tuple[Path, pd.DataFrame]:
    from perfmodel.workflows.load import load_table

    df = load_table(str(REFERENCE)).frame
    path = tmp_path / "wide.csv"
    df.to_csv(path, index=False)
    return path, pd.read_csv(path)


@pytest.mark.parametrize("column, value, reason", [
    ("instructions_per_image", 1e300, "1e+300 is outside the possible range"),
    ("threads", "two", "'two' is not a number"),
    ("threads", 2.5, "2.5 is not a whole number"),
    ("latency_ms", -4.0, "-4 is outside the possible range"),
], ids=["instructions-1e300", "threads-two", "threads-2.5", "latency-negative"])
def test_impossible_csv_value_is_refused_at_load_naming_column_and_row(tmp_path, capsys, column, value, reason):
    path, df = _csv_of_reference(tmp_path)
    df = df.astype({column: object})
    df.loc[7, column] = value
    df.to_csv(path, index=False)
    code, _, err = _cli(["fit", path, "--target", "throughput_fps", "--provenance", "simulated", "--select", "fixed",
                         "--features", "instructions_per_image", "-o", tmp_path / "m.json"], capsys)
    assert code == 2 and f"column {column!r}" in " ".join(err.split()) and "row 7 (line 9)" in err
    assert reason in " ".join(err.split())
    assert not (tmp_path / "m.json").exists()


# -- 8. a column named twice in a CSV header is refused, naming it ------------------------------------------


def test_duplicated_csv_header_is_refused(tmp_path, capsys):
    path, df = _csv_of_reference(tmp_path)
    text = path.read_text().splitlines()
    header = text[0].split(",")
    j = header.index("l1d_accesses_per_image")
    header[j] = "instructions_per_image"
    path.write_text("\n".join([",".join(header)] + text[1:]) + "\n")
    for argv in (["fit", path, "--target", "throughput_fps", "--provenance", "simulated", "-o", tmp_path / "m.json"],
                 ["predict", "-m", THROUGHPUT, "--csv", path, "--provenance", "simulated"]):
        code, out, err = _cli(argv, capsys)
        msg = " ".join(err.split())
        assert code == 2 and "'instructions_per_image' (columns" in msg and "more than once" in msg and out == ""


# -- 16. ONNX export: big weights never pass through tf2onnx as constants ------------------------------------


def test_onnx_export_feeds_big_weights_as_inputs_and_stores_them_as_initializers(tmp_path, monkeypatch):
    """VGG-11's FC kernel as a constant was copied by every tf2onnx pass (killed at 24 GB); a small network
    with a threshold below its Dense kernel takes the same path here, in seconds."""
    import keras
    import onnx
    import onnxruntime as ort
    import tf2onnx

    import importlib

    ex = importlib.import_module("perfmodel.zoo.export")

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(100, activation="softmax")])
    monkeypatch.setattr(ex, "ONNX_BIG_WEIGHT_BYTES", 64 << 10, raising=False)  # the 14*14*8 x 100 kernel: 627 KB
    real = tf2onnx.convert.from_keras

    def from_keras(m, *a, **kw):
        biggest = max(int(np.prod(v.shape)) * 4 for v in m.trainable_variables)
        assert biggest <= 64 << 10, f"a {biggest}-byte weight given to tf2onnx as a constant"
        return real(m, *a, **kw)

    monkeypatch.setattr(tf2onnx.convert, "from_keras", from_keras)
    out = tmp_path / "m.onnx"
    ex._build_onnx(model, 16, out)
    proto = onnx.load(str(out))
    assert [i.name for i in proto.graph.input] == ["input"]
    kernel = model.layers[-1].kernel.numpy()
    assert any(np.array_equal(onnx.numpy_helper.to_array(t), kernel) for t in proto.graph.initializer)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 16, 16, 3)).astype("float32")
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(
        None, {"input": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0]
    assert np.allclose(got, model(x, training=False).numpy(), rtol=1e-5, atol=1e-6)


# -- 15. a command that hangs is ended, with its children, and the user is told -----------------------------


HANGS = "sleep 600 & echo $! > {pid}; wait"  # a child of the command keeps its stderr open


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as fh:  # a zombie waiting for its reaper is gone too
        return fh.read().split(")")[-1].split()[0] == "Z"


def test_measure_command_ends_a_hanging_command_and_its_children(tmp_path):
    """Run in a child process with a guard (a wait for the child's pipe must never hang the test); before, the
    command alone was killed and its child ran on."""
    import subprocess
    import sys

    pid = tmp_path / "pid"
    code = ("from perfmodel.collect.command import measure_command\n"
            "from perfmodel.errors import PerfmodelError\n"
            "try:\n"
            f"    measure_command(['sh', '-c', {HANGS.format(pid=pid)!r}], 1, counters='software', timeout=1)\n"
            "except PerfmodelError as exc:\n"
            "    print('refused:', exc)\n")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        sleeper_gone = _gone(int(pid.read_text()))  # the command's child, not only the command, was ended
    except subprocess.TimeoutExpired:
        pytest.fail("measure_command did not return after its timeout (the command's child held its pipe)")
    finally:
        if pid.exists():  # never leave the sleeper behind, whatever happened
            try:
                os.kill(int(pid.read_text()), 9)
            except (ProcessLookupError, ValueError):
                pass
    assert "refused: command did not finish within 1 s" in proc.stdout, proc.stdout + proc.stderr
    assert "ended it and its child processes" in proc.stdout and sleeper_gone


def test_predict_command_timeout_ends_the_process_group(tmp_path, capsys):
    from perfmodel.model import fit_model, save_model

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"minor_faults_per_image": rng.uniform(1e3, 1e4, 20)})
    df["throughput_fps"] = 5.0 + df["minor_faults_per_image"] * 1e-3 + rng.normal(0, 0.01, 20)
    save_model(fit_model(df, "throughput_fps", ["minor_faults_per_image"], kind="linear", select="fixed",
                         provenance="software"), tmp_path / "m.json")
    pid = tmp_path / "pid"
    code, out, err = _cli(["predict", "-m", tmp_path / "m.json", "--counters", "software", "--images", "1",
                           "--timeout", "1", "--", "sh", "-c", HANGS.format(pid=pid)], capsys)
    try:
        msg = " ".join(err.split())
        assert code == 2 and "did not finish within 1 s" in msg and "ended it and its child processes" in msg
        assert _gone(int(pid.read_text()))
    finally:
        if pid.exists():
            try:
                os.kill(int(pid.read_text()), 9)
            except (ProcessLookupError, ValueError):
                pass
    code, _, err = _cli(["predict", "-m", tmp_path / "m.json", "--timeout", "0", "--", "true"], capsys)
    assert code == 2 and "--timeout must be a number > 0" in err

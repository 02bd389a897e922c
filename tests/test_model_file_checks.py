"""Model files checked beyond their checksum (hand-made files with wrong field types or values), the
out-of-range warning of small counts, negative counts, and the provenance of a derived column.

A checksum only proves integrity: every case below rewrites the checksum, as someone making a file by
hand (or by a script) would."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perfmodel.data.provenance import Provenance, Table
from perfmodel.errors import PerfmodelError
from perfmodel.model import IncompatibleSampleError, ModelFileError, fit_model, load_model, save_model
from perfmodel.model.modelfile import ModelFile, _canonical

ROOT = Path(__file__).resolve().parents[1]
THROUGHPUT = ROOT / "trained" / "throughput_reference.json"
POWER = ROOT / "trained" / "power_armpm_xu3_a15.json"
#: the shipped throughput file as it was before fits stored ``training.active_ranges`` (A53-geometry counts)
OLD_THROUGHPUT = ROOT / "tests" / "data" / "models" / "throughput_reference_before_active_ranges.json"
INSTR = "instructions_per_image*framework=litert*threads=1"


def _resealed(d: dict) -> dict:
    body = {k: v for k, v in d.items() if k != "checksum"}
    d["checksum"] = "sha256:" + hashlib.sha256(_canonical(body)).hexdigest()
    return d


def _edited(src: Path, edit) -> dict:
    d = json.loads(src.read_text())
    edit(d)
    return _resealed(d)


def _set(path: str, value):
    """An edit that sets ``d[a][b]...`` (keys split on '/', list indexes as digits)."""
    def edit(d):
        keys = path.split("/")
        for k in keys[:-1]:
            d = d[int(k)] if isinstance(d, list) else d[k]
        last = keys[-1]
        d[int(last) if isinstance(d, list) else last] = value
    return edit


def _drop(path: str):
    def edit(d):
        keys = path.split("/")
        for k in keys[:-1]:
            d = d[k]
        del d[keys[-1]]
    return edit


HEX = float.hex
BAD_THROUGHPUT = [
    # (edit, field named in the message)
    (_set("metadata", "x"), "'metadata' must be an object"),
    (_set("training", []), "'training' must be an object"),
    (_set("column_provenance/instructions_per_image", "simulated"),
     "'column_provenance.instructions_per_image' must be a list"),
    (_set("provenance/l2d_refills_per_image", "simulated"), "'provenance.l2d_refills_per_image' must be a list"),
    (_set("kind", "banana"), "'kind' is 'banana', not a model kind"),
    (_set("kind", 7), "'kind' must be a non-empty string"),
    (_set("kind", "linear"), "'transforms.rate' (time linear) does not fit model kind linear"),
    (_set("target", ""), "'target' must be a non-empty string"),
    (_set("params/n_features", "12"), "'params.n_features' must be an integer"),
    (_set("params/n_features", 11), "'params.n_features' is 11"),
    (_set("params/sigma2", HEX(-1.0)), "'params.sigma2' must be >= 0"),
    (_set("params/sigma2", "nan"), "'params.sigma2' must be finite"),
    (_set("params/dof_resid", HEX(-3.0)), "'params.dof_resid' must be >= 0"),
    (_set("params/coef/0", "nan"), "'params.coef' must be finite"),
    (_set("params/coef/0", 1.5), "'params.coef' must be a float.hex string"),
    (_set("params/coef/0", HEX(-1.0)), "costs (coef) >= 0"),
    (_set("params/scaler_scale/0", HEX(0.0)), "'params.scaler_scale' must be > 0"),
    (_set("params/cov_unscaled/1/1", HEX(-1.0)), "'params.cov_unscaled' is not a covariance"),
    (_set("params/cov_unscaled/1/2", HEX(5.0)), "'params.cov_unscaled' is not a covariance"),
    (_set("params/coef", "abc"), "'params.coef' must be a list"),
    (_drop("params/intercept"), "'params.intercept' is missing"),
    (_set("params", []), "'params' must be an object"),
    (_set("transforms/log_target", "false"), "'transforms.log_target' must be true or false"),
    (_set("transforms/rate/overhead", HEX(-1.0)), "'transforms.rate.overhead' must be >= 0"),
    (_set("transforms/rate/scale", "inf"), "'transforms.rate.scale' must be finite"),
    (_set("transforms/rate/time", "cubic"), "'transforms.rate.time' must be 'log' or 'linear'"),
    (_set("features", "fc_stream_ms"), "'features' must be a list of strings"),
    (_set("features/0", "l2d_refills_per_image"), "'features' has duplicates"),
    (_set("features/0", "log(("), "'features' holds an invalid feature"),
    (_drop("column_provenance/l1d_refills_per_image"), "missing l1d_refills_per_image"),
    (_set("levels", ["litert"]), "'levels' must be an object"),
    (_set("levels/framework", "litert"), "'levels.framework' must be a list"),
    (_set("levels/network", ["alexnet"]), "'levels' names column(s) network"),
    (_set("training/ranges/l2d_refills_per_image", [5, 1]), "lo 5 > hi 1"),
    (_set("training/ranges/nope", [0, 1]), "'training.ranges.nope' is not one of the model's features"),
    (_set("training/fixed_coefficients", ["fc_stream_ms"]), "'training.fixed_coefficients' must be an object"),
    (_set("metadata/gemm_gflops", {"1": "fast"}), "'metadata.gemm_gflops.1' must be a number"),
    (_set("metadata/gemm_gflops", {"one": 100.0}), "'metadata.gemm_gflops.one' is not a thread count"),
    (_set("metadata/stream_bandwidth_gbps", {"1": -2.0}), "'metadata.stream_bandwidth_gbps.1' must be > 0"),
    (_set("metadata/sensor_lag", "1"), "'metadata.sensor_lag' must be null or a whole number"),
    (_set("metadata/excluded", {"rules": "framework=litert"}), "'metadata.excluded.rules' must be a list"),
    (_set("cv", {"results": "none"}), "'cv.results' must be a list of objects"),
    (_set("versions", {"numpy": 2}), "'versions.numpy' must be a string"),
]


@pytest.mark.parametrize("edit, message", BAD_THROUGHPUT, ids=[m for _, m in BAD_THROUGHPUT])
def test_hand_made_file_with_wrong_field_is_refused_naming_the_field(tmp_path, edit, message):
    d = _edited(THROUGHPUT, edit)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(d))
    with pytest.raises(ModelFileError) as err:
        load_model(path)
    text = str(err.value)
    assert message in text and "\n" not in text and str(path) in text


def test_schema_1_power_file_fields_are_checked_too(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(_edited(POWER, _set("column_provenance/voltage_v", "real"))))
    with pytest.raises(ModelFileError, match="'column_provenance.voltage_v' must be a list"):
        load_model(path)
    path.write_text(json.dumps(_edited(POWER, _set("transforms/rate", {"scale": HEX(1.0), "overhead": HEX(0.0)}))))
    with pytest.raises(ModelFileError, match="schema_version >= 2"):
        load_model(path)


@pytest.mark.parametrize("path", [THROUGHPUT, POWER], ids=["throughput", "power"])
def test_shipped_files_load_and_write_back_identically(path):
    """The checks accept the shipped files as they are, and change nothing in them but the layout: the
    preparation keys their metadata holds (files before schema 4) move to the typed ``preparation``."""
    from perfmodel.model.schema import PREPARATION_KEYS

    d = json.loads(path.read_text())
    assert d["schema_version"] < 4 and "preparation" not in d  # the shipped files are of the older layout
    back = load_model(path).to_dict()
    # written back as the current schema (hence a new checksum); nothing else moves
    skip = ("schema_version", "checksum", "metadata", "preparation")
    assert {k: v for k, v in back.items() if k not in skip} == {k: v for k, v in d.items() if k not in skip}
    moved = {k: v for k, v in d["metadata"].items() if k in PREPARATION_KEYS}
    assert moved and back["schema_version"] == 4
    assert back["metadata"] == {k: v for k, v in d["metadata"].items() if k not in moved}
    assert back["preparation"] == {k: v for k, v in moved.items() if v is not None}
    assert ModelFile.from_dict(back).to_dict() == back  # the new layout writes back identically


def test_bad_field_is_a_one_line_cli_error(tmp_path, capsys):
    from perfmodel.cli.app import main

    bad = tmp_path / "m.json"
    bad.write_text(json.dumps(_edited(THROUGHPUT, _set("metadata", "x"))))
    _reference_row().to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--model", str(bad), "--csv", str(tmp_path / "s.csv"), "--provenance", "simulated"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'metadata' must be an object" in err and "Traceback" not in err


# -- out-of-range: zero and tiny counts ---------------------------------------------------------------


def _reference_row(**over) -> pd.DataFrame:
    """One litert, 1-thread sample with counts inside the shipped throughput model's training range."""
    row = {"framework": "litert", "threads": 1, "network": "googlenet", "instructions_per_image": 5.0e8,
           "l2d_refills_per_image": 5.0e6, "l1d_refills_per_image": 2.0e7, "fc_stream_ms": 0.2}
    row.update(over)
    return pd.DataFrame([row])


def test_old_file_flags_zero_and_tiny_counts():
    """A file fitted before active ranges existed stores its ranges over all rows (an interaction term's minimum is the 0 of the
    other frameworks' rows): a zero count where the term is on is still flagged, and a count below the
    plain term's minimum (no widening below 0)."""
    m = load_model(OLD_THROUGHPUT)
    assert "active_ranges" not in m.training
    assert (m.out_of_range(_reference_row()) == "").all()
    zero = m.out_of_range(_reference_row(instructions_per_image=0.0)).iloc[0]
    assert f"{INSTR}=0 (trained 0..1.085e+09, 0 only where the term is off)" in zero
    # the 1-thread row leaves the 2-thread and other frameworks' terms alone (0 there by construction)
    assert "threads=2" not in zero and "onnxruntime" not in zero
    tiny = m.out_of_range(_reference_row(l2d_refills_per_image=239.0)).iloc[0]  # `true` under valgrind
    assert tiny.startswith("l2d_refills_per_image=239 (trained 8.69e+05..")
    # every count 0: each count term is named
    allzero = m.out_of_range(_reference_row(instructions_per_image=0.0, l2d_refills_per_image=0.0,
                                            l1d_refills_per_image=0.0)).iloc[0]
    assert allzero.count("=0 (trained") == 3
    # a little below the minimum (inside the widening) is no extrapolation
    assert (m.out_of_range(_reference_row(l2d_refills_per_image=869046.5 * 0.97)) == "").all()


def test_shipped_file_flags_tiny_counts_of_an_active_term():
    """The shipped file stores each term's range where it is on: a tiny instruction count of the row's own
    framework x threads is flagged, and the other terms (off in this row) are left alone."""
    m = load_model(THROUGHPUT)
    assert INSTR in m.training["active_ranges"]
    assert (m.out_of_range(_reference_row()) == "").all()
    tiny = m.out_of_range(_reference_row(instructions_per_image=1.0e3)).iloc[0]
    assert tiny.startswith(f"{INSTR}=1000 (trained") and "threads=2" not in tiny and "onnxruntime" not in tiny


@pytest.fixture(scope="module")
def additive():
    from perfmodel.data import wide_per_cell
    from perfmodel.model.features import additive_throughput_terms, join_simulated
    from perfmodel.model.synthetic import synthetic_throughput_records

    recs = synthetic_throughput_records(networks=("squeezenet1_1", "mobilenet_v2", "googlenet", "resnet50"),
                                        frameworks=("litert", "onnxruntime"), threads=(1, 2), seed=2,
                                        noise=0.01, overhead_ms=300.0)
    table = join_simulated(wide_per_cell(recs))
    terms = additive_throughput_terms(table.frame, memory=("llc_misses_per_image",))
    return table, fit_model(table, "throughput_fps", terms, kind="overhead-linear", groups="lono", select="fixed",
                            baselines=False)


def test_new_fit_records_ranges_where_each_term_is_on(additive, tmp_path):
    table, model = additive
    df = table.frame
    ar = model.training["active_ranges"]
    on = (df["framework"] == "litert") & (df["threads"].astype(int) == 1)
    f = "instructions_per_image*framework=litert*threads=1"
    assert ar[f] == [df.loc[on, "instructions_per_image"].min(), df.loc[on, "instructions_per_image"].max()]
    assert ar[f][0] > 0 and model.training["ranges"][f][0] == 0  # the all-rows range keeps its old meaning
    back = load_model(save_model(model, tmp_path / "m.json"))
    assert back.training["active_ranges"] == ar
    assert (back.out_of_range(df) == "").all()  # the training rows themselves
    # a tiny (not zero) count of an interaction term is flagged where the term is on, and only there
    small = df[on].head(1).copy()
    small["instructions_per_image"] = ar[f][0] / 100
    note = back.out_of_range(table.with_frame(small)).iloc[0]
    assert note.startswith(f"{f}=") and "trained" in note and "onnxruntime" not in note


def test_widening_below_a_positive_minimum_never_reaches_zero():
    from perfmodel.model.synthetic import synthetic_power_table

    power = synthetic_power_table(seed=4)
    feats = ["voltage_v", "instructions_per_s*voltage_v^2", "l2d_accesses_per_s*voltage_v^2"]
    m = fit_model(power, "power_w", feats, kind="linear", groups="lowo", select="fixed", baselines=False)
    lo, hi = m.training["active_ranges"]["l2d_accesses_per_s*voltage_v^2"]
    assert 0 < lo < 0.05 * (hi - lo)  # the old 5 % width widening went below 0 here
    row = power.frame.head(1).copy()
    row["l2d_accesses_per_s"] = 0.0
    assert "l2d_accesses_per_s*voltage_v^2=0 (trained" in m.out_of_range(row).iloc[0]


# -- negative counts ---------------------------------------------------------------------------------


def test_negative_count_is_refused_and_never_gives_a_lone_bound():
    m = load_model(THROUGHPUT)
    neg = _reference_row(instructions_per_image=-5.0e8)
    with pytest.raises(IncompatibleSampleError, match=r"counts >= 0.*1 row\(s\) have negative values in "
                                                      r"instructions_per_image\*framework=litert\*threads=1"):
        m.predict_frame(neg, provenance="simulated")
    # the parameters alone: a time part <= 0 gives no prediction and no bound
    X = np.zeros((2, len(m.features)))
    X[:, m.features.index(INSTR)] = [5.0e8, -5.0e9]
    for alpha in (0.05, None):
        pred, lo, hi = m.params.predict(X, alpha)
        assert np.isfinite(pred[0]) and np.isnan([pred[1], lo[1], hi[1]]).all()
    pred, lo, hi = m.params.predict(X[:1], None)  # no interval asked: no bound either
    assert np.isnan([lo[0], hi[0]]).all()


# -- provenance of a derived (known-time) column -----------------------------------------------------


def test_csv_with_its_own_stream_time_is_predicted():
    """fc_stream_ms is recorded with no measurement behind it ([]): a CSV's --provenance label is meant
    for its counters and does not apply to it."""
    m = load_model(THROUGHPUT)
    assert m.column_provenance["fc_stream_ms"] == []
    row = _reference_row()  # a CSV: no provenance
    p = m.predict_frame(row, provenance="simulated")
    assert np.isfinite(p.to_numpy()).all()
    with pytest.raises(IncompatibleSampleError) as err:
        m.predict_frame(row, provenance="derived")
    text = str(err.value)
    assert "instructions_per_image: sample is derived, model was trained on simulated" in text
    assert "fc_stream_ms" not in text
    # a column -> provenance mapping that names the column is still compared
    with pytest.raises(IncompatibleSampleError, match="fc_stream_ms: sample is real, model was trained on derived"):
        m.predict_frame(row, provenance={"instructions_per_image": "simulated", "l2d_refills_per_image": "simulated",
                                         "l1d_refills_per_image": "simulated", "fc_stream_ms": "real"})
    # so is the provenance of a data set's table
    rec = Table(row, Provenance({c: "simulated" for c in ("instructions_per_image", "l2d_refills_per_image",
                                                           "l1d_refills_per_image", "fc_stream_ms")}))
    with pytest.raises(IncompatibleSampleError, match="fc_stream_ms: sample is simulated"):
        m.predict_frame(rec)


def test_provenance_message_is_never_self_contradictory():
    m = load_model(THROUGHPUT)
    mixed = copy.deepcopy(m)
    mixed.column_provenance = {**m.column_provenance, "instructions_per_image": ["real", "simulated"]}
    row = _reference_row()
    # "real+simulated" given as one label is the same as the model's two
    assert np.isfinite(mixed.predict_frame(row, provenance={"instructions_per_image": "real+simulated",
                                                            "l2d_refills_per_image": "simulated",
                                                            "l1d_refills_per_image": "simulated"}).to_numpy()).all()
    with pytest.raises(IncompatibleSampleError) as err:
        mixed.predict_frame(row, provenance="real")
    for part in str(err.value).split(" - ", 1)[1].split("; "):
        got, want = part.split(": sample is ", 1)[1].split(", model was trained on ")
        assert got != want.split(" (")[0], part


def test_csv_with_stream_time_through_the_cli(tmp_path):
    from typer.testing import CliRunner

    from perfmodel.cli.app import app

    csv = tmp_path / "s.csv"
    _reference_row().to_csv(csv, index=False)
    res = CliRunner().invoke(app, ["predict", "--model", str(THROUGHPUT), "--csv", str(csv),
                                   "--provenance", "simulated", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output[res.output.index("{"):])["rows"]
    assert len(rows) == 1 and np.isfinite(rows[0]["pred"])


def test_model_file_is_built_only_from_checked_fields():
    """from_dict on a dict (not a file) runs the same checks."""
    d = _edited(THROUGHPUT, _set("training", "ranges"))
    with pytest.raises(ModelFileError, match="'training' must be an object"):
        ModelFile.from_dict(d)


def test_save_refuses_a_model_that_would_not_load_back(tmp_path):
    m = load_model(THROUGHPUT)
    m.metadata = {**m.metadata, "sensor_lag": -1}
    with pytest.raises(PerfmodelError, match="cannot write .*'metadata.sensor_lag' must be null or a whole number"):
        save_model(m, tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


def test_deeply_nested_file_is_refused_without_a_traceback(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200000 + "]" * 200000)
    with pytest.raises(ModelFileError, match="nested too deeply"):
        load_model(path)

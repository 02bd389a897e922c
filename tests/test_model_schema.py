"""The model file's schema, declared once (perfmodel.model.schema): the published JSON Schema is the one the
pydantic models generate and accepts our files; the typed ``preparation`` of new files and of older ones (its
keys in ``metadata``); the rules around it."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from perfmodel.model import ModelFileError, load_model, save_model
from perfmodel.model.modelfile import ModelFile, _canonical
from perfmodel.model.schema import (PREPARATION_KEYS, SCHEMA_PATH, Excluded, Preparation, json_schema,
                                    json_schema_text)

ROOT = Path(__file__).resolve().parents[1]
THROUGHPUT = ROOT / "trained" / "throughput_reference.json"
POWER = ROOT / "trained" / "power_armpm_xu3_a15.json"
OLD_THROUGHPUT = ROOT / "tests" / "data" / "models" / "throughput_reference_before_active_ranges.json"


def _resealed(d: dict) -> dict:
    body = {k: v for k, v in d.items() if k != "checksum"}
    d["checksum"] = "sha256:" + hashlib.sha256(_canonical(body)).hexdigest()
    return d


def _reference_row() -> pd.DataFrame:
    return pd.DataFrame([{"framework": "litert", "threads": 1, "network": "googlenet", "instructions_per_image": 5.0e8,
                          "l2d_refills_per_image": 5.0e6, "l1d_refills_per_image": 2.0e7, "fc_stream_ms": 0.2}])


# -- the published JSON Schema ---------------------------------------------------------------------


def test_published_json_schema_is_the_generated_one():
    assert SCHEMA_PATH == ROOT / "docs" / "model-file.schema.json"
    assert SCHEMA_PATH.read_text() == json_schema_text(), \
        "docs/model-file.schema.json is out of date: python -m perfmodel.model.schema --write"


def _errors(v, schema: dict, root: dict, where: str = "") -> list[str]:
    """A small JSON Schema check (the keywords the generated schema uses), as another tool would read it."""
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return _errors(v, target, root, where)
    out: list[str] = []
    kinds = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    t = schema.get("type")
    if t == "integer" and not (isinstance(v, int) and not isinstance(v, bool)):
        return [f"{where}: not an integer"]
    if t == "number" and not (isinstance(v, (int, float)) and not isinstance(v, bool)):
        return [f"{where}: not a number"]
    if t in kinds and not isinstance(v, kinds[t]):
        return [f"{where}: not {t}"]
    if "anyOf" in schema:
        tries = [_errors(v, s, root, where) for s in schema["anyOf"]]
        if all(tries):  # none matches: the closest one's reasons
            out += min(tries, key=len)
    for s in schema.get("allOf", []):
        out += _errors(v, s, root, where)
    if "if" in schema and not _errors(v, schema["if"], root, where):
        out += _errors(v, schema.get("then", {}), root, where)
    if "not" in schema and not _errors(v, schema["not"], root, where):
        out.append(f"{where}: matches 'not'")
    if "const" in schema and v != schema["const"]:
        out.append(f"{where}: not {schema['const']!r}")
    if "enum" in schema and v not in schema["enum"]:
        out.append(f"{where}: not one of {schema['enum']}")
    if isinstance(v, str):
        if "pattern" in schema and not re.search(schema["pattern"], v):
            out.append(f"{where}: {v!r} does not match {schema['pattern']}")
        if len(v) < schema.get("minLength", 0):
            out.append(f"{where}: too short")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if "minimum" in schema and not v >= schema["minimum"]:
            out.append(f"{where}: below minimum")
        if "exclusiveMinimum" in schema and not v > schema["exclusiveMinimum"]:
            out.append(f"{where}: not above exclusiveMinimum")
        if "maximum" in schema and not v <= schema["maximum"]:
            out.append(f"{where}: above maximum")
    if isinstance(v, list):
        if not schema.get("minItems", 0) <= len(v) <= schema.get("maxItems", len(v)):
            out.append(f"{where}: wrong number of items")
        for i, x in enumerate(v):
            out += _errors(x, schema.get("items", {}), root, f"{where}[{i}]")
    if isinstance(v, dict):
        out += [f"{where}: lacks {k}" for k in schema.get("required", []) if k not in v]
        props = schema.get("properties", {})
        for k, x in v.items():
            if "propertyNames" in schema:
                out += _errors(k, schema["propertyNames"], root, f"{where}.{k} (name)")
            if k in props:
                out += _errors(x, props[k], root, f"{where}.{k}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{where}.{k}: not allowed")
            elif isinstance(schema.get("additionalProperties"), dict):
                out += _errors(x, schema["additionalProperties"], root, f"{where}.{k}")
    return out


@pytest.mark.parametrize("path", [THROUGHPUT, POWER, OLD_THROUGHPUT], ids=["throughput", "power", "old"])
def test_published_schema_accepts_our_files_old_and_new(path):
    schema = json.loads(SCHEMA_PATH.read_text())
    old = json.loads(path.read_text())
    new = load_model(path).to_dict()
    assert new["schema_version"] == 4 and new["preparation"]
    for d in (old, new):
        assert _errors(d, schema, schema) == []
    # and it is no rubber stamp: a wrong type, a missing field, a kind whose transforms do not fit
    bad = json.loads(json.dumps(new))
    bad["params"]["sigma2"] = 1.5
    bad["preparation"]["gemm_gflops"] = {"one": 2.0}
    del bad["features"]
    bad["transforms"]["log_target"] = True
    found = "\n".join(_errors(bad, schema, schema))
    for part in (".params.sigma2: not string", ".preparation.gemm_gflops.one (name)", ": lacks features",
                 ".transforms.log_target: not False"):
        assert part in found


def test_json_schema_declares_every_field():
    schema = json_schema()
    shipped = load_model(THROUGHPUT).to_dict()
    assert set(shipped) <= set(schema["properties"])
    assert {"format", "schema_version", "target", "kind", "features", "transforms", "params", "checksum"} <= \
        set(schema["required"])
    assert set(schema["$defs"]["Preparation"]["properties"]) == set(PREPARATION_KEYS)
    assert schema["$defs"]["Preparation"]["additionalProperties"] is False
    from perfmodel.model.estimators import MODEL_KINDS

    assert schema["properties"]["kind"]["enum"] == list(MODEL_KINDS)
    assert [r["if"]["properties"]["kind"]["const"] for r in schema["allOf"]] == list(MODEL_KINDS)


# -- the typed preparation -------------------------------------------------------------------------


def test_older_file_reads_into_the_same_typed_preparation(tmp_path):
    """A file before schema 4 (the shipped ones) keeps its preparation in metadata: it reads into the same
    Preparation a new file stores in its own section, and predicts the same."""
    d = json.loads(THROUGHPUT.read_text())
    m = load_model(THROUGHPUT)
    assert isinstance(m.preparation, Preparation)
    assert m.preparation.gemm_gflops == {int(k): v for k, v in d["metadata"]["gemm_gflops"].items()}
    assert m.preparation.stream_bandwidth_gbps == {int(k): v for k, v in d["metadata"]["stream_bandwidth_gbps"].items()}
    assert m.preparation.simulated_geometry == d["metadata"]["simulated_geometry"]
    assert m.preparation.terms == "throughput-stream-l1d" and m.preparation.sensor_lag is None
    assert not set(m.metadata) & set(PREPARATION_KEYS) and m.metadata["dataset"] == "datasets/reference"
    new = save_model(m, tmp_path / "new.json")
    nd = json.loads(new.read_text())
    assert nd["schema_version"] == 4 and nd["preparation"]["gemm_gflops"] == d["metadata"]["gemm_gflops"]
    assert "gemm_gflops" not in nd["metadata"]
    back = load_model(new)
    assert back.preparation == m.preparation and back.metadata == m.metadata
    row = _reference_row()
    pd.testing.assert_frame_equal(back.predict_frame(row, provenance="simulated"),
                                  m.predict_frame(row, provenance="simulated"))
    assert load_model(POWER).preparation == Preparation(sensor_lag=1)


def test_file_without_preparation_keeps_the_version_an_older_reader_takes():
    m = load_model(OLD_THROUGHPUT)
    m.preparation = Preparation()
    d = m.to_dict()
    assert d["schema_version"] == 2 and d["preparation"] == {}
    assert ModelFile.from_dict(d).preparation == Preparation()


def _v4(edit) -> dict:
    d = load_model(THROUGHPUT).to_dict()
    edit(d)
    return _resealed(d)


BAD_PREPARATION = [
    (lambda d: d["metadata"].update(gemm_gflops={"1": 5.0}),
     "field 'metadata.gemm_gflops' is a preparation field: since schema_version 4 it belongs in "
     "'preparation.gemm_gflops'"),
    (lambda d: d["preparation"].update(foo=1), "field 'preparation.foo' is not a field of this section"),
    (lambda d: d["preparation"].update(gemm_gflops={"1": 0}), "field 'preparation.gemm_gflops.1' must be > 0"),
    (lambda d: d["preparation"].update(excluded={"rules": ["litert"]}),
     "field 'preparation.excluded.rules' holds 'litert', not column=value"),
    (lambda d: d["preparation"].update(sensor_lag=True), "field 'preparation.sensor_lag' must be null or a whole number"),
    (lambda d: d["preparation"].update(l2_bytes="512"), "field 'preparation.l2_bytes' must be a number"),
    (lambda d: d["preparation"].update(simulated_geometry={"D1": 32768}),
     "field 'preparation.simulated_geometry.D1' must be a non-empty string"),
    (lambda d: d.update(preparation=[]), "field 'preparation' must be an object"),
    (lambda d: d.update(schema_version=3), "field 'preparation' needs schema_version >= 4, the file says 3"),
]


@pytest.mark.parametrize("edit, message", BAD_PREPARATION, ids=[m for _, m in BAD_PREPARATION])
def test_preparation_is_checked_field_by_field(tmp_path, edit, message):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(_v4(edit)))
    with pytest.raises(ModelFileError) as err:
        load_model(path)
    text = str(err.value)
    assert message in text and "\n" not in text and str(path) in text


def test_message_names_the_other_wrong_fields_too(tmp_path):
    def edit(d):
        d["params"]["sigma2"] = float.hex(-1.0)
        d["versions"]["numpy"] = 2
    with pytest.raises(ModelFileError, match=r"field 'params.sigma2' must be >= 0, got -1 \(also wrong: versions.numpy\)"):
        ModelFile.from_dict(_v4(edit))


def test_preparation_is_checked_in_memory_too(tmp_path):
    with pytest.raises(ValidationError, match="must be null or a whole number"):
        Preparation(sensor_lag=-1)
    prep = Preparation(gemm_gflops={"2": 90.0}, excluded=Excluded(rules=["framework=litert"], rows=3))
    assert prep.gemm_gflops == {2: 90.0}
    assert prep.to_json() == {"gemm_gflops": {"2": 90.0}, "excluded": {"rules": ["framework=litert"], "rows": 3}}
    with pytest.raises(ValidationError, match="not a thread count"):
        prep.stream_bandwidth_gbps = {"x": 1.0}
    import numpy as np  # figures computed with numpy are taken in memory, and written as JSON numbers

    prep = Preparation(l2_bytes=np.int64(1 << 21), sensor_lag=np.int64(1), gemm_gflops={1: np.float64(3.0)})
    assert prep.to_json() == {"sensor_lag": 1, "l2_bytes": 2097152.0, "gemm_gflops": {"1": 3.0}}
    assert json.dumps(prep.to_json())
    with pytest.raises(ValidationError, match="is not a field of this section|Extra inputs"):
        ModelFile(**{**vars(load_model(THROUGHPUT)), "preparation": {"gemm_gflop": {"1": 1.0}}})


# -- fit records it, typed -------------------------------------------------------------------------


def test_fit_model_records_the_typed_preparation_and_refuses_it_as_free_metadata(tmp_path):
    from perfmodel.errors import PerfmodelError
    from perfmodel.model import fit_model
    from perfmodel.model.synthetic import synthetic_power_table

    power = synthetic_power_table(seed=4)
    feats = ["voltage_v", "instructions_per_s*voltage_v^2"]
    with pytest.raises(PerfmodelError, match="sensor_lag belong.s. in preparation=Preparation"):
        fit_model(power, "power_w", feats, kind="linear", groups="lowo", select="fixed", baselines=False,
                  metadata={"board": "b", "sensor_lag": 1})
    prep = Preparation(sensor_lag=1)
    m = fit_model(power, "power_w", feats, kind="linear", groups="lowo", select="fixed", baselines=False,
                  metadata={"board": "b"}, preparation=prep)
    prep.sensor_lag = 2  # the model keeps its own copy
    assert m.preparation == Preparation(sensor_lag=1) and m.metadata == {"board": "b"}
    d = json.loads(save_model(m, tmp_path / "m.json").read_text())
    assert d["schema_version"] == 4 and d["preparation"] == {"sensor_lag": 1} and d["metadata"] == {"board": "b"}


def test_fit_command_writes_the_preparation_section(tmp_path):
    """perfmodel fit: what predict replays goes to the typed section, the description stays in metadata."""
    from typer.testing import CliRunner

    from perfmodel.cli.app import app
    from perfmodel.data import write_dataset
    from perfmodel.model.synthetic import synthetic_throughput_records

    recs = synthetic_throughput_records(networks=("squeezenet1_1", "mobilenet_v2", "googlenet", "resnet50"),
                                        frameworks=("litert", "onnxruntime"), threads=(1, 2), seed=2)
    write_dataset(tmp_path / "ds", recs, {"board": "test"})
    out = tmp_path / "m.json"
    r = CliRunner().invoke(app, ["fit", str(tmp_path / "ds"), "-t", "throughput_fps", "--kind", "loglinear",
                                 "--cv", "lono", "--terms", "throughput", "--exclude", "framework=litert",
                                 "-o", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert d["schema_version"] == 4
    assert d["preparation"] == {"terms": "throughput", "excluded": {"rules": ["framework=litert"], "rows": 8}}
    assert not set(d["metadata"]) & set(PREPARATION_KEYS) and d["metadata"]["dataset"] == str(tmp_path / "ds")

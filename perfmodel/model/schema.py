"""The model file's schema, declared once (pydantic v2).

:class:`ModelDocument` declares every field of a model file (see :mod:`.modelfile` for what each means): its
JSON type, its value rules (finite ``float.hex`` parameters, ``sigma2`` >= 0, thread-count maps, ...) and the
rules across fields (array shapes, provenance over exactly the features and their columns, which transforms
fit which model kind, the schema version a field needs). :class:`Preparation` is what ``perfmodel fit`` did
to its data that a prediction replays (calibrations, L2 size, cache geometry of the simulated counts, rows
left out, sensor lag, ...): a typed section of the file since schema 4; older files kept those keys in
``metadata`` and read into the same type.

:func:`error_text` turns a validation failure into one line that names the field and says what is wrong
(``field 'params.sigma2' must be >= 0, got -1``); :func:`json_schema` is the JSON Schema published in
``docs/model-file.schema.json`` (``python -m perfmodel.model.publish_schema``; a test keeps the two equal).
Validation reads parsed JSON only: nothing is imported, unpickled or executed.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import numpy as np
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError,
                      WithJsonSchema, model_validator)
from pydantic_core import PydanticCustomError

from .estimators import MODEL_KINDS
from .features import FeatureError, base_columns, parse_feature

FORMAT = "perfmodel-model"
#: 2: transforms.rate (the overhead-* kinds); 3: transforms.log_columns; 4: the ``preparation`` section.
#: A file is written with the oldest version that reads it right; older files still load.
SCHEMA_VERSION = 4

#: model kind -> (log_target, log_features or None for either, rate time or None for no rate)
KIND_TRANSFORMS: dict[str, tuple[bool, bool | None, str | None]] = {
    "linear": (False, False, None),
    "loglinear": (True, False, None),
    "loglog": (True, True, None),
    "ridge": (False, None, None),
    "overhead-loglinear": (False, False, "log"),
    "overhead-linear": (False, False, "linear"),
}
assert set(KIND_TRANSFORMS) == set(MODEL_KINDS), "every estimator kind needs its transforms here"


# -- value rules: each raises a custom error whose message says what is wrong (error_text adds the field) --


def _fail(why: str, *, at: str | None = None, field: str | None = None):
    """Refuse a value: ``why`` follows the field's name; ``at`` extends the name (a map's key), ``field``
    replaces it (a rule across fields, checked at the top)."""
    ctx: dict[str, str] = {"why": why}
    if at is not None:
        ctx["at"] = at
    if field is not None:
        ctx["field"] = field
    raise PydanticCustomError("perfmodel", "{why}", ctx)


def _type(v: Any) -> str:
    """``str 'abc'``, ``a list``, ``null``: what a field holds, for an error message."""
    if v is None:
        return "null"
    if isinstance(v, (str, int, float)) and not isinstance(v, bool):
        text = repr(v)
        return f"{type(v).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"
    return {dict: "an object", list: "a list", bool: f"{str(v).lower()} (a bool)"}.get(type(v), type(v).__name__)


def _text(v: Any) -> str:
    if not isinstance(v, str) or not v:
        _fail(f"must be a non-empty string, got {_type(v)}")
    return v


def _texts(v: Any, *, empty_ok: bool = True) -> list[str]:
    """A list of non-empty strings (a string is not taken for a list of its characters)."""
    if not isinstance(v, list):
        _fail(f"must be a list of strings, got {_type(v)}")
    if not v and not empty_ok:
        _fail("must not be empty")
    for i, x in enumerate(v):
        if not isinstance(x, str) or not x:
            _fail(f"must be a list of non-empty strings, item {i} is {_type(x)}")
    return list(v)


def _features(v: Any) -> list[str]:
    feats = _texts(v, empty_ok=False)
    if len(set(feats)) != len(feats):
        _fail("has duplicates")
    for f in feats:
        try:
            parse_feature(f)
        except FeatureError as exc:
            _fail(f"holds an invalid feature ({exc})")
    return feats


def _kind(v: Any) -> str:
    kind = _text(v)
    if kind not in KIND_TRANSFORMS:
        _fail(f"is {kind!r}, not a model kind (known: {', '.join(MODEL_KINDS)})")
    return kind


def _check_range(x: float, minimum: float | None, positive: bool) -> float:
    if not math.isfinite(x):
        _fail(f"must be finite, got {x}")
    if positive and not x > 0:
        _fail(f"must be > 0, got {x:g}")
    if minimum is not None and not x >= minimum:
        _fail(f"must be >= {minimum:g}, got {x:g}")
    return x


def _number(v: Any, *, minimum: float | None = None, positive: bool = False) -> float:
    """A finite number (not a bool, not a string; numpy's taken in memory), optionally ``>= minimum`` or
    ``> 0``."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        _fail(f"must be a number, got {_type(v)}")
    return _check_range(float(v), minimum, positive)


def _hexfloat(v: Any, *, minimum: float | None = None, positive: bool = False) -> float:
    """A float stored as ``float.hex`` text, finite, optionally ``>= minimum`` or ``> 0``."""
    if not isinstance(v, str):
        _fail(f"must be a float.hex string, got {_type(v)}")
    try:
        x = float.fromhex(v)
    except (ValueError, OverflowError):
        _fail(f"is not a float.hex string: {v[:40]!r}")
    return _check_range(x, minimum, positive)


def _threads_map(v: Any) -> dict[int, float] | None:
    """``null`` or ``{threads: a finite number > 0}`` (a calibration: GB/s, GFLOP/s), keys as ints."""
    if v is None:
        return None
    if not isinstance(v, dict):
        _fail(f"must be an object, got {_type(v)}")
    out: dict[int, float] = {}
    for k, x in v.items():
        key = str(k)
        if isinstance(k, bool) or not re.fullmatch(r"[1-9][0-9]*", key):
            _fail("is not a thread count (a whole number >= 1)", at=key)
        try:
            out[int(key)] = _number(x, positive=True)
        except PydanticCustomError as exc:
            _fail(exc.context["why"], at=key)
    return out


def _sensor_lag(v: Any) -> int | None:
    if v is not None and (isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or v < 0):
        _fail(f"must be null or a whole number >= 0, got {_type(v)}")
    return None if v is None else int(v)


def _value_range(v: Any) -> list[float] | None:
    """``[lo, hi]``, finite numbers with ``lo <= hi``; ``null`` means no range."""
    if v is None:
        return None
    if not isinstance(v, list) or len(v) != 2:
        _fail(f"must be [lo, hi], got {_type(v)}")
    lo, hi = (_number(x) for x in v)
    if lo > hi:
        _fail(f"has lo {lo:g} > hi {hi:g}")
    return v


def _rules(v: Any) -> list[str]:
    rules = _texts(v)
    for rule in rules:
        if "=" not in rule:
            _fail(f"holds {rule!r}, not column=value")
    return rules


def _rate_time(v: Any) -> str:
    if v not in ("log", "linear"):
        _fail(f"must be 'log' or 'linear', got {_type(v)}")
    return v


def _results(v: Any) -> list:
    if not isinstance(v, list) or not all(isinstance(r, dict) for r in v):
        _fail(f"must be a list of objects, got {_type(v)}")
    return v


def _or_empty(v: Any) -> Any:
    """An optional section: ``null`` reads as ``{}``."""
    return {} if v is None else v


def _no_rate(v: Any) -> Any:
    """``transforms.rate``: ``null`` or ``{}`` is no rate."""
    return None if v is None or v == {} else v


HEX_PATTERN = r"^[+-]?0[xX][0-9a-fA-F]+(\.[0-9a-fA-F]*)?[pP][+-]?[0-9]+$"


def _hex_type(description: str, **rule):
    return Annotated[float, BeforeValidator(partial(_hexfloat, **rule)),
                     WithJsonSchema({"type": "string", "pattern": HEX_PATTERN, "description": description})]


def _section(inner: Any, description: str):
    """An optional section (``null`` reads as ``{}``)."""
    return Annotated[inner, BeforeValidator(_or_empty, json_schema_input_type=Optional[inner]),
                     Field(description=description)]


Text = Annotated[str, BeforeValidator(_text), StringConstraints(min_length=1)]
Texts = Annotated[list[Text], BeforeValidator(_texts)]
HexFloat = _hex_type("a finite float as float.hex text (Python float.hex, C %a): exact on a round trip")
HexNonNegative = _hex_type("a finite float >= 0 as float.hex text", minimum=0.0)
HexPositive = _hex_type("a finite float > 0 as float.hex text", positive=True)
Number = Annotated[float, BeforeValidator(_number), Field(allow_inf_nan=False)]
PositiveNumber = Annotated[float, BeforeValidator(partial(_number, positive=True)), Field(gt=0, allow_inf_nan=False)]
ThreadsMap = Annotated[dict[int, float], BeforeValidator(_threads_map), WithJsonSchema({
    "type": "object", "propertyNames": {"pattern": "^[1-9][0-9]*$"},
    "additionalProperties": {"type": "number", "exclusiveMinimum": 0},
    "description": "thread count -> a figure measured with that many threads"})]
CellScales = Annotated[dict[Annotated[str, StringConstraints(pattern=r"^[a-z_]+ x[1-9][0-9]*$")], PositiveNumber],
                      Field(description="'framework xN' -> a factor")]
ValueRange = Annotated[Optional[Annotated[list[Number], Field(min_length=2, max_length=2)]],
                       BeforeValidator(_value_range), Field(description="[lo, hi] with lo <= hi; null: no range")]
Ranges = _section(dict[str, ValueRange], "feature -> its [lo, hi] in the training rows")


class _Section(BaseModel):
    """A section of the file: JSON types as they are (no ``"1"`` -> 1), unknown keys kept."""

    model_config = ConfigDict(strict=True, extra="allow")


# -- what fit did to its data, replayed by predict -------------------------------------------------


class Excluded(BaseModel):
    """``perfmodel fit --exclude``: the row classes left out, and how many rows that was."""

    model_config = ConfigDict(strict=True, extra="forbid", validate_assignment=True)

    rules: Annotated[list[str], BeforeValidator(_rules)] = Field(
        default_factory=list, description="column=value rules; a sample matching one is refused")
    rows: Optional[Annotated[int, Field(ge=0)]] = Field(None, description="rows the rules removed")


class Preparation(BaseModel):
    """What ``perfmodel fit`` did to its data beyond the measured columns, recorded in the model file and
    replayed (or checked) wherever the model predicts: :mod:`perfmodel.model.prepare`.

    Every field is optional (``None``: not used by this model). Thread-count maps have int keys here and
    ``"1"``-style keys in the file."""

    model_config = ConfigDict(strict=True, extra="forbid", validate_assignment=True)

    sensor_lag: Annotated[Optional[Annotated[int, Field(ge=0)]], BeforeValidator(_sensor_lag)] = Field(
        None, description="power files: samples between the counters and the power they explain "
                          "(the default of predict --sensor-lag)")
    map: Optional[str] = Field(None, description="csv: importer mapping the data was read with (--map)")
    terms: Optional[Text] = Field(None, description="named term set the features were built from (--terms)")
    simulated_geometry: Annotated[Optional[dict[str, Text]], Field(
        description="valgrind caches of the simulated counts ({'D1': 'size,assoc,line', ...}); counts of "
                    "another geometry are refused")] = None
    excluded: Optional[Excluded] = Field(None, description="row classes left out of the fit (--exclude)")
    stream_bandwidth_gbps: Optional[ThreadsMap] = Field(
        None, description="training machine's streaming bandwidth (GB/s): prices fc_stream_ms when the "
                          "predicted data has no calibration")
    stream_bandwidth_source: Optional[str] = None
    l2_bytes: Optional[PositiveNumber] = Field(
        None, description="L2 size of the training machine (bytes): the conv_over_l2_mb term's threshold")
    l2_bytes_source: Optional[str] = None
    gemm_gflops: Optional[ThreadsMap] = Field(
        None, description="training data's GEMM speed (GFLOP/s): an overhead-linear model's counts are "
                          "priced at train / now")
    gemm_gflops_source: Optional[str] = None
    time_scale: Optional[CellScales] = Field(
        None, description="perfmodel retrain: per 'framework xN' factor on the predicted inference time (the "
                          "model adapted to another platform from a few networks measured there)")
    time_scale_source: Optional[str] = None

    def is_empty(self) -> bool:
        return not self.to_json()

    def to_json(self) -> dict[str, Any]:
        """The file's ``preparation`` section (fields that are not set left out)."""
        return self.model_dump(mode="json", exclude_none=True)


PREPARATION_KEYS = tuple(Preparation.model_fields)


# -- the file ------------------------------------------------------------------------------------------


class Rate(_Section):
    """The rate kinds: ``fps = scale / (overhead + t)``, ``t`` of the linear part (``time``)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    scale: HexPositive
    overhead: HexNonNegative = Field(description="read + pre-process ms of the training cells")
    time: Annotated[Literal["log", "linear"], BeforeValidator(_rate_time)] = "log"


class Transforms(_Section):
    model_config = ConfigDict(strict=True, extra="ignore")

    log_target: bool
    log_features: bool
    log_columns: Texts = Field(None, description="the features logged (absent: all of them, as before schema 3)")
    rate: Annotated[Optional[Rate], BeforeValidator(_no_rate)] = Field(None, description="schema >= 2: the rate kinds")


class Params(_Section):
    """The fitted parameters, every float as ``float.hex`` text (a save / load round trip is bit-exact)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    n_features: int
    scaler_mean: list[HexFloat]
    scaler_scale: list[HexPositive]
    coef: list[HexFloat]
    intercept: HexFloat
    sigma2: HexNonNegative
    dof_resid: HexNonNegative
    alpha: HexNonNegative
    cov_unscaled: list[list[HexFloat]] = Field(description="(X'X)^-1 of [1, z]: (n_features + 1) squared")


class Coefficient(_Section):
    term: str
    coef: Optional[float] = Field(description="null where the parameters give a non-finite value")


class Training(_Section):
    n: Optional[int] = None
    sha256: Optional[str] = Field(None, description="of the training matrix, target and names")
    ranges: Ranges = Field(default_factory=dict)
    active_ranges: Annotated[Optional[dict[str, ValueRange]], Field(
        description="ranges over the rows where each term is on (absent: files before them)")] = None
    target_range: ValueRange = None
    groups: Optional[list[str]] = None
    fixed_coefficients: _section(dict[str, Number], "known times: feature -> coefficient (1, not fitted)") = \
        Field(default_factory=dict)


class CrossValidation(_Section):
    scheme: Annotated[Optional[str], BeforeValidator(lambda v: v if v is None else _text(v))] = None
    group: Optional[str] = None
    mape: Optional[float] = None
    rmspe: Optional[float] = None
    within_5: Optional[float] = None
    within_10: Optional[float] = None
    within_15: Optional[float] = None
    r2: Optional[float] = None
    spearman: Optional[float] = None
    n: Optional[int] = None
    results: Annotated[list[dict[str, Any]], BeforeValidator(_results)] = Field(
        default_factory=list, description="one row per model and baseline")


class Metadata(Preparation):
    """Free metadata (data set, board, events, ...). Files before schema 4 hold the :class:`Preparation`
    fields here; since schema 4 they belong in ``preparation``."""

    model_config = ConfigDict(strict=True, extra="allow")


class ModelDocument(BaseModel):
    """A perfmodel model file (JSON). Validation = the checks :func:`perfmodel.model.load_model` makes after
    the checksum (which proves integrity only)."""

    model_config = ConfigDict(strict=True, extra="ignore", title="perfmodel model file")

    format: Literal["perfmodel-model"]
    schema_version: Annotated[int, Field(ge=1, le=SCHEMA_VERSION)]
    target: Text
    kind: Annotated[Literal[tuple(KIND_TRANSFORMS)], BeforeValidator(_kind)]  # type: ignore[valid-type]
    features: Annotated[list[Text], BeforeValidator(_features), Field(min_length=1)]
    provenance: dict[str, Texts] = Field(description="feature -> provenances of the columns behind it")
    column_provenance: dict[str, Texts] = Field(description="column -> provenances (what prediction checks)")
    levels: _section(dict[str, Texts], "categorical column -> values seen in training") = Field(default_factory=dict)
    transforms: Transforms
    params: Params
    coefficients: Annotated[list[Coefficient], Field(
        description="a readable copy of the parameters; it must agree with them")] = None
    training: _section(Training, "training set: size, hash, ranges, known times") = Field(default_factory=Training)
    cv: _section(CrossValidation, "cross-validation scores") = Field(default_factory=CrossValidation)
    selection: _section(dict[str, Any], "selection history") = Field(default_factory=dict)
    statistics: _section(dict[str, Any], "statsmodels table") = Field(default_factory=dict)
    metadata: _section(Metadata, "free metadata") = Field(default_factory=Metadata)
    preparation: _section(Preparation, "schema >= 4: what fit did to its data") = Field(default_factory=Preparation)
    versions: _section(dict[str, str], "library versions") = Field(default_factory=dict)
    checksum: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$", description=(
        "sha256 of the canonical JSON (sorted keys, no spaces, ASCII) of every other field"))]

    @model_validator(mode="after")
    def _across_fields(self) -> "ModelDocument":
        version, kind, features = self.schema_version, self.kind, self.features
        k = len(features)
        tr, par = self.transforms, self.params
        if tr.rate is not None and version < 2:
            _fail(f"needs schema_version >= 2, the file says {version}", field="transforms.rate")
        want_lt, want_lf, want_rate = KIND_TRANSFORMS[kind]
        if tr.log_target != want_lt or (want_lf is not None and tr.log_features != want_lf):
            _fail(f"(log_target {tr.log_target}, log_features {tr.log_features}) does not fit model kind {kind}",
                  field="transforms")
        if "log_columns" in tr.model_fields_set:
            logged = tr.log_columns
            if not tr.log_features:
                _fail("is set, but the model does not log its features", field="transforms.log_columns")
            if any(c not in features for c in logged) or len(set(logged)) != len(logged):
                _fail(f"must list distinct features of the model, got {', '.join(logged)}",
                      field="transforms.log_columns")
            if len(logged) < k and version < 3:  # an older reader would log every feature
                _fail(f"keeps features linear, which needs schema_version >= 3, the file says {version}",
                      field="transforms.log_columns")
        rate_time = tr.rate.time if tr.rate is not None else None
        if rate_time != want_rate:
            _fail(f"({'time ' + rate_time if rate_time else 'none'}) does not fit model kind {kind}",
                  field="transforms.rate")
        if par.n_features != k:
            _fail(f"is {par.n_features}, but the file lists {k} features", field="params.n_features")
        for name in ("coef", "scaler_mean", "scaler_scale"):
            if len(getattr(par, name)) != k:
                _fail(f"has shape ({len(getattr(par, name))},), expected ({k},)", field=f"params.{name}")
        cov = par.cov_unscaled
        if len({len(row) for row in cov}) > 1:
            _fail("is not a regular array", field="params.cov_unscaled")
        if len(cov) != k + 1 or any(len(row) != k + 1 for row in cov):
            _fail(f"has shape ({len(cov)}, {len(cov[0]) if cov else 0}), expected ({k + 1}, {k + 1})",
                  field="params.cov_unscaled")
        scale = max((abs(x) for row in cov for x in row), default=0.0) or 1.0
        if any(cov[i][i] < 0 for i in range(k + 1)) or any(
                abs(cov[i][j] - cov[j][i]) > 1e-12 * scale + 1e-9 * abs(cov[j][i])
                for i in range(k + 1) for j in range(k + 1)):
            _fail("is not a covariance (symmetric, diagonal >= 0)", field="params.cov_unscaled")
        if kind == "overhead-linear" and (any(c < 0 for c in par.coef) or par.intercept != 0
                                          or any(par.scaler_mean)):
            _fail("of an overhead-linear model must have costs (coef) >= 0, intercept 0 and scaler_mean 0 "
                  "(an additive time of counts)", field="params")
        _same_keys(self.provenance, features, "provenance", "features")
        _same_keys(self.column_provenance, base_columns(features), "column_provenance", "columns the features use")
        compared = {fac.column for f in features for fac in parse_feature(f) if fac.op == "eq"}
        if not set(self.levels) <= compared:
            _fail(f"names column(s) {', '.join(sorted(set(self.levels) - compared))} no feature compares",
                  field="levels")
        training = self.training
        for section, ranges in (("ranges", training.ranges), ("active_ranges", training.active_ranges or {}),
                                ("fixed_coefficients", training.fixed_coefficients)):
            for f in ranges:
                if f not in features:
                    _fail("is not one of the model's features", field=f"training.{section}.{f}")
        if not self.preparation.is_empty() and version < 4:
            _fail(f"needs schema_version >= 4, the file says {version}", field="preparation")
        if version >= 4:
            for key in PREPARATION_KEYS:
                if getattr(self.metadata, key) is not None:
                    _fail(f"is a preparation field: since schema_version 4 it belongs in 'preparation.{key}'",
                          field=f"metadata.{key}")
        return self

    def read_preparation(self) -> Preparation:
        """The file's :class:`Preparation`: its ``preparation`` section, or before schema 4 the same keys of
        ``metadata``."""
        if self.schema_version >= 4:
            return self.preparation
        return Preparation.model_validate({k: getattr(self.metadata, k) for k in PREPARATION_KEYS})


def _same_keys(v: dict, want: list[str], name: str, what: str) -> None:
    """``v`` has a key for each of ``want`` and no other."""
    missing, extra = [x for x in want if x not in v], [x for x in v if x not in want]
    if missing or extra:
        _fail(f"must list exactly the model's {what}: "
              + "; ".join(([f"missing {', '.join(missing)}"] if missing else [])
                          + ([f"unknown {', '.join(extra)}"] if extra else [])), field=name)


# -- messages --------------------------------------------------------------------------------------

#: pydantic's own error types -> what is wrong, in the words of the custom checks
_PHRASES = {
    "missing": "is missing",
    "dict_type": "must be an object, got {got}",
    "model_type": "must be an object, got {got}",
    "model_attributes_type": "must be an object, got {got}",
    "list_type": "must be a list, got {got}",
    "bool_type": "must be true or false, got {got}",
    "int_type": "must be an integer, got {got}",
    "string_type": "must be a string, got {got}",
    "float_type": "must be a number, got {got}",
    "finite_number": "must be finite, got {got}",
    "extra_forbidden": "is not a field of this section",
    "literal_error": "must be {expected}, got {got}",
    "greater_than": "must be > {gt}, got {got}",
    "greater_than_equal": "must be >= {ge}, got {got}",
    "less_than_equal": "must be <= {le}, got {got}",
    "string_too_short": "must be a non-empty string",
    "string_pattern_mismatch": "must match {pattern}, got {got}",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
}


def _describe(err: dict) -> tuple[str, str]:
    """``(field name, what is wrong)`` of one pydantic error; list positions are said after the message."""
    ctx = err.get("ctx") or {}
    names = [str(p) for p in err["loc"] if isinstance(p, str) and p != "[key]"]
    items = [p for p in err["loc"] if isinstance(p, int)]
    name = ctx.get("field") or ".".join(names + ([ctx["at"]] if ctx.get("at") else []))
    if err["type"] == "perfmodel":
        msg = ctx["why"]
    else:
        phrase = _PHRASES.get(err["type"])
        try:
            msg = phrase.format(got=_type(err.get("input")), **ctx) if phrase else err["msg"]
        except (KeyError, IndexError):
            msg = err["msg"]
    if items:
        msg += f" (item {']['.join(map(str, items)).join('[]') if len(items) > 1 else items[0]})"
    return name or "(top level)", msg


def error_text(exc: ValidationError) -> str:
    """One line: the first problem with its field, and the other fields that are wrong."""
    described = [_describe(e) for e in exc.errors(include_url=False)]
    name, msg = described[0]
    others = list(dict.fromkeys(n for n, _ in described[1:] if n != name))
    more = f" (also wrong: {', '.join(others[:6])}{', ...' if len(others) > 6 else ''})" if others else ""
    return f"field {name!r} {msg}{more}"


# -- the published JSON Schema ---------------------------------------------------------------------

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "model-file.schema.json"


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a model file, generated from :class:`ModelDocument`."""
    body = ModelDocument.model_json_schema(mode="validation")
    out = {"$schema": "https://json-schema.org/draft/2020-12/schema", **body}
    out["description"] = (
        f"A perfmodel model file, schema_version 1-{SCHEMA_VERSION} (perfmodel/model/schema.py; generated by "
        "`python -m perfmodel.model.publish_schema`). Beyond this schema a reader checks the checksum and the "
        "rules across fields (array shapes over the features, provenance over exactly the features and their "
        "columns, transforms that fit the kind, the schema version a section needs).")
    out["allOf"] = [_kind_rule(kind, *rule) for kind, rule in KIND_TRANSFORMS.items()]
    return out


def _kind_rule(kind: str, log_target: bool, log_features: bool | None, rate: str | None) -> dict:
    """JSON Schema: the transforms model ``kind`` needs (:data:`KIND_TRANSFORMS`)."""
    props: dict[str, Any] = {"log_target": {"const": log_target}}
    if log_features is not None:
        props["log_features"] = {"const": log_features}
    if rate is None:
        transforms = {"properties": props, "not": {"required": ["rate"]}}
    else:
        props["rate"] = {"properties": {"time": {"const": rate}}, **({"required": ["time"]} if rate != "log" else {})}
        transforms = {"properties": props, "required": ["rate"]}
    return {"if": {"properties": {"kind": {"const": kind}}}, "then": {"properties": {"transforms": transforms}}}


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=1, sort_keys=True) + "\n"


__all__ = ["FORMAT", "SCHEMA_VERSION", "KIND_TRANSFORMS", "Excluded", "Preparation", "PREPARATION_KEYS",
           "ModelDocument", "error_text", "json_schema", "json_schema_text"]

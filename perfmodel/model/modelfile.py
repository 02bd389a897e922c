"""Model files: a fitted linear model as plain JSON, loaded without unpickling or executing anything.

Layout (``format: "perfmodel-model"``, ``schema_version: 1``)::

    target, kind                 "power_w", "linear" | "loglinear" | "loglog" | "ridge"
    features                     feature names (see perfmodel.model.features: products, log(), col=value)
    provenance                   feature -> provenances of the columns behind it (real/simulated/software/key)
    column_provenance            base column -> provenances (what prediction checks)
    levels                       categorical column -> values seen in training (indicator features)
    transforms                   {"log_target": bool, "log_features": bool[, "log_columns": the features
                                 logged (a loglog model keeps indicators and columns holding 0 linear;
                                 absent: all, as in files before schema 3)], [rate: ...]}
    params                       scaler mean/scale, coef, intercept, sigma2, dof_resid, alpha and the
                                 unscaled covariance (X'X)^-1 of [1, z] - every float as float.hex text
    coefficients                 human-readable copy (decimal), not used for prediction, but it must agree
                                 with the parameters (a file whose copy says otherwise is refused)
    training                     n, sha256 of the training matrix and target, feature ranges over all rows
                                 (``ranges``) and over the rows where each term is on (``active_ranges``,
                                 what the out-of-range warning checks; files before it have ``ranges`` only)
    cv, selection, statistics    cross-validation scores, selection history, statsmodels table
    metadata, versions           free metadata, library versions
    checksum                     sha256 of the canonical JSON of everything above

Floats are stored as ``float.hex`` strings, so a save / load round trip is bit-exact. Loading checks the
format, version and checksum and raises :class:`ModelFileError` for a corrupt or edited file. A checksum
proves integrity only, so loading also checks the type and value of every field the tool uses (a known
``kind`` whose transforms fit it, ``n_features`` an integer, finite parameters, ``sigma2`` / ``dof_resid`` /
``alpha`` >= 0, provenance as lists of strings over exactly the features and their columns, objects where
objects belong, the metadata the commands read: ``sensor_lag``, ``stream_bandwidth_gbps``, ``gemm_gflops``,
``l2_bytes``, ``excluded``) and names the field it refuses; :func:`save_model` never writes a file that
would not load back.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from perfmodel.data.provenance import Table, frame_of
from perfmodel.errors import InputFileError, PerfmodelError

from .estimators import LinearParams
from .features import FeatureError, base_columns, column_provenance, feature_frame, parse_feature

FORMAT = "perfmodel-model"
SCHEMA_VERSION = 3  # 2: transforms.rate (the overhead-* kinds); 3: transforms.log_columns; older files still load


class ModelFileError(InputFileError):
    """A model file that is missing, corrupt, tampered with or of an unknown version."""


class IncompatibleSampleError(PerfmodelError):
    """A sample whose features or counter provenance do not match the model's."""


# -- float encoding ---------------------------------------------------------------------------------


def _hex(x: float) -> str:
    return float(x).hex()


def _hex_array(a: np.ndarray) -> list:
    a = np.asarray(a, dtype="float64")
    if a.ndim == 1:
        return [_hex(v) for v in a]
    return [_hex_array(row) for row in a]


def _plain(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN / inf to None."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_plain(v) for v in obj.tolist()]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if math.isfinite(x) else None
    return obj


def _canonical(payload: Mapping) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def _versions() -> dict[str, str]:
    import scipy
    import sklearn

    out = {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
           "scikit-learn": sklearn.__version__, "pandas": pd.__version__}
    try:
        from importlib.metadata import version

        out["perfmodel"] = version("perfmodel")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        out["perfmodel"] = "unknown"
    return out


def training_hash(X: np.ndarray, y: np.ndarray, features: Sequence[str], target: str) -> str:
    """sha256 of the training matrix, target and names (identifies the training set)."""
    h = hashlib.sha256()
    h.update(json.dumps([list(features), target]).encode())
    h.update(np.ascontiguousarray(X, dtype="<f8").tobytes())
    h.update(np.ascontiguousarray(y, dtype="<f8").tobytes())
    return h.hexdigest()


# -- the model file ---------------------------------------------------------------------------------


@dataclass
class ModelFile:
    """A fitted model with everything prediction and reporting need (see the module docstring)."""

    target: str
    kind: str
    features: list[str]
    params: LinearParams
    provenance: dict[str, list[str]]
    column_provenance: dict[str, list[str]]
    levels: dict[str, list[str]] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    cv: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)
    statistics: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=_versions)

    # ---- compatibility and prediction ----

    def measured_provenance(self) -> set[str]:
        """The provenances of the model's measured inputs (``key`` excluded), e.g. ``{"real"}``."""
        out: set[str] = set()
        for v in self.column_provenance.values():
            out.update(p for p in v if p != "key")
        return out

    def check_compatible(self, df: Table | pd.DataFrame, provenance: str | Mapping[str, str] | None = None) -> None:
        """Raise :class:`IncompatibleSampleError` unless ``df`` has every column the features need, with
        the same measurement provenance as the training data, and only categorical values seen in training.

        The provenance of the sample is that of a :class:`~perfmodel.data.provenance.Table`; a bare DataFrame
        records none. ``provenance`` states the provenance of columns the table does not describe (a CSV file).
        A column the model records with no measurement behind it (``[]``: derived, e.g. ``fc_stream_ms`` =
        graph facts / a calibrated bandwidth) does not take a single ``provenance`` label meant for the
        counters: it is checked only against what the table, or a column -> provenance mapping naming it,
        say. ``derived`` itself is no measurement source and is left out of both sides of the comparison.
        """
        if not isinstance(df, (Table, pd.DataFrame)):
            raise IncompatibleSampleError(f"expected a DataFrame of samples, got {type(df).__name__}")
        frame = frame_of(df)
        cols = list(self.column_provenance)
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            from perfmodel.metrics import base_event

            events = list(dict.fromkeys(e for e in map(base_event, missing) if e))
            trained = (self.metadata or {}).get("events")
            said = (f"the data lacks event(s) {', '.join(events)} this model was trained on"
                    + (f" (its events: {', '.join(map(str, trained))})" if trained else "") + "; ") if events else ""
            raise IncompatibleSampleError(
                f"{said}the sample lacks column(s) {', '.join(missing)} needed by the model's features "
                f"({', '.join(self.features)}); the model predicts {self.target} from them")
        derived = [c for c in cols if not _measured(self.column_provenance[c])]
        named = provenance if isinstance(provenance, Mapping) else {}
        have = column_provenance(df, [c for c in cols if c not in derived], provenance)
        have.update(column_provenance(df, derived, {c: named[c] for c in derived if c in named}))
        problems = []
        for c in cols:
            want = _measured(self.column_provenance[c])
            if want == ["key"]:
                continue
            got = have[c]
            if got is None:
                if c in derived:  # the data does not say where a derived column came from: nothing to compare
                    continue
                problems.append(f"{c}: provenance unknown (the data does not say where it came from; "
                                f"state it, e.g. --provenance {'+'.join(want)})")
                continue
            got = _measured(got)
            if got != want:
                problems.append(f"{c}: sample is {'+'.join(got) or 'derived'}, model was trained on "
                                f"{'+'.join(want) or 'derived (no measurement behind it)'}")
        if problems:
            raise IncompatibleSampleError(
                "the sample's counter source does not match the model's - " + "; ".join(problems))
        for col, values in self.levels.items():
            from .features import _key_str

            seen = set(_key_str(frame[col]).unique())
            unknown = sorted(seen - set(values))
            if unknown:
                raise IncompatibleSampleError(
                    f"{col} value(s) {', '.join(unknown)} were not in the training data "
                    f"(known: {', '.join(values)}); the model cannot predict them")

    def out_of_range(self, df: Table | pd.DataFrame, tolerance: float = 0.05) -> pd.Series:
        """Per row, the features whose value lies outside the training range (widened by ``tolerance`` of
        its width), as ``"feature=value (trained a..b)"`` joined by ``"; "`` - ``""`` inside. A prediction
        there is an extrapolation: its interval assumes the fitted form still holds. Features with a fixed
        coefficient (``training["fixed_coefficients"]``, a known time) are not checked.

        A term with indicator factors (``count*framework=litert*threads=1``) is checked on the rows where
        it is on, against its range over the training rows where it was on (``training["active_ranges"]``);
        elsewhere it is 0 by construction. The widening below a minimum >= 0 is at most ``tolerance`` of
        that minimum, so it never reaches 0: a zero or tiny count is flagged. Files written before the
        active ranges (``training["ranges"]`` over all rows, so an interaction term's minimum is the 0 of
        the rows of other levels) use the range of the same count as a plain feature of the model when it
        has one, else take that 0 as the bound of a count that was on: a value <= 0 where the term is on is
        flagged (a refit records the real minimum, and then a tiny count is flagged too)."""
        df = frame_of(df)
        training = self.training or {}
        active = training.get("active_ranges")
        ranges = training.get("ranges") or {}
        fixed = training.get("fixed_coefficients") or {}
        X = feature_frame(df, self.features, allow_nan=True, lenient=True)  # a row that cannot be computed: no note
        out = pd.Series("", index=df.index, dtype=object)
        keys: dict = {}
        for f in self.features:
            if f in fixed:  # a known time (coefficient 1, not fitted): beyond its training range is no extrapolation
                continue
            factors = parse_feature(f)
            if all(fac.op == "eq" for fac in factors):  # an indicator: unknown levels are refused by check_compatible
                continue
            bounds = _range_bounds(f, factors, active, ranges, tolerance)
            if bounds is None:
                continue
            lower, upper, zero_open, shown = bounds
            v = X[f].to_numpy(dtype="float64")
            on = _term_on(df, factors, keys)
            with np.errstate(invalid="ignore"):
                bad = on & np.isfinite(v) & ((v < lower) | (v > upper) | (zero_open & (v <= 0)))
            for i in np.flatnonzero(bad):
                why = ", 0 only where the term is off" if zero_open and v[i] <= 0 else ""
                note = f"{f}={v[i]:.4g} ({shown}{why})"
                out.iat[i] = note if not out.iat[i] else f"{out.iat[i]}; {note}"
        return out

    def predict_frame(self, df: Table | pd.DataFrame, alpha: float = 0.05,
                      provenance: str | Mapping[str, str] | None = None) -> pd.DataFrame:
        """Columns ``pred``, ``lo``, ``hi`` (a ``1 - alpha`` prediction interval), same index as ``df``.
        The sample's provenance is that of a :class:`~perfmodel.data.provenance.Table` (and ``provenance``
        for columns it does not describe): :meth:`check_compatible`.

        An additive time model (``overhead-linear``: a sum of counts x costs) refuses negative feature
        values: a count below zero has no meaning there, and its time part would be <= 0."""
        if not 0 < alpha < 1:
            raise PerfmodelError(f"alpha must be in (0, 1), got {alpha}")
        self.check_compatible(df, provenance)
        df = frame_of(df)
        try:
            X = feature_frame(df, self.features).to_numpy(dtype="float64")
        except FeatureError as exc:
            raise IncompatibleSampleError(f"cannot predict {self.target}: {exc}") from None
        logged = self.params.logged()
        if logged.any():
            with np.errstate(invalid="ignore"):
                bad = X[:, logged] <= 0
            if bad.any():
                cols = [f for f, b in zip([f for f, m in zip(self.features, logged) if m], bad.any(axis=0)) if b]
                raise IncompatibleSampleError(
                    f"this model takes logs of {', '.join(cols)}; {int(bad.any(axis=1).sum())} row(s) have "
                    "values <= 0 there")
        if self.params.rate_scale > 0 and self.params.rate_time == "linear" and (X < 0).any():
            neg = X < 0
            cols = [self.features[j] for j in np.flatnonzero(neg.any(axis=0))]
            raise IncompatibleSampleError(
                f"cannot predict {self.target}: this model's time is a sum of counts x costs (counts >= 0); "
                f"{int(neg.any(axis=1).sum())} row(s) have negative values in {', '.join(cols)}")
        with np.errstate(over="ignore", invalid="ignore"):
            pred, lo, hi = self.params.predict(X, alpha)
        return pd.DataFrame({"pred": pred, "lo": lo, "hi": hi}, index=df.index)

    # ---- tables ----

    def coefficients(self) -> pd.DataFrame:
        """Coefficients in the units of the (transformed) features: ``term``, ``coef`` (intercept first)."""
        p = self.params
        coef = p.coef / p.scaler_scale
        intercept = p.intercept - float(np.sum(coef * p.scaler_mean))
        terms = [f"log({f})" if m else f for f, m in zip(self.features, p.logged())]
        return pd.DataFrame({"term": ["intercept"] + terms, "coef": np.concatenate([[intercept], coef])})

    # ---- (de)serialisation ----

    def to_dict(self) -> dict[str, Any]:
        p = self.params
        k = len(self.features)
        body = {
            "format": FORMAT,
            # the oldest version that reads the file right: 3 only where some features stay linear in a log model
            "schema_version": 3 if p.log_features and not p.logged().all() else 2,
            "target": self.target,
            "kind": self.kind,
            "features": list(self.features),
            "provenance": {f: list(v) for f, v in self.provenance.items()},
            "column_provenance": {c: list(v) for c, v in self.column_provenance.items()},
            "levels": {c: list(v) for c, v in self.levels.items()},
            "transforms": {"log_target": bool(p.log_target), "log_features": bool(p.log_features),
                           **({"log_columns": [f for f, m in zip(self.features, p.logged()) if m]}
                              if p.log_features else {}),
                           **({"rate": {"scale": _hex(p.rate_scale), "overhead": _hex(p.overhead),
                                        "time": p.rate_time}}
                              if p.rate_scale > 0 else {})},
            "params": {
                "n_features": k,
                "scaler_mean": _hex_array(p.scaler_mean),
                "scaler_scale": _hex_array(p.scaler_scale),
                "coef": _hex_array(p.coef),
                "intercept": _hex(p.intercept),
                "sigma2": _hex(p.sigma2),
                "dof_resid": _hex(p.dof_resid),
                "alpha": _hex(p.alpha),
                "cov_unscaled": _hex_array(p.cov_unscaled),
            },
            "coefficients": _plain(self.coefficients().to_dict("records")),
            "training": _plain(self.training),
            "cv": _plain(self.cv),
            "selection": _plain(self.selection),
            "statistics": _plain(self.statistics),
            "metadata": _plain(self.metadata),
            "versions": dict(self.versions),
        }
        body["checksum"] = "sha256:" + hashlib.sha256(_canonical(body)).hexdigest()
        return body

    @classmethod
    def from_dict(cls, d: Any, where: str = "model file") -> "ModelFile":
        if not isinstance(d, dict):
            raise ModelFileError(f"{where}: not a perfmodel model file (top level is not an object)")
        if d.get("format") != FORMAT:
            raise ModelFileError(f"{where}: not a perfmodel model file (format {d.get('format')!r})")
        version = d.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ModelFileError(f"{where}: invalid schema_version {version!r}")
        if version > SCHEMA_VERSION:
            raise ModelFileError(f"{where}: schema_version {version} is newer than this perfmodel "
                                 f"understands ({SCHEMA_VERSION}); upgrade perfmodel")
        body = {k: v for k, v in d.items() if k != "checksum"}
        want = d.get("checksum")
        try:
            got = "sha256:" + hashlib.sha256(_canonical(body)).hexdigest()
        except RecursionError:
            raise ModelFileError(f"{where}: nested too deeply to be a model file") from None
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{where}: corrupt content ({exc})") from None
        if want != got:
            raise ModelFileError(f"{where}: checksum mismatch - the file is corrupt or was edited "
                                 "(refit the model instead of editing it)")
        # a checksum proves integrity only: a hand-made file with a valid checksum is checked field by field
        try:
            return _parse_body(cls, d, version, _Check(where))
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, FeatureError) as exc:  # a check missed above
            raise ModelFileError(f"{where}: malformed model file ({type(exc).__name__}: {exc})") from None


# -- reading a model file: every field the tool uses is checked for type and value ------------------


class _Check:
    """Raise :class:`ModelFileError` naming the file and the field (``params.sigma2``, ``metadata``, ...)."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, name: str, msg: str) -> None:
        raise ModelFileError(f"{self.where}: field {name!r} {msg}")

    def get(self, d: Mapping, key: str, name: str) -> Any:
        if key not in d:
            self.fail(name, "is missing")
        return d[key]

    def obj(self, v: Any, name: str, *, none_ok: bool = False) -> dict:
        """A JSON object (``None`` -> ``{}`` when ``none_ok``: an optional section)."""
        if v is None and none_ok:
            return {}
        if not isinstance(v, dict):
            self.fail(name, f"must be an object, got {_type(v)}")
        return v

    def text(self, v: Any, name: str) -> str:
        if not isinstance(v, str) or not v:
            self.fail(name, f"must be a non-empty string, got {_type(v)}")
        return v

    def texts(self, v: Any, name: str, *, empty_ok: bool = True) -> list[str]:
        """A list of non-empty strings (a string is not taken for a list of its characters)."""
        if not isinstance(v, list):
            self.fail(name, f"must be a list of strings, got {_type(v)}")
        if not v and not empty_ok:
            self.fail(name, "must not be empty")
        for i, x in enumerate(v):
            if not isinstance(x, str) or not x:
                self.fail(name, f"must be a list of non-empty strings, item {i} is {_type(x)}")
        return list(v)

    def number(self, v: Any, name: str, *, minimum: float | None = None, positive: bool = False) -> float:
        """A finite JSON number (not a bool, not a string), optionally ``>= minimum`` or ``> 0``."""
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.fail(name, f"must be a number, got {_type(v)}")
        x = float(v)
        self._range(x, name, minimum, positive)
        return x

    def hexfloat(self, v: Any, name: str, *, minimum: float | None = None, positive: bool = False) -> float:
        """A float stored as ``float.hex`` text, finite, optionally ``>= minimum`` or ``> 0``."""
        if not isinstance(v, str):
            self.fail(name, f"must be a float.hex string, got {_type(v)}")
        try:
            x = float.fromhex(v)
        except (ValueError, OverflowError):
            self.fail(name, f"is not a float.hex string: {v[:40]!r}")
        self._range(x, name, minimum, positive)
        return x

    def _range(self, x: float, name: str, minimum: float | None, positive: bool) -> None:
        if not math.isfinite(x):
            self.fail(name, f"must be finite, got {x}")
        if positive and not x > 0:
            self.fail(name, f"must be > 0, got {x:g}")
        if minimum is not None and not x >= minimum:
            self.fail(name, f"must be >= {minimum:g}, got {x:g}")

    def hexarray(self, v: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """An array of ``float.hex`` strings of ``shape``, every value finite."""
        if not isinstance(v, list):
            self.fail(name, f"must be a list, got {_type(v)}")
        try:
            out = np.array(v, dtype=object)
        except ValueError:
            self.fail(name, "is not a regular array")
        if out.shape != shape:
            self.fail(name, f"has shape {out.shape}, expected {shape}")
        flat = [self.hexfloat(x, name) for x in out.reshape(-1)]
        return np.array(flat, dtype="float64").reshape(shape)

    def flag(self, v: Any, name: str) -> bool:
        if not isinstance(v, bool):
            self.fail(name, f"must be true or false, got {_type(v)}")
        return v

    def threads_map(self, v: Any, name: str) -> dict | None:
        """``null`` or ``{threads: a finite number > 0}`` (a calibration: GB/s, GFLOP/s)."""
        if v is None:
            return None
        for k, x in self.obj(v, name).items():
            if not re.fullmatch(r"[1-9][0-9]*", k):
                self.fail(f"{name}.{k}", "is not a thread count (a whole number >= 1)")
            self.number(x, f"{name}.{k}", positive=True)
        return v

    def same_keys(self, v: Mapping, want: Sequence[str], name: str, what: str) -> None:
        """``v`` has a key for each of ``want`` and no other."""
        missing, extra = [x for x in want if x not in v], [x for x in v if x not in want]
        if missing or extra:
            self.fail(name, f"must list exactly the model's {what}: "
                      + "; ".join(([f"missing {', '.join(missing)}"] if missing else [])
                                  + ([f"unknown {', '.join(extra)}"] if extra else [])))

    def ranges(self, v: Any, name: str, features: Sequence[str]) -> dict:
        """feature -> ``[lo, hi]``, finite numbers with ``lo <= hi``; ``null`` values mean no range."""
        v = self.obj(v, name, none_ok=True)
        for f, r in v.items():
            if f not in features:
                self.fail(f"{name}.{f}", "is not one of the model's features")
            if r is None:
                continue
            if not isinstance(r, list) or len(r) != 2:
                self.fail(f"{name}.{f}", f"must be [lo, hi], got {_type(r)}")
            lo, hi = (self.number(x, f"{name}.{f}") for x in r)
            if lo > hi:
                self.fail(f"{name}.{f}", f"has lo {lo:g} > hi {hi:g}")
        return v


def _type(v: Any) -> str:
    """``str 'abc'``, ``list``, ``null``: what a field holds, for an error message."""
    if v is None:
        return "null"
    if isinstance(v, (str, int, float)) and not isinstance(v, bool):
        text = repr(v)
        return f"{type(v).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"
    return {dict: "an object", list: "a list", bool: f"{str(v).lower()} (a bool)"}.get(type(v), type(v).__name__)


#: model kind -> (log_target, log_features or None for either, rate time or None for no rate)
_KIND_TRANSFORMS: dict[str, tuple[bool, bool | None, str | None]] = {
    "linear": (False, False, None),
    "loglinear": (True, False, None),
    "loglog": (True, True, None),
    "ridge": (False, None, None),
    "overhead-loglinear": (False, False, "log"),
    "overhead-linear": (False, False, "linear"),
}


def _parse_body(cls: type, d: dict, version: int, ck: _Check) -> "ModelFile":
    from .estimators import MODEL_KINDS

    target = ck.text(ck.get(d, "target", "target"), "target")
    kind = ck.text(ck.get(d, "kind", "kind"), "kind")
    if kind not in MODEL_KINDS or kind not in _KIND_TRANSFORMS:
        ck.fail("kind", f"is {kind!r}, not a model kind (known: {', '.join(MODEL_KINDS)})")
    features = ck.texts(ck.get(d, "features", "features"), "features", empty_ok=False)
    if len(set(features)) != len(features):
        ck.fail("features", "has duplicates")
    for f in features:
        try:
            parse_feature(f)
        except FeatureError as exc:
            ck.fail("features", f"holds an invalid feature ({exc})")
    k = len(features)
    bases = base_columns(features)
    eq_columns = {fac.column for f in features for fac in parse_feature(f) if fac.op == "eq"}

    # transforms and parameters
    tr = ck.obj(ck.get(d, "transforms", "transforms"), "transforms")
    log_target = ck.flag(ck.get(tr, "log_target", "transforms.log_target"), "transforms.log_target")
    log_features = ck.flag(ck.get(tr, "log_features", "transforms.log_features"), "transforms.log_features")
    rate = ck.obj(tr.get("rate"), "transforms.rate", none_ok=True)
    if rate and version < 2:
        ck.fail("transforms.rate", f"needs schema_version >= 2, the file says {version}")
    want_lt, want_lf, want_rate = _KIND_TRANSFORMS[kind]
    if log_target != want_lt or (want_lf is not None and log_features != want_lf):
        ck.fail("transforms", f"(log_target {log_target}, log_features {log_features}) does not fit model kind {kind}")
    log_mask = None
    if "log_columns" in tr:
        if not log_features:
            ck.fail("transforms.log_columns", "is set, but the model does not log its features")
        logged = ck.texts(tr["log_columns"], "transforms.log_columns")
        unknown = [c for c in logged if c not in features]
        if unknown or len(set(logged)) != len(logged):
            ck.fail("transforms.log_columns", f"must list distinct features of the model, got {', '.join(logged)}")
        log_mask = np.array([f in logged for f in features], dtype=bool)
        if not log_mask.all() and version < 3:  # an older reader would log every feature
            ck.fail("transforms.log_columns", f"keeps features linear, which needs schema_version >= 3, the file "
                    f"says {version}")
    rate_time = "log"
    if rate:
        rate_time = ck.get(rate, "time", "transforms.rate.time") if "time" in rate else "log"
        if rate_time not in ("log", "linear"):
            ck.fail("transforms.rate.time", f"must be 'log' or 'linear', got {_type(rate_time)}")
    if (want_rate is None) != (not rate) or (rate and rate_time != want_rate):
        ck.fail("transforms.rate", f"({'time ' + rate_time if rate else 'none'}) does not fit model kind {kind}")
    par = ck.obj(ck.get(d, "params", "params"), "params")
    n_feat = ck.get(par, "n_features", "params.n_features")
    if isinstance(n_feat, bool) or not isinstance(n_feat, int):
        ck.fail("params.n_features", f"must be an integer, got {_type(n_feat)}")
    if n_feat != k:
        ck.fail("params.n_features", f"is {n_feat}, but the file lists {k} features")

    def hexa(key: str, shape: tuple[int, ...]) -> np.ndarray:
        return ck.hexarray(ck.get(par, key, f"params.{key}"), f"params.{key}", shape)

    def hexf(key: str, **kw) -> float:
        return ck.hexfloat(ck.get(par, key, f"params.{key}"), f"params.{key}", **kw)

    params = LinearParams(
        coef=hexa("coef", (k,)), intercept=hexf("intercept"), scaler_mean=hexa("scaler_mean", (k,)),
        scaler_scale=hexa("scaler_scale", (k,)), sigma2=hexf("sigma2", minimum=0.0),
        cov_unscaled=hexa("cov_unscaled", (k + 1, k + 1)), dof_resid=hexf("dof_resid", minimum=0.0),
        log_features=log_features, log_target=log_target, alpha=hexf("alpha", minimum=0.0),
        rate_scale=(ck.hexfloat(ck.get(rate, "scale", "transforms.rate.scale"), "transforms.rate.scale",
                                positive=True) if rate else 0.0),
        overhead=(ck.hexfloat(ck.get(rate, "overhead", "transforms.rate.overhead"), "transforms.rate.overhead",
                              minimum=0.0) if rate else 0.0),
        rate_time=rate_time, log_mask=log_mask,
    )
    if not (params.scaler_scale > 0).all():
        ck.fail("params.scaler_scale", "must be > 0 everywhere (it divides the features)")
    cov = params.cov_unscaled
    if (np.diag(cov) < 0).any() or not np.allclose(cov, cov.T, rtol=1e-9, atol=1e-12 * float(np.abs(cov).max() or 1)):
        ck.fail("params.cov_unscaled", "is not a covariance (symmetric, diagonal >= 0)")
    if kind == "overhead-linear" and ((params.coef < 0).any() or params.intercept != 0 or params.scaler_mean.any()):
        ck.fail("params", "of an overhead-linear model must have costs (coef) >= 0, intercept 0 and scaler_mean 0 "
                          "(an additive time of counts)")

    # provenance and levels
    prov = ck.obj(ck.get(d, "provenance", "provenance"), "provenance")
    provenance = {f: ck.texts(v, f"provenance.{f}") for f, v in prov.items()}
    ck.same_keys(provenance, features, "provenance", "features")
    cprov = ck.obj(ck.get(d, "column_provenance", "column_provenance"), "column_provenance")
    column_prov = {c: ck.texts(v, f"column_provenance.{c}") for c, v in cprov.items()}
    ck.same_keys(column_prov, bases, "column_provenance", "columns the features use")
    lev = ck.obj(d.get("levels"), "levels", none_ok=True)
    if not set(lev) <= eq_columns:
        ck.fail("levels", f"names column(s) {', '.join(sorted(set(lev) - eq_columns))} no feature compares")
    levels = {c: ck.texts(v, f"levels.{c}") for c, v in lev.items()}

    # sections the tool reads: training (ranges, known times), metadata (calibrations, lag, exclusions)
    training = ck.obj(d.get("training"), "training", none_ok=True)
    ck.ranges(training.get("ranges"), "training.ranges", features)
    ck.ranges(training.get("active_ranges"), "training.active_ranges", features)
    fixed = ck.obj(training.get("fixed_coefficients"), "training.fixed_coefficients", none_ok=True)
    for f, c in fixed.items():
        if f not in features:
            ck.fail(f"training.fixed_coefficients.{f}", "is not one of the model's features")
        ck.number(c, f"training.fixed_coefficients.{f}")
    meta = ck.obj(d.get("metadata"), "metadata", none_ok=True)
    for key in ("stream_bandwidth_gbps", "gemm_gflops"):
        ck.threads_map(meta.get(key), f"metadata.{key}")
    lag = meta.get("sensor_lag")
    if lag is not None and (isinstance(lag, bool) or not isinstance(lag, int) or lag < 0):
        ck.fail("metadata.sensor_lag", f"must be null or a whole number >= 0, got {_type(lag)}")
    if meta.get("l2_bytes") is not None:
        ck.number(meta["l2_bytes"], "metadata.l2_bytes", positive=True)
    geometry = ck.obj(meta.get("simulated_geometry"), "metadata.simulated_geometry", none_ok=True)
    for level, spec in geometry.items():  # valgrind's caches: {"D1": "size,assoc,line", ...}
        ck.text(spec, f"metadata.simulated_geometry.{level}")
    excluded = ck.obj(meta.get("excluded"), "metadata.excluded", none_ok=True)
    if excluded.get("rules") is not None:
        for rule in ck.texts(excluded["rules"], "metadata.excluded.rules"):
            if "=" not in rule:
                ck.fail("metadata.excluded.rules", f"holds {rule!r}, not column=value")
    cv = ck.obj(d.get("cv"), "cv", none_ok=True)
    if "scheme" in cv and cv["scheme"] is not None:
        ck.text(cv["scheme"], "cv.scheme")
    if "results" in cv:
        res = cv["results"]
        if not isinstance(res, list) or not all(isinstance(r, dict) for r in res):
            ck.fail("cv.results", f"must be a list of objects, got {_type(res)}")
    versions = ck.obj(d.get("versions"), "versions", none_ok=True)
    for name, v in versions.items():
        if not isinstance(v, str):
            ck.fail(f"versions.{name}", f"must be a string, got {_type(v)}")
    model = cls(
        target=target, kind=kind, features=features, params=params, provenance=provenance,
        column_provenance=column_prov, levels=levels, training=training, cv=cv,
        selection=ck.obj(d.get("selection"), "selection", none_ok=True),
        statistics=ck.obj(d.get("statistics"), "statistics", none_ok=True), metadata=meta, versions=versions,
    )
    if "coefficients" in d:  # the copy a reader trusts must say what the parameters predict with
        _check_coefficients(ck, d["coefficients"], model)
    return model


def _check_coefficients(ck: _Check, v: Any, model: "ModelFile") -> None:
    """The readable ``coefficients`` section equals the one the hex parameters give (terms and values)."""
    want = model.coefficients()
    if not isinstance(v, list) or not all(isinstance(r, dict) for r in v):
        ck.fail("coefficients", f"must be a list of {{term, coef}} objects, got {_type(v)}")
    terms = [r.get("term") for r in v]
    if terms != list(want["term"]):
        ck.fail("coefficients", f"lists terms {terms}, but the parameters are of {list(want['term'])}")
    ref = want["coef"].to_numpy(dtype="float64")
    tol = 1e-12 * float(np.nanmax(np.abs(ref))) if np.isfinite(ref).any() else 0.0
    for r, w in zip(v, ref):
        got = r.get("coef")
        if got is None and not math.isfinite(w):
            continue
        if isinstance(got, bool) or not isinstance(got, (int, float)) or not math.isclose(
                float(got), float(w), rel_tol=1e-9, abs_tol=tol):
            ck.fail("coefficients", f"says {r.get('term')} = {got!r}, but the parameters (params) give {w!r}: "
                    "the readable copy disagrees with what the model predicts with (an edited file; refit it)")


def _measured(prov: Sequence[str]) -> list[str]:
    """Sorted measurement sources of a provenance list: ``"real+simulated"`` split, ``derived`` left out."""
    return sorted({p for item in prov for p in str(item).split("+") if p and p != "derived"})


def _term_on(df: pd.DataFrame, factors: Sequence, cache: dict) -> np.ndarray:
    """Rows where every indicator factor (``column=value``) of a feature holds (all rows when it has none)."""
    from .features import _key_str

    on = np.ones(len(df), dtype=bool)
    for fac in factors:
        if fac.op != "eq":
            continue
        if fac.column not in cache:
            cache[fac.column] = _key_str(df[fac.column]).to_numpy(dtype=object)
        on &= cache[fac.column] == fac.value
    return on


def _range_bounds(feature: str, factors: Sequence, active: Mapping | None, ranges: Mapping,
                  tolerance: float) -> tuple[float, float, bool, str] | None:
    """``(lower, upper, zero_open, text)`` a value of ``feature`` where it is on must keep to (``zero_open``:
    a value <= 0 is outside as well), or None when the file records no range for it (see ``out_of_range``)."""
    shown_extra = ""
    zero_open = False
    if active is not None:  # written with the ranges over the rows where each term is on
        r = active.get(feature)
    else:
        r = ranges.get(feature)
        if r and any(fac.op == "eq" for fac in factors):  # an older file: the range covers the rows where it is off
            plain = "*".join(part for part, fac in zip(feature.split("*"), factors) if fac.op != "eq")
            if ranges.get(plain):
                r, shown_extra = ranges[plain], f" as {plain}"
            elif float(r[0]) == 0.0 and float(r[1]) > 0:
                zero_open = True
    if not r or len(r) != 2 or r[0] is None or r[1] is None:
        return None
    lo, hi = float(r[0]), float(r[1])
    pad = tolerance * (hi - lo)
    lower, upper = lo - pad, hi + pad
    if lo >= 0:  # counts and other non-negative inputs: the widening never reaches 0
        lower = max(lower, lo * (1 - tolerance))
    return lower, upper, zero_open, f"trained {lo:.4g}..{hi:.4g}{shown_extra}"


def active_ranges(df: pd.DataFrame, X: np.ndarray, features: Sequence[str]) -> dict[str, list[float] | None]:
    """feature -> ``[min, max]`` of its column of ``X`` over the rows of ``df`` where its indicator factors
    hold (all rows for a feature without any; None when it is on in no row) - what
    :meth:`ModelFile.out_of_range` checks a new sample against (``training["active_ranges"]``)."""
    cache: dict = {}
    out: dict[str, list[float] | None] = {}
    for j, f in enumerate(features):
        on = _term_on(df, parse_feature(f), cache)
        out[f] = [float(np.min(X[on, j])), float(np.max(X[on, j]))] if on.any() else None
    return out


def save_model(model: ModelFile, path: str | os.PathLike) -> Path:
    """Write ``model`` as JSON (atomically: temporary file + rename)."""
    if not isinstance(model, ModelFile):
        raise PerfmodelError(f"save_model expects a ModelFile, got {type(model).__name__}")
    path = Path(path)
    body = model.to_dict()
    try:  # never write a file that load_model would refuse
        ModelFile.from_dict(body, where="the model")
    except ModelFileError as exc:
        raise PerfmodelError(f"cannot write {path}: {exc} (it would not load back)") from None
    text = json.dumps(body, indent=1, allow_nan=False) + "\n"
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    from perfmodel.paths import atomic_write_text

    try:  # a failed write (full disk, a folder in the way) leaves no temp file behind
        atomic_write_text(path, text)
    except OSError as exc:
        raise PerfmodelError(f"cannot write the model file {path}: {exc.strerror or exc}") from None
    return path


#: larger than any model file (they are tens of KiB); what a device like /dev/zero is read up to before refusing
MAX_MODEL_BYTES = 16 << 20


def _read_capped(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path`` (a file, pipe or device), None when there are more than ``limit``."""
    chunks, size = [], 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)


def load_model(path: str | os.PathLike) -> ModelFile:
    """Read a model file written by :func:`save_model` (JSON only; checksum verified)."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"model file {path} is a folder: give the model's .json file")
    if not path.exists():
        raise ModelFileError(f"model file {path} does not exist")
    try:  # a regular file, or a pipe (-m <(cat m.json)): read it, at most MAX_MODEL_BYTES
        data = _read_capped(path, MAX_MODEL_BYTES)
    except OSError as exc:
        raise ModelFileError(f"model file {path} cannot be read: {exc.strerror or exc}") from None
    if data is None:
        raise ModelFileError(f"model file {path} is larger than {MAX_MODEL_BYTES >> 20} MiB or never ends (a device "
                             "such as /dev/zero?): not a model file")
    try:
        d = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"model file {path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ModelFileError(f"model file {path} is nested too deeply to be a model file") from None
    return ModelFile.from_dict(d, where=f"model file {path}")


__all__ = ["FORMAT", "SCHEMA_VERSION", "ModelFile", "ModelFileError", "IncompatibleSampleError", "save_model",
           "load_model", "training_hash", "active_ranges"]

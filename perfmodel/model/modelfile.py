"""Model files: a fitted linear model as plain JSON, loaded without unpickling or executing anything.

Layout (``format: "perfmodel-model"``, ``schema_version`` 1-4; declared once in :mod:`.schema`, published as
``docs/model-file.schema.json``)::

    target, kind                 "power_w", "linear" | "loglinear" | "loglog" | "ridge" | "overhead-*"
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
    preparation                  what fit did to its data that a prediction replays (:class:`.schema.
                                 Preparation`: calibrations, L2 size, cache geometry, exclusions, sensor
                                 lag, ...); files before schema 4 kept these keys in metadata
    metadata, versions           free metadata, library versions
    checksum                     sha256 of the canonical JSON of everything above

Floats are stored as ``float.hex`` strings, so a save / load round trip is bit-exact. Loading checks the
format, version and checksum and raises :class:`ModelFileError` for a corrupt or edited file. A checksum
proves integrity only, so loading also validates every field against :class:`.schema.ModelDocument` (types,
finite parameters, ``sigma2`` / ``dof_resid`` / ``alpha`` >= 0, a known ``kind`` whose transforms fit it,
array shapes, provenance over exactly the features and their columns, the preparation's calibrations) and
names the field it refuses; :func:`save_model` never writes a file that would not load back.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from perfmodel.data.provenance import Table, frame_of
from perfmodel.errors import InputFileError, PerfmodelError

from pydantic import ValidationError

from .estimators import LinearParams
from .features import FeatureError, column_provenance, feature_frame, parse_feature
from .schema import FORMAT, PREPARATION_KEYS, SCHEMA_VERSION, ModelDocument, Preparation, error_text


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
    #: what fit did to its data that a prediction replays (calibrations, L2 size, cache geometry, ...)
    preparation: Preparation = field(default_factory=Preparation)

    def __post_init__(self) -> None:
        if not isinstance(self.preparation, Preparation):  # a dict: checked like the file's section
            self.preparation = Preparation.model_validate(dict(self.preparation or {}))

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
        if self.preparation.time_scale:
            pred, lo, hi = self._time_scaled(df, pred, lo, hi)
        return pd.DataFrame({"pred": pred, "lo": lo, "hi": hi}, index=df.index)

    def _time_scaled(self, df: pd.DataFrame, *bands: np.ndarray) -> tuple[np.ndarray, ...]:
        """A retrained model's per-(framework, threads) factor on the inference time (``preparation.time_scale``):
        a rate model's time part (``scale / fps - overhead``) is scaled, another throughput model's fps divided;
        a row of a cell without a factor is refused (NaN), it was not adapted."""
        scales = self.preparation.time_scale or {}
        if not {"framework", "threads"} <= set(df.columns):
            raise IncompatibleSampleError("this model was retrained per framework x threads "
                                          "(preparation.time_scale): the samples need framework and threads")
        thr = pd.to_numeric(df["threads"], errors="coerce")
        keys = [f"{f} x{int(t)}" if pd.notna(t) else "" for f, t in zip(df["framework"].astype(str), thr)]
        missing = sorted({k or "(no threads)" for k in keys if k not in scales})
        if missing:  # predict_each then predicts row by row: these rows get the reason, the others a value
            raise IncompatibleSampleError(
                f"this model was retrained for {', '.join(sorted(scales))} only (preparation.time_scale); "
                f"{', '.join(missing)} was not adapted: retrain it with that cell, or use the model it came from")
        s = np.array([scales[k] for k in keys], dtype="float64")
        p = self.params
        out = []
        for b in bands:
            b = np.asarray(b, dtype="float64")
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                if p.rate_scale > 0:  # rate = scale / (overhead + t), t linear or log-modelled
                    t = p.rate_scale / b - p.overhead
                    out.append(p.rate_scale / (p.overhead + s * t))
                else:
                    out.append(b / s)
        pred, lo, hi = out
        return pred, np.minimum(lo, hi), np.maximum(lo, hi)

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
        prep = self.preparation.to_json()
        body = {
            "format": FORMAT,
            # the oldest version that reads the file right: 4 with a preparation (an older reader would not
            # replay it), 3 only where some features stay linear in a log model
            "schema_version": 4 if prep else 3 if p.log_features and not p.logged().all() else 2,
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
            "preparation": prep,
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
            doc = ModelDocument.model_validate(d)
        except ValidationError as exc:
            raise ModelFileError(f"{where}: {error_text(exc)}") from None
        try:
            return cls._from_document(doc, d, where)
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, FeatureError) as exc:  # a check missed above
            raise ModelFileError(f"{where}: malformed model file ({type(exc).__name__}: {exc})") from None

    @classmethod
    def _from_document(cls, doc: ModelDocument, d: dict, where: str) -> "ModelFile":
        """The model of a validated file; free sections (training, cv, metadata, ...) as the file has them."""
        features, tr, par = list(doc.features), doc.transforms, doc.params
        rate = tr.rate
        params = LinearParams(
            coef=np.array(par.coef, dtype="float64"), intercept=par.intercept,
            scaler_mean=np.array(par.scaler_mean, dtype="float64"),
            scaler_scale=np.array(par.scaler_scale, dtype="float64"), sigma2=par.sigma2,
            cov_unscaled=np.array(par.cov_unscaled, dtype="float64").reshape(len(features) + 1, len(features) + 1),
            dof_resid=par.dof_resid, log_features=tr.log_features, log_target=tr.log_target, alpha=par.alpha,
            rate_scale=rate.scale if rate is not None else 0.0, overhead=rate.overhead if rate is not None else 0.0,
            rate_time=rate.time if rate is not None else "log",
            log_mask=(np.array([f in tr.log_columns for f in features], dtype=bool)
                      if "log_columns" in tr.model_fields_set else None),
        )
        metadata = dict(d.get("metadata") or {})
        if doc.schema_version < 4:  # the preparation keys of an older file move to the typed section
            metadata = {k: v for k, v in metadata.items() if k not in PREPARATION_KEYS}
        model = cls(
            target=doc.target, kind=doc.kind, features=features, params=params,
            provenance={f: list(v) for f, v in doc.provenance.items()},
            column_provenance={c: list(v) for c, v in doc.column_provenance.items()},
            levels={c: list(v) for c, v in doc.levels.items()}, training=d.get("training") or {},
            cv=d.get("cv") or {}, selection=d.get("selection") or {}, statistics=d.get("statistics") or {},
            metadata=metadata, preparation=doc.read_preparation(), versions=d.get("versions") or {},
        )
        if "coefficients" in d:  # the copy a reader trusts must say what the parameters predict with
            _check_coefficients(where, d["coefficients"], model)
        return model


# -- reading a model file: the schema checks every field (perfmodel.model.schema) --------------------


def _check_coefficients(where: str, v: list, model: "ModelFile") -> None:
    """The readable ``coefficients`` section equals the one the hex parameters give (terms and values)."""
    def fail(msg: str) -> None:
        raise ModelFileError(f"{where}: field 'coefficients' {msg}")

    want = model.coefficients()
    terms = [r.get("term") for r in v]
    if terms != list(want["term"]):
        fail(f"lists terms {terms}, but the parameters are of {list(want['term'])}")
    ref = want["coef"].to_numpy(dtype="float64")
    tol = 1e-12 * float(np.nanmax(np.abs(ref))) if np.isfinite(ref).any() else 0.0
    for r, w in zip(v, ref):
        got = r.get("coef")
        if got is None and not math.isfinite(w):
            continue
        if isinstance(got, bool) or not isinstance(got, (int, float)) or not math.isclose(
                float(got), float(w), rel_tol=1e-9, abs_tol=tol):
            fail(f"says {r.get('term')} = {got!r}, but the parameters (params) give {w!r}: "
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


__all__ = ["FORMAT", "SCHEMA_VERSION", "ModelFile", "ModelFileError", "IncompatibleSampleError", "Preparation", "save_model",
           "load_model", "training_hash", "active_ranges"]

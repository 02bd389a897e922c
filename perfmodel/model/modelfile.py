"""Model files: a fitted linear model as plain JSON, loaded without unpickling or executing anything.

Layout (``format: "perfmodel-model"``, ``schema_version: 1``)::

    target, kind                 "power_w", "linear" | "loglinear" | "loglog" | "ridge"
    features                     feature names (see perfmodel.model.features: products, log(), col=value)
    provenance                   feature -> provenances of the columns behind it (real/simulated/software/key)
    column_provenance            base column -> provenances (what prediction checks)
    levels                       categorical column -> values seen in training (indicator features)
    transforms                   {"log_target": bool, "log_features": bool}
    params                       scaler mean/scale, coef, intercept, sigma2, dof_resid, alpha and the
                                 unscaled covariance (X'X)^-1 of [1, z] - every float as float.hex text
    coefficients                 human-readable copy (decimal), not used for prediction
    training                     n, sha256 of the training matrix and target, column ranges
    cv, selection, statistics    cross-validation scores, selection history, statsmodels table
    metadata, versions           free metadata, library versions
    checksum                     sha256 of the canonical JSON of everything above

Floats are stored as ``float.hex`` strings, so a save / load round trip is bit-exact. Loading checks the
format, version and checksum and raises :class:`ModelFileError` for a corrupt or edited file.
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

from perfmodel.errors import InputFileError, PerfmodelError

from .estimators import LinearParams
from .features import FeatureError, column_provenance, feature_frame, parse_feature

FORMAT = "perfmodel-model"
SCHEMA_VERSION = 2  # 2: transforms.rate (the overhead-* kinds); version 1 files still load


class ModelFileError(InputFileError):
    """A model file that is missing, corrupt, tampered with or of an unknown version."""


class IncompatibleSampleError(PerfmodelError):
    """A sample whose features or counter provenance do not match the model's."""


# -- float encoding ---------------------------------------------------------------------------------


def _hex(x: float) -> str:
    return float(x).hex()


def _unhex(s: Any, where: str) -> float:
    if not isinstance(s, str):
        raise ModelFileError(f"model file: {where} must be a float.hex string, got {type(s).__name__}")
    try:
        return float.fromhex(s)
    except (ValueError, OverflowError):
        raise ModelFileError(f"model file: {where} is not a float.hex string: {s[:40]!r}") from None


def _hex_array(a: np.ndarray) -> list:
    a = np.asarray(a, dtype="float64")
    if a.ndim == 1:
        return [_hex(v) for v in a]
    return [_hex_array(row) for row in a]


def _unhex_array(v: Any, where: str, shape: tuple[int, ...]) -> np.ndarray:
    try:
        out = np.array(v, dtype=object)
    except ValueError:
        raise ModelFileError(f"model file: {where} is not a regular array") from None
    if out.shape != shape:
        raise ModelFileError(f"model file: {where} has shape {out.shape}, expected {shape}")
    flat = [_unhex(s, where) for s in out.reshape(-1)]
    return np.array(flat, dtype="float64").reshape(shape)


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

    def check_compatible(self, df: pd.DataFrame, provenance: str | Mapping[str, str] | None = None) -> None:
        """Raise :class:`IncompatibleSampleError` unless ``df`` has every column the features need, with
        the same measurement provenance as the training data, and only categorical values seen in training.

        ``provenance`` states the provenance of columns the frame's ``attrs`` do not describe (a CSV file).
        """
        if not isinstance(df, pd.DataFrame):
            raise IncompatibleSampleError(f"expected a DataFrame of samples, got {type(df).__name__}")
        cols = list(self.column_provenance)
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise IncompatibleSampleError(
                f"the sample lacks column(s) {', '.join(missing)} needed by the model's features "
                f"({', '.join(self.features)}); the model predicts {self.target} from them")
        have = column_provenance(df, cols, provenance)
        problems = []
        for c in cols:
            want = self.column_provenance[c]
            if want == ["key"]:
                continue
            got = have[c]
            if got is None:
                problems.append(f"{c}: provenance unknown (the data does not say where it came from; "
                                f"state it, e.g. --provenance {'+'.join(want)})")
            elif got != want:
                problems.append(f"{c}: sample is {'+'.join(got) or 'derived'}, model was trained on "
                                f"{'+'.join(want) or 'derived'}")
        if problems:
            raise IncompatibleSampleError(
                "the sample's counter source does not match the model's - " + "; ".join(problems))
        for col, values in self.levels.items():
            from .features import _key_str, attrs_aside

            with attrs_aside(df):
                seen = set(_key_str(df[col]).unique())
            unknown = sorted(seen - set(values))
            if unknown:
                raise IncompatibleSampleError(
                    f"{col} value(s) {', '.join(unknown)} were not in the training data "
                    f"(known: {', '.join(values)}); the model cannot predict them")

    def out_of_range(self, df: pd.DataFrame, tolerance: float = 0.05) -> pd.Series:
        """Per row, the features whose value lies outside the training range (widened by ``tolerance`` of
        its width), as ``"feature=value (trained a..b)"`` joined by ``"; "`` - ``""`` inside. A prediction
        there is an extrapolation: its interval assumes the fitted form still holds. Features with a fixed
        coefficient (``training["fixed_coefficients"]``, a known time) are not checked."""
        ranges = (self.training or {}).get("ranges") or {}
        fixed = (self.training or {}).get("fixed_coefficients") or {}
        X = feature_frame(df, self.features, allow_nan=True)
        out = pd.Series("", index=df.index, dtype=object)
        for f in self.features:
            if f in fixed:  # a known time (coefficient 1, not fitted): beyond its training range is no extrapolation
                continue
            lo_hi = ranges.get(f)
            if not lo_hi or len(lo_hi) != 2:
                continue
            lo, hi = float(lo_hi[0]), float(lo_hi[1])
            pad = tolerance * (hi - lo)
            v = X[f].to_numpy(dtype="float64")
            bad = np.isfinite(v) & ((v < lo - pad) | (v > hi + pad))
            for i in np.flatnonzero(bad):
                note = f"{f}={v[i]:.4g} (trained {lo:.4g}..{hi:.4g})"
                out.iat[i] = note if not out.iat[i] else f"{out.iat[i]}; {note}"
        return out

    def predict_frame(self, df: pd.DataFrame, alpha: float = 0.05,
                      provenance: str | Mapping[str, str] | None = None) -> pd.DataFrame:
        """Columns ``pred``, ``lo``, ``hi`` (a ``1 - alpha`` prediction interval), same index as ``df``."""
        if not 0 < alpha < 1:
            raise PerfmodelError(f"alpha must be in (0, 1), got {alpha}")
        self.check_compatible(df, provenance)
        try:
            X = feature_frame(df, self.features).to_numpy(dtype="float64")
        except FeatureError as exc:
            raise IncompatibleSampleError(f"cannot predict {self.target}: {exc}") from None
        if self.params.log_features and (X <= 0).any():
            raise IncompatibleSampleError("this model takes logs of its features; the sample has values <= 0")
        with np.errstate(over="ignore", invalid="ignore"):
            pred, lo, hi = self.params.predict(X, alpha)
        return pd.DataFrame({"pred": pred, "lo": lo, "hi": hi}, index=df.index)

    # ---- tables ----

    def coefficients(self) -> pd.DataFrame:
        """Coefficients in the units of the (transformed) features: ``term``, ``coef`` (intercept first)."""
        p = self.params
        coef = p.coef / p.scaler_scale
        intercept = p.intercept - float(np.sum(coef * p.scaler_mean))
        terms = [f"log({f})" if p.log_features else f for f in self.features]
        return pd.DataFrame({"term": ["intercept"] + terms, "coef": np.concatenate([[intercept], coef])})

    # ---- (de)serialisation ----

    def to_dict(self) -> dict[str, Any]:
        p = self.params
        k = len(self.features)
        body = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "target": self.target,
            "kind": self.kind,
            "features": list(self.features),
            "provenance": {f: list(v) for f, v in self.provenance.items()},
            "column_provenance": {c: list(v) for c, v in self.column_provenance.items()},
            "levels": {c: list(v) for c, v in self.levels.items()},
            "transforms": {"log_target": bool(p.log_target), "log_features": bool(p.log_features),
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
        if not isinstance(version, int) or version < 1:
            raise ModelFileError(f"{where}: invalid schema_version {version!r}")
        if version > SCHEMA_VERSION:
            raise ModelFileError(f"{where}: schema_version {version} is newer than this perfmodel "
                                 f"understands ({SCHEMA_VERSION}); upgrade perfmodel")
        body = {k: v for k, v in d.items() if k != "checksum"}
        want = d.get("checksum")
        try:
            got = "sha256:" + hashlib.sha256(_canonical(body)).hexdigest()
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{where}: corrupt content ({exc})") from None
        if want != got:
            raise ModelFileError(f"{where}: checksum mismatch - the file is corrupt or was edited "
                                 "(refit the model instead of editing it)")
        try:
            features = [str(f) for f in d["features"]]
            for f in features:
                parse_feature(f)
            par = d["params"]
            k = len(features)
            if par["n_features"] != k:
                raise ModelFileError(f"{where}: n_features {par['n_features']} != {k} features")
            tr = d["transforms"]
            rate = tr.get("rate") or {}
            if rate and version < 2:
                raise ModelFileError(f"{where}: a 'rate' transform needs schema_version >= 2, the file says {version}")
            params = LinearParams(
                coef=_unhex_array(par["coef"], "coef", (k,)),
                intercept=_unhex(par["intercept"], "intercept"),
                scaler_mean=_unhex_array(par["scaler_mean"], "scaler_mean", (k,)),
                scaler_scale=_unhex_array(par["scaler_scale"], "scaler_scale", (k,)),
                sigma2=_unhex(par["sigma2"], "sigma2"),
                cov_unscaled=_unhex_array(par["cov_unscaled"], "cov_unscaled", (k + 1, k + 1)),
                dof_resid=_unhex(par["dof_resid"], "dof_resid"),
                log_features=bool(tr["log_features"]),
                log_target=bool(tr["log_target"]),
                alpha=_unhex(par["alpha"], "alpha"),
                rate_scale=_unhex(rate["scale"], "rate scale") if rate else 0.0,
                overhead=_unhex(rate["overhead"], "rate overhead") if rate else 0.0,
                rate_time=str(rate.get("time", "log")) if rate else "log",
            )
            if rate and not (params.rate_scale > 0 and params.overhead >= 0 and params.rate_time in ("log", "linear")):
                raise ModelFileError(f"{where}: invalid rate transform (scale {params.rate_scale}, "
                                     f"overhead {params.overhead}, time {params.rate_time!r})")
            return cls(
                target=str(d["target"]), kind=str(d["kind"]), features=features, params=params,
                provenance={str(f): [str(p) for p in v] for f, v in d["provenance"].items()},
                column_provenance={str(c): [str(p) for p in v] for c, v in d["column_provenance"].items()},
                levels={str(c): [str(x) for x in v] for c, v in d.get("levels", {}).items()},
                training=d.get("training", {}), cv=d.get("cv", {}), selection=d.get("selection", {}),
                statistics=d.get("statistics", {}), metadata=d.get("metadata", {}),
                versions=d.get("versions", {}),
            )
        except ModelFileError:
            raise
        except (KeyError, TypeError, AttributeError, FeatureError) as exc:
            raise ModelFileError(f"{where}: malformed model file ({type(exc).__name__}: {exc})") from None


def save_model(model: ModelFile, path: str | os.PathLike) -> Path:
    """Write ``model`` as JSON (atomically: temporary file + rename)."""
    if not isinstance(model, ModelFile):
        raise PerfmodelError(f"save_model expects a ModelFile, got {type(model).__name__}")
    path = Path(path)
    text = json.dumps(model.to_dict(), indent=1, allow_nan=False) + "\n"
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_model(path: str | os.PathLike) -> ModelFile:
    """Read a model file written by :func:`save_model` (JSON only; checksum verified)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"model file {path} is not valid JSON: {exc}") from None
    return ModelFile.from_dict(d, where=f"model file {path}")


__all__ = ["FORMAT", "SCHEMA_VERSION", "ModelFile", "ModelFileError", "IncompatibleSampleError", "save_model",
           "load_model", "training_hash"]

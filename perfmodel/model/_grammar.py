"""The feature grammar: a feature is a column or a product of factors written ``a*b^2*log(c)*fw=litert``.

Product terms are computed here, never with ``eval``, and their names are stored in model files so that
prediction recomputes them from the same columns (:mod:`perfmodel.model.features` lists examples).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from perfmodel.errors import PerfmodelError

#: key / bookkeeping columns that are never candidate features
NON_FEATURES = frozenset({
    "run_id", "cell_id", "board", "framework", "network", "threads", "workload", "repeat", "image_index",
    "t_start_s", "t_end_s", "t_rel_s", "dt_s", "timestamp_ns", "segment", "run", "interval_ok", "n_images",
    "counter_source",
})

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_FACTOR = re.compile(rf"^(?:log\(({_NAME})\)|({_NAME})=([A-Za-z0-9_.+-]+)|({_NAME})(?:\^([1-9]))?)$")


class FeatureError(PerfmodelError):
    """A feature that cannot be computed: missing column, NaN / infinite value, bad name."""


class Factor(NamedTuple):
    """One factor of a feature: ``column``, ``column^power``, ``log(column)`` or ``column=value``."""

    column: str
    power: int = 1
    op: str = ""  # "" | "log" | "eq"
    value: str = ""


def parse_feature(name: str) -> list[Factor]:
    """``"a*b^2*log(c)*fw=litert"`` -> its :class:`Factor` list (:class:`FeatureError` for malformed names).

    Factors: ``column`` (numeric), ``column^k`` (k = 1..9), ``log(column)`` (natural log, column > 0) and
    ``column=value`` (indicator: 1.0 where ``str(column) == value``, else 0.0; for categorical keys such
    as ``framework`` or ``threads``).
    """
    if not isinstance(name, str) or not name:
        raise FeatureError(f"invalid feature name {name!r}")
    factors = []
    for part in name.split("*"):
        m = _FACTOR.match(part.strip())
        if not m:
            raise FeatureError(
                f"invalid feature {name!r}: factor {part!r} is not 'column', 'column^k' (k=1..9), "
                "'log(column)' or 'column=value'")
        if m.group(1):
            factors.append(Factor(m.group(1), 1, "log"))
        elif m.group(2):
            factors.append(Factor(m.group(2), 1, "eq", m.group(3)))
        else:
            factors.append(Factor(m.group(4), int(m.group(5) or 1)))
    return factors


def base_columns(features: Iterable[str]) -> list[str]:
    """The table columns the features are computed from (in first-use order)."""
    out: list[str] = []
    for f in features:
        for fac in parse_feature(f):
            if fac.column not in out:
                out.append(fac.column)
    return out


def _key_str(s: pd.Series) -> pd.Series:
    """Categorical values as strings, integral floats without ``.0`` (``threads`` 2.0 -> ``"2"``)."""
    if pd.api.types.is_float_dtype(s.dtype):
        return s.map(lambda v: str(int(v)) if np.isfinite(v) and float(v).is_integer() else str(v))
    return s.astype(str)


def compute_feature(df: pd.DataFrame, name: str, _cache: dict | None = None, *, lenient: bool = False) -> pd.Series:
    """The values of feature ``name`` on ``df`` (float64). ``_cache`` (a dict) lets several features of one
    frame share the per-column conversions (done once per column; the products are numpy arrays).
    ``lenient``: a value that is not a number, or the log of one <= 0, is NaN instead of an error (for
    row-wise checks that must not cost the other rows their answer)."""
    values = None
    cache = {} if _cache is None else _cache
    for fac in parse_feature(name):
        col = fac.column
        if col not in df.columns:
            raise FeatureError(f"feature {name!r} needs column {col!r}, which the data does not have")
        if fac.op == "eq":
            if ("key", col) not in cache:
                cache[("key", col)] = _key_str(df[col]).to_numpy(dtype=object)
            x = (cache[("key", col)] == fac.value).astype("float64")
        else:
            if ("num", col) not in cache:
                try:
                    cache[("num", col)] = pd.to_numeric(df[col], errors="coerce" if lenient else "raise").to_numpy(
                        dtype="float64", na_value=np.nan)
                except (TypeError, ValueError):
                    conv = pd.to_numeric(df[col], errors="coerce")
                    odd = df[col][conv.isna() & df[col].notna()]
                    first = f": {odd.iloc[0]!r} (row {odd.index[0]}) is not a number" if len(odd) else ""
                    raise FeatureError(f"column {col!r} (feature {name!r}) is not numeric{first}") from None
            x = cache[("num", col)]
            if fac.op == "log":
                bad = ~(x > 0) & ~np.isnan(x)
                if bad.any() and lenient:
                    x = np.where(bad, np.nan, x)
                elif bad.any():
                    raise FeatureError(f"feature {name!r}: log of {int(bad.sum())} value(s) of {col!r} that are <= 0")
                with np.errstate(invalid="ignore", divide="ignore"):
                    x = np.log(x)
            elif fac.power != 1:
                with np.errstate(over="ignore", invalid="ignore"):  # inf / overflow: refused as non-finite later
                    x = x**fac.power
        with np.errstate(over="ignore", invalid="ignore"):
            values = x if values is None else values * x
    assert values is not None
    return pd.Series(values, index=df.index, name=name, dtype="float64")


def feature_frame(df: pd.DataFrame, features: Sequence[str], *, allow_nan: bool = False,
                  lenient: bool = False) -> pd.DataFrame:
    """A DataFrame with one float column per feature; NaN / inf raise :class:`FeatureError` unless allowed.
    ``lenient`` (with ``allow_nan``): values that are not numbers and logs of values <= 0 are NaN too."""
    if not len(features):
        raise FeatureError("no features given")
    if len(set(features)) != len(features):
        raise FeatureError(f"duplicate features in {list(features)}")
    cache: dict = {}
    out = pd.DataFrame({f: compute_feature(df, f, cache, lenient=lenient and allow_nan) for f in features},
                       index=df.index)
    if not allow_nan:
        bad = ~np.isfinite(out.to_numpy())
        if bad.any():
            cols = [features[j] for j in np.flatnonzero(bad.any(axis=0))]
            bad_rows = bad.any(axis=1)
            sub = df.loc[bad_rows]
            inputs = [c for c in base_columns(cols) if c in sub.columns and pd.api.types.is_numeric_dtype(sub[c])
                      and not np.isfinite(pd.to_numeric(sub[c], errors="coerce").to_numpy(dtype="float64")).all()]
            keys = [c for c in ("framework", "network", "threads") if c in sub.columns]
            which = [" x ".join(str(v) for v in r) for r in sub[keys].head(3).itertuples(index=False)] if keys else []
            raise FeatureError(
                f"{int(bad_rows.sum())} row(s)" + (f" ({'; '.join(which)}{', ...' if bad_rows.sum() > 3 else ''})"
                                                   if which else "")
                + " have NaN or infinite values in "
                + (f"{', '.join(inputs)} (feature(s) {', '.join(cols)})" if inputs else f"feature(s) {', '.join(cols)}")
                + "; drop or fill them first (missing figures are never guessed)"
            )
    return out


def feature_matrix(df: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """``feature_frame(df, features).to_numpy()``."""
    return feature_frame(df, features).to_numpy(dtype="float64")


def target_vector(df: pd.DataFrame, target: str, *, positive: bool = False) -> np.ndarray:
    """The target column as float64, checked finite (and > 0 when ``positive``)."""
    if target not in df.columns:
        raise FeatureError(f"target column {target!r} is not in the data (columns: {', '.join(map(str, df.columns[:30]))})")
    y = pd.to_numeric(df[target], errors="coerce").to_numpy(dtype="float64")
    if not np.isfinite(y).all():
        raise FeatureError(f"target {target!r} has {int((~np.isfinite(y)).sum())} NaN or infinite value(s)")
    if positive and (y <= 0).any():
        raise FeatureError(f"target {target!r} must be > 0 for this model (log transform / percentage errors)")
    return y

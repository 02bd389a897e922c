"""Rank candidates against a :class:`~perfmodel.select.spec.Spec`.

Policy for figures that cannot be evaluated
-------------------------------------------
A constraint is checked on a candidate's value whatever its source (measured, predicted, derived,
published). For a predicted value the point prediction decides; when the prediction interval straddles
the limit the candidate is kept but flagged ``uncertain`` (the constraint is named).

* A candidate that fails any evaluable constraint is **excluded**: one row per failed constraint in
  ``excluded`` (value, limit, shortfall, source) - even if other constraints could not be evaluated.
* A candidate that passes every evaluable constraint but has a constraint (or the objective) it cannot
  be evaluated on (value NaN: nothing measured it and no model predicted it) is **unevaluable**: one row
  per such constraint in ``unevaluable`` with the reason. It is *not* ranked - it is neither treated as
  passing nor dropped - unless ``spec.allow_unknown``, in which case it is also ranked, after the
  fully evaluated candidates when its objective is unknown, with ``unknown`` naming the constraints.
* If nothing is ranked and some candidates were excluded, ``binding`` names the binding constraint(s)
  and the closest candidate with its shortfall per failed constraint.

Ranking: by the objective, ties broken by framework, network, threads (stable); tied objective values
share a rank (``method="min"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from perfmodel.errors import PerfmodelError

from .pareto import pareto_front
from .spec import Spec

#: Pareto axes: (column, sense)
PARETO_AXES: tuple[tuple[str, str], ...] = (("throughput_fps", "max"), ("power_w", "min"), ("top1", "max"))

_LABEL_KEYS = ("board", "framework", "network", "threads")


def _label(row: pd.Series, with_board: bool = False) -> str:
    parts = [str(row.get("framework", "")), str(row.get("network", ""))]
    lab = "/".join(p for p in parts if p) or str(row.get("workload", "?"))
    lab += f" x{int(row['threads'])}" if "threads" in row and not pd.isna(row["threads"]) else ""
    board = row.get("board", "")
    return f"{lab} @{board}" if with_board and isinstance(board, str) and board else lab


def _source(row: pd.Series, col: str) -> str:
    s = row.get(f"{col}_source")
    if isinstance(s, str) and s:
        return s
    if col not in row.index:
        return f"unavailable: no {col} column"
    return "measured" if not pd.isna(row[col]) else "unavailable: no value"


def _reason(source: str) -> str:
    return source.removeprefix("unavailable: ")


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(v, np.bool_):
        return bool(v)
    if v is pd.NA or v is pd.NaT:
        return None
    return v


def _records(df: pd.DataFrame) -> list[dict]:
    return [_jsonable(r) for r in df.to_dict("records")] if df is not None and len(df) else []


@dataclass
class SelectionResult:
    """What :func:`rank` found. Every table keeps the candidate keys (board, framework, network, threads)."""

    spec: Spec
    ranked: pd.DataFrame
    excluded: pd.DataFrame
    unevaluable: pd.DataFrame
    pareto: pd.DataFrame
    binding: dict | None
    candidates: pd.DataFrame
    pareto_axes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def feasible(self) -> bool:
        return len(self.ranked) > 0

    @property
    def best(self) -> dict | None:
        return _jsonable(self.ranked.iloc[0].to_dict()) if len(self.ranked) else None

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN -> None)."""
        return {
            "spec": self.spec.to_dict(),
            "n_candidates": int(len(self.candidates)),
            "feasible": self.feasible,
            "ranked": _records(self.ranked),
            "excluded": _records(self.excluded),
            "unevaluable": _records(self.unevaluable),
            "pareto": {"axes": self.pareto_axes, "front": _records(self.pareto)},
            "binding": _jsonable(self.binding),
            "notes": list(self.notes),
        }


def _merit(row: pd.Series, weights: dict[str, float]) -> tuple[float, str]:
    logm = 0.0
    for col, w in weights.items():
        if w == 0:
            continue
        v = row.get(col, math.nan)
        if pd.isna(v):
            return math.nan, f"{col}: {_reason(_source(row, col))}"
        if v <= 0:
            return math.nan, f"{col} = {v:g} is not > 0 (merit is a product of powers)"
        logm += w * math.log(float(v))
    return math.exp(logm), ""


def rank(candidates: pd.DataFrame, spec: Spec) -> SelectionResult:
    """Check every candidate against ``spec`` and rank the feasible ones (module docstring)."""
    if not isinstance(candidates, pd.DataFrame):
        raise PerfmodelError(f"expected a candidate DataFrame, got {type(candidates).__name__}")
    if not isinstance(spec, Spec):
        raise PerfmodelError("rank() needs a perfmodel.select.Spec")
    cand = candidates.reset_index(drop=True).copy()
    keys = [k for k in _LABEL_KEYS if k in cand.columns]
    multi_board = "board" in cand.columns and cand["board"].nunique() > 1
    cand["candidate"] = [_label(r, multi_board) for _, r in cand.iterrows()]
    notes: list[str] = []

    # objective value per candidate
    obj_col = spec.objective_column
    obj_reason = [""] * len(cand)
    if spec.objective == "merit":
        vals = []
        for i, r in cand.iterrows():
            v, why = _merit(r, dict(spec.weights))
            vals.append(v)
            obj_reason[i] = why
        cand["objective"] = vals
    else:
        if obj_col in cand.columns:
            cand["objective"] = cand[obj_col].astype(float)
        else:
            cand["objective"] = np.nan
        for i, r in cand.iterrows():
            if pd.isna(r["objective"]):
                obj_reason[i] = _reason(_source(r, obj_col))

    excluded, unevaluable = [], []
    status, unknown, uncertain = [], [], []
    for i, r in cand.iterrows():
        fails, unk, unc = [], [], []
        for c in spec.constraints:
            src = _source(r, c.column)
            v = r.get(c.column, math.nan)
            if pd.isna(v):
                unk.append({"constraint": c.name, "column": c.column, "limit": c.limit, "text": c.describe(),
                            "reason": _reason(src)})
                continue
            v = float(v)
            base = {"candidate": r["candidate"], **{k: r[k] for k in keys}, "constraint": c.name,
                    "column": c.column, "value": v, "limit": c.limit, "unit": c.unit, "text": c.describe(),
                    "source": src}
            if not c.passes(v):
                fails.append(base | {"shortfall": c.shortfall(v), "relative_shortfall": c.relative_shortfall(v)})
            elif src == "predicted" or src == "derived":
                lo, hi = r.get(f"{c.column}_lo", math.nan), r.get(f"{c.column}_hi", math.nan)
                if not pd.isna(lo) and not pd.isna(hi) and not (c.passes(lo) and c.passes(hi)):
                    unc.append(c.name)
        if obj_reason[i]:
            unk.append({"constraint": "objective", "column": obj_col or "merit", "limit": math.nan,
                        "text": spec.describe_objective(), "reason": obj_reason[i]})
        if fails:
            excluded.extend(fails)
            status.append("excluded")
        elif unk:
            for u in unk:
                unevaluable.append({"candidate": r["candidate"], **{k: r[k] for k in keys}, **u})
            status.append("unevaluable+ranked" if spec.allow_unknown else "unevaluable")
        else:
            status.append("ranked")
        unknown.append(", ".join(u["constraint"] for u in unk) if not fails else "")
        uncertain.append(", ".join(unc))
    cand["status"] = status
    cand["unknown"] = unknown
    cand["uncertain"] = uncertain

    ok = cand["status"].isin(["ranked", "unevaluable+ranked"])
    ranked = cand.loc[ok].copy()
    asc = spec.objective_sense == "min"
    sort_keys = [k for k in ("framework", "network", "threads", "board") if k in ranked.columns]
    ranked["_nan"] = ranked["objective"].isna()
    ranked["_key"] = ranked["objective"] if asc else -ranked["objective"]
    ranked = ranked.sort_values(["_nan", "_key"] + sort_keys, kind="stable").drop(columns=["_nan", "_key"])
    ranked.insert(0, "rank", (ranked["objective"] if asc else -ranked["objective"]).rank(method="min"))
    ranked = ranked.reset_index(drop=True)

    ex_cols = ["candidate", *keys, "constraint", "column", "value", "limit", "unit", "text", "source",
               "shortfall", "relative_shortfall"]
    excluded_df = pd.DataFrame(excluded, columns=ex_cols)
    un_cols = ["candidate", *keys, "constraint", "column", "limit", "text", "reason"]
    unevaluable_df = pd.DataFrame(unevaluable, columns=un_cols)
    if len(unevaluable_df):
        names = sorted(set(unevaluable_df["constraint"]))
        msg = (f"{unevaluable_df['candidate'].nunique()} candidate(s) cannot be evaluated on "
               f"{', '.join(names)}")
        msg += " and are ranked anyway (flagged)" if spec.allow_unknown else \
            " and are not ranked (pass --allow-unknown to rank them, flagged)"
        notes.append(msg)

    # Pareto front over all candidates, on the axes that have data
    axes = [(c, s) for c, s in PARETO_AXES if c in cand.columns and cand[c].notna().any()]
    pareto_df = pd.DataFrame(columns=["candidate", *keys])
    if axes:
        mask = pareto_front(cand, maximize=[c for c, s in axes if s == "max"],
                            minimize=[c for c, s in axes if s == "min"])
        show = ["candidate", *keys] + [c for c, _ in axes] + [f"{c}_source" for c, _ in axes
                                                              if f"{c}_source" in cand.columns] + ["status"]
        pareto_df = cand.loc[mask, show].reset_index(drop=True)
        lacking = cand.loc[cand[[c for c, _ in axes]].isna().any(axis=1), "candidate"].tolist()
        if lacking:
            notes.append(f"{len(lacking)} candidate(s) lack a Pareto axis value and are not on the front: "
                         + ", ".join(lacking[:8]) + (" ..." if len(lacking) > 8 else ""))
        missing_axes = [c for c, _ in PARETO_AXES if (c, "max") not in axes and (c, "min") not in axes]
        if missing_axes:
            notes.append(f"Pareto front without {', '.join(missing_axes)} (no candidate has a value)")
    else:
        notes.append("no Pareto front: no candidate has throughput, power or accuracy")

    binding = None
    if not len(ranked):
        binding = _binding(cand, spec, excluded_df, unevaluable_df)
    result_cols = list(cand.columns)
    ranked = ranked[["rank"] + [c for c in result_cols if c != "rank"]]
    return SelectionResult(spec, ranked, excluded_df, unevaluable_df, pareto_df, binding, cand,
                           [c for c, _ in axes], notes)


def _binding(cand: pd.DataFrame, spec: Spec, excluded: pd.DataFrame, unevaluable: pd.DataFrame) -> dict:
    out: dict[str, Any] = {"constraints": [], "closest": None, "excluded_by": {}, "message": ""}
    if not len(cand):
        out["message"] = "no candidates"
        return out
    if not len(excluded):
        out["message"] = ("no candidate fails a constraint, but none can be evaluated on all of them "
                          "(see unevaluable)")
        return out
    out["excluded_by"] = {str(k): int(v) for k, v in excluded.groupby("constraint")["candidate"].nunique().items()}
    per_cand = excluded.groupby("candidate", sort=False)
    # a constraint is binding when dropping it alone would make some candidate feasible
    single = [g["constraint"].iloc[0] for name, g in per_cand if len(g) == 1
              and name not in set(unevaluable["candidate"])]
    total = per_cand["relative_shortfall"].sum().sort_values(kind="stable")
    closest_name = total.index[0]
    closest = excluded.loc[excluded["candidate"] == closest_name]
    if single:
        order = pd.Series(single).value_counts()
        out["constraints"] = list(order.index)
    else:
        out["constraints"] = list(closest["constraint"])
    out["closest"] = {
        "candidate": closest_name,
        "total_relative_shortfall": _jsonable(float(total.iloc[0])),
        "shortfalls": [_jsonable({k: r[k] for k in ("constraint", "text", "value", "limit", "unit", "shortfall",
                                                     "relative_shortfall", "source")})
                       for _, r in closest.iterrows()],
    }
    parts = [f"{s['constraint']}: {s['value']:.4g} vs limit {s['limit']:g} {s['unit']} "
             f"(short by {s['shortfall']:.3g}, {100 * s['relative_shortfall']:.1f} %)"
             for s in out["closest"]["shortfalls"]]
    excluded_msg = (f"binding constraint(s) {', '.join(out['constraints'])}; closest excluded candidate "
                    f"{closest_name}: " + "; ".join(parts))
    if len(unevaluable):
        # the headline is what blocks the candidates that pass everything else: the constraint that
        # cannot be evaluated, not the one that excluded the others
        out["unevaluable_constraints"] = sorted(set(unevaluable["constraint"]))
        out["message"] = (f"infeasible: {unevaluable['candidate'].nunique()} candidate(s) pass every constraint "
                          "that could be evaluated but cannot be evaluated on "
                          + ", ".join(out["unevaluable_constraints"]) + " (see unevaluable; --allow-unknown ranks "
                          f"them anyway, flagged); of the other candidates, {excluded_msg}")
    else:
        out["message"] = "infeasible: " + excluded_msg
    return out


__all__ = ["PARETO_AXES", "SelectionResult", "rank"]

"""What a user asks of a deployment: constraints and an objective.

A :class:`Constraint` is a bound on one column of the candidate table (:mod:`.candidates`); a
:class:`Spec` is a list of constraints plus an objective:

=================  =====================  ======  ===============================================
CLI option         column                 kind    unit
=================  =====================  ======  ===============================================
``--max-power``    ``power_w``            max     W (mean power while inferring)
``--max-energy``   ``energy_j``           max     J per image
``--min-fps``      ``throughput_fps``     min     images/s
``--min-top1``     ``top1``               min     fraction (0.55 = 55 %; values > 1 read as percent)
``--min-top5``     ``top5``               min     fraction (as top-1)
``--max-memory``   ``max_rss_mb``         max     MiB (peak resident set size)
``--max-temp``     ``temperature_c``      max     degC
=================  =====================  ======  ===============================================

Objectives: ``throughput`` (maximise ``throughput_fps``), ``energy`` (minimise ``energy_j``),
``power`` (minimise ``power_w``) and ``merit``: maximise the weighted product
``prod(value_c ** weight_c)`` (``log merit = sum w_c log value_c``), default weights
``throughput_fps=1, power_w=-1, top1=1`` (accurate images per joule). A product is independent of the
candidate set (adding a candidate never reorders the others) and of units; all weighted figures must be
> 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from perfmodel.errors import PerfmodelError, check_choice

#: option name -> (column, kind, unit, label)
CONSTRAINTS: dict[str, tuple[str, str, str, str]] = {
    "max_power": ("power_w", "max", "W", "power budget"),
    "max_energy": ("energy_j", "max", "J/image", "energy per image"),
    "min_fps": ("throughput_fps", "min", "img/s", "minimum throughput"),
    "min_top1": ("top1", "min", "fraction", "minimum top-1 accuracy"),
    "min_top5": ("top5", "min", "fraction", "minimum top-5 accuracy"),
    "max_memory": ("max_rss_mb", "max", "MiB", "maximum memory"),
    "max_temp": ("temperature_c", "max", "degC", "maximum temperature"),
}

#: objective -> (column or None for merit, "max" | "min")
OBJECTIVES: dict[str, tuple[str | None, str]] = {
    "throughput": ("throughput_fps", "max"),
    "energy": ("energy_j", "min"),
    "power": ("power_w", "min"),
    "merit": (None, "max"),
}

DEFAULT_WEIGHTS: dict[str, float] = {"throughput_fps": 1.0, "power_w": -1.0, "top1": 1.0}

#: columns a merit weight may name
WEIGHT_COLUMNS: tuple[str, ...] = ("throughput_fps", "latency_ms", "power_w", "energy_j", "top1", "top5",
                                   "max_rss_mb", "temperature_c")


@dataclass(frozen=True)
class Constraint:
    """``column <= limit`` (``kind="max"``) or ``column >= limit`` (``kind="min"``)."""

    name: str
    column: str
    kind: str
    limit: float
    unit: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("max", "min"):
            raise PerfmodelError(f"constraint kind must be 'max' or 'min', got {self.kind!r}")
        if not isinstance(self.limit, (int, float)) or not math.isfinite(float(self.limit)):
            raise PerfmodelError(f"the limit of {self.name} must be a finite number, got {self.limit!r}")

    @classmethod
    def from_option(cls, option: str, limit: float) -> "Constraint":
        """``Constraint.from_option("max_power", 2.5)`` (also accepts ``--max-power``)."""
        key = option.lstrip("-").replace("-", "_")
        check_choice("constraint", key, CONSTRAINTS)
        column, kind, unit, label = CONSTRAINTS[key]
        limit = float(limit)
        if key in ("min_top1", "min_top5"):
            if limit < 0 or limit > 100:
                raise PerfmodelError(f"--{key.replace('_', '-')} must be a fraction in [0, 1] (or a percent), "
                                     f"got {limit}")
            if limit > 1:
                limit = limit / 100.0
        elif limit < 0 and key != "max_temp":
            raise PerfmodelError(f"--{key.replace('_', '-')} must be >= 0, got {limit}")
        return cls(key, column, kind, limit, unit, label)

    def passes(self, value: float) -> bool:
        return value <= self.limit if self.kind == "max" else value >= self.limit

    def shortfall(self, value: float) -> float:
        """How far ``value`` is on the wrong side of the limit (0 when it passes), in the column's unit."""
        d = value - self.limit if self.kind == "max" else self.limit - value
        return max(0.0, float(d))

    def relative_shortfall(self, value: float) -> float:
        """:meth:`shortfall` / |limit| (inf for a zero limit that is missed)."""
        s = self.shortfall(value)
        if s == 0:
            return 0.0
        return s / abs(self.limit) if self.limit else math.inf

    def describe(self) -> str:
        op = "<=" if self.kind == "max" else ">="
        return f"{self.column} {op} {self.limit:g} {self.unit}".rstrip()

    def to_dict(self) -> dict:
        return {"name": self.name, "column": self.column, "kind": self.kind, "limit": self.limit,
                "unit": self.unit, "label": self.label, "text": self.describe()}


@dataclass(frozen=True)
class Spec:
    """Constraints + objective (+ merit weights) + the policy for figures that cannot be evaluated.

    ``allow_unknown``: rank candidates with a constraint that cannot be evaluated (no value, no model)
    anyway, flagged; by default they are listed under ``unevaluable`` and not ranked.
    """

    constraints: tuple[Constraint, ...] = ()
    objective: str = "throughput"
    weights: Mapping[str, float] = field(default_factory=dict)
    allow_unknown: bool = False

    def __post_init__(self) -> None:
        check_choice("objective", self.objective, OBJECTIVES)
        object.__setattr__(self, "constraints", tuple(self.constraints))
        if self.objective == "merit":
            w = dict(self.weights) if self.weights else dict(DEFAULT_WEIGHTS)
            for col, val in w.items():
                check_choice("weight column", col, WEIGHT_COLUMNS)
                if not math.isfinite(float(val)):
                    raise PerfmodelError(f"weight of {col} must be finite, got {val!r}")
            if not any(float(v) != 0 for v in w.values()):
                raise PerfmodelError("merit weights are all zero")
            object.__setattr__(self, "weights", {k: float(v) for k, v in w.items()})
        elif self.weights:
            raise PerfmodelError("--weights only apply to --objective merit")
        seen = set()
        for c in self.constraints:
            if c.name in seen:
                raise PerfmodelError(f"constraint {c.name} given twice")
            seen.add(c.name)

    @classmethod
    def from_options(cls, *, objective: str = "throughput", weights: str | Mapping[str, float] | None = None,
                     allow_unknown: bool = False, **limits: float | None) -> "Spec":
        """``Spec.from_options(max_power=2.5, min_fps=10, min_top1=0.55, objective="energy")``.

        ``None`` limits are ignored; ``weights`` may be a mapping or ``"throughput_fps=1,power_w=-1"``.
        """
        cons = [Constraint.from_option(k, v) for k, v in limits.items() if v is not None]
        if isinstance(weights, str):
            weights = parse_weights(weights)
        return cls(tuple(cons), objective, dict(weights or {}), allow_unknown)

    @property
    def objective_column(self) -> str | None:
        return OBJECTIVES[self.objective][0]

    @property
    def objective_sense(self) -> str:
        return OBJECTIVES[self.objective][1]

    def describe_objective(self) -> str:
        if self.objective == "merit":
            terms = " * ".join(f"{c}^{w:g}" for c, w in self.weights.items() if w)
            return f"maximise merit = {terms}"
        sense = "maximise" if self.objective_sense == "max" else "minimise"
        return f"{sense} {self.objective_column}"

    def to_dict(self) -> dict:
        return {"constraints": [c.to_dict() for c in self.constraints], "objective": self.objective,
                "objective_text": self.describe_objective(), "weights": dict(self.weights),
                "allow_unknown": self.allow_unknown}


def parse_weights(text: str) -> dict[str, float]:
    """``"throughput_fps=1, power_w=-1"`` -> dict (``PerfmodelError`` on a malformed term)."""
    out: dict[str, float] = {}
    for term in text.split(","):
        term = term.strip()
        if not term:
            continue
        name, sep, val = term.partition("=")
        if not sep:
            raise PerfmodelError(f"weights are column=number terms separated by commas, got {term!r}")
        name = name.strip()
        check_choice("weight column", name, WEIGHT_COLUMNS)
        try:
            out[name] = float(val)
        except ValueError:
            raise PerfmodelError(f"weight of {name} is not a number: {val.strip()!r}") from None
    if not out:
        raise PerfmodelError("no weights given")
    return out


__all__ = ["CONSTRAINTS", "OBJECTIVES", "DEFAULT_WEIGHTS", "WEIGHT_COLUMNS", "Constraint", "Spec",
           "parse_weights"]

"""A measured figure together with where it came from.

Every figure perfmodel records says which source gave it. A figure a sensor or counter did not give is
NaN with a ``reason``; it is never guessed. ``provenance`` tells the modelling stage what kind of figure it
is, so that a model trained on simulated counts is never fed real PMU counts (or the reverse).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

Provenance = Literal["real", "simulated", "software", "derived", "external", "none"]
PROVENANCES: tuple[str, ...] = ("real", "simulated", "software", "derived", "external", "none")

#: the counter sources a cell is measured with (``perfmodel collect --counters``; the last part of a cell id,
#: :mod:`perfmodel.data.cells`); ``valgrind`` gives simulated counts
COUNTER_SOURCES: tuple[str, ...] = ("auto", "perf", "valgrind", "software")


@dataclass(frozen=True)
class Reading:
    """One figure: ``value`` in ``unit`` from ``source``.

    ``provenance``: ``real`` (hardware PMU or a physical sensor), ``simulated`` (valgrind), ``software``
    (OS / kernel software events, psutil), ``derived`` (computed from other readings), ``external``
    (imported data set or analyzer log), ``none`` (no source: value is NaN and ``reason`` says why).
    """

    name: str
    value: float
    unit: str = ""
    source: str = ""
    provenance: Provenance = "real"
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.provenance not in PROVENANCES:
            raise ValueError(f"provenance must be one of {PROVENANCES}, got {self.provenance!r}")
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            object.__setattr__(self, "value", math.nan)
            if not self.reason:
                raise ValueError(f"reading {self.name!r} is missing (NaN) but gives no reason")

    @property
    def available(self) -> bool:
        return not math.isnan(self.value)

    @classmethod
    def missing(cls, name: str, reason: str, unit: str = "", source: str = "none") -> "Reading":
        return cls(name=name, value=math.nan, unit=unit, source=source, provenance="none", reason=reason)

    def to_dict(self) -> dict:
        return asdict(self)


def json_safe(obj):
    """``obj`` made fit for strict JSON: NaN / inf -> None (a missing figure stays missing, never a number),
    numpy scalars -> Python numbers, dict keys -> str, tuples -> lists; recursively."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            return json_safe(obj.item())
        except (ValueError, AttributeError):
            return str(obj)
    return obj

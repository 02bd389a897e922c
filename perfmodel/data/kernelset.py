"""Kernel data sets (``datasets/kernels/``, written by :mod:`perfmodel.collect.kernel_campaign`), read as typed
objects: :class:`KernelSet` with its units (configuration + the kernels each framework runs for it), the
timing rows, the networks' timings and the campaign's speed calibrations."""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfmodel.errors import InputFileError


@dataclass(frozen=True)
class UnitRecord:
    id: str
    unit: dict[str, Any]
    kernels: dict[str, list[dict[str, Any]]]  #: framework -> the kernels it runs for this unit

    def io_bytes(self) -> int:
        """Bytes of the unit model's inputs and output (float32)."""
        u = self.unit
        ks = next(iter(self.kernels.values()))
        if not ks:
            return 0
        first, last = ks[0], ks[-1]
        extra = 0
        if u.get("fused_add"):
            extra = 4 * math.prod(last["output_hwc"])
        if u["type"] in ("add", "concat"):
            return int(first["input_bytes"] + last["output_bytes"])
        return int(first["input_bytes"] + extra + last["output_bytes"])


@dataclass
class KernelSet:
    path: Path
    meta: dict[str, Any]
    units: dict[str, UnitRecord]
    #: (framework, threads) -> unit id -> median ms (mean over rounds of the per-round medians)
    unit_ms: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)
    #: (framework, threads) -> network -> [median ms of each round]
    network_ms: dict[tuple[str, int], dict[str, list[float]]] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def cells(self) -> list[tuple[str, int]]:
        return sorted(set(self.unit_ms) | set(self.network_ms))

    def network_median(self, fw: str, threads: int, network: str) -> float:
        vals = self.network_ms.get((fw, threads), {}).get(network, [])
        return statistics.mean(vals) if vals else math.nan

    def gemm_gflops(self, threads: int) -> float:
        """Mean GEMM GFLOP/s of the campaign's calibrations at ``threads`` (NaN if none)."""
        vals = [c.get("gemm_gflops", {}).get(str(threads)) for c in self.meta.get("calibrations", [])]
        vals = [float(v) for v in vals if v is not None]
        return statistics.mean(vals) if vals else math.nan


def read_kernelset(path: str | Path) -> KernelSet:
    folder = Path(path)
    meta_path, units_path, timings_path = (folder / "dataset.json", folder / "units.jsonl", folder / "timings.csv")
    for p in (meta_path, units_path, timings_path):
        if not p.is_file():
            raise InputFileError(f"{str(folder)!r} is not a kernel data set: {p.name} missing "
                                 "(make one with perfmodel kernels profile)")
    meta = json.loads(meta_path.read_text())
    units: dict[str, UnitRecord] = {}
    for line in units_path.read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            units[d["id"]] = UnitRecord(d["id"], d["unit"], d["kernels"])
    per_unit: dict[tuple[str, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    nets: dict[tuple[str, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    errors = []
    with open(timings_path, newline="") as f:
        for row in csv.DictReader(f):
            if row["error"]:
                errors.append({"key": row["key"], "error": row["error"]})
                continue
            cell = (row["framework"], int(row["threads"]))
            ms = float(row["median_ms"])
            if row["kind"] == "unit":
                per_unit[cell][row["item"]].append(ms)
            else:
                nets[cell][row["item"]].append(ms)
    unit_ms = {c: {u: statistics.mean(v) for u, v in d.items() if u in units} for c, d in per_unit.items()}
    return KernelSet(folder, meta, units, unit_ms, {c: dict(d) for c, d in nets.items()}, errors)


__all__ = ["KernelSet", "UnitRecord", "read_kernelset"]

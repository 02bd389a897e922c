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


#: a kernel data set's metadata file (not ``dataset.json``: a kernel set is not a data set of cells)
KERNELSET_FILE = "kernelset.json"
KERNELSET_FORMAT = "perfmodel-kernelset"


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


@dataclass(frozen=True)
class ProfiledKernel:
    """One node of a framework's per-node profile of a network, as a kernel (its time measured inside the
    network): ``kernel`` in the form of :meth:`perfmodel.zoo.kernels.Kernel.as_dict`. No per-call envelope."""

    id: str
    network: str
    kernels: dict[str, list[dict[str, Any]]]
    envelope: bool = False

    def io_bytes(self) -> int:
        return 0


#: ONNX Runtime ops that the framework inserts (layout reorders): no kernel of the graph, part of the overhead
ORT_INSERTED = frozenset({"ReorderInput", "ReorderOutput", "Transpose"})
_ORT_SIMPLE = {"Concat": "concat", "Add": "add", "Sum": "add", "Relu": "relu", "Clip": "relu6",
               "Softmax": "softmax", "Pad": "pad", "Squeeze": "reshape", "Unsqueeze": "reshape", "Reshape": "reshape",
               "Flatten": "reshape", "GlobalAveragePool": "global_avgpool", "MaxPool": "maxpool",
               "AveragePool": "avgpool"}


def ort_node_kernel(node: dict[str, Any]) -> dict[str, Any] | None:
    """An ONNX Runtime profile node (op, input / output shapes, NCHW) as a kernel dict; None for a node the
    framework inserted (:data:`ORT_INSERTED`) or an op this reader does not know."""
    op = node["op"]
    ins = [list(map(int, x)) for x in node.get("inputs", [])]
    outs = [list(map(int, x)) for x in node.get("outputs", [])]
    if op in ORT_INSERTED or not ins or not outs:
        return None

    def hwc(shape: list[int]) -> list[int]:
        return [shape[2], shape[3], shape[1]] if len(shape) == 4 else [1, 1, int(math.prod(shape[1:]) or 1)]

    out = outs[0]
    k = {"ops": [op], "input_hwc": hwc(ins[0]), "output_hwc": hwc(out), "kernel_size": [1, 1], "stride": [1, 1],
         "padding": [0, 0, 0, 0], "groups": 1, "macs": 0, "input_bytes": 4 * math.prod(ins[0]),
         "output_bytes": 4 * math.prod(out), "weight_bytes": 0, "layers": [node["name"]]}
    if op in ("Conv", "FusedConv"):
        if len(ins) < 2 or len(ins[1]) != 4:
            return None
        c_in, w = ins[0][1], ins[1]
        groups = max(1, c_in // max(1, w[1]))
        s = max(1, round(ins[0][2] / max(1, out[2])))
        k.update(type="dwconv" if groups > 1 and groups == c_in else "conv", kernel_size=[w[2], w[3]], stride=[s, s],
                 groups=groups, macs=out[1] * out[2] * out[3] * w[1] * w[2] * w[3],
                 weight_bytes=4 * (math.prod(w) + (math.prod(ins[2]) if len(ins) > 2 else 0)))
        if len(ins) > 3:  # the fused residual add's operand
            k["input_bytes"] += 4 * math.prod(ins[3])
        return k
    if op in ("MatMul", "Gemm", "FusedGemm"):
        kk, n = ins[0][-1], out[-1]
        k.update(type="fc", macs=kk * n, weight_bytes=4 * (kk * n + (n if len(ins) > 2 or op != "MatMul" else 0)))
        return k
    if op in _ORT_SIMPLE:
        t = _ORT_SIMPLE[op]
        if t in ("concat", "add"):
            k["input_bytes"] = 4 * sum(math.prod(x) for x in ins if len(x) >= 2)
        if t in ("maxpool", "avgpool") and len(ins[0]) == 4:
            s = max(1, round(ins[0][2] / max(1, out[2])))
            k["stride"] = k["kernel_size"] = [s, s]
        if t == "pad":
            k["input_bytes"] = 4 * math.prod(ins[0])
        k["type"] = t
        return k
    return None


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
    #: (framework, threads) -> network -> the profile's kernels with their in-network ms (median over rounds)
    profiles: dict[tuple[str, int], dict[str, list[tuple[dict[str, Any], float]]]] = field(default_factory=dict)

    @property
    def cells(self) -> list[tuple[str, int]]:
        return sorted(set(self.unit_ms) | set(self.network_ms) | set(self.profiles))

    def network_median(self, fw: str, threads: int, network: str) -> float:
        vals = self.network_ms.get((fw, threads), {}).get(network, [])
        return statistics.mean(vals) if vals else math.nan

    def gemm_gflops(self, threads: int) -> float:
        """Mean GEMM GFLOP/s of the campaign's calibrations at ``threads`` (NaN if none)."""
        vals = [c.get("gemm_gflops", {}).get(str(threads)) for c in self.meta.get("calibrations", [])]
        vals = [float(v) for v in vals if v is not None]
        return statistics.mean(vals) if vals else math.nan


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; a line cut by a kill (not JSON) is skipped."""
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def read_kernelset(path: str | Path) -> KernelSet:
    folder = Path(path)
    meta_path, units_path, timings_path = (folder / KERNELSET_FILE, folder / "units.jsonl", folder / "timings.csv")
    for p in (meta_path, units_path, timings_path):
        if not p.is_file():
            raise InputFileError(f"{str(folder)!r} is not a kernel data set: {p.name} missing "
                                 "(make one with perfmodel kernels profile)")
    meta = json.loads(meta_path.read_text())
    units: dict[str, UnitRecord] = {}
    for d in read_jsonl(units_path):  # the last record of a unit wins (a later call adds frameworks)
        units[d["id"]] = UnitRecord(d["id"], d["unit"], d["kernels"])
    per_unit: dict[tuple[str, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    nets: dict[tuple[str, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    errors = []
    keys: set[str] = set()
    with open(timings_path, newline="") as f:
        for row in csv.DictReader(f):
            keys.add(row["key"])
            if row["error"]:
                errors.append({"key": row["key"], "error": row["error"]})
                continue
            cell = (row["framework"], int(row["threads"]))
            ms = float(row["median_ms"])
            if row["kind"] == "unit":
                per_unit[cell][row["item"]].append(ms)
            elif row["kind"] == "network":
                nets[cell][row["item"]].append(ms)
    unit_ms = {c: {u: statistics.mean(v) for u, v in d.items() if u in units} for c, d in per_unit.items()}
    return KernelSet(folder, meta, units, unit_ms, {c: dict(d) for c, d in nets.items()}, errors,
                     _read_profiles(folder / "profiles.jsonl", keys))


def _read_profiles(path: Path, done: set[str]) -> dict[tuple[str, int], dict[str, list[tuple[dict[str, Any], float]]]]:
    """Per (framework, threads, network): each profiled node's kernel and its median ms over the rounds. Only
    records whose row made it into ``timings.csv`` (``done``) count, the last one per row key (a profile written
    just before a kill is measured again on resume)."""
    if not path.is_file():
        return {}
    latest = {rec["key"]: rec for rec in read_jsonl(path) if rec.get("key") in done}
    times: dict[tuple[str, int, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    kernels: dict[tuple[str, int, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for rec in latest.values():
        key = (rec["framework"], int(rec["threads"]), rec["network"])
        for node in rec["nodes"]:
            k = node.get("kernel") or (ort_node_kernel(node) if rec["framework"] == "onnxruntime" else None)
            if k is None:
                continue
            kernels[key][node["name"]] = k
            times[key][node["name"]].append(float(node["ms"]))
    out: dict[tuple[str, int], dict[str, list[tuple[dict[str, Any], float]]]] = defaultdict(dict)
    for (fw, t, net), d in times.items():
        out[(fw, t)][net] = [(kernels[(fw, t, net)][name], statistics.median(v)) for name, v in d.items()]
    return dict(out)


__all__ = ["KERNELSET_FILE", "KERNELSET_FORMAT", "KernelSet", "ProfiledKernel", "UnitRecord", "ort_node_kernel", "read_jsonl", "read_kernelset"]

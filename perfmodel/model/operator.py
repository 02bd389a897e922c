"""Operator-level throughput model: per-kernel predictors summed over the kernels a framework runs.

A network's inference time on (framework, threads) = sum over its kernels (:func:`perfmodel.zoo.kernels.detect_kernels`
with that framework's fusion rules) of the kernel predictor of the kernel's type + the framework's per-call
envelope (a constant + a cost per byte of model input and output) + a per-(framework, threads) overhead fitted on
whole networks. fps = 1000 / time (the model call alone, batch 1: no image read or pre-processing).

Kernel predictors, fitted on the profiling units of a kernel data set (:mod:`perfmodel.data.kernelset`):

* ``nnls`` (default): time linear in [1, MMACs, input MB, output MB, weight MB] per kernel type, non-negative
  coefficients, fitted jointly on the units (a unit's time is the sum of its kernels' + the envelope), weighted
  for relative error;
* ``ridge``: the same design, ridge (signed coefficients, a prediction floored at 0);
* ``loglinear``: per type, log time linear in log(1 + each configuration figure), on each unit's main kernel
  (the unit's time less the envelope and its small kernels as the nnls fit prices them);
* ``forest``: per type, a random forest (scikit-learn) on the same per-kernel targets (log time), stored as
  arrays (children, features, thresholds, values), evaluated with numpy: the model file is JSON and never code.

Kernel types: ``base`` (the kernel's type) or ``split`` (convolutions split by shape class: 1x1, 3x3 stride 1,
other; the frameworks pick other algorithms for them). Overhead: ``add`` (median residual of the training
networks) or ``affine`` (time = a + b x the kernel sum, least squares on the training networks).

Interval: the network's relative residual spread from leave-one-network-out of the training networks
(``network_rel_sigma``), combined with the kernels' own (``rel_sigma`` per type, independent), as a normal
interval on the time, mapped to fps.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perfmodel.errors import InputFileError, PerfmodelError
from perfmodel.model._operator_form import (FEATURES, FORMAT, KERNEL_PREDICTORS, OVERHEAD_FORMS, READ_VERSIONS,
                                            SCHEMA_VERSION, SOURCES, TREE_FEATURES, TYPE_SCHEMES)

#: small kernels (element-wise, data movement): never a unit's "main" kernel
SMALL_TYPES = frozenset({"bias", "relu", "relu6", "pad", "reshape", "softmax"})
#: kernels that move no data (a flatten / reshape is a view of its input in every framework here): 0 ms
FREE_TYPES = frozenset({"reshape"})
#: profiled kernels shorter than this are left out of a fit: the profilers count whole microseconds, and a
#: kernel whose op was fused into another layer's shows a stray 0-1 us (with relative weights it would
#: dominate its type)
PROFILE_FLOOR_MS = 0.002
MIN_MS = 1e-3  #: the shortest network time a prediction gives
#: a prediction is never below this share of its kernels' summed time (the zoo networks' overheads take at most
#: 17 % of it off: LiteRT x1 SqueezeNet v1.1)
FLOOR_SHARE = 0.5


# --------------------------------------------------------------------------------------------- features


#: a convolution reading at most this many channels is a network's stem (its first layer, on the image)
STEM_MAX_CHANNELS = 4
#: where a type with no predictor in a cell is priced instead (the coarser classes of the finer schemes)
PARENT_TYPES = {"conv:stem": ("conv:other", "conv:large", "conv:3x3s2"), "conv:3x3s2": ("conv:other", "conv:large"),
                "conv:large": ("conv:other", "conv:3x3s2")}


def type_key(kernel: Mapping[str, Any], scheme: str) -> str:
    """A kernel's type under ``scheme``: ``base`` as detected; ``split`` convolutions by shape (1x1, 3x3/1,
    other); ``stem`` split + the stem (at most STEM_MAX_CHANNELS input channels); ``stem2`` stem with the
    other convolutions split into 3x3/2 and larger."""
    t = kernel["type"]
    if scheme != "base" and t == "conv":
        k, s = tuple(kernel["kernel_size"]), tuple(kernel["stride"])
        if scheme in ("stem", "stem2") and kernel["input_hwc"][2] <= STEM_MAX_CHANNELS:
            return "conv:stem"
        if k == (1, 1):
            return "conv:1x1"
        if k == (3, 3) and s == (1, 1):
            return "conv:3x3s1"
        if scheme == "stem2":
            return "conv:3x3s2" if k == (3, 3) else "conv:large"
        return "conv:other"
    return t


def kernel_features(kernel: Mapping[str, Any]) -> np.ndarray:
    return np.array([1.0, kernel["macs"] / 1e6, kernel["input_bytes"] / 1e6, kernel["output_bytes"] / 1e6,
                     kernel["weight_bytes"] / 1e6])


def tree_features(kernel: Mapping[str, Any]) -> np.ndarray:
    h, w, c = kernel["input_hwc"]
    return np.array([kernel["macs"] / 1e6, kernel["input_bytes"] / 1e6, kernel["output_bytes"] / 1e6,
                     kernel["weight_bytes"] / 1e6, kernel["kernel_size"][0], kernel["stride"][0], h, c,
                     kernel["output_hwc"][2], kernel["groups"]], dtype=float)


def network_io_mb(kernels: Sequence[Mapping[str, Any]], input_hwc: Sequence[int] | None = None) -> float:
    """Model input + output MB of a network from its kernel list (first kernel's input, last one's output)."""
    if not kernels:
        return 0.0
    inp = 4 * math.prod(input_hwc) if input_hwc is not None else kernels[0]["input_bytes"]
    return (inp + kernels[-1]["output_bytes"]) / 1e6


# --------------------------------------------------------------------------------------------- trees as arrays


def forest_to_arrays(forest: Any) -> list[dict[str, list]]:
    out = []
    for est in forest.estimators_:
        t = est.tree_
        out.append({"left": t.children_left.tolist(), "right": t.children_right.tolist(),
                    "feature": t.feature.tolist(), "threshold": [float(x) for x in t.threshold],
                    "value": [float(v) for v in t.value[:, 0, 0]]})
    return out


def forest_predict(trees: Sequence[Mapping[str, list]], x: np.ndarray) -> float:
    vals = []
    for t in trees:
        node = 0
        left, right, feat, thr = t["left"], t["right"], t["feature"], t["threshold"]
        while left[node] != -1:
            node = left[node] if x[feat[node]] <= thr[node] else right[node]
        vals.append(t["value"][node])
    return float(np.mean(vals))


# --------------------------------------------------------------------------------------------- the model


class ThinCellError(PerfmodelError):
    """A framework x threads with too few rows to fit (skipped, named in ``skipped_``)."""


@dataclass
class CellModel:
    """The predictors of one (framework, threads)."""

    framework: str
    threads: int
    envelope: list[float]  #: [ms per call, ms per MB of model input + output]
    types: dict[str, dict[str, Any]]  #: type key -> {"coef": [5], "rel_sigma", "n", optional "loglinear"}
    overhead: dict[str, float]  #: {"a": ms, "b": factor}
    network_rel_sigma: float
    forest: dict[str, dict[str, Any]] = field(default_factory=dict)
    n_units: int = 0  #: training rows: units and / or profiled kernels
    unit_cv_mape: float = math.nan  #: k-fold CV MAPE of the kernel predictor on its training rows
    source: str = "units"  #: what the kernel predictors were fitted on (units / profiles / both)
    #: the fusion rules (``zoo.kernels``) of the kernels this cell prices, where not the framework's own (OpenCV
    #: >= 5.1 runs its new engine: ``opencv-new``)
    rules: str | None = None
    #: this cell's kernel-type scheme where not the model's (an adapted cell of another engine, see
    #: :data:`perfmodel.model.adapt.RULE_SCHEMES`)
    type_scheme: str | None = None

    @property
    def kernel_rules(self) -> str:
        return self.rules or self.framework

    def to_dict(self) -> dict[str, Any]:
        return {"rules": self.rules, "framework": self.framework, "threads": self.threads, "envelope": self.envelope,
                "types": self.types, "overhead": self.overhead, "network_rel_sigma": self.network_rel_sigma,
                "forest": self.forest, "n_units": self.n_units, "unit_cv_mape": self.unit_cv_mape,
                "source": self.source, "type_scheme": self.type_scheme}


@dataclass
class NetworkRow:
    """A whole network's measured time as a training row of the kernel predictors: its kernels' features summed
    per type, one call's envelope (``network_weight``)."""

    name: str
    kernels: list[dict[str, Any]]
    weight: float = 1.0
    envelope: bool = True

    def io_bytes(self) -> float:
        return network_io_mb(self.kernels) * 1e6


@dataclass
class KernelTime:
    type: str
    ms: float
    modelled: bool


class OperatorModel:
    """Fit per-kernel predictors on a kernel data set and predict a network's time from its graph.

    Parameters are stored as given (scikit-learn style); fitted state ends in ``_``."""

    def __init__(self, kernel_predictor: str = "nnls", type_scheme: str = "split", overhead_form: str = "add",
                 ridge_alpha: float = 1e-3, n_trees: int = 40, random_state: int = 0, source: str = "units",
                 network_weight: float = 0.0):
        self.source = source
        self.network_weight = network_weight
        self.kernel_predictor = kernel_predictor
        self.type_scheme = type_scheme
        self.overhead_form = overhead_form
        self.ridge_alpha = ridge_alpha
        self.n_trees = n_trees
        self.random_state = random_state

    # ----------------------------------------------------------------------------------- fitting

    def _check(self) -> None:
        for name, val, ok in (("source", self.source, SOURCES),
                              ("kernel_predictor", self.kernel_predictor, KERNEL_PREDICTORS),
                              ("type_scheme", self.type_scheme, TYPE_SCHEMES),
                              ("overhead_form", self.overhead_form, OVERHEAD_FORMS)):
            if val not in ok:
                raise PerfmodelError(f"{name} {val!r}: one of {', '.join(ok)}")
        if not (self.network_weight >= 0 and math.isfinite(self.network_weight)):
            raise PerfmodelError(f"network_weight {self.network_weight!r}: a finite number >= 0")

    def fit(self, kset: Any, network_kernels: Mapping[str, Mapping[str, list[dict[str, Any]]]] | None = None,
            networks: Iterable[str] | None = None, cells: Iterable[tuple[str, int]] | None = None,
            unit_ids: Iterable[str] | None = None) -> "OperatorModel":
        """Fit on ``kset``'s units (``unit_ids``: a subset) and / or per-node profiles (``source``) and, for the
        overhead, on the timings of ``networks`` (default: every network timed) whose kernels are
        ``network_kernels[network][framework]``. Profiles are taken from ``networks`` only (default: all), and so
        are the whole-network rows of ``network_weight`` > 0 (their kernels summed = their measured time, weighted
        to ``network_weight`` x the total weight of the unit / profile rows)."""
        self._check()
        if self.network_weight > 0 and network_kernels is None:
            raise PerfmodelError("network_weight > 0 fits on whole networks' timings: give network_kernels")
        self._network_kernels = network_kernels
        self.cells_: dict[tuple[str, int], CellModel] = {}
        self.skipped_: dict[tuple[str, int], str] = {}
        use_units = set(unit_ids) if unit_ids is not None else None
        self._profile_networks = None if networks is None else set(networks)
        self._fit_data = (kset, use_units)  # for the held-out refits of the interval (network_weight > 0)
        for cell in (cells or kset.cells):
            src = self.source
            if src == "auto":
                src = "profiles" if kset.profiles.get(cell) else "units"
            if src == "units" and cell not in kset.unit_ms:
                continue
            if src == "profiles" and cell not in kset.profiles:
                continue
            try:
                self.cells_[cell] = self._fit_cell(kset, cell, use_units, src)
            except ThinCellError as exc:  # one thin cell does not stop the others
                self.skipped_[cell] = str(exc)
        if not self.cells_:
            why = "; ".join(self.skipped_.values()) or f"no cell has {self.source} data"
            raise PerfmodelError(f"nothing to fit in {kset.path}: {why}")
        if network_kernels is not None:
            self.fit_overhead(kset, network_kernels, networks)
        self.source_ = {"dataset": str(kset.path), "units": len(use_units) if use_units else len(kset.units),
                        "gemm_gflops": {str(t): kset.gemm_gflops(t) for t in sorted({c[1] for c in self.cells_})},
                        "versions": _versions(kset)}
        return self

    def _unit_rows(self, kset: Any, cell: tuple[str, int], use_units: set[str] | None, src: str):
        fw = cell[0]
        rows = []
        if src in ("profiles", "both"):
            from perfmodel.data.kernelset import ProfiledKernel

            for net, nodes in kset.profiles.get(cell, {}).items():
                if self._profile_networks is not None and net not in self._profile_networks:
                    continue
                for i, (k, ms) in enumerate(nodes):
                    if ms >= PROFILE_FLOOR_MS:
                        rows.append((ProfiledKernel(f"{net}#{i}", net, {fw: [k]}), [k], ms))
        if src != "profiles":
            for uid, ms in kset.unit_ms.get(cell, {}).items():
                if use_units is not None and uid not in use_units:
                    continue
                rec = kset.units[uid]
                ks = rec.kernels.get(fw)
                if not ks or not (ms > 0):
                    continue
                rows.append((rec, ks, ms))
        return rows + self._network_rows(kset, cell, len(rows))

    def _network_rows(self, kset: Any, cell: tuple[str, int], n_rows: int) -> list:
        """The training networks' whole timings as rows, together weighing ``network_weight`` x ``n_rows``."""
        if not self.network_weight or not n_rows:
            return []
        nets = [n for n in sorted(kset.network_ms.get(cell, {}))
                if (self._profile_networks is None or n in self._profile_networks)
                and (self._network_kernels or {}).get(n, {}).get(cell[0])
                and kset.network_median(cell[0], cell[1], n) > 0]
        w = self.network_weight * n_rows / max(len(nets), 1)
        return [(NetworkRow(n, self._network_kernels[n][cell[0]], w), self._network_kernels[n][cell[0]],
                 kset.network_median(cell[0], cell[1], n)) for n in nets]

    def _fit_cell(self, kset: Any, cell: tuple[str, int], use_units: set[str] | None, src: str,
                  cv: bool = True) -> CellModel:
        rows = self._unit_rows(kset, cell, use_units, src)
        n_kernel_rows = sum(not isinstance(rec, NetworkRow) for rec, _, _ in rows)
        if n_kernel_rows < 10:
            raise ThinCellError(f"{cell[0]} x{cell[1]}: only {n_kernel_rows} timed units / profiled kernels (need 10)")
        types = sorted({type_key(k, self.type_scheme) for _, ks, _ in rows for k in ks})
        X, y, rw = self._design(rows, types)
        beta = self._solve(X, y, rw)
        env = [float(beta[-2]), float(beta[-1])]
        tmodels: dict[str, dict[str, Any]] = {}
        for i, t in enumerate(types):
            tmodels[t] = {"coef": [float(b) for b in beta[i * 5:(i + 1) * 5]], "n": 0, "rel_sigma": math.nan}
        cm = CellModel(cell[0], cell[1], env, tmodels, {"a": 0.0, "b": 1.0}, math.nan, n_units=len(rows),
                       source=src)
        # per-kernel targets for the main kernel of each unit; residual spread per type
        main = self._main_targets(rows, cm)
        for t, items in main.items():
            rel = [(self._kernel_ms_linear(cm, k) - tgt) / tgt for k, tgt in items if tgt > 0]
            tmodels[t]["n"] = len(items)
            tmodels[t]["rel_sigma"] = float(np.sqrt(np.mean(np.square(rel)))) if rel else math.nan
        if self.kernel_predictor in ("loglinear", "forest"):
            self._fit_per_type(cm, main)
        cm.unit_cv_mape = self._unit_cv(rows, types) if cv else math.nan
        return cm

    def _held_out_cell(self, cm: CellModel, cell: tuple[str, int], exclude: set[str]) -> CellModel | None:
        """``cm`` refitted without ``exclude``'s profiles and whole-network rows (``network_weight`` > 0: those
        rows fit the networks' times, so the interval's leave-one-network-out spread must refit them too)."""
        data = getattr(self, "_fit_data", None)
        if not self.network_weight or data is None:
            return cm
        kset, use_units = data
        kept = self._profile_networks
        every = set(kset.profiles.get(cell, {})) | set(kset.network_ms.get(cell, {}))
        try:
            self._profile_networks = set(kept if kept is not None else every) - exclude
            held = self._fit_cell(kset, cell, use_units, cm.source, cv=False)
        except ThinCellError:  # too few rows without it: this network gives no leave-one-out error
            return None
        finally:
            self._profile_networks = kept
        held.rules = cm.rules
        return held

    def _design(self, rows, types: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features summed per type (+ the envelope's two columns), times, and each row's weight."""
        idx = {t: i for i, t in enumerate(types)}
        X = np.zeros((len(rows), 5 * len(types) + 2))
        y = np.zeros(len(rows))
        rw = np.array([float(getattr(rec, "weight", 1.0)) for rec, _, _ in rows])
        for r, (rec, ks, ms) in enumerate(rows):
            for k in ks:
                i = idx.get(type_key(k, self.type_scheme))
                if i is not None:
                    X[r, i * 5:(i + 1) * 5] += kernel_features(k)
            if getattr(rec, "envelope", True):  # a profiled node has no call of its own
                X[r, -2] = 1.0
                X[r, -1] = rec.io_bytes() / 1e6
            y[r] = ms
        return X, y, rw

    def _solve(self, X: np.ndarray, y: np.ndarray, rw: np.ndarray | None = None) -> np.ndarray:
        """Relative least squares (each row's error over its time), rows weighted by ``rw``; NNLS or ridge."""
        w = 1.0 / y if rw is None else np.sqrt(rw) / y
        Xw, yw = X * w[:, None], y * w
        scale = np.linalg.norm(Xw, axis=0)
        scale[scale == 0] = 1.0
        Z = Xw / scale
        if self.kernel_predictor == "ridge":
            A = Z.T @ Z + self.ridge_alpha * np.eye(Z.shape[1])
            b = np.linalg.solve(A, Z.T @ yw)
        else:
            from scipy.optimize import nnls

            b, _ = nnls(Z, yw, maxiter=50 * Z.shape[1])
        return b / scale

    def _unit_cv(self, rows, types: list[str], folds: int = 5) -> float:
        rng = np.random.default_rng(self.random_state)
        order = rng.permutation(len(rows))
        errs = []
        for f in range(folds):
            test = set(order[f::folds].tolist())
            tr = [rows[i] for i in range(len(rows)) if i not in test]
            te = [rows[i] for i in sorted(test)]
            X, y, rw = self._design(tr, types)
            beta = self._solve(X, y, rw)
            Xt, yt, _ = self._design(te, types)
            pred = np.maximum(Xt @ beta, 1e-6)
            errs += list(np.abs(pred - yt) / yt)
        return float(np.mean(errs) * 100)

    def _main_targets(self, rows, cm: CellModel) -> dict[str, list[tuple[dict[str, Any], float]]]:
        out: dict[str, list[tuple[dict[str, Any], float]]] = {}
        for rec, ks, ms in rows:
            if isinstance(rec, NetworkRow):
                continue
            big = [k for k in ks if k["type"] not in SMALL_TYPES]
            if len(big) != 1 and not (len(big) == 0 and len(ks) == 1):
                continue
            main = big[0] if big else ks[0]
            rest = sum(self._kernel_ms_linear(cm, k) for k in ks if k is not main)
            env = cm.envelope[0] + cm.envelope[1] * rec.io_bytes() / 1e6 if getattr(rec, "envelope", True) else 0.0
            tgt = ms - env - rest
            if tgt > 0:
                out.setdefault(type_key(main, self.type_scheme), []).append((main, tgt))
        return out

    def _fit_per_type(self, cm: CellModel, main: Mapping[str, list]) -> None:
        for t, items in main.items():
            if len(items) < 8:
                continue
            Xf = np.array([tree_features(k) for k, _ in items])
            y = np.log(np.array([tgt for _, tgt in items]))
            if self.kernel_predictor == "loglinear":
                L = np.column_stack([np.ones(len(items)), np.log1p(Xf[:, :4] * 1e3)])
                coef, *_ = np.linalg.lstsq(L, y, rcond=None)
                cm.types[t]["loglinear"] = [float(c) for c in coef]
            else:
                from sklearn.ensemble import RandomForestRegressor

                rf = RandomForestRegressor(n_estimators=self.n_trees, min_samples_leaf=2,
                                           random_state=self.random_state).fit(Xf, y)
                cm.forest[t] = {"features": list(TREE_FEATURES), "trees": forest_to_arrays(rf)}

    def fit_overhead(self, kset: Any, network_kernels: Mapping[str, Mapping[str, list[dict[str, Any]]]],
                     networks: Iterable[str] | None = None) -> "OperatorModel":
        """(Re)fit every cell's network overhead on the timings of ``networks`` (default: all timed) only; the
        kernel predictors stay as they are. Its leave-one-network-out spread (the interval's network part)
        holds out a zoo network's other input sizes with it (``zoo.networks.same_architecture``)."""
        wanted = None if networks is None else list(networks)
        for cell, cm in self.cells_.items():
            nets = [n for n in (wanted if wanted is not None else kset.network_ms.get(cell, {}))
                    if n in network_kernels and not math.isnan(kset.network_median(cell[0], cell[1], n))]
            self._fit_overhead(cm, kset, cell, nets, network_kernels)
        self.overhead_networks_ = sorted(set(wanted)) if wanted is not None else None
        return self

    def _fit_overhead(self, cm: CellModel, kset: Any, cell: tuple[str, int], nets: Sequence[str],
                      network_kernels: Mapping[str, Mapping[str, list[dict[str, Any]]]]) -> None:
        raw = {n: self.raw_ms(cm, network_kernels[n][cell[0]]) for n in nets}
        meas = {n: kset.network_median(cell[0], cell[1], n) for n in nets}
        cm.overhead = _overhead(self.overhead_form, [raw[n] for n in nets], [meas[n] for n in nets])
        # leave-one-network-out spread of the overhead fit (the interval's network part)
        from perfmodel.zoo.networks import NETWORKS, same_architecture

        rel = []
        for n in nets:
            siblings = same_architecture(n) if n in NETWORKS else set()
            rest = [m for m in nets if m != n and m not in siblings]
            if len(rest) < 2:
                continue
            held = self._held_out_cell(cm, cell, {n, *siblings})
            if held is None:
                continue
            raw_h = raw if held is cm else {m: self.raw_ms(held, network_kernels[m][cell[0]]) for m in [n, *rest]}
            ov = _overhead(self.overhead_form, [raw_h[m] for m in rest], [meas[m] for m in rest])
            pred = ov["a"] + ov["b"] * raw_h[n]
            rel.append((pred - meas[n]) / meas[n])
        cm.network_rel_sigma = float(np.sqrt(np.mean(np.square(rel)))) if rel else math.nan

    # ----------------------------------------------------------------------------------- prediction

    def _cell_type(self, cm: CellModel, k: Mapping[str, Any]) -> str:
        """The kernel's type key in ``cm``: its own, else the first parent type the cell has a predictor for."""
        tk = type_key(k, cm.type_scheme or self.type_scheme)
        if tk not in cm.types:
            parents = ((type_key(k, "split"),) if tk == "conv:stem" else ()) + PARENT_TYPES.get(tk, ())
            return next((p for p in parents if p in cm.types), tk)
        return tk

    def _kernel_ms_linear(self, cm: CellModel, k: Mapping[str, Any]) -> float:
        t = cm.types.get(self._cell_type(cm, k))
        if t is None:
            return 0.0
        return max(float(np.dot(t["coef"], kernel_features(k))), 0.0)

    def kernel_ms(self, cm: CellModel, k: Mapping[str, Any]) -> KernelTime:
        tk = self._cell_type(cm, k)
        t = cm.types.get(tk)
        if t is None:
            return KernelTime(tk, 0.0, tk in FREE_TYPES)
        if self.kernel_predictor == "loglinear" and "loglinear" in t:
            x = tree_features(k)
            ms = float(np.exp(np.dot(t["loglinear"], np.r_[1.0, np.log1p(x[:4] * 1e3)])))
            return KernelTime(tk, _corrected(t.get("correction"), ms), True)
        if self.kernel_predictor == "forest" and tk in cm.forest:
            ms = float(np.exp(forest_predict(cm.forest[tk]["trees"], tree_features(k))))
        else:
            ms = self._kernel_ms_linear(cm, k)
        return KernelTime(tk, _corrected(t.get("correction"), ms), True)

    def raw_ms(self, cm: CellModel, kernels: Sequence[Mapping[str, Any]], io_mb: float | None = None) -> float:
        """The kernels' predicted times + the envelope (``io_mb``: the model's input + output MB, default a
        network's from its kernels), before any network overhead: a unit's predicted time."""
        io = network_io_mb(kernels) if io_mb is None else io_mb
        return sum(self.kernel_ms(cm, k).ms for k in kernels) + cm.envelope[0] + cm.envelope[1] * io

    def predict_kernels(self, framework: str, threads: int, kernels: Sequence[Mapping[str, Any]],
                        alpha: float = 0.1) -> dict[str, Any]:
        """Time and fps of one network (its kernel list for ``framework``) with a (1 - alpha) interval."""
        cm = self.cell(framework, threads)
        times = [self.kernel_ms(cm, k) for k in kernels]
        kernel_sum = sum(t.ms for t in times)
        raw = kernel_sum + cm.envelope[0] + cm.envelope[1] * network_io_mb(kernels)
        ms = cm.overhead["a"] + cm.overhead["b"] * raw
        # the fitted overhead may be negative (profiled kernels sum to more than the unprofiled call; units run
        # a little slower alone); on a graph far smaller than the training networks it could exceed the kernels:
        # the time is floored at FLOOR_SHARE of the kernels' (and said)
        floor = max(FLOOR_SHARE * kernel_sum, MIN_MS)
        floored = ms < floor
        ms = max(ms, floor)
        var_k = cm.overhead["b"] ** 2 * sum(_rel_sigma(cm, t.type) ** 2 * t.ms ** 2 for t in times if t.modelled)
        net_sigma = 0.0 if math.isnan(cm.network_rel_sigma) else cm.network_rel_sigma
        sd = math.sqrt(var_k + (net_sigma * ms) ** 2)
        z = statistics.NormalDist().inv_cdf(1 - alpha / 2)
        lo_ms, hi_ms = ms - z * sd, ms + z * sd
        unmodelled = sorted({t.type for t in times if not t.modelled})
        return {"framework": framework, "threads": threads, "ms": ms, "fps": 1000.0 / ms,
                "lo": 1000.0 / hi_ms, "hi": 1000.0 / lo_ms if lo_ms > 0 else None, "kernels": len(kernels),
                "unmodelled_types": unmodelled, "alpha": alpha, "floored": floored}

    def cell(self, framework: str, threads: int) -> CellModel:
        try:
            return self.cells_[(framework, int(threads))]
        except KeyError:
            have = ", ".join(f"{f} x{t}" for f, t in sorted(self.cells_)) or "none"
            raise PerfmodelError(f"the operator model has no predictors for {framework} x{threads} "
                                 f"(it has: {have})") from None

    @property
    def cells(self) -> list[tuple[str, int]]:
        return sorted(self.cells_)

    def kernel_rules(self, framework: str, threads: int) -> str:
        """The fusion rules whose kernel list the cell prices (``zoo.kernels.kernel_dicts`` key)."""
        return self.cell(framework, threads).kernel_rules

    # ----------------------------------------------------------------------------------- files

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "schema_version": SCHEMA_VERSION,
                "params": {"source": self.source, "kernel_predictor": self.kernel_predictor, "type_scheme": self.type_scheme,
                           "overhead_form": self.overhead_form, "ridge_alpha": self.ridge_alpha,
                           "n_trees": self.n_trees, "random_state": self.random_state,
                           "network_weight": self.network_weight},
                "features": list(FEATURES), "source": self.source_,
                "cells": [cm.to_dict() for _, cm in sorted(self.cells_.items())]}

    def save(self, path: str | Path) -> Path:
        from perfmodel.model._operator_schema import OperatorDocument
        from perfmodel.paths import atomic_write_text

        doc = OperatorDocument.model_validate(_json_clean(self.to_dict()))
        path = Path(path)
        atomic_write_text(path, doc.model_dump_json(indent=1))
        return path

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "OperatorModel":
        """The model of a document, checked against the file schema (:mod:`._operator_schema`) first."""
        return cls._from_checked(checked_document(d))

    @classmethod
    def _from_checked(cls, d: Mapping[str, Any]) -> "OperatorModel":
        """The model of a document already checked and completed with its defaults (:func:`checked_document`)."""
        m = cls(**d["params"])
        m._check()
        m.source_ = d["source"]
        m.cells_ = {}
        for c in d["cells"]:
            types = {k: {kk: vv for kk, vv in v.items() if kk not in ("loglinear", "correction") or vv is not None}
                     for k, v in c["types"].items()}
            cm = CellModel(c["framework"], c["threads"], c["envelope"], types, dict(c["overhead"]),
                           _nan(c["network_rel_sigma"]), dict(c["forest"]), c["n_units"], _nan(c["unit_cv_mape"]),
                           c["source"], c["rules"], c.get("type_scheme"))
            m.cells_[(c["framework"], c["threads"])] = cm
        return m


def checked_document(d: Mapping[str, Any]) -> dict[str, Any]:
    """``d`` checked against the operator model file's schema, as plain JSON values with every default filled
    in (raises pydantic's ValidationError)."""
    from perfmodel.model._operator_schema import OperatorDocument

    return OperatorDocument.model_validate(d).model_dump()


def _checked_cache_path(raw: bytes) -> Path | None:
    """Where the checked form of a model file with these exact bytes is kept: keyed by the bytes and by this
    perfmodel's schema module, so an edited file or another schema is checked afresh. None: no cache."""
    import hashlib

    from perfmodel.paths import cache_dir

    try:
        import importlib.util

        schema = (Path(__file__).parent / "_operator_schema.py").read_bytes()
        spec = importlib.util.find_spec("pydantic")  # its release, without importing it (the point of the cache)
        validator = (Path(spec.origin).parent / "version.py").read_bytes() if spec and spec.origin else b""
        checks = repr((SCHEMA_VERSION, READ_VERSIONS, FEATURES, TREE_FEATURES, TYPE_SCHEMES)).encode()
        key = hashlib.sha256(hashlib.sha256(schema + checks + validator).digest() + raw).hexdigest()
        return cache_dir() / "checked-models" / f"operator-{key}.json"
    except OSError:
        return None


def load_operator_model(path: str | Path) -> OperatorModel:
    """An operator model file, checked against its schema. A file whose exact bytes were checked before (by
    this perfmodel's schema) is read from its checked form in the cache, without pydantic: a fresh
    ``perfmodel predict --graph`` is a third faster."""
    p = Path(path)
    try:
        raw = p.read_bytes()
        d = json.loads(raw)
    except FileNotFoundError:
        raise InputFileError(f"model file {str(p)!r} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(f"model file {str(p)!r} is not JSON: {exc}") from None
    if not is_operator_document(d):
        raise InputFileError(f"{str(p)!r} is not an operator model (format {FORMAT!r}); fit one with "
                             "perfmodel kernels fit, or use trained/throughput_operator.json")
    cached = _checked_cache_path(raw)
    if cached is not None:
        try:
            return OperatorModel._from_checked(json.loads(cached.read_bytes()))
        except (OSError, ValueError, KeyError, TypeError, PerfmodelError):  # absent or unreadable: check afresh
            pass
    try:
        checked = checked_document(d)
        model = OperatorModel._from_checked(checked)  # its parameters' own checks too
    except Exception as exc:  # pydantic ValidationError, PerfmodelError
        raise InputFileError(f"operator model {str(p)!r} is invalid: {str(exc).splitlines()[0]}") from None
    if cached is not None:
        from perfmodel.paths import atomic_write_text

        try:
            atomic_write_text(cached, json.dumps(checked))
        except OSError:  # a read-only cache: checked again next time
            pass
    return model


def is_operator_document(d: Any) -> bool:
    return isinstance(d, dict) and d.get("format") == FORMAT


def _rel_sigma(cm: CellModel, type_: str) -> float:
    """A kernel type's relative residual spread on the units (0 where no unit had it as its main kernel: the
    network part of the interval covers it)."""
    v = cm.types.get(type_, {}).get("rel_sigma")
    return 0.0 if v is None or math.isnan(v) else float(v)


def _corrected(corr: Mapping[str, float] | None, ms: float) -> float:
    """A kernel's time under an adaptation's size correction (:mod:`perfmodel.model.adapt`): ``ms x exp(b x
    (log ms - log ref))`` with log ms clamped to the adaptation sample's ``[lo, hi]`` (no extrapolation)."""
    if not corr or ms <= 0:
        return ms
    x = min(max(math.log(ms), corr["lo"]), corr["hi"])
    return ms * math.exp(corr["b"] * (x - corr["ref"]))


def _overhead(form: str, raw: Sequence[float], meas: Sequence[float]) -> dict[str, float]:
    raw_a, meas_a = np.asarray(raw, float), np.asarray(meas, float)
    if len(raw_a) == 0:
        return {"a": 0.0, "b": 1.0}
    if form == "affine" and len(raw_a) >= 3:
        # relative least squares of meas = a + b raw
        w = 1.0 / meas_a
        A = np.column_stack([w, raw_a * w])
        (a, b), *_ = np.linalg.lstsq(A, np.ones_like(meas_a), rcond=None)
        if b > 0:
            return {"a": float(a), "b": float(b)}  # else: the additive form below
    return {"a": float(statistics.median(meas_a - raw_a)), "b": 1.0}


def _versions(kset: Any) -> dict[str, Any]:
    calls = kset.meta.get("calls", [])
    return {"machine": (kset.meta.get("machine") or {}).get("cpu_model"), "calls": len(calls),
            "libraries": kset.meta.get("versions", {})}


def _json_clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {k: _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    return obj


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


__all__ = ["FORMAT", "KERNEL_PREDICTORS", "OVERHEAD_FORMS", "TYPE_SCHEMES", "OperatorModel", "forest_predict",
           "forest_to_arrays", "is_operator_document", "load_operator_model", "type_key"]

"""Adapting a fitted operator-level model to a new platform from a small sample (``perfmodel retrain``).

A new platform (another board, another release of a framework, another thread count, a competing load) changes
how fast each kind of kernel runs far more than which kernels a network runs. So the shipped predictors are kept
and corrected (LitePred's idea, in its simplest form), each (framework, threads) cell from its *base* cell: the
same cell of the model, or for a thread count the model never had, the same framework's nearest one.

Candidates, chosen per cell by leave-one-network-out over the sampled networks (the data decide):

* ``scale``: one scale per kernel type (the split types of the model), from the framework's per-node profile
  of the sampled networks (the ratio measured / predicted of each profiled kernel, log, time-weighted), shrunk
  towards the cell's global scale where a type has few kernels (``prior_kernels``); types the sample lacks take
  the global scale. The network overhead is refitted on the sampled networks' end-to-end times.
* ``size``: ``scale`` and, per type, a trend of the log ratio in the kernel's log predicted time (a new release
  may speed up small kernels and slow down large ones), its slope shrunk towards 0 and held flat outside the
  sample's range (no extrapolation).
* ``global``: one scale for the whole cell (kernels, envelope, overhead) from the sampled networks' end-to-end
  times (the median log ratio): the only candidate for a framework with no profiler (LiteRT).
* ``none``: the base cell as it is (only when the base is the same cell).
* ``refit``: the kernel predictors refitted on the sample alone (its per-node profiles and its networks' whole
  timings, the model's form, the cell's type scheme); kernel types the sample lacks come from the base cell at
  the cell's global scale. Worth it when the sample is large (many networks) or the platform runs other kernels.

The adapted cell's interval widens to at least the chosen candidate's leave-one-network-out spread. What the
model was adapted from and with what is the ``adaptation`` record of the model's ``source``.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perfmodel.errors import PerfmodelError
from perfmodel.model.operator import (FREE_TYPES, PARENT_TYPES, PROFILE_FLOOR_MS, CellModel, OperatorModel,
                                      network_io_mb, type_key)

METHODS = ("size", "scale", "global", "none", "refit")
#: a type's own scale counts as this many kernels' worth of evidence less than the global one (shrinkage)
PRIOR_KERNELS = 3.0
#: the fewest sampled networks the ``refit`` candidate fits on (from 2-3, leave-one-network-out picked refits
#: that missed the other networks by 20-25 % on OpenCV 5.1: docs/experiments.md 19:40)
MIN_REFIT_NETWORKS = 4


@dataclass
class CellSample:
    """What was measured on the new platform for one (framework, threads)."""

    #: network -> end-to-end ms (median of repeats, unprofiled)
    networks: dict[str, float] = field(default_factory=dict)
    #: network -> the profiled kernels with their in-network ms
    profiles: dict[str, list[tuple[dict[str, Any], float]]] = field(default_factory=dict)


@dataclass
class CellAdaptation:
    framework: str
    threads: int
    base: tuple[str, int]
    method: str
    global_scale: float
    type_scales: dict[str, float]
    lono_mape: dict[str, float]  #: candidate -> leave-one-network-out MAPE % over the sampled networks
    networks: list[str]
    profiled_kernels: int
    rules: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"framework": self.framework, "threads": self.threads, "base": f"{self.base[0]} x{self.base[1]}",
                "method": self.method, "global_scale": self.global_scale, "type_scales": self.type_scales,
                "lono_mape": self.lono_mape, "networks": self.networks, "profiled_kernels": self.profiled_kernels,
                "rules": self.rules}


def check_method(method: str) -> None:
    """Refuse an adaptation method that is neither ``auto`` nor one of :data:`METHODS`."""
    if method != "auto" and method not in METHODS:
        raise PerfmodelError(f"--method {method!r}: auto or one of {', '.join(METHODS)}")


def base_cell(model: OperatorModel, framework: str, threads: int) -> tuple[str, int]:
    """The model's cell a new (framework, threads) starts from: the same cell, else the same framework's nearest
    thread count (the lower one on a tie)."""
    if (framework, threads) in model.cells_:
        return framework, threads
    have = sorted(t for f, t in model.cells_ if f == framework)
    if not have:
        fws = sorted({f for f, _ in model.cells_})
        raise PerfmodelError(f"the model has no {framework} predictors to adapt (it has {', '.join(fws)}); "
                             "profile the framework with perfmodel kernels profile and fit a model")
    return framework, min(have, key=lambda t: (abs(t - threads), t))


def choose_networks(model: OperatorModel, network_kernels: Mapping[str, Mapping[str, list[dict[str, Any]]]],
                    cells: Sequence[tuple[str, int]], k: int = 3,
                    siblings: Mapping[str, set[str]] | None = None) -> list[str]:
    """The ``k`` networks whose measurement tells most about the model's kernels on ``cells``: greedy, each step
    the network that adds most coverage of the zoo's predicted kernel time per type (a type is covered by three
    of its kernels in the sample), per square root of its own predicted time (what it costs to measure). Networks
    of one architecture (``siblings``) are not both taken."""
    nets = sorted(network_kernels)
    share: dict[str, float] = {}
    count: dict[str, dict[str, int]] = {n: {} for n in nets}
    cost = {n: 0.0 for n in nets}
    for fw, t in cells:
        cm = model.cell(*base_cell(model, fw, t))
        for n in nets:
            for kern in network_kernels[n].get(cm.kernel_rules, []):
                kt = model.kernel_ms(cm, kern)
                key = f"{fw}|{t}|{kt.type}"
                share[key] = share.get(key, 0.0) + kt.ms
                count[n][key] = count[n].get(key, 0) + 1
                cost[n] += kt.ms
    total = sum(share.values()) or 1.0
    weight = {key: v / total for key, v in share.items()}

    def score(chosen: list[str]) -> float:
        return sum(w * min(1.0, sum(count[n].get(key, 0) for n in chosen) / 3.0) for key, w in weight.items())

    chosen: list[str] = []
    while len(chosen) < min(k, len(nets)):
        banned = set(chosen) | {s for c in chosen for s in (siblings or {}).get(c, set())}
        cands = [n for n in nets if n not in banned]
        if not cands:
            break
        base = score(chosen)
        best = max(cands, key=lambda n: ((score(chosen + [n]) - base) / math.sqrt(max(cost[n], 1e-3)), -cost[n]))
        chosen.append(best)
    return chosen


#: fusion-rule set -> the kernel-type scheme its adapted cells use where the model's is ``split``: OpenCV >= 5.1's
#: new engine runs a network's first conv (on the image) 3-4x slower per MAC than its others (docs/retrain.md)
RULE_SCHEMES = {"opencv-new": "stem"}


#: one conv of each finer class (stem, 3x3/2, larger): which of them a scheme has
_SCHEME_PROBES = [{"type": "conv", "kernel_size": k, "stride": st, "input_hwc": [8, 8, c]}
                  for k, st, c in (([7, 7], [2, 2], 3), ([3, 3], [2, 2], 16), ([5, 5], [1, 1], 16))]


def _with_rule_scheme(model: OperatorModel, base: CellModel, rules: str) -> CellModel:
    """``base`` ready to be adapted to ``rules``' engine: with that engine's type scheme (:data:`RULE_SCHEMES`),
    each finer type starting from its parent's predictor (its own scale then comes from the sample)."""
    scheme = RULE_SCHEMES.get(rules)
    if scheme is None and base.type_scheme not in (None, model.type_scheme):
        # back to an engine without a scheme of its own (a cell adapted to opencv-new, now to classic OpenCV): the
        # model's scheme, without the finer types it does not have
        cm = copy.deepcopy(base)
        cm.type_scheme = None
        finer = {type_key(k, model.type_scheme) for k in _SCHEME_PROBES}
        for t in PARENT_TYPES:
            if t not in finer:
                cm.types.pop(t, None)
                cm.forest.pop(t, None)
        return cm
    if scheme is None or (base.type_scheme or model.type_scheme) != "split":
        return base
    cm = copy.deepcopy(base)
    cm.type_scheme = scheme
    for t, parents in PARENT_TYPES.items():
        parent = next((p for p in parents if p in cm.types), None)
        if t not in cm.types and parent is not None and (scheme == "stem2" or t == "conv:stem"):
            cm.types[t] = copy.deepcopy(cm.types[parent])
            if parent in cm.forest:
                cm.forest[t] = copy.deepcopy(cm.forest[parent])
    return cm


def _pred_network(model: OperatorModel, cm: CellModel, kernels: Sequence[Mapping[str, Any]]) -> float:
    raw = model.raw_ms(cm, kernels)
    return cm.overhead["a"] + cm.overhead["b"] * raw


def _type_log_ratios(model: OperatorModel, cm: CellModel, profiles: Mapping[str, list[tuple[dict[str, Any], float]]]
                     ) -> tuple[dict[str, list[tuple[float, float, float]]], dict[str, list[tuple[dict[str, Any], float]]]]:
    """type -> [(log(measured / predicted), log predicted, predicted ms)] over the profiled kernels the base cell
    prices; and type -> [(kernel, ms)] of the kernel types it does not price (new in this platform's rules)."""
    out: dict[str, list[tuple[float, float, float]]] = {}
    new: dict[str, list[tuple[dict[str, Any], float]]] = {}
    for nodes in profiles.values():
        for kern, ms in nodes:
            if ms < PROFILE_FLOOR_MS:
                continue
            kt = model.kernel_ms(cm, kern)
            if not kt.modelled:
                if kt.type not in FREE_TYPES:
                    new.setdefault(kt.type, []).append((kern, ms))
                continue
            if kt.ms <= 0:
                continue
            out.setdefault(kt.type, []).append((math.log(ms / kt.ms), math.log(kt.ms), kt.ms))
    return out, new


def _scales(ratios: Mapping[str, list[tuple[float, float, float]]], prior: float, slopes: bool
            ) -> tuple[float, dict[str, float], dict[str, dict[str, float]]]:
    """The cell's global scale, each type's (shrunk towards it) and, with ``slopes``, each type's size trend."""
    allr = [r for v in ratios.values() for r in v]
    wsum = sum(w for *_, w in allr)
    g = sum(r * w for r, _, w in allr) / wsum if wsum > 0 else 0.0
    per: dict[str, float] = {}
    corr: dict[str, dict[str, float]] = {}
    for t, v in ratios.items():
        w = np.array([x[2] for x in v])
        w = w / w.mean()
        r = np.array([x[0] for x in v])
        lx = np.array([x[1] for x in v])
        m = float(np.dot(w, r) / w.sum())
        log_s = (len(v) * m + prior * g) / (len(v) + prior)
        per[t] = math.exp(log_s)
        if slopes and len(v) >= 3 and np.ptp(lx) > 0:
            xbar = float(np.dot(w, lx) / w.sum())
            b = float(np.dot(w, (lx - xbar) * (r - m)) / (np.dot(w, (lx - xbar) ** 2) + prior))
            if abs(b) > 1e-6:
                corr[t] = {"b": b, "ref": xbar + log_s, "lo": float(lx.min()) + log_s, "hi": float(lx.max()) + log_s}
    return math.exp(g), per, corr


def _new_types(new: Mapping[str, list[tuple[dict[str, Any], float]]]) -> dict[str, dict[str, Any]]:
    """Predictors for kernel types the base cell lacks, from their profiled kernels (relative NNLS on the
    configuration features, five kernels at least)."""
    from scipy.optimize import nnls

    from perfmodel.model.operator import kernel_features

    out = {}
    for t, items in new.items():
        if len(items) < 5:
            continue
        X = np.array([kernel_features(k) for k, _ in items])
        y = np.array([ms for _, ms in items])
        Xw, yw = X / y[:, None], np.ones_like(y)
        scale = np.linalg.norm(Xw, axis=0)
        scale[scale == 0] = 1.0
        b, _ = nnls(Xw / scale, yw)
        coef = b / scale
        rel = (X @ coef - y) / y
        out[t] = {"coef": [float(c) for c in coef], "n": len(items), "rel_sigma": float(np.sqrt(np.mean(rel ** 2)))}
    return out


def _scaled_cell(base: CellModel, framework: str, threads: int, g: float, per: Mapping[str, float],
                 corr: Mapping[str, dict[str, float]] | None = None, rules: str | None = None) -> CellModel:
    cm = copy.deepcopy(base)
    cm.framework, cm.threads = framework, threads
    cm.rules = rules if rules is not None and rules != framework else None
    for t, d in cm.types.items():
        s = per.get(t, g)
        d["coef"] = [c * s for c in d["coef"]]
        if "loglinear" in d and d["loglinear"] is not None:
            d["loglinear"] = [d["loglinear"][0] + math.log(s)] + list(d["loglinear"][1:])
        if d.get("correction"):  # an earlier adaptation's trend: it moves with the scale (one trend per type)
            d["correction"] = {**d["correction"], **{k: d["correction"][k] + math.log(s) for k in ("ref", "lo", "hi")}}
        elif corr and t in corr:
            d["correction"] = dict(corr[t])
    for t, fr in cm.forest.items():  # trees predict log ms
        s = math.log(per.get(t, g))
        for tr in fr["trees"]:
            tr["value"] = [v + s for v in tr["value"]]
    cm.envelope = [e * g for e in cm.envelope]
    cm.overhead = {"a": cm.overhead["a"] * g, "b": cm.overhead["b"]}
    return cm


def _refit_cell(model: OperatorModel, base: CellModel, sample: CellSample, nets: Sequence[str],
                nk: Mapping[str, list[dict[str, Any]]], framework: str, threads: int, prior: float,
                rules: str | None) -> tuple[CellModel, float, dict[str, float]] | None:
    """The ``refit`` candidate: ``base``'s framework x threads refitted on the sampled networks' profiles and whole
    timings (None: nothing to refit from: no profile, too few kernels, a non-linear kernel predictor)."""
    from pathlib import Path

    from perfmodel.data.kernelset import KernelSet

    profiles = {n: sample.profiles[n] for n in nets if n in sample.profiles and n in nk}
    if len(profiles) < MIN_REFIT_NETWORKS or model.kernel_predictor not in ("nnls", "ridge"):
        return None
    cell = (framework, threads)
    timed = {n: [sample.networks[n]] for n in nets if n in sample.networks and n in nk}
    kset = KernelSet(path=Path("retrain-sample"), meta={}, units={}, network_ms={cell: timed},
                     profiles={cell: profiles})
    scheme = base.type_scheme or model.type_scheme
    m = OperatorModel(kernel_predictor=model.kernel_predictor, type_scheme=scheme, overhead_form=model.overhead_form,
                      ridge_alpha=model.ridge_alpha, source="profiles", network_weight=1.0)
    try:
        m.fit(kset, {n: {framework: nk[n]} for n in profiles}, cells=[cell])
    except PerfmodelError:  # too few profiled kernels
        return None
    cm = m.cells_[cell]
    ratios, _ = _type_log_ratios(model, base, profiles)
    g = _scales(ratios, prior, slopes=False)[0] if ratios else 1.0
    for t, d in _scaled_cell(base, framework, threads, g, {}).types.items():
        cm.types.setdefault(t, d)  # a type the sample has no kernel of: the base's, at the global scale
    cm.type_scheme = base.type_scheme
    cm.rules = rules if rules is not None and rules != framework else None
    return cm, g, {}


def _candidate(model: OperatorModel, base: CellModel, method: str, sample: CellSample, nets: Sequence[str],
               nk: Mapping[str, list[dict[str, Any]]], framework: str, threads: int, prior: float,
               rules: str | None) -> tuple[CellModel, float, dict[str, float]] | None:
    """The base cell adapted by ``method`` from the sampled networks ``nets`` (their profiles and times)."""
    timed = [n for n in nets if n in sample.networks and n in nk]
    if method == "refit":
        return _refit_cell(model, base, sample, nets, nk, framework, threads, prior, rules)
    if method == "none":
        return _scaled_cell(base, framework, threads, 1.0, {}, rules=rules), 1.0, {}
    if method == "global":
        if not timed:
            return None
        logs = [math.log(sample.networks[n] / max(_pred_network(model, base, nk[n]), 1e-6)) for n in timed]
        g = math.exp(statistics.median(logs))
        return _scaled_cell(base, framework, threads, g, {}, rules=rules), g, {}
    profiles = {n: sample.profiles[n] for n in nets if n in sample.profiles}
    ratios, new = _type_log_ratios(model, base, profiles)
    if not ratios:
        return None
    g, per, corr = _scales(ratios, prior, slopes=method == "size")
    cm = _scaled_cell(base, framework, threads, g, per, corr, rules)
    cm.types.update(_new_types(new))
    if timed:  # the overhead on the new platform's end-to-end times
        res = [sample.networks[n] - cm.overhead["b"] * model.raw_ms(cm, nk[n]) for n in timed]
        cm.overhead = {"a": float(statistics.median(res)), "b": cm.overhead["b"]}
    return cm, g, per


def adapt_operator_model(model: OperatorModel, samples: Mapping[tuple[str, int], CellSample],
                         network_kernels: Mapping[str, Mapping[str, list[dict[str, Any]]]], *,
                         method: str = "auto", prior_kernels: float = PRIOR_KERNELS,
                         rules: Mapping[tuple[str, int], str] | None = None,
                         keep_other_cells: bool = True) -> tuple[OperatorModel, list[CellAdaptation]]:
    """A copy of ``model`` with each sampled (framework, threads) cell adapted (see the module docstring);
    ``method``: ``auto`` (leave-one-network-out picks) or one of :data:`METHODS`. ``rules``: a cell's fusion
    rules on the new platform where not the framework's own (``network_kernels`` has its kernel lists under
    that name). Cells not sampled are kept (``keep_other_cells``) or dropped."""
    check_method(method)
    new = copy.deepcopy(model)
    if not keep_other_cells:
        new.cells_ = {}
    report: list[CellAdaptation] = []
    for (fw, t), sample in sorted(samples.items()):
        bcell = base_cell(model, fw, t)
        base = model.cells_[bcell]
        r = (rules or {}).get((fw, t)) or base.kernel_rules
        if r != base.kernel_rules:
            base = _with_rule_scheme(model, base, r)
        nk = {n: d[r] for n, d in network_kernels.items() if r in d}
        nets = sorted(set(sample.networks) | set(sample.profiles))
        cands = [m for m in (METHODS if method == "auto" else (method,))
                 if not (m == "none" and (bcell != (fw, t) or r != base.kernel_rules))]

        def build(m: str, use: Sequence[str]):
            return _candidate(model, base, m, sample, use, nk, fw, t, prior_kernels, r)

        lono: dict[str, float] = {}
        for m in cands:
            errs = []
            for n in nets:
                if n not in sample.networks or n not in nk:
                    continue
                c = build(m, [x for x in nets if x != n])
                if c is None:
                    continue
                p = _pred_network(model, c[0], nk[n])
                errs.append(abs(p - sample.networks[n]) / sample.networks[n])
            if errs:
                lono[m] = 100 * float(np.mean(errs))
        built = {m: build(m, nets) for m in cands}
        usable = [m for m in cands if built[m] is not None]
        if not usable:
            if method != "auto":
                why = {"none": "the base is another cell or runs other fusion rules",
                       "global": "no network was timed end to end",
                       "refit": f"fewer than {MIN_REFIT_NETWORKS} profiled networks (or too few kernels, or a "
                                "non-linear kernel predictor) to refit from"}.get(
                    method, "no per-node profile was measured (the framework has no profiler?)")
                raise PerfmodelError(f"{fw} x{t}: --method {method} cannot apply: {why}; use --method auto")
            raise PerfmodelError(f"{fw} x{t}: nothing measured to adapt from (no network time, no profile)")
        scored = [m for m in usable if m in lono]
        if method != "auto":
            chosen = usable[0]
        elif any(m != "none" for m in scored):
            chosen = min(scored, key=lambda m: lono[m])
        else:  # one network: nothing to leave out but for "none"; profiles beat one ratio, a ratio beats none
            chosen = usable[0]
        cm, g, per = built[chosen]  # type: ignore[misc]
        if chosen in lono:
            cm.network_rel_sigma = float(max(_nan0(base.network_rel_sigma), lono[chosen] / 100))
        n_prof = sum(len(sample.profiles.get(n, [])) for n in nets)
        cm.source = f"adapted from {bcell[0]} x{bcell[1]} ({chosen})"
        new.cells_[(fw, t)] = cm
        report.append(CellAdaptation(fw, t, bcell, chosen, g, {k: round(v, 4) for k, v in sorted(per.items())},
                                     {k: round(v, 2) for k, v in lono.items()}, nets, n_prof, r))
    return new, report


def _nan0(x: float) -> float:
    return 0.0 if x is None or math.isnan(x) else float(x)


def sample_from_kernelset(kset: Any, networks: Sequence[str] | None = None,
                          cells: Sequence[tuple[str, int]] | None = None) -> dict[tuple[str, int], CellSample]:
    """The per-cell samples of a kernel data set (``networks``: only these; ``cells``: only these)."""
    out: dict[tuple[str, int], CellSample] = {}
    want = None if networks is None else set(networks)
    for cell in (cells or kset.cells):
        s = CellSample()
        for n, reps in kset.network_ms.get(cell, {}).items():
            if (want is None or n in want) and reps:
                s.networks[n] = statistics.mean(reps)
        for n, nodes in kset.profiles.get(cell, {}).items():
            if want is None or n in want:
                s.profiles[n] = list(nodes)
        if s.networks or s.profiles:
            out[cell] = s
    return out




# --------------------------------------------------------------------------------------------- network level


@dataclass
class NetworkCellScale:
    cell: str  #: "framework xN"
    scale: float  #: factor on the predicted inference time
    networks: list[str]
    lono_mape: float  #: leave-one-network-out MAPE % of the scaled time over the sample (NaN: one network)
    before_mape: float  #: the unadapted model's MAPE % on the sample

    def to_dict(self) -> dict[str, Any]:
        return {"cell": self.cell, "scale": self.scale, "networks": self.networks, "lono_mape": self.lono_mape,
                "before_mape": self.before_mape}


def rate_time_ms(model: Any, fps: float) -> float:
    """A throughput model's predicted inference time (ms) from its fps: a rate model's time part
    (``scale / fps - overhead``), else ``1000 / fps``."""
    p = model.params
    return p.rate_scale / fps - p.overhead if p.rate_scale > 0 else 1000.0 / fps


def network_time_scales(model: Any, predicted_fps: Mapping[tuple[str, int, str], float],
                        measured_ms: Mapping[tuple[str, int, str], float]) -> list[NetworkCellScale]:
    """Per (framework, threads): the factor on the network-level model's predicted inference time that the
    sampled networks' measured times call for (median log ratio), with its leave-one-network-out error."""
    by_cell: dict[tuple[str, int], list[tuple[str, float]]] = {}
    for (fw, t, n), ms in measured_ms.items():
        fps = predicted_fps.get((fw, t, n))
        if fps is None or not (fps > 0) or not (ms > 0):
            continue
        tp = rate_time_ms(model, fps)
        if tp > 0:
            by_cell.setdefault((fw, t), []).append((n, math.log(ms / tp)))
    out = []
    for (fw, t), items in sorted(by_cell.items()):
        logs = [r for _, r in items]
        errs = []
        for i in range(len(items)):
            rest = logs[:i] + logs[i + 1:]
            if rest:
                errs.append(abs(math.exp(statistics.median(rest) - logs[i]) - 1))  # |pred / measured - 1|
        out.append(NetworkCellScale(f"{fw} x{t}", math.exp(statistics.median(logs)), [n for n, _ in items],
                                    100 * float(np.mean(errs)) if errs else math.nan,
                                    100 * float(np.mean([abs(math.exp(-r) - 1) for r in logs]))))
    return out


__all__ = ["METHODS", "CellAdaptation", "CellSample", "NetworkCellScale", "adapt_operator_model", "base_cell",
           "check_method", "choose_networks", "network_time_scales", "rate_time_ms", "sample_from_kernelset"]

"""Did the simulated (valgrind) cells run the same kernels as the timed cells they are joined with?

Simulated per-image counts are joined to timing cells of the same framework x network
(:func:`perfmodel.model.features.join_simulated`); the model then relates counts of the simulated run
to the time of the native run. That holds only if both ran the same code. A library may choose its
kernels by the CPU's features, and valgrind's virtual CPU lacks some (no AVX-512): TensorFlow then
turns its oneDNN custom operations off under valgrind while a native run on an AVX-512 VNNI / AMX CPU
has them on - Eigen's convolutions counted, oneDNN's timed (``datasets/README.md``, "Simulated vs
native code paths"). Each cell records its runner's settings (``runner.effective`` in the cell's
sidecar; the simulated worker writes them too); :func:`code_path_differences` compares the settings a
runner declares as kernel-selecting (:attr:`perfmodel.runners.base.Runner.code_path_keys`) and says
where they differ. Cells that do not record a setting (older data sets) are not compared.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from perfmodel.data import Dataset
from perfmodel.data.cells import SIMULATED, counter_source


@dataclass(frozen=True)
class CodePathDifference:
    """``key`` of ``framework``'s runner took ``simulated`` value(s) in the simulated cells but ``timed`` in
    the timing cells of ``networks``."""

    framework: str
    key: str
    simulated: str
    timed: str
    networks: tuple[str, ...]

    def restricted_to(self, pairs: Iterable[tuple[str, str]]) -> "CodePathDifference | None":
        """The same difference for the (framework, network) ``pairs`` only; None when none is left."""
        keep = tuple(n for n in self.networks if (self.framework, n) in set(pairs))
        return None if not keep else CodePathDifference(self.framework, self.key, self.simulated, self.timed, keep)

    def sentence(self) -> str:
        return (f"{self.framework}: {self.key} = {self.simulated} in the simulated cells but {self.timed} in the "
                f"timing cells ({', '.join(self.networks)}): the simulated counts are of other kernels than the "
                "timed runs (a library choosing by a CPU feature valgrind lacks; see datasets/README.md)")


def code_path_differences(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[CodePathDifference]:
    """The kernel-selecting settings whose values differ between the simulated cells and the timing cells
    of the same framework x network, pooled over the data set folder(s) ``paths`` (e.g. a timing data set
    and the folder of its valgrind pass); empty when none differ or none are recorded. Only finished
    cells count; every simulated and every timing cell's value is compared (repeats, merged inputs)."""
    from perfmodel.runners import FRAMEWORKS, runner_class

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    simulated: dict[tuple[str, str], list[dict]] = defaultdict(list)
    timed: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for path in paths:
        ds = Dataset.open(path)
        done = set(ds.done_cells())
        for cid, meta in ds.cells().items():
            if cid not in done:
                continue
            fw, net = str(meta.get("framework")), str(meta.get("network"))
            if fw not in FRAMEWORKS:
                continue
            eff = (meta.get("runner") or {}).get("effective") or {}
            values = {k: eff[k] for k in runner_class(fw).code_path_keys if eff.get(k) is not None}
            if not values:
                continue
            simulated_cell = SIMULATED in (meta.get("counter_source"), counter_source(cid))
            (simulated if simulated_cell else timed)[(fw, net)].append(values)
    found: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)
    for (fw, net), sims in sorted(simulated.items()):
        for key in sorted({k for v in sims for k in v}):
            s_vals = {str(v[key]) for v in sims if key in v}
            t_vals = {str(v[key]) for v in timed.get((fw, net), []) if key in v}
            if t_vals and s_vals != t_vals:
                found[(fw, key, "/".join(sorted(s_vals)), "/".join(sorted(t_vals)))].append(net)
    return [CodePathDifference(fw, key, s, t, tuple(nets)) for (fw, key, s, t), nets in sorted(found.items())]

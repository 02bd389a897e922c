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

from perfmodel.data import Dataset


def code_path_differences(path: str | os.PathLike) -> list[str]:
    """One sentence per framework and setting whose value differs between the simulated cells and the
    timing cells of the same networks in the data set folder ``path`` (empty: none found)."""
    from perfmodel.runners import FRAMEWORKS, runner_class

    ds = Dataset.open(path)
    simulated: dict[tuple[str, str], dict] = {}
    timed: dict[tuple[str, str], list[dict]] = defaultdict(list)
    done = set(ds.done_cells())
    for cid, meta in ds.cells().items():
        if cid not in done:
            continue
        fw, net = str(meta.get("framework")), str(meta.get("network"))
        if fw not in FRAMEWORKS:
            continue
        keys = runner_class(fw).code_path_keys
        eff = (meta.get("runner") or {}).get("effective") or {}
        values = {k: eff.get(k) for k in keys if eff.get(k) is not None}
        if not values:
            continue
        if meta.get("counter_source") == "valgrind" or cid.endswith("__valgrind"):
            simulated[(fw, net)] = values
        else:
            timed[(fw, net)].append(values)
    found: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)
    for (fw, net), sim in sorted(simulated.items()):
        for key, s_val in sim.items():
            t_vals = sorted({str(t[key]) for t in timed.get((fw, net), []) if key in t and t[key] != s_val})
            if t_vals:
                found[(fw, key, str(s_val), "/".join(t_vals))].append(net)
    return [f"{fw}: {key} = {s_val} in the simulated cells but {t_val} in the timing cells "
            f"({', '.join(nets)}): the simulated counts are of other kernels than the timed runs "
            "(a library choosing by a CPU feature valgrind lacks; see datasets/README.md)"
            for (fw, key, s_val, t_val), nets in sorted(found.items())]

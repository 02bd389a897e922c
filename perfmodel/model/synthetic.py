"""Synthetic data sets with a known ground truth, for tests, demos and the speed benchmark.

Nothing here is a measurement: every value is generated from the stated formula plus noise, and the
records say so (``source="synthetic"``). Use them to check that the modelling code recovers what was
put in, never as figures about a board.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from perfmodel.data.cells import SIMULATED
from perfmodel.data.provenance import Provenance, Table

#: per-image instruction counts of the synthetic networks (relative sizes of real CNNs)
NETWORK_INSTRUCTIONS: dict[str, float] = {
    "squeezenet1_1": 0.9e9, "mobilenet_v2": 0.75e9, "googlenet": 3.2e9, "resnet50": 8.5e9,
    "mobilenet_v1": 1.2e9, "shufflenet": 0.35e9, "efficientnet_b0": 0.95e9, "densenet121": 6.0e9,
}
#: framework -> (cycles per instruction, parallel fraction)
FRAMEWORKS: dict[str, tuple[float, float]] = {
    "tensorflow": (0.9, 0.85), "litert": (0.6, 0.9), "onnxruntime": (0.7, 0.8), "opencv": (1.1, 0.7),
}


def synthetic_throughput_records(
    networks: Sequence[str] = ("squeezenet1_1", "mobilenet_v2", "googlenet", "resnet50", "shufflenet"),
    frameworks: Sequence[str] = ("tensorflow", "litert", "onnxruntime"),
    threads: Sequence[int] = (1, 2, 4),
    images: int = 3,
    noise: float = 0.02,
    freq_hz: float = 1.2e9,
    seed: int = 0,
    overhead_ms: float = 0.0,
) -> pd.DataFrame:
    """Long records (``perfmodel.data`` schema) of timing cells and separate valgrind cells.

    Timing cells (``cell_id`` ``<fw>__<net>__t<T>__r0__software``) hold per-image ``latency_ms``
    (provenance ``software``); valgrind cells (``...__t1__r0__valgrind``) hold simulated per-image counts
    (``instructions``, ``l1d_accesses``, ``l1d_refills``, ``llc_misses``, ``branches``,
    ``branch_misses``; provenance ``simulated``). Ground truth: ``latency = instr * cpi_fw /
    (f * amdahl_fw(T)) * (1 + 3 * llc_miss_per_instr) * lognormal(noise)``, plus ``overhead_ms`` when
    that is > 0: then timing cells also hold ``read_ms`` (10 %) and ``preprocess_ms`` (90 %) of it, each
    with the same relative noise, and ``latency_ms`` is their sum with the inference time.
    """
    rng = np.random.default_rng(seed)
    rows = []

    def rec(cell_id, fw, net, t, idx, metric, value, unit, source, prov):
        rows.append({"run_id": "synthetic", "cell_id": cell_id, "board": "synthetic-board", "framework": fw,
                     "network": net, "threads": int(t), "workload": f"{fw}/{net}", "phase": "image",
                     "repeat": 0, "image_index": idx, "t_start_s": float(idx), "t_end_s": float(idx) + 0.5,
                     "metric": metric, "value": float(value), "unit": unit, "source": source,
                     "provenance": prov, "reason": "", "scale": 1.0})

    for net in networks:
        instr = NETWORK_INSTRUCTIONS[net] * (1 + 0.05 * rng.standard_normal())
        llc = instr * rng.uniform(0.001, 0.01)
        for fw in frameworks:
            cpi, par = FRAMEWORKS[fw]
            fw_instr = instr * (1 + 0.1 * rng.standard_normal())
            for t in threads:
                speed = 1.0 / ((1 - par) + par / t)
                lat_s = fw_instr * cpi / freq_hz / speed * (1 + 3 * llc / instr)
                cid = f"{fw}__{net}__t{t}__r0__software"
                for i in range(images):
                    lat_ms = 1000 * lat_s * np.exp(noise * rng.standard_normal())
                    if overhead_ms > 0:
                        read = 0.1 * overhead_ms * np.exp(noise * rng.standard_normal())
                        pre = 0.9 * overhead_ms * np.exp(noise * rng.standard_normal())
                        rec(cid, fw, net, t, i, "read_ms", read, "ms", "perf_counter", "software")
                        rec(cid, fw, net, t, i, "preprocess_ms", pre, "ms", "perf_counter", "software")
                        lat_ms += read + pre
                    rec(cid, fw, net, t, i, "latency_ms", lat_ms, "ms", "perf_counter", "software")
            cid = f"{fw}__{net}__t1__r0__{SIMULATED}"  # the collect stage's naming (data.cells)
            for i in range(images):
                j = 1 + 0.001 * rng.standard_normal()
                for metric, v in (("instructions", fw_instr), ("l1d_accesses", 0.4 * fw_instr),
                                  ("l1d_refills", 0.02 * fw_instr), ("llc_misses", llc),
                                  ("branches", 0.1 * fw_instr), ("branch_misses", 0.003 * fw_instr)):
                    rec(cid, fw, net, 1, i, metric, v * j, "count", "callgrind", "simulated")
                rec(cid, fw, net, 1, i, "latency_ms", 50000.0, "ms", "perf_counter", "software")
    from perfmodel.data.schema import coerce

    return coerce(pd.DataFrame(rows))


def synthetic_power_table(n_workloads: int = 6, samples: int = 60, noise: float = 0.01, seed: int = 0) -> Table:
    """A wide per-sample table like the ARMPM importer's, with power from a known Powmon-style formula.

    ``power_w = 0.05 + 0.3 V + 0.2 V^2 f + (0.25 ipc_rate + 0.6 l2d_rate) V^2 + noise`` (rates in 1e9/s,
    ``f`` in GHz), three frequency / voltage levels, one or two cores; ``branches`` and ``l1i`` rates
    are distractors. A :class:`~perfmodel.data.provenance.Table` whose provenance marks counters and sensors
    ``real`` (origin ``synthetic``).
    """
    rng = np.random.default_rng(seed)
    levels = [(1000.0, 0.9), (1400.0, 1.0), (1800.0, 1.15)]
    parts = []
    for w in range(n_workloads):
        ipc = rng.uniform(0.4, 1.6)
        l2 = rng.uniform(0.005, 0.05)
        for freq, volt in levels:
            for cores in (1, 2):
                n = samples // 6
                f = freq / 1000
                cyc = f * 1e9 * cores * rng.uniform(0.9, 1.0, n)
                ins = cyc * ipc * rng.uniform(0.9, 1.1, n)
                l2d = cyc * l2 * rng.uniform(0.8, 1.2, n)
                br = ins * rng.uniform(0.08, 0.2, n)
                l1i = ins * rng.uniform(0.3, 0.5, n)
                temp = 35 + 5 * f + 3 * cores + rng.normal(0, 0.5, n)
                power = (0.05 + 0.3 * volt + 0.2 * volt**2 * f
                         + (0.25 * ins / 1e9 + 0.6 * l2d / 1e9) * volt**2) * (1 + noise * rng.standard_normal(n))
                parts.append(pd.DataFrame({
                    "board": "synthetic", "workload": f"w{w}", "run": 1, "cores": cores, "freq_mhz": freq,
                    "voltage_v": volt, "temperature_c": temp, "power_w": power, "dt_s": 0.5,
                    "cycles_per_s": cyc, "instructions_per_s": ins, "l2d_accesses_per_s": l2d,
                    "branches_per_s": br, "l1i_accesses_per_s": l1i,
                }))
    df = pd.concat(parts, ignore_index=True)
    return Table(df, Provenance({c: "real" for c in df.columns if c.endswith("_per_s") or c in
                                 ("freq_mhz", "voltage_v", "temperature_c", "power_w")}, origin="synthetic"))


__all__ = ["synthetic_throughput_records", "synthetic_power_table", "NETWORK_INSTRUCTIONS", "FRAMEWORKS"]

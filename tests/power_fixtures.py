"""Synthetic power data in the ARMPM, Powmon and mapped-CSV formats, each with its own event set.

Power follows a Powmon-like law: P = sum_e c_e x rate_e x V^2 + k_c cores V^2 f + a V + b T V + noise, the
rates drawn per workload (so leave-one-workload-out has something to learn). Written by the tests, never
read from anywhere else.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FREQS = {1000: 0.95, 1400: 1.05, 1800: 1.2}  # MHz -> V


def _workloads(rng, n, events):
    return {f"wl{i}": {e: rng.uniform(0.05, 1.0) for e in events} for i in range(n)}


#: the PARSEC file's event columns but CPU_CYCLES (every event of the validated fixed power set, and
#: L1D_CACHE_REFILL, which that set does not use)
PARSEC_EVENTS = ["INST_RETIRED", "L1D_CACHE_ACCESS", "L1D_CACHE_REFILL", "L2D_CACHE_ACCESS", "L1I_CACHE_ACCESS",
                 "L1I_CACHE_REFILL", "L1I_TLB_REFILL", "L1D_TLB_REFILL", "BRANCH_PRED", "BRANCH_MISPRED",
                 "DATA_MEM_ACCESS", "EXCEPTION_TAKEN", "EXCEPTION_RETURN"]


def write_armpm(path: Path, *, samples: int = 30, workloads: int = 8, seed: int = 0,
                events: list[str] | None = None, cores_column: bool = False) -> Path:
    """ARMPM with SW_INCR, CID_WRITE_RETIRED, L1D_CACHE_REFILL, INST_RETIRED, BR_MIS_PRED, CPU_CYCLES (or
    CPU_CYCLES and ``events``); no Cores(#) column unless ``cores_column`` (then 1 and 2 cores); power follows
    the counters by one sample; an unrelated 'Comment' column."""
    rng = np.random.default_rng(seed)
    coef = {"SW_INCR": 0.0, "CID_WRITE_RETIRED": 0.0, "L1D_CACHE_REFILL": 6e-9, "INST_RETIRED": 4e-10,
            "BR_MIS_PRED": 2e-9}
    if events is None:
        events = ["SW_INCR", "CID_WRITE_RETIRED", "L1D_CACHE_REFILL", "INST_RETIRED", "BR_MIS_PRED"]
    else:
        coef = {e: coef.get(e, float(rng.uniform(0.0, 3e-9))) for e in events}
    wls = _workloads(rng, workloads, events)
    header = ["#Timestamp", "Benchmark", "Run(#)", *(["Cores(#)"] if cores_column else []), "CPU(4) Frequency(MHz)",
              "CPU(4) Temperature(C)", "A15 Voltage(V)", "A15 Power(W)", "CPU_CYCLES", *events, "Comment"]
    lines = ["\t".join(header)]
    t = 1_495_000_000_000_000_000
    runs = [(w, act, f, v, c) for w, act in wls.items() for f, v in FREQS.items()
            for c in ((1, 2) if cores_column else (1,))]
    for w, act, f, v, ncores in runs:
        p_prev = None
        for s in range(samples):
            dt = 0.5
            util = np.clip(0.7 + 0.2 * np.sin(s / 3.0) + rng.normal(0, 0.05), 0.1, 1.0)
            cyc = ncores * util * f * 1e6 * dt
            counts = {e: act[e] * cyc * (1 + rng.normal(0, 0.05)) for e in events}
            temp = 40 + 10 * (f / 1800) + rng.normal(0, 0.5)
            rate_term = sum(coef[e] * counts[e] / dt for e in events) + 1.5e-10 * cyc / dt
            p = rate_term * v * v + 0.3 * v + 0.004 * temp * v + rng.normal(0, 0.01)
            if cores_column:  # per-core clock / idle power
                p += 0.02 * ncores * v * v * f / 1000
            shown = p if p_prev is None else p_prev  # the sensor reads the previous interval's power
            p_prev = p
            t += int(dt * 1e9)
            row = [str(t), w, "1", *([str(ncores)] if cores_column else []), str(f), f"{temp:.1f}", f"{v:.2f}",
                   f"{shown:.4f}", str(int(cyc)), *[str(int(counts[e])) for e in events], "x"]
            lines.append("\t".join(row))
        t += 60_000_000_000
    path.write_text("\n".join(lines) + "\n")
    return path


def write_powmon(path: Path, *, workloads: int = 8, seed: int = 1) -> Path:
    """Powmon rows (workload x core mask x frequency) with per-core Core N CycleCount / Event 0xNN for
    cores 0-7 (A7 = 0-3, A15 = 4-7), events 0x08, 0x04, 0x17, 0x19, 0x4E (0x4E: not in the ARM table)."""
    rng = np.random.default_rng(seed)
    evs = [0x08, 0x04, 0x17, 0x19, 0x4E]
    coef = {0x08: 5e-10, 0x04: 2e-10, 0x17: 3e-9, 0x19: 1e-9, 0x4E: 0.0}
    wls = _workloads(rng, workloads, evs)
    masks = {"0x10": [4], "0x30": [4, 5], "0x70": [4, 5, 6], "0xF0": [4, 5, 6, 7]}
    header = ["Workload Name", "Core Mask", "Frequency A7", "Frequency A15", "Samples Averaged", "Voltage A7",
              "Voltage A15", "Power A7", "Power A15", "Temperature C4", "Temperature C5", "Temperature C6",
              "Temperature C7", "Average Temperature A15"]
    for c in range(8):
        header.append(f"Core {c} CycleCount")
        header += [f"Core {c} Event 0x{e:02X}" for e in evs]
    lines = [",".join(header)]
    for w, act in wls.items():
        for mask, cores in masks.items():
            for f, v in FREQS.items():
                temp = 45 + 5 * len(cores) * f / 1800 + rng.normal(0, 0.5)
                row = {"Workload Name": w, "Core Mask": mask, "Frequency A7": "1400", "Frequency A15": str(f),
                       "Samples Averaged": "20", "Voltage A7": "1.0", "Voltage A15": f"{v:.3f}",
                       "Power A7": "0.1"}
                power = 0.25 * v + 0.004 * temp * v + 0.05 * len(cores) * v * v * f / 1000
                for c in range(8):
                    on = c in cores
                    cyc = f * 1e6 * 0.2 * (rng.uniform(0.8, 1.0) if on else 0.0)
                    row[f"Core {c} CycleCount"] = str(int(cyc))
                    for e in evs:
                        n = act[e] * cyc * (1 + rng.normal(0, 0.03))
                        row[f"Core {c} Event 0x{e:02X}"] = str(int(n))
                        if on:
                            power += coef[e] * (n / cyc) * f * 1e6 * v * v
                power += rng.normal(0, 0.01)
                row["Power A15"] = f"{power:.4f}"
                for k in range(4, 8):
                    row[f"Temperature C{k}"] = f"{temp + rng.normal(0, 0.3):.1f}"
                row["Average Temperature A15"] = f"{temp:.2f}"
                lines.append(",".join(row[h] for h in header))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_mapped_csv(path: Path, *, samples: int = 25, workloads: int = 8, seed: int = 2) -> Path:
    """A logger's CSV: time in ms, app, frequency in kHz, voltage in mV, power in mW, counters named
    'instr', 'cyc', 'l2miss', 'busacc' (only the mapping says what they are), a 'note' column."""
    rng = np.random.default_rng(seed)
    evs = ["instr", "l2miss", "busacc"]
    coef = {"instr": 5e-10, "l2miss": 8e-9, "busacc": 0.0}
    wls = _workloads(rng, workloads, evs)
    lines = ["t_ms,app,f_khz,vdd_mv,temp,p_mw,cyc,instr,l2miss,busacc,note"]
    t = 0.0
    for w, act in wls.items():
        for f, v in FREQS.items():
            for s in range(samples):
                dt = 0.2
                util = np.clip(0.6 + 0.3 * np.cos(s / 2.0) + rng.normal(0, 0.05), 0.1, 1.0)
                cyc = util * f * 1e6 * dt
                counts = {e: act[e] * cyc * (1 + rng.normal(0, 0.04)) for e in evs}
                temp = 38 + 8 * f / 1800 + rng.normal(0, 0.4)
                p = (sum(coef[e] * counts[e] / dt for e in evs) + 2e-10 * cyc / dt) * v * v + 0.2 * v \
                    + 0.003 * temp * v + rng.normal(0, 0.01)
                t += dt * 1000
                lines.append(f"{t:.1f},{w},{f * 1000},{v * 1000:.0f},{temp:.1f},{p * 1000:.2f},{int(cyc)},"
                             + ",".join(str(int(counts[e])) for e in evs) + ",ok")
            t += 30_000
    path.write_text("\n".join(lines) + "\n")
    return path


MAPPING = "time=t_ms,workload=app,freq_mhz=f_khz,voltage_v=vdd_mv,power_w=p_mw,CPU_CYCLES=cyc,INST_RETIRED=instr," \
          "L2D_CACHE_REFILL=l2miss,BUS_ACCESS=busacc"

"""Wide tables on a small hand-made long frame with known answers."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from perfmodel.data import (
    SchemaError,
    base_provenances,
    column_provenance,
    empty_records,
    records_from_readings,
    validate,
    wide_per_cell,
    wide_per_image,
    wide_per_sample,
)
from perfmodel.data.tables import provenance
from perfmodel.readings import Reading as R

KEYS = dict(run_id="r1", board="kvm", threads=1, repeat=0)


def _image(cell: str, i: int, latency: float, instr: float, cycles: float, acc: float, refill: float):
    return records_from_readings(
        [
            R("latency_ms", latency, "ms", "perf_counter", "real"),
            R("instructions", instr, "count", "callgrind", "simulated"),
            R("cycles", cycles, "count", "callgrind", "simulated"),
            R("l1d_accesses", acc, "count", "callgrind", "simulated"),
            R("l1d_refills", refill, "count", "callgrind", "simulated"),
            R.missing("power_w", "no power sensor", "W"),
        ],
        cell_id=cell, framework="litert", network="squeezenet1_1", workload="litert/squeezenet1_1",
        phase="image", image_index=i, t_start_s=float(i), t_end_s=i + latency / 1000, **KEYS,
    )


@pytest.fixture(scope="module")
def long_df() -> pd.DataFrame:
    parts = [
        _image("A", 0, 10.0, 1000, 2000, 100, 10),
        _image("A", 1, 30.0, 3000, 2000, 200, 40),
        records_from_readings(
            [R("cpu_percent", 95.0, "%", "psutil", "software"),
             R.missing("temperature_c", "no thermal zone", "degC")],
            cell_id="A", framework="litert", network="squeezenet1_1", workload="litert/squeezenet1_1",
            phase="cell", **KEYS),
        records_from_readings(
            [R("latency_ms", 50.0, "ms", "perf stat", "real"), R("instructions", 5e6, "count", "perf stat", "real")],
            cell_id="B", framework="", network="", workload="python my_infer.py", phase="command", **KEYS),
    ]
    for j, (images, instr, temp) in enumerate([(5, 1e6, 50.0), (4, 2e6, 51.0)]):
        parts.append(records_from_readings(
            [R("images", images, "count", "loop", "real"), R("instructions", instr, "count", "perf_event", "real"),
             R("temperature_c", temp, "degC", "thermal_zone0", "real"), R.missing("power_w", "no sensor", "W")],
            cell_id="C", framework="onnxruntime", network="squeezenet1_1", workload="onnxruntime/squeezenet1_1",
            phase="trace", t_start_s=10 + 0.5 * j, t_end_s=10.5 + 0.5 * j, **KEYS))
    return validate(pd.concat(parts, ignore_index=True))


def test_wide_per_image_known_answers(long_df):
    w = wide_per_image(long_df).frame
    assert len(w) == 2 and list(w["image_index"]) == [0, 1]
    assert list(w.columns[:10]) == ["run_id", "cell_id", "counter_source", "board", "framework", "network",
                                    "threads", "workload", "repeat", "image_index"]
    assert w["threads"].dtype == "int64"
    assert list(w["throughput_fps"]) == pytest.approx([100.0, 1000 / 30])
    assert list(w["instructions_per_image"]) == [1000.0, 3000.0]
    assert list(w["instructions_per_s"]) == pytest.approx([1e5, 1e5])
    assert list(w["ipc"]) == pytest.approx([0.5, 1.5])
    assert list(w["l1d_miss_rate"]) == pytest.approx([0.1, 0.2])
    assert list(w["l1d_refills_per_cycle"]) == pytest.approx([0.005, 0.02])
    assert list(w["t_end_s"]) == pytest.approx([0.01, 1.03])
    assert w["power_w"].isna().all()  # never filled
    assert "l2d_miss_rate" not in w and "branch_miss_rate" not in w  # no inputs, no column


def test_wide_per_image_provenance(long_df):
    w = wide_per_image(long_df)
    prov = provenance(w)
    assert prov["latency_ms"] == "real"
    assert prov["instructions_per_image"] == "simulated"
    assert prov["power_w"] == "none"
    assert prov["ipc"] == "derived"
    assert w.provenance.derived_from["ipc"] == ("instructions_per_image", "cycles_per_image")
    assert base_provenances(w, "ipc") == {"simulated"}
    assert base_provenances(w, "instructions_per_s") == {"simulated", "real"}
    assert column_provenance(w, "throughput_fps") == "derived"
    assert w.provenance.units["latency_ms"] == "ms"
    with pytest.raises(KeyError):
        column_provenance(w, "board")


def test_wide_per_cell_known_answers(long_df):
    table = wide_per_cell(long_df)
    c = table.frame.set_index("cell_id")
    assert list(c.index) == ["A", "B"]
    a, b = c.loc["A"], c.loc["B"]
    assert a["n_images"] == 2 and b["n_images"] == 0
    assert a["latency_ms"] == 20.0
    assert a["latency_ms_std"] == pytest.approx(math.sqrt(200))
    assert a["latency_ms_n"] == 2
    assert a["throughput_fps"] == pytest.approx(50.0)  # 1000 / mean latency, not mean of 100 and 33.3
    assert a["throughput_fps_std"] == pytest.approx(pd.Series([100.0, 1000 / 30]).std())
    assert a["ipc"] == pytest.approx(1.0)  # ratio of means: 2000 / 2000
    assert a["instructions_per_s"] == pytest.approx(1e5)
    assert a["l1d_miss_rate"] == pytest.approx(50 / 300)
    assert math.isnan(a["power_w"]) and a["power_w_n"] == 0
    assert a["cpu_percent"] == 95.0 and math.isnan(a["temperature_c"])
    # whole-command cell: per-image values from the two-phase method
    assert b["latency_ms"] == 50.0 and b["throughput_fps"] == pytest.approx(20.0)
    assert b["instructions_per_image"] == 5e6 and b["instructions_per_s"] == pytest.approx(1e8)
    assert math.isnan(b["ipc"]) and math.isnan(b["cpu_percent"])
    prov = table.provenance.sources
    assert prov["cpu_percent"] == "software" and prov["temperature_c"] == "none"
    assert prov["instructions_per_image"] == "real+simulated"
    assert prov["latency_ms_std"] == "real"


def test_wide_per_cell_collision_gets_cell_suffix(long_df):
    extra = records_from_readings(
        [R("latency_ms", 21.0, "ms", "cell clock", "real")],
        cell_id="A", framework="litert", network="squeezenet1_1", workload="litert/squeezenet1_1",
        phase="cell", **KEYS)
    c = wide_per_cell(validate(pd.concat([long_df, extra], ignore_index=True))).frame.set_index("cell_id")
    assert c.loc["A", "latency_ms"] == 20.0 and c.loc["A", "latency_ms_cell"] == 21.0


def test_wide_per_sample_known_answers(long_df):
    table = wide_per_sample(long_df)
    s = table.frame
    assert len(s) == 2 and set(s["cell_id"]) == {"C"}
    assert list(s["t_rel_s"]) == [0.0, 0.5] and list(s["dt_s"]) == [0.5, 0.5]
    assert list(s["throughput_fps"]) == pytest.approx([10.0, 8.0])
    assert list(s["instructions"]) == [1e6, 2e6]
    assert list(s["instructions_per_s"]) == pytest.approx([2e6, 4e6])
    assert list(s["temperature_c"]) == [50.0, 51.0]
    assert s["power_w"].isna().all()
    assert provenance(table)["temperature_c"] == "real" and provenance(table)["power_w"] == "none"
    assert base_provenances(table, "throughput_fps") == {"real"}


def test_zero_denominator_gives_nan_not_inf(long_df):
    df = long_df.copy()
    df.loc[(df["metric"] == "cycles") & (df["image_index"] == 0), "value"] = 0.0
    w = wide_per_image(df).frame
    assert math.isnan(w.loc[0, "ipc"]) and w.loc[1, "ipc"] == 1.5


def test_missing_inputs_stay_nan(long_df):
    df = long_df.copy()
    sel = (df["metric"] == "latency_ms") & (df["image_index"] == 1)
    df.loc[sel, "value"] = math.nan
    df.loc[sel, "reason"] = "timer failed"
    df.loc[sel, "provenance"] = "none"
    w = wide_per_image(validate(df)).frame
    assert math.isnan(w.loc[1, "throughput_fps"]) and math.isnan(w.loc[1, "instructions_per_s"])
    c = wide_per_cell(validate(df)).frame.set_index("cell_id")
    assert c.loc["A", "latency_ms"] == 10.0 and c.loc["A", "latency_ms_n"] == 1
    assert c.loc["A", "instructions_per_s"] == pytest.approx(2000 / 0.010)


def test_empty_and_bad_inputs():
    empty = empty_records()
    assert wide_per_image(empty).empty and wide_per_cell(empty).empty and wide_per_sample(empty).empty
    with pytest.raises(SchemaError, match="missing column"):
        wide_per_image(pd.DataFrame({"metric": ["x"]}))


def test_duplicates_are_reported_not_aggregated(long_df):
    dup = pd.concat([long_df, long_df.head(1)], ignore_index=True)
    with pytest.raises(SchemaError, match="repeat a metric"):
        wide_per_image(dup)


def test_counter_source_is_a_key_column_of_every_cell(long_df):
    """A cell's counter source is data: a key column derived once from the cell id (the collect stage's naming),
    so stored data sets that only have the id suffix read the same; is_simulated asks it."""
    from perfmodel.data import is_simulated
    from perfmodel.data.cells import counter_source

    ids = {"A": "litert__squeezenet1_1__t1__r0__valgrind", "B": "litert__squeezenet1_1__t1__r0__auto",
           "C": "litert__squeezenet1_1__t1__r0__trace-perf"}
    recs = validate(long_df.assign(cell_id=long_df["cell_id"].map(ids)))
    cells = wide_per_cell(recs).frame.set_index("cell_id")
    assert cells["counter_source"].to_dict() == {ids["A"]: "valgrind", ids["B"]: "auto"}
    assert set(wide_per_sample(recs).frame["counter_source"]) == {"perf"}
    assert "counter_source" not in wide_per_cell(recs).provenance.sources  # a key, not a measurement
    assert dict(zip(cells.index, is_simulated(cells.reset_index()))) == {ids["A"]: True, ids["B"]: False}
    assert list(is_simulated(recs.drop_duplicates("cell_id"))) == [True, False, False]  # long records: by the id
    assert [counter_source(c) for c in ("x__valgrind@2", "command__ab12__software", "armpm-run1", "valgrind__x")] \
        == ["valgrind", "software", "unknown", "unknown"]

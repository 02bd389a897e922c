"""The long record schema: valid frames pass unchanged, bad frames fail with short, clear messages."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfmodel.data.schema import (
    COLUMNS,
    EXTRA_METRICS,
    SchemaError,
    empty_records,
    known_metrics,
    records_from_readings,
    validate,
)
from perfmodel.errors import PerfmodelError
from perfmodel.metrics import EVENTS, SENSORS, TIMING
from perfmodel.readings import Reading


def records(n_images: int = 3) -> pd.DataFrame:
    parts = []
    for i in range(n_images):
        parts.append(records_from_readings(
            [
                Reading("latency_ms", 10.0 + i, "ms", "perf_counter", "real"),
                Reading("instructions", 1e6 * (i + 1), "count", "callgrind", "simulated"),
                Reading("context_switches", 2.0, "count", "getrusage", "software"),
                Reading.missing("power_w", "no power sensor on this board", "W"),
            ],
            run_id="run1", cell_id="litert__squeezenet1_1__t1__r0__software", board="kvm", framework="litert",
            network="squeezenet1_1", threads=1, workload="litert/squeezenet1_1", phase="image", repeat=0,
            image_index=i, t_start_s=float(i), t_end_s=i + 0.011, scales={"instructions": 1.25},
        ))
    return pd.concat(parts, ignore_index=True)


def test_valid_frame_passes_with_schema_dtypes():
    df = validate(records())
    assert list(df.columns) == list(COLUMNS)
    for col, dtype in COLUMNS.items():
        assert str(df[col].dtype) == dtype, col
    missing = df[df["metric"] == "power_w"]
    assert missing["value"].isna().all() and (missing["reason"] == "no power sensor on this board").all()
    assert (missing["provenance"] == "none").all()
    assert df.loc[df["metric"] == "instructions", "scale"].eq(1.25).all()


def test_empty_frame_is_valid():
    assert len(validate(empty_records())) == 0


def test_vocabulary_covers_metrics_module_and_user_prefix():
    vocab = known_metrics()
    assert set(EVENTS) | set(SENSORS) | set(TIMING) | set(EXTRA_METRICS) == vocab
    df = records(1)
    df.loc[0, "metric"] = "x_gpu_busy"
    validate(df)  # user extras with the x_ prefix are allowed
    df.loc[0, "metric"] = "x_"
    with pytest.raises(SchemaError, match="metric"):
        validate(df)


def test_coercion_of_integral_floats_and_missing_reason():
    df = records(1)
    df["threads"] = df["threads"].astype(float)
    df["reason"] = df["reason"].astype(object).where(df["value"].isna(), None)
    out = validate(df)
    assert out["threads"].dtype == np.int64
    assert (out.loc[out["value"].notna(), "reason"] == "").all()


def test_fractional_threads_are_not_silently_truncated():
    df = records(1)
    df["threads"] = 1.5
    with pytest.raises(SchemaError, match="threads.*int64"):
        validate(df)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d.assign(threads=0), r"column 'threads': threads must be >= 1: 4 rows"),
        (lambda d: d.assign(provenance="measured"), r"provenance must be one of real, simulated"),
        (lambda d: d.assign(phase="warmup"), r"phase must be one of image, trace, cell, command"),
        (lambda d: d.assign(metric="flops"), r"metric must be a perfmodel.metrics name.*'flops'"),
        (lambda d: d.assign(board=""), r"column 'board': must be a non-empty string"),
        (lambda d: d.drop(columns=["unit"]), r"missing column: unit"),
        (lambda d: d.assign(colour="red"), r"unknown column: colour"),
        (lambda d: d.assign(image_index=-1), r"image_index must be >= 0 for phase 'image'"),
        (lambda d: d.assign(t_end_s=d["t_start_s"] - 1), r"t_end_s must be >= t_start_s"),
        (lambda d: d.assign(scale=0.5), r"scale must be >= 1"),
        (lambda d: d.assign(value=np.inf), r"value must be finite or NaN"),
        (lambda d: pd.concat([d, d.head(1)]), r"duplicate rows for key"),
    ],
)
def test_bad_frames_give_clear_messages(mutate, expected):
    with pytest.raises(SchemaError, match=expected) as info:
        validate(mutate(records(1)))
    message = str(info.value)
    assert len(message) < 1500, "message must be short, not pandera's report"
    assert "Traceback" not in message and "SchemaErrors" not in message
    assert info.value.problems


def test_nan_value_needs_reason_and_present_value_needs_none():
    df = records(2)
    df.loc[df["metric"] == "power_w", "reason"] = ""
    with pytest.raises(SchemaError, match=r"a missing value \(NaN\) needs a non-empty reason: 2 rows") as info:
        validate(df)
    assert "power_w" in str(info.value)
    df = records(1)
    df.loc[df["metric"] == "latency_ms", "reason"] = "because"
    with pytest.raises(SchemaError, match="present value must have an empty reason"):
        validate(df)


def test_negative_latency_and_power_rejected_but_negative_event_allowed():
    df = records(1)
    df.loc[df["metric"] == "latency_ms", "value"] = -3.0
    with pytest.raises(SchemaError, match=r">= 0.*-3"):
        validate(df)
    df = records(1)
    # two-phase (s1 - s2) / N estimates can be slightly negative for tiny events: allowed
    df.loc[df["metric"] == "context_switches", "value"] = -0.5
    validate(df)


def test_provenance_none_only_for_missing():
    df = records(1)
    df.loc[df["metric"] == "latency_ms", "provenance"] = "none"
    with pytest.raises(SchemaError, match="provenance 'none' only with a missing value"):
        validate(df)


def test_trace_rows_need_times():
    df = records(1).assign(phase="trace", image_index=-1)
    df.loc[0, "t_end_s"] = math.nan
    with pytest.raises(SchemaError, match="trace records need t_start_s and t_end_s"):
        validate(df)


def test_message_reports_rows_and_first_offending_values_only():
    df = pd.concat([records(1)] * 1, ignore_index=True)
    big = pd.concat([df.assign(image_index=i) for i in range(200)], ignore_index=True)
    big["threads"] = 0
    with pytest.raises(SchemaError) as info:
        validate(big)
    msg = str(info.value)
    assert "800 rows" in msg
    assert msg.count(",") < 40


def test_not_a_dataframe():
    with pytest.raises(SchemaError, match="DataFrame"):
        validate([1, 2, 3])  # type: ignore[arg-type]
    assert issubclass(SchemaError, PerfmodelError)


def test_records_from_readings_requires_keys():
    with pytest.raises(PerfmodelError, match="missing record keys"):
        records_from_readings([Reading("latency_ms", 1.0, "ms")], run_id="r")


# ---- hypothesis: random corruptions of a valid frame raise SchemaError or nothing -------------------

_WEIRD = st.sampled_from([None, math.nan, math.inf, -math.inf, -1, 0, 1.5, "", "zzz", "x_ok", True, b"b",
                          [1], {"a": 1}, 2**70, -2, "image", "real", "instructions"])


@st.composite
def corrupted(draw):
    df = records(2).astype(object) if draw(st.booleans()) else records(2)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["set", "drop", "add", "dtype", "dup"]))
        col = draw(st.sampled_from(list(COLUMNS)))
        if action == "set" and col in df:
            row = draw(st.integers(0, len(df) - 1))
            values = df[col].astype(object).tolist()
            values[row] = draw(_WEIRD)
            df[col] = pd.Series(values, index=df.index, dtype=object)
        elif action == "drop" and col in df:
            df = df.drop(columns=[col])
        elif action == "add":
            df[draw(st.sampled_from(["extra", "x_col", "Value"]))] = [draw(_WEIRD)] * len(df)
        elif action == "dtype" and col in df:
            df[col] = df[col].astype(str)
        elif action == "dup":
            df = pd.concat([df, df.iloc[[0]]], ignore_index=draw(st.booleans()))
    return df


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted())
def test_random_bad_frames_only_raise_schema_error(df):
    try:
        out = validate(df)
    except SchemaError as exc:
        assert str(exc).startswith("records do not fit the perfmodel record schema")
        assert len(str(exc)) < 4000
    else:
        # anything accepted must be a genuinely valid frame
        assert list(out.columns) == list(COLUMNS)
        assert (out["value"].isna() == (out["reason"] != "")).all()
        assert (out["threads"] >= 1).all()

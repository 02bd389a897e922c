"""Provenance as an explicit object (issue 24): a Table carries it beside its frame through every operation,
nothing rides in pandas attrs, and the real-vs-simulated refusal rests on it."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from perfmodel.data import Provenance, Table, as_table, frame_of, is_simulated, splice_simulated, wide_per_cell
from perfmodel.model import IncompatibleSampleError, fit_model
from perfmodel.model.features import join_simulated, throughput_terms
from perfmodel.model.prepare import predict_each
from perfmodel.model.synthetic import synthetic_throughput_records

PKG = Path(__file__).resolve().parents[1] / "perfmodel"


@pytest.fixture(scope="module")
def records():
    return synthetic_throughput_records(networks=("squeezenet1_1", "mobilenet_v2", "googlenet", "resnet50"),
                                        frameworks=("litert", "onnxruntime"), threads=(1, 2), seed=3)


@pytest.fixture(scope="module")
def simulated_model(records):
    table = join_simulated(wide_per_cell(records))
    return table, fit_model(table, "throughput_fps", throughput_terms(table.frame), kind="loglinear",
                            groups="lono", select="fixed", baselines=False, statistics=False)


def test_no_pandas_attrs_in_perfmodel():
    """Provenance and every other fact travel as explicit objects, never in DataFrame.attrs (pandas drops them
    across concat / merge and deep-copies them into every result)."""
    hits = [f"{p.relative_to(PKG)}:{i}" for p in PKG.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"\.attrs\b", line)]
    assert hits == []


def test_provenance_is_frozen_and_operations_make_new_objects():
    p = Provenance({"a": "real", "b": "derived"}, {"b": ["a", "c"]}, {"a": "count"}, origin="x")
    with pytest.raises(TypeError):
        p.sources["a"] = "simulated"  # type: ignore[index]
    q = p.with_columns({"b": "simulated", "d": "derived"}, derived_from={"d": ["b"]})
    assert p.get("b") == "derived" and p.derived_from["b"] == ("a", "c")  # unchanged
    assert q.get("b") == "simulated" and "b" not in q.derived_from and q.derived_from["d"] == ("b",)
    assert p.leaves("b") == [("c", None), ("a", "real")] and q.leaves("d") == [("b", "simulated")]
    assert set(q.without(["a"]).sources) == {"b", "d"} and set(q.restricted(["a"]).sources) == {"a"}
    assert q.origin == "x" and not Provenance() and p
    t = Table(pd.DataFrame({"a": [1, 2, 3]}), p, {"n": 1})
    assert t.rows([0, 2]).provenance is p and list(t.rows([0, 2], reset_index=True).frame.index) == [0, 1]
    assert t.with_meta(m=2).meta == {"n": 1, "m": 2} and t.meta == {"n": 1}
    assert as_table(t) is t and frame_of(t) is t.frame and as_table(t.frame).provenance == Provenance()
    with pytest.raises(TypeError):
        Table({"a": [1]})  # type: ignore[arg-type]


def test_a_frame_with_provenance_only_in_pandas_attrs_is_refused(simulated_model):
    """Provenance that rides in pandas attrs is not provenance any more: the model refuses the measured columns
    as unknown, never takes them for the training's."""
    table, model = simulated_model
    frame = table.frame.copy()
    frame.attrs["provenance"] = dict(table.provenance.sources)  # what the old code read
    frame.attrs["derived_from"] = {k: list(v) for k, v in table.provenance.derived_from.items()}
    with pytest.raises(IncompatibleSampleError, match="provenance unknown"):
        model.predict_frame(frame)
    assert len(model.predict_frame(table)) == len(table)


def test_real_counts_are_refused_by_a_model_of_simulated_counts(simulated_model):
    table, model = simulated_model
    real = table.with_provenance(table.provenance.with_columns({"instructions_per_image": "real"}))
    with pytest.raises(IncompatibleSampleError, match="instructions_per_image: sample is real, model was trained "
                                                      "on simulated"):
        model.predict_frame(real)


def test_provenance_travels_through_the_row_by_row_path_and_derived_columns(simulated_model):
    """predict_each predicts the rows one by one when they fail together: every row keeps the table's
    provenance (a row without its counts is not predicted, the others are)."""
    table, model = simulated_model
    frame = table.frame.copy()
    frame.loc[frame.index[0], "instructions_per_image"] = float("nan")
    preds, failed = predict_each(model, table.with_frame(frame))
    assert list(failed) == [frame.index[0]] and len(preds) == len(frame) - 1
    from perfmodel.model.features import attach_macs

    with_macs = attach_macs(table)
    assert with_macs.provenance == table.provenance and "macs" in with_macs.columns
    assert len(model.predict_frame(with_macs)) == len(table)


def test_one_join_of_simulated_counts(records):
    """join_simulated is the one join: if_mixed leaves a table without simulated cells (or with nothing else)
    as it is; splice_simulated brings other data sets' simulated cells into records."""
    wide = wide_per_cell(records)
    timing = wide.rows(~is_simulated(wide.frame))
    assert join_simulated(timing, if_mixed=True) is timing
    only_sim = wide.rows(is_simulated(wide.frame))
    assert join_simulated(only_sim, if_mixed=True) is only_sim
    joined = join_simulated(wide, if_mixed=True)
    assert joined.meta["join_simulated_events"] and not is_simulated(joined.frame).any()
    sim = records[is_simulated(records)]
    own = records[~is_simulated(records)]
    assert len(splice_simulated(own, [sim])) == len(records)
    assert len(splice_simulated(records, [sim])) == len(records)  # the cells it has are not added again
    again = splice_simulated(records, [sim.assign(run_id="other")], replace=True)
    assert set(again.loc[is_simulated(again), "run_id"]) == {"other"}

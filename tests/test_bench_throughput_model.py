"""benchmarks/bench_throughput_model.py: the note on which caches its simulated counts were simulated with."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def bench():
    from conftest import load_benchmark

    return load_benchmark("bench_throughput_model")


def _args(dataset, replace=()):
    return argparse.Namespace(dataset=str(dataset), replace_simulated=[Path(p) for p in replace], simulated_from=[])


def test_trained_row_is_labelled_when_the_counts_are_of_other_caches(bench):
    ref, xeon = ROOT / "datasets" / "reference", ROOT / "datasets" / "simulated-l2-2mib"
    if not (ref / "dataset.json").is_file() or not (xeon / "dataset.json").is_file():
        pytest.skip("the checkout's data sets are not here")
    note = bench.trained_geometry_note(_args(ref))  # the reference's own valgrind cells: Cortex-A53 caches
    assert note and "LL=524288" in note and "LL=2097152" in note and "--replace-simulated" in note
    assert bench.trained_geometry_note(_args(ref, [xeon])) is None  # the shipped file's caches


def test_no_note_when_the_trained_file_cannot_be_read(bench, tmp_path):
    import json

    trained = tmp_path / "m.json"
    trained.write_text(json.dumps({"not": "a model"}))
    assert bench.trained_geometry_note(_args(ROOT / "datasets" / "reference"), trained) is None

"""Selection: spec parsing, ranking, exclusion, binding constraints, Pareto front, candidates, CLI."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from perfmodel.data.provenance import Provenance, Table
from perfmodel.errors import PerfmodelError
from perfmodel.select import Constraint, Spec, candidates_from_cells, pareto_front, parse_weights, rank


def _cands(rows):
    """Hand-made candidate table: rows of (framework, network, threads, fps, power, top1, mem)."""
    df = pd.DataFrame(rows, columns=["framework", "network", "threads", "throughput_fps", "power_w", "top1",
                                     "max_rss_mb"])
    df["board"] = "b"
    for col in ("throughput_fps", "power_w", "top1", "max_rss_mb"):
        df[f"{col}_source"] = ["measured" if not pd.isna(v) else "unavailable: no sensor" for v in df[col]]
    df["energy_j"] = df["power_w"] / df["throughput_fps"]
    df["energy_j_source"] = "derived"
    return df


BASE = [
    ("tf", "resnet50", 1, 2.0, 2.0, 0.75, 400.0),
    ("litert", "resnet50", 4, 6.0, 3.5, 0.75, 300.0),
    ("litert", "squeezenet1_1", 4, 30.0, 3.0, 0.58, 80.0),
    ("litert", "squeezenet1_1", 1, 12.0, 2.2, 0.58, 80.0),
    ("ort", "googlenet", 2, 9.0, 2.6, 0.70, 150.0),
]


# ---------------------------------------------------------------------------------------- spec


def test_spec_from_options_parses_limits_and_percent():
    spec = Spec.from_options(max_power=2.5, min_fps=10, min_top1=55, min_top5=0.8)
    by = {c.name: c for c in spec.constraints}
    assert by["max_power"].column == "power_w" and by["max_power"].kind == "max" and by["max_power"].limit == 2.5
    assert by["min_fps"].kind == "min" and by["min_fps"].limit == 10
    assert by["min_top1"].limit == pytest.approx(0.55)  # percent read as a fraction
    assert by["min_top5"].limit == pytest.approx(0.8)
    assert Constraint.from_option("--max-memory", 100).column == "max_rss_mb"


@pytest.mark.parametrize("kwargs", [
    {"objective": "fastest"},
    {"max_power": -1.0},
    {"min_top1": 150.0},
    {"objective": "throughput", "weights": "throughput_fps=1"},
    {"objective": "merit", "weights": "bogus=1"},
    {"objective": "merit", "weights": "throughput_fps"},
    {"objective": "merit", "weights": "throughput_fps=0"},
])
def test_spec_rejects_bad_input(kwargs):
    with pytest.raises(PerfmodelError):
        Spec.from_options(**kwargs)


def test_parse_weights():
    assert parse_weights("throughput_fps=2, power_w=-1") == {"throughput_fps": 2.0, "power_w": -1.0}


# ---------------------------------------------------------------------------------------- rank


def test_power_budget_binds_and_excluded_names_the_constraint():
    res = rank(_cands(BASE), Spec.from_options(max_power=3.0))
    # the fastest within 3.0 W: squeezenet x4 (3.0 W is on the limit, allowed); resnet x4 (3.5 W) excluded
    assert res.ranked.iloc[0]["candidate"] == "litert/squeezenet1_1 x4"
    assert list(res.ranked["throughput_fps"]) == sorted(res.ranked["throughput_fps"], reverse=True)
    assert len(res.excluded) == 1
    ex = res.excluded.iloc[0]
    assert ex["candidate"] == "litert/resnet50 x4" and ex["constraint"] == "max_power"
    assert ex["value"] == 3.5 and ex["limit"] == 3.0 and ex["shortfall"] == pytest.approx(0.5)
    assert res.binding is None and res.feasible


def test_every_candidate_is_accounted_for():
    spec = Spec.from_options(max_power=2.5, min_top1=0.6)
    res = rank(_cands(BASE), spec)
    seen = set(res.ranked["candidate"]) | set(res.excluded["candidate"]) | set(res.unevaluable["candidate"])
    assert seen == set(res.candidates["candidate"])
    # a candidate failing two constraints gets two excluded rows
    two = res.excluded.loc[res.excluded["candidate"] == "litert/squeezenet1_1 x4", "constraint"]
    assert set(two) == {"max_power", "min_top1"}


@pytest.mark.parametrize("objective,column,ascending", [
    ("throughput", "throughput_fps", False), ("power", "power_w", True), ("energy", "energy_j", True)])
def test_objectives_order(objective, column, ascending):
    res = rank(_cands(BASE), Spec.from_options(objective=objective))
    vals = list(res.ranked[column])
    assert vals == sorted(vals, reverse=not ascending)
    assert list(res.ranked["rank"]) == list(range(1, len(BASE) + 1))


def test_merit_is_weighted_product():
    res = rank(_cands(BASE), Spec.from_options(objective="merit", weights="throughput_fps=1,power_w=-1,top1=2"))
    c = res.ranked
    expected = c["throughput_fps"] / c["power_w"] * c["top1"] ** 2
    assert np.allclose(c["objective"], expected)
    assert list(c["objective"]) == sorted(c["objective"], reverse=True)


def test_ties_share_a_rank_and_order_is_deterministic():
    rows = [("b", "n", 1, 10.0, 2.0, 0.7, 1.0), ("a", "n", 1, 10.0, 2.0, 0.7, 1.0), ("c", "n", 1, 5.0, 1.0, 0.7, 1.0)]
    res = rank(_cands(rows), Spec())
    assert list(res.ranked["rank"]) == [1, 1, 3]
    assert list(res.ranked["framework"]) == ["a", "b", "c"]
    res2 = rank(_cands(rows[::-1]), Spec())
    assert list(res2.ranked["framework"]) == ["a", "b", "c"]


def test_infeasible_reports_binding_constraint_and_closest_candidate():
    res = rank(_cands(BASE), Spec.from_options(min_fps=40, max_power=2.5))
    assert not res.feasible and res.ranked.empty
    b = res.binding
    # squeezenet x1 (12 fps, 2.2 W) fails only min_fps -> min_fps is binding
    assert "min_fps" in b["constraints"]
    # closest by total relative shortfall: squeezenet x4 needs (40-30)/40 + (3-2.5)/2.5 = 0.45;
    # squeezenet x1 needs (40-12)/40 = 0.7
    assert b["closest"]["candidate"] == "litert/squeezenet1_1 x4"
    short = {s["constraint"]: s for s in b["closest"]["shortfalls"]}
    assert short["min_fps"]["shortfall"] == pytest.approx(10.0)
    assert short["max_power"]["shortfall"] == pytest.approx(0.5)
    assert b["closest"]["total_relative_shortfall"] == pytest.approx(0.45)
    assert b["excluded_by"] == {"max_power": 3, "min_fps": 5}  # 3.5, 3.0 and 2.6 W
    assert "min_fps" in b["message"] and "litert/squeezenet1_1 x4" in b["message"]


def test_binding_when_no_candidate_fails_one_constraint_alone():
    rows = [("a", "n", 1, 5.0, 5.0, 0.7, 1.0), ("b", "n", 1, 4.0, 4.0, 0.7, 1.0)]
    res = rank(_cands(rows), Spec.from_options(min_fps=10, max_power=1))
    assert set(res.binding["constraints"]) == {"min_fps", "max_power"}


def test_unevaluable_constraint_is_reported_not_passed_or_dropped():
    rows = list(BASE) + [("ort", "squeezenet1_1", 1, 20.0, math.nan, 0.58, 80.0)]
    res = rank(_cands(rows), Spec.from_options(max_power=3.0))
    un = res.unevaluable
    assert list(un["candidate"]) == ["ort/squeezenet1_1 x1"]
    assert un.iloc[0]["constraint"] == "max_power" and "no sensor" in un.iloc[0]["reason"]
    assert "ort/squeezenet1_1 x1" not in set(res.ranked["candidate"])
    assert any("cannot be evaluated" in n for n in res.notes)
    # --allow-unknown ranks it, flagged
    res2 = rank(_cands(rows), Spec.from_options(max_power=3.0, allow_unknown=True))
    row = res2.ranked.loc[res2.ranked["candidate"] == "ort/squeezenet1_1 x1"].iloc[0]
    assert row["unknown"] == "max_power"
    assert len(res2.unevaluable) == 1


def test_unknown_objective_value_is_unevaluable():
    rows = [("a", "n", 1, 5.0, math.nan, 0.7, 1.0), ("b", "n", 1, 4.0, 1.0, 0.7, 1.0)]
    res = rank(_cands(rows), Spec.from_options(objective="power"))
    assert list(res.ranked["framework"]) == ["b"]
    assert list(res.unevaluable["constraint"]) == ["objective"]
    res2 = rank(_cands(rows), Spec.from_options(objective="power", allow_unknown=True))
    assert list(res2.ranked["framework"]) == ["b", "a"]  # unknown objective ranked last
    assert math.isnan(res2.ranked.iloc[1]["rank"])


def test_all_unevaluable_binding_message():
    rows = [("a", "n", 1, 5.0, math.nan, 0.7, 1.0)]
    res = rank(_cands(rows), Spec.from_options(max_power=3))
    assert not res.feasible and "unevaluable" in res.binding["message"]


def test_predicted_interval_straddling_the_limit_is_flagged_uncertain():
    df = _cands([("a", "n", 1, 5.0, 2.0, 0.7, 1.0)])
    df["power_w_source"] = "predicted"
    df["power_w_lo"], df["power_w_hi"] = 1.5, 2.6
    res = rank(df, Spec.from_options(max_power=2.5))
    assert res.ranked.iloc[0]["uncertain"] == "max_power"


def test_to_dict_is_json_safe():
    rows = list(BASE) + [("ort", "squeezenet1_1", 1, 20.0, math.nan, 0.58, 80.0)]
    d = rank(_cands(rows), Spec.from_options(max_power=3.0, min_fps=5)).to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert back["feasible"] is True and back["spec"]["constraints"][0]["name"] == "max_power"
    assert {"ranked", "excluded", "unevaluable", "pareto", "binding"} <= set(back)


# ---------------------------------------------------------------------------------------- pareto


def _brute_front(vals: np.ndarray) -> np.ndarray:
    n = len(vals)
    out = np.ones(n, dtype=bool)
    for i, j in itertools.product(range(n), range(n)):
        if i != j and all(vals[j] >= vals[i]) and any(vals[j] > vals[i]):
            out[i] = False
    return out


def test_pareto_hand_example_with_duplicates_and_ties():
    df = pd.DataFrame({"fps": [10, 10, 5, 10, 12, 3], "w": [2, 2, 1, 3, 4, 1]})
    mask = pareto_front(df, maximize=["fps"], minimize=["w"])
    # rows 0/1 duplicates both on front; row 3 ties fps with 0 but uses more power -> dominated;
    # row 5 ties power with row 2 but is slower -> dominated
    assert list(mask) == [True, True, True, False, True, False]


def test_pareto_matches_brute_force_on_random_data_with_duplicates():
    rng = np.random.default_rng(3)
    for _ in range(30):
        n = int(rng.integers(1, 25))
        vals = rng.integers(0, 4, size=(n, 3)).astype(float)  # small range -> many ties / duplicates
        df = pd.DataFrame(vals, columns=["a", "b", "c"], index=rng.permutation(n) + 100)
        mask = pareto_front(df, maximize=["a", "c"], minimize=["b"])
        oriented = np.column_stack([vals[:, 0], -vals[:, 1], vals[:, 2]])
        assert (mask.to_numpy() == _brute_front(oriented)).all()
        assert list(mask.index) == list(df.index)


def test_pareto_nan_rows_are_not_on_front_and_errors():
    df = pd.DataFrame({"a": [1.0, np.nan, 0.5], "b": [1.0, 0.0, 0.0]})
    assert list(pareto_front(df, maximize=["a"], minimize=["b"])) == [True, False, True]
    with pytest.raises(PerfmodelError):
        pareto_front(df)
    with pytest.raises(PerfmodelError):
        pareto_front(df, maximize=["zzz"])


def test_rank_pareto_uses_axes_with_data():
    res = rank(_cands(BASE), Spec())
    assert res.pareto_axes == ["throughput_fps", "power_w", "top1"]
    front = set(res.pareto["candidate"])
    # tf/resnet50 x1 (2 fps, 2.0 W, 0.75): lowest power among 0.75 nets -> on front
    assert "tf/resnet50 x1" in front and "litert/squeezenet1_1 x4" in front
    df = _cands(BASE)
    df["power_w"] = np.nan
    res = rank(df, Spec())
    assert res.pareto_axes == ["throughput_fps", "top1"]
    assert any("without power_w" in n for n in res.notes)


# ---------------------------------------------------------------------------------------- candidates


def _cell_table(power: bool = True) -> Table:
    rows = []
    for fw, net, th, lat, p in [("litert", "squeezenet1_1", 1, 40.0, 2.0), ("litert", "squeezenet1_1", 1, 60.0, 2.2),
                                ("onnxruntime", "resnet50", 2, 500.0, 3.0), ("onnxruntime", "notanet", 1, 80.0, 2.5)]:
        rows.append({"run_id": "r", "cell_id": f"{fw}{net}{th}{lat}", "board": "rpi", "framework": fw, "network": net,
                     "threads": th, "workload": f"{fw}/{net}", "repeat": 0, "latency_ms": lat,
                     "throughput_fps": 1000 / lat, "power_w": p if power else np.nan, "power_w_n": 4,
                     "instructions_per_s": 1e9 * th, "max_rss_mb": 100.0})
    return Table(pd.DataFrame(rows), Provenance(
        {"latency_ms": "software", "throughput_fps": "derived", "power_w": "real", "power_w_n": "derived",
         "instructions_per_s": "derived", "max_rss_mb": "software"},
        {"throughput_fps": ["latency_ms"], "instructions_per_s": ["latency_ms"]}))


def test_candidates_average_repeats_and_derive_energy():
    cand = candidates_from_cells(_cell_table())
    assert len(cand) == 3
    sq = cand.loc[cand["network"] == "squeezenet1_1"].iloc[0]
    assert sq["n_cells"] == 2
    assert sq["throughput_fps"] == pytest.approx((25 + 1000 / 60) / 2)
    assert sq["power_w"] == pytest.approx(2.1)
    assert sq["energy_j"] == pytest.approx(sq["power_w"] / sq["throughput_fps"])
    assert sq["energy_j_source"] == "derived"
    assert sq["throughput_fps_source"] == "measured" and sq["throughput_fps_provenance"] == "software"
    assert sq["power_w_provenance"] == "real"
    # accuracy from the zoo as fractions; an unknown network is unavailable with a reason
    from perfmodel.zoo import NETWORKS

    assert sq["top1"] == pytest.approx(NETWORKS["squeezenet1_1"].top1 / 100)
    assert sq["top1_source"] == "published"
    other = cand.loc[cand["network"] == "notanet"].iloc[0]
    assert math.isnan(other["top1"]) and "not in the zoo" in other["top1_source"]
    assert other["temperature_c_source"].startswith("unavailable: ")


def test_candidates_accuracy_mapping_and_missing_top5():
    acc = {"squeezenet1_1": {"top1": 58.0, "top5": None, "accuracy_source": "paper"}}
    cand = candidates_from_cells(_cell_table(), accuracy=acc)
    sq = cand.loc[cand["network"] == "squeezenet1_1"].iloc[0]
    assert sq["top1"] == pytest.approx(0.58) and math.isnan(sq["top5"])
    assert "not reported by paper" in sq["top5_source"]
    res = rank(cand, Spec.from_options(min_top5=0.5))
    assert set(res.unevaluable["constraint"]) == {"min_top5"}


class FakeModel:
    """A stand-in for perfmodel.model.ModelFile: power = 1 + instructions_per_s / 1e9."""

    def __init__(self, target="power_w", fail=None):
        self.target, self.fail, self.name, self.calls = target, fail, f"fake-{target}", 0

    def predict_frame(self, table, alpha=0.05):
        self.calls += 1
        if self.fail:
            raise PerfmodelError(self.fail)
        df = table.frame  # the rows to predict with the cells' provenance (a Table)
        pred = 1.0 + df["instructions_per_s"] / 1e9
        return pd.DataFrame({"pred": pred, "lo": pred - 0.2, "hi": pred + 0.2}, index=df.index)


def test_models_fill_missing_values_with_interval():
    m = FakeModel()
    cand = candidates_from_cells(_cell_table(power=False), models=[m])
    r = cand.loc[cand["network"] == "resnet50"].iloc[0]
    assert r["power_w_source"] == "predicted" and r["power_w"] == pytest.approx(3.0)
    assert (r["power_w_lo"], r["power_w_hi"]) == (pytest.approx(2.8), pytest.approx(3.2))
    assert r["power_w_model"] == "fake-power_w" and r["power_w_provenance"] == "predicted"
    assert r["energy_j_source"] == "derived"
    assert r["energy_j_lo"] == pytest.approx(2.8 / r["throughput_fps"])


def test_measured_values_win_over_models():
    m = FakeModel()
    cand = candidates_from_cells(_cell_table(power=True), models=[m])
    assert (cand["power_w_source"] == "measured").all() and m.calls == 0


def test_incompatible_model_leaves_value_unavailable_with_reason():
    cand = candidates_from_cells(_cell_table(power=False), models=[FakeModel(fail="trained on simulated counts")])
    assert all(s.startswith("unavailable: ") and "trained on simulated counts" in s for s in cand["power_w_source"])
    res = rank(cand, Spec.from_options(max_power=5))
    assert set(res.unevaluable["constraint"]) == {"max_power"} and res.ranked.empty


def test_expand_adds_unmeasured_combinations():
    cand = candidates_from_cells(_cell_table(), expand=True)
    assert len(cand) == 2 * 3 * 2  # frameworks x networks x threads
    missing = cand.loc[cand["n_cells"] == 0]
    assert (missing["throughput_fps_source"] == "unavailable: cell not measured").all()


def test_candidates_reject_non_cell_tables():
    with pytest.raises(PerfmodelError):
        candidates_from_cells(pd.DataFrame({"x": [1]}))


# ---------------------------------------------------------------------------------------- CLI


def _write_dataset(path, power=True):
    from perfmodel.data import records_from_readings, validate, write_dataset
    from perfmodel.readings import Reading

    frames = []
    for fw, net, lat in [("litert", "squeezenet1_1", 40.0), ("onnxruntime", "resnet50", 400.0)]:
        keys = dict(run_id="r1", cell_id=f"{fw}-{net}", board="vm", framework=fw, network=net, threads=1,
                    workload=f"{fw}/{net}", repeat=0)
        for i in range(3):
            rs = [Reading("latency_ms", lat + i, "ms", "perf_counter", "software")]
            rs.append(Reading("power_w", 2.0 + i / 10, "W", "ina", "real") if power
                      else Reading.missing("power_w", "no power sensor", "W"))
            frames.append(records_from_readings(rs, **keys, phase="image", image_index=i))
    write_dataset(path, validate(pd.concat(frames, ignore_index=True)), {"board": "vm"})
    return path


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "perfmodel", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_cli_select_json_and_exit_codes(tmp_path):
    ds = _write_dataset(tmp_path / "ds")
    ok = _cli("select", ds, "--max-power", "2.5", "--min-fps", "1", "--json")
    assert ok.returncode == 0, ok.stderr
    d = json.loads(ok.stdout)
    assert d["ranked"][0]["framework"] == "litert" and d["feasible"]
    infeasible = _cli("select", ds, "--min-fps", "1000")
    assert infeasible.returncode == 1 and "binding" in infeasible.stdout
    bad = _cli("select", ds, "--objective", "fastest")
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr
    missing = _cli("select", tmp_path / "nope")
    assert missing.returncode == 2 and "error:" in missing.stderr and "Traceback" not in missing.stderr


def test_cli_select_unevaluable_power(tmp_path):
    ds = _write_dataset(tmp_path / "ds", power=False)
    res = _cli("select", ds, "--max-power", "2.5")
    assert res.returncode == 1
    assert "cannot evaluate" in res.stdout and "no power sensor" in res.stdout
    res = _cli("select", ds, "--max-power", "2.5", "--allow-unknown", "--json")
    assert res.returncode == 0
    d = json.loads(res.stdout)
    assert all(r["unknown"] == "max_power" for r in d["ranked"])


REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reference_cells():
    from perfmodel.data import is_simulated, read_dataset, wide_per_cell

    recs = read_dataset(REPO / "datasets" / "reference")
    # the shipped model's counts: the same workloads simulated with this VM's caches
    sim = read_dataset(REPO / "datasets" / "simulated-l2-2mib")
    recs = pd.concat([recs[~is_simulated(recs)], sim], ignore_index=True)
    cid = recs["cell_id"].astype(str)
    # litert x googlenet at 2 threads not timed (its valgrind cell stays); onnxruntime x resnet50 gone entirely
    gone = cid.str.startswith("litert__googlenet__t2__") | cid.str.startswith("onnxruntime__resnet50__")
    return wide_per_cell(recs.loc[~gone])


def test_a_model_with_known_time_terms_fills_unmeasured_cells(reference_cells):
    """The shipped throughput model needs fc_stream_ms (graph facts x a calibrated bandwidth) and the
    simulated counts of the cell's framework x network: select attaches both, per row, and a candidate
    that has no counts is unevaluable with its own reason while the others are predicted."""
    from perfmodel.model import load_model

    model = load_model(REPO / "trained" / "throughput_reference.json")
    cand = candidates_from_cells(reference_cells, models=[model], expand=True)  # bandwidth: the model's
    row = cand[(cand.framework == "litert") & (cand.network == "googlenet") & (cand.threads == 2)].iloc[0]
    assert row["throughput_fps_source"] == "predicted" and row["throughput_fps_lo"] < row["throughput_fps"]
    assert row["throughput_fps_hi"] > row["throughput_fps"] > 0
    for thr in (1, 2):
        r = cand[(cand.framework == "onnxruntime") & (cand.network == "resnet50") & (cand.threads == thr)].iloc[0]
        assert math.isnan(r["throughput_fps"]) and "instructions_per_image" in r["throughput_fps_source"]
        assert "model 1 (throughput_fps) cannot predict it" in r["throughput_fps_source"]
    assert row["throughput_fps_model"] == "model 1 (throughput_fps)"
    measured = cand[cand.throughput_fps_source == "measured"]
    assert len(measured) == 80 - 1 - 2 and len(cand) == 80  # repeats averaged: one row per fw x net x threads


ARMPM = REPO.parent / "shared" / "data" / "armpm-parsec" / "xu3_cset_perfcpu_PARSEC_eMMC_big.data"


@pytest.mark.skipif(not ARMPM.exists(), reason="ARMPM data not beside the repository (../shared/data/armpm-parsec)")
def test_cli_select_on_data_without_inference_cells_says_why():
    """An ARMPM file (PARSEC workloads with power) has no framework x network cells: said, not an empty table."""
    r = _cli("select", f"armpm:{ARMPM}")
    assert r.returncode != 0 and "no framework x network x threads cells" in r.stderr and "ARMPM" in r.stderr
    assert "Traceback" not in r.stderr


def test_counts_of_other_caches_than_the_models_are_not_priced():
    """The shipped model's counts were simulated with this VM's caches; the reference's own valgrind cells
    with a Cortex-A53's: select lists the unmeasured cell as unevaluable with that reason, never a mixed price."""
    from perfmodel.data import read_dataset, wide_per_cell
    from perfmodel.model import load_model

    recs = read_dataset(REPO / "datasets" / "reference")
    recs = recs[~recs["cell_id"].astype(str).str.startswith("litert__googlenet__t2__")]
    model = load_model(REPO / "trained" / "throughput_reference.json")
    cand = candidates_from_cells(wide_per_cell(recs), models=[model], expand=True,
                                 dataset=REPO / "datasets" / "reference")
    row = cand[(cand.framework == "litert") & (cand.network == "googlenet") & (cand.threads == 2)].iloc[0]
    assert math.isnan(row["throughput_fps"]) and "simulated with caches" in row["throughput_fps_source"]

"""The ARMPM importer on the published ODROID-XU3 PARSEC file (read from ../shared/data, never copied)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perfmodel.errors import InputFileError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "armpm-parsec" / "xu3_cset_perfcpu_PARSEC_eMMC_big.data"
needs_data = pytest.mark.skipif(not DATA.is_file(), reason=f"ARMPM data file not present at {DATA}")


@pytest.fixture(scope="module")
def raw_rows():
    return sum(1 for _ in open(DATA)) - 1


@needs_data
def test_load_armpm_shape_keys_and_provenance(raw_rows):
    from perfmodel.data.importers.armpm import load_armpm

    table = load_armpm(DATA)
    df = table.frame
    runs = df.groupby(["workload", "run", "cores", "freq_mhz"]).ngroups
    assert len(df) == raw_rows - runs  # first sample of every run dropped
    assert df["workload"].nunique() == 9 and set(df["cores"]) == {1, 2}
    assert sorted(df["freq_mhz"].unique()) == [1000.0, 1400.0, 1800.0]
    assert table.provenance.get("power_w") == "real" and table.provenance.get("instructions") == "real"
    assert table.provenance.origin == f"armpm:{DATA.name}"
    np.testing.assert_allclose(df["instructions_per_s"], df["instructions"] / df["dt_s"])
    np.testing.assert_allclose(df["l2d_accesses_per_cycle"], df["l2d_accesses"] / df["cycles"])
    assert df["dt_s"].between(0.45, 0.55).all() and df["interval_ok"].all()


@needs_data
def test_drop_first_and_sensor_lag():
    from perfmodel.data.importers.armpm import load_armpm

    kept = load_armpm(DATA, drop_first=False).frame
    first = kept["dt_s"].isna()
    assert first.sum() == kept["segment"].nunique() and not kept.loc[first, "interval_ok"].any()
    assert kept.loc[first, "instructions_per_s"].isna().all()
    lag0 = load_armpm(DATA, drop_first=False).frame
    lag1 = load_armpm(DATA, drop_first=False, sensor_lag=1).frame
    assert len(lag1) == len(lag0) - lag0["segment"].nunique()
    # the power of row t with lag 1 is the power of row t+1 of the same run
    seg0 = lag0[lag0.segment == 0].reset_index(drop=True)
    seg1 = lag1[lag1.segment == 0].reset_index(drop=True)
    np.testing.assert_array_equal(seg1["power_w"].to_numpy(), seg0["power_w"].to_numpy()[1:])
    np.testing.assert_array_equal(seg1["instructions"].to_numpy(), seg0["instructions"].to_numpy()[:-1])


@needs_data
def test_records_validate():
    from perfmodel.data import validate, wide_per_sample
    from perfmodel.data.importers.armpm import load_armpm_records

    rec = load_armpm_records(DATA)
    validate(rec)
    wide = wide_per_sample(rec)
    assert len(wide) > 6000 and "power_w" in wide.columns


def test_bad_files(tmp_path):
    from perfmodel.data.importers.armpm import load_armpm

    with pytest.raises(InputFileError, match="not found"):
        load_armpm(tmp_path / "none.data")
    p = tmp_path / "x.data"
    p.write_text("a\tb\n1\t2\n")
    with pytest.raises(InputFileError, match="not an ARMPM file"):
        load_armpm(p)
    p.write_text("#Timestamp\tBenchmark\n1\tx\n")
    with pytest.raises(InputFileError, match="lacks column"):
        load_armpm(p)
    with pytest.raises(InputFileError, match="sensor_lag"):
        load_armpm(p, sensor_lag=-1)


@needs_data
@pytest.mark.parametrize("how", ["whole file appended", "one run appended"])
def test_samples_appended_twice_are_refused_naming_the_line(tmp_path, how):
    """Timestamps going back (samples appended a second time) were accepted without a word (rows grew)."""
    from perfmodel.data.importers.armpm import load_armpm

    lines = DATA.read_text().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    extra = body if how == "whole file appended" else body[:40]
    f = tmp_path / "twice.data"
    f.write_text(header + "".join(body) + "".join(extra))
    first = len(body) + 1  # data line of the first repeated sample
    with pytest.raises(InputFileError, match=rf"timestamp goes back on data line {first} \(file line {first + 1}\)"
                                             r".*appended twice"):
        load_armpm(f)
    assert len(load_armpm(DATA)) > 0  # the published file still loads

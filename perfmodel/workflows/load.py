"""Data sets, records files, CSVs and power files as the wide tables the models take: each a
:class:`perfmodel.data.Table` (the frame, its provenance and ``meta``: an importer's report, a CSV's row
problems, the code-path differences of joined simulated counts)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from perfmodel.errors import PerfmodelError
from perfmodel.workflows import Say, silent

TABLES = ("auto", "cell", "image", "sample")
#: dataset arguments read through an importer rather than as a data set folder / records file / CSV
IMPORT_PREFIXES = ("armpm:", "powmon:", "csv:")


def _wide_from_records(records, table: str):
    from perfmodel.data import wide_per_cell, wide_per_image, wide_per_sample
    from perfmodel.model.features import join_simulated

    phases = set(records["phase"].unique())
    if table == "auto":
        table = "sample" if phases == {"trace"} else "cell"
    if table == "sample":
        return wide_per_sample(records)
    if table == "image":
        return wide_per_image(records)
    return join_simulated(wide_per_cell(records), if_mixed=True)


def _cluster_suffix(text: str) -> tuple[str, str | None]:
    """``PATH@A7`` -> (``PATH``, ``A7``); a path without ``@`` -> (path, None)."""
    path, at, cluster = text.rpartition("@")
    if at and cluster and "/" not in cluster and not Path(text).exists():
        return path, cluster
    return text, None


def import_report_lines(table) -> list[str]:
    """What an importer recognised and ignored (the table's ``meta["import_report"]``), as lines; none for a
    data set."""
    rep = table.meta.get("import_report")
    if not rep:
        return []
    from perfmodel.data.importers.columns import ImportReport

    return list(ImportReport(**rep).lines())


def check_records_readable(dataset: Path) -> None:
    """Refuse a data set folder whose ``records/`` cannot be listed (permissions, not a folder): read as it
    is, it would look like a data set without cells, and every command would say that instead."""
    from perfmodel.errors import InputFileError

    dataset = Path(dataset)
    records = dataset / "records"
    if not dataset.is_dir() or not (dataset / "dataset.json").exists():
        return
    if records.exists() and not records.is_dir():
        raise InputFileError(f"data set {dataset}: {records} is not a folder (it should hold the cells' records)")
    if records.is_dir():
        try:
            os.listdir(records)
        except OSError as exc:
            raise InputFileError(f"data set {dataset}: its records folder {records} cannot be read "
                                 f"({exc.strerror or exc}); its cells are there but unreadable") from None


def load_long(dataset: Path):
    """Long records of a data set folder, a flat records file, or ``armpm:PATH`` (an ARMPM ``.data`` file
    imported on the fly); PerfmodelError when missing/corrupt."""
    from perfmodel.data import read_dataset, read_records
    from perfmodel.errors import InputFileError

    text = str(dataset)
    if text.startswith("armpm:"):
        from perfmodel.data.importers.armpm import load_armpm_records

        return load_armpm_records(text[len("armpm:"):])
    if not dataset.exists():
        raise InputFileError(f"data set {dataset} does not exist")
    check_records_readable(dataset)
    return read_dataset(dataset) if dataset.is_dir() else read_records(dataset)


def load_table(dataset: str, *, table: str = "auto", sensor_lag: int = 0, strict: bool = True,
               mapping: str | None = None, cores: int | None = None):
    """The wide table for ``dataset``: a data set folder, a records file (.parquet), a wide table (.csv),
    ``armpm:PATH``, ``powmon:PATH`` (``PATH@A7`` picks a cluster) or ``csv:PATH`` with ``mapping``. A CSV is
    checked on load (:func:`perfmodel.data.read_wide_csv`): ``strict`` refuses rows with values that are not
    numbers or are impossible, else they are listed in ``meta["row_problems"]`` for the caller to report.
    ``mapping`` (``--map``): read a CSV through the mapped importer; ``cores``: the core count of a power
    file without one. What an importer recognised and ignored: :func:`import_report_lines`."""
    from perfmodel.errors import check_choice

    check_choice("table", table, TABLES)
    if mapping is None and cores is not None and not dataset.startswith(("armpm:", "csv:")):
        raise PerfmodelError("--cores is for power files without a core-count column (armpm:PATH, csv:PATH / --map)")
    df = None
    if dataset.startswith("armpm:"):
        from perfmodel.data.importers.armpm import load_armpm

        path, cluster = _cluster_suffix(dataset[len("armpm:"):])
        df = load_armpm(path, sensor_lag=sensor_lag, cores=cores, cluster=cluster)
    elif dataset.startswith("powmon:"):
        from perfmodel.data.importers.powmon import load_powmon

        path, cluster = _cluster_suffix(dataset[len("powmon:"):])
        df = load_powmon(path, sensor_lag=sensor_lag, cluster=cluster)
    elif dataset.startswith("csv:") or mapping is not None:
        if mapping is None:
            raise PerfmodelError("csv:PATH needs --map time=COLUMN,power_w=COLUMN,... (or --map MAPPING_FILE)")
        from perfmodel.data.importers.mapped import load_mapped

        path, cluster = _cluster_suffix(dataset[len("csv:"):] if dataset.startswith("csv:") else dataset)
        df = load_mapped(path, mapping, sensor_lag=sensor_lag, cores=cores, cluster=cluster)
    if df is not None:
        return df
    path = Path(dataset)
    if path.suffix.lower() == ".csv":
        from perfmodel.data import read_wide_csv

        return read_wide_csv(path, strict=strict)
    from perfmodel.data import read_dataset

    check_records_readable(path)
    return _with_code_paths(_wide_from_records(read_dataset(path), table), [path])


def _with_code_paths(wide, paths: list[Path]):
    """``wide`` with ``meta["code_path_differences"]`` when simulated counts were joined to timing cells of
    data set folders ``paths`` whose kernel-selecting settings differ (:mod:`perfmodel.model.codepath`);
    :func:`warn_code_paths` says them for the rows a command keeps."""
    folders = [p for p in paths if Path(p).is_dir()]
    if wide.meta.get("join_simulated_events") and "framework" in wide.columns:
        from perfmodel.runners import FRAMEWORKS, runner_class

        files = [str(p) for p in paths if not Path(p).is_dir()]
        choosing = [f for f in sorted(set(wide.frame["framework"].astype(str)))
                    if f in FRAMEWORKS and runner_class(f).code_path_keys]
        if files and choosing:  # a records file keeps no per-cell sidecar: the check cannot run, and that is said
            wide = wide.with_meta(code_paths_unchecked={"files": files, "frameworks": choosing})
    if folders and wide.meta.get("join_simulated_events"):
        from perfmodel.model.codepath import code_path_differences

        found = code_path_differences(folders)
        if found:
            wide = wide.with_meta(code_path_differences=found)
    return wide


def warn_code_paths(table, say: Say = silent) -> list[str]:
    """Say (and return) the code-path differences of ``table`` (see :func:`_with_code_paths`) that concern its
    remaining rows (after ``--exclude`` etc.), each a warning; say too when simulated counts came from a
    records file, whose cells' settings cannot be compared."""
    df = table.frame
    unchecked = table.meta.get("code_paths_unchecked") or {}
    fws = [f for f in unchecked.get("frameworks", [])
           if "framework" in df.columns and f in set(df["framework"].astype(str))]
    if fws:
        say(f"note: code paths of {', '.join(fws)} not checked for {', '.join(unchecked['files'])}: a records file "
            "keeps no per-cell runner settings (give the data set folder to compare the simulated and timed "
            "cells' kernel choices)")
    found = table.meta.get("code_path_differences") or []
    if not found or not {"framework", "network"} <= set(df.columns):
        return []
    pairs = set(zip(df["framework"].astype(str), df["network"].astype(str)))
    notes = [d.sentence() for d in (f.restricted_to(pairs) for f in found) if d is not None]
    for note in notes:
        say(f"warning: {note}", warn=True)
    return notes


def load_with_simulated(dataset: str, extra: list[Path], *, table: str = "auto", replace: bool = False):
    """The wide table of ``dataset`` with the valgrind cells of the ``extra`` data sets added (``replace``:
    instead of its own valgrind cells, e.g. the same workloads simulated with another cache geometry)."""
    from perfmodel.data import read_dataset, splice_simulated

    for p in (dataset, *extra):
        check_records_readable(Path(p))
    records = splice_simulated(read_dataset(Path(dataset)), [read_dataset(Path(p)) for p in extra], replace=replace)
    wide = _wide_from_records(records, table)
    return _with_code_paths(wide, [Path(dataset), *map(Path, extra)])


def load_counted(dataset: str, *, counts_from: Path | None = None, simulated_from: Sequence[Path] = (),
                 table: str = "auto", sensor_lag: int = 0, mapping: str | None = None, cores: int | None = None):
    """The wide table of ``dataset`` for ``fit`` / ``predict --dataset``: with ``counts_from``'s valgrind
    cells instead of its own, or ``simulated_from``'s added to them, or as it is."""
    if counts_from is not None and simulated_from:
        raise PerfmodelError("give --counts-from (replaces the data set's valgrind cells) or --simulated-from "
                             "(adds to them), not both")
    if counts_from is not None:
        return load_with_simulated(dataset, [counts_from], table=table, replace=True)
    if simulated_from:  # valgrind cells of other data sets joined to this one's timing cells
        return load_with_simulated(dataset, list(simulated_from), table=table)
    return load_table(dataset, table=table, sensor_lag=sensor_lag, mapping=mapping, cores=cores)

"""The library parts of ``perfmodel report``: the output folder's policy and the extra data sets' records."""

from __future__ import annotations

from pathlib import Path

from perfmodel.errors import InputFileError, PerfmodelError
from perfmodel.workflows.load import load_long


def check_report_out(out: Path, *, force: bool) -> None:
    """One policy for every output: a report already in ``out`` is replaced only with ``force``."""
    from perfmodel.report import FIGURE_FILES

    existing = [p for p in (out / "report.html", *(out / f for f in FIGURE_FILES)) if p.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} figure file(s))" if len(existing) > 1 else ""
        raise PerfmodelError(f"--out {out} already holds a report: {existing[0]}{more}; give another folder, or "
                             "--force to replace it")


def check_datasets_exist(datasets) -> None:
    for d in datasets:
        if not d.exists():
            raise InputFileError(f"data set {d} does not exist")


def extra_records(datasets: list[Path]):
    """``(records, run sources)``: the records of ``datasets`` (e.g. traces) added to a report's data set, and
    run_id -> the data set it came from (a figure's caption names the ones it draws); ``(None, {})`` when there
    are none."""
    if not datasets:
        return None, {}
    import pandas as pd

    parts = [load_long(d) for d in datasets]
    return (pd.concat(parts, ignore_index=True),
            {str(r): str(d) for d, part in zip(datasets, parts) for r in part["run_id"].unique()})


def report_files(path: Path) -> list[str]:
    """``report.html`` and the figure files written beside it."""
    from perfmodel.report import FIGURE_FILES

    return [str(path)] + [str(path.parent / f) for f in FIGURE_FILES if (path.parent / f).exists()]

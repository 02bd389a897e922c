"""The library parts of ``perfmodel collect`` / ``calibrate`` that are not measurement."""

from __future__ import annotations

from pathlib import Path

from perfmodel.errors import PerfmodelError


def check_calibration_target(attach: Path, *, force: bool = False) -> None:
    """Refuse to attach this machine's calibration to a data set measured on another board / CPU model
    (unless ``force``), before anything is measured; a folder that is not a data set is refused too."""
    from perfmodel.collect.meta import system_info
    from perfmodel.data import Dataset

    meta = Dataset.open(attach).metadata
    here = system_info()
    diff = [f"{k}: data set {meta.get(k)!r}, this machine {here.get(k)!r}" for k in ("board", "cpu_model")
            if meta.get(k) and here.get(k) and str(meta.get(k)) != str(here.get(k))]
    if diff and not force:
        raise PerfmodelError(f"{attach} was measured on another machine ({'; '.join(diff)}): a calibration "
                             "describes the machine it runs on (--force to attach it anyway)")

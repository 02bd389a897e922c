"""Importers: external data sets converted into the perfmodel long record schema.

Each importer is a function ``load_<name>(path, **options) -> pandas.DataFrame`` returning records that
pass :func:`perfmodel.data.schema.validate` (``provenance="external"``). :data:`IMPORTERS` lists them by
name as ``"module:function"`` strings, so that listing them imports nothing; :func:`get_importer`
imports one on demand.

* ``armpm`` - ARMPM / PARSEC power-model data (tab-separated 500 ms samples with frequency,
  temperature, voltage, current, power and ARMv7 PMU events; any event set).
* ``powmon`` - the Powmon per-workload x core mask x frequency format (per-core raw ``0xNN`` events,
  summed per cluster).
* ``csv`` - any delimited time-series file with a column mapping (``--map time=...,power_w=...``).

Columns are recognised by meaning (:mod:`.columns`); event numbers / names go through
:mod:`perfmodel.armpmu`. Each wide table (a :class:`~perfmodel.data.provenance.Table`) says in ``meta["import_report"]`` what was used and ignored.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from perfmodel.errors import PerfmodelError, check_choice

#: importer name -> "module:function"
IMPORTERS: dict[str, str] = {
    "armpm": "perfmodel.data.importers.armpm:load_armpm",
    "powmon": "perfmodel.data.importers.powmon:load_powmon",
    "csv": "perfmodel.data.importers.mapped:load_mapped",
}


def importer_names() -> list[str]:
    return sorted(IMPORTERS)


def get_importer(name: str) -> Callable:
    """The loader function of importer ``name`` (``UnknownNameError`` for unknown names)."""
    check_choice("importer", name, IMPORTERS)
    module, _, func = IMPORTERS[name].partition(":")
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise PerfmodelError(f"importer {name!r} is not available: {exc}") from None


__all__ = ["IMPORTERS", "importer_names", "get_importer"]

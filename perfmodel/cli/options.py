"""List options shared by every command: each takes ``-f a -f b``, ``-f a,b`` and any mix of the two.

:func:`list_option` makes a repeatable typer option (annotate it ``list[str]`` or ``list[Path]``) whose values
are split on commas by :func:`split_list` when the command line is parsed; ``item=int`` converts each value
(a bad one is a :class:`~perfmodel.errors.PerfmodelError`: ``error: ...``, exit 2). An option left out gives
its default split the same way, or None when it has none. tests/test_cli_list_options.py parses every
repeatable option of every command both ways.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from perfmodel.cli.checks import split_list  # noqa: F401 (re-exported: commands import it from here)


def list_option(default: Any, *names: str, help: str, item: Callable[[str], Any] = str,  # noqa: A002
                **kw: Any) -> Any:
    """A repeatable option that also takes comma lists; annotate the parameter ``list[str]`` (or
    ``list[Path]``); with ``item=int`` the command receives ints. ``default``: None or a list of values (each
    may itself be a comma list)."""
    option = names[0] if names else "option"

    def callback(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:  # noqa: ARG001
        opt = max(param.opts, key=len) if param.opts else option
        return split_list(value, opt, item)

    flag = min(names, key=len) if names else "--option"
    help_text = help.rstrip() + f" Repeat it or give a comma list ({flag} a {flag} b or {flag} a,b)."
    kw.setdefault("metavar", "INT[,INT...]" if item is int else "TEXT[,TEXT...]")
    return typer.Option(default, *names, help=help_text, callback=callback, **kw)



# -- options declared once, shared by several commands ------------------------------------------------

DATASET_HELP = ("A data set folder, a records file (.parquet), a wide table (.csv), armpm:PATH (an ARMPM power "
                "file), powmon:PATH (Powmon per-workload data; PATH@A7 picks a cluster) or csv:PATH with --map "
                "(any power / PMU log).")
MAP_HELP = ("Read DATASET (a CSV, or csv:PATH) through the mapped importer: key=COLUMN pairs (time=, workload=, "
            "freq_mhz=, voltage_v=, temperature_c=, power_w=, cores=, an event such as INST_RETIRED= or 0x08=) or "
            "a mapping file (JSON object / key=COLUMN lines); other columns are recognised by meaning.")
CORES_HELP = "Core count of every sample of a power file without a core-count column (else the core terms are dropped)."

#: fit / evaluate
DATASET_ARG = typer.Argument(..., help=DATASET_HELP)
TARGET = typer.Option(..., "--target", "-t", help="Column to predict: throughput_fps, power_w, ...")
FOLDS = typer.Option(5, "--folds", help="Folds for --cv kfold.")
JOBS = typer.Option(1, "--jobs", "-j", help="Parallel CV jobs.")
MAP = typer.Option(None, "--map", help=MAP_HELP)
CORES = typer.Option(None, "--cores", help=CORES_HELP)

#: report / pipeline: the selection's budgets
SELECTION_MAX_POWER = typer.Option(None, "--max-power", help="Selection: power budget (W).")
SELECTION_MAX_ENERGY = typer.Option(None, "--max-energy", help="Selection: max energy per image (J).")


def json_option(help: str) -> Any:  # noqa: A002
    """``--json``: print the result as JSON (every command with tabular output has it)."""
    return typer.Option(False, "--json", help=help)


def worker_python_option() -> Any:
    """``--python``: the interpreter of the timing workers (kernels profile, retrain)."""
    return typer.Option(None, "--python", help="Interpreter that runs the timing workers: a virtual environment "
                        "with another release of a framework (perfmodel importable in it; docs/retrain.md).")


def platform_note_option() -> Any:
    """``--note``: what is special about the measured platform, recorded with the measurement."""
    return typer.Option(None, "--note", help="What is special about this platform (recorded with the "
                        "measurement), e.g. 'competing load on CPU 1'.")


__all__ = ["list_option", "split_list", "json_option", "worker_python_option", "platform_note_option", "DATASET_ARG", "TARGET", "FOLDS", "JOBS", "MAP", "CORES",
           "SELECTION_MAX_POWER", "SELECTION_MAX_ENERGY"]

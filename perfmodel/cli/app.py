"""The ``perfmodel`` console script.

Each command group lives in its own module with a ``register(app)`` function. Heavy libraries
(TensorFlow, ONNX Runtime, ...) are imported inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys

import typer

from perfmodel.errors import PerfmodelError

app = typer.Typer(
    name="perfmodel",
    help=(
        "Empirical performance prediction for CNN inference on low-cost CPU boards.\n\n"
        "collect -> fit -> select: measure framework x network x thread campaigns with hardware "
        "counters and sensors, fit regressors from hardware metrics to throughput and power, "
        "and rank choices against a spec."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Command-group modules, in data-flow order. Each defines register(app).
COMMAND_MODULES = [
    "perfmodel.cli.zoo",
    "perfmodel.cli.bench",
    "perfmodel.cli.doctor",
    "perfmodel.cli.collect",
    "perfmodel.cli.model",
    "perfmodel.cli.select",
    "perfmodel.cli.report",
    "perfmodel.cli.pipeline",
]

def _version(value: bool) -> None:
    if value:
        from perfmodel import __version__

        typer.echo(f"perfmodel {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Empirical performance prediction for CNN inference on low-cost CPU boards."""


for _mod in COMMAND_MODULES:
    try:
        _m = importlib.import_module(_mod)
    except ModuleNotFoundError as exc:  # a group not written yet must not break the others
        if exc.name != _mod:
            raise
        continue
    _m.register(app)


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` to stderr and exit with ``code`` (no traceback)."""
    typer.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, prog_name="perfmodel")
    except PerfmodelError as exc:
        fail(str(exc), exc.exit_code)
    except OSError as exc:  # an output path that cannot be written, a full disk, ...: the user's to fix
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        fail(f"{exc.strerror or exc}{where}", 2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise SystemExit(130)


if __name__ == "__main__":
    main()

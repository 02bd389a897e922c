"""The ``perfmodel`` console script.

Each command group lives in its own module with a ``register(app)`` function. Heavy libraries
(TensorFlow, ONNX Runtime, ...) are imported inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

import functools
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
    "perfmodel.cli.kernels",
    "perfmodel.cli.bench",
    "perfmodel.cli.doctor",
    "perfmodel.cli.collect",
    "perfmodel.cli.fleet",
    "perfmodel.cli.model",
    "perfmodel.cli.retrain",
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


#: what a command keeps when Ctrl-C stops it (said in the one-line message); commands not listed write nothing
KEPT_ON_INTERRUPT = {
    "collect": "finished cells are saved; run the same command again to resume",
    "pipeline": "the campaign's finished cells are saved, and the outputs of the stages that finished; run the "
                "same command again to resume",
    "trace": "intervals finished before it are kept as a partial trace cell when --out was given",
    "fit": "no model file was written",
    "report": "figures drawn before it stay in the output folder; report.html was not written",
    "zoo build": "models exported before it stay in the model cache",
    "kernels profile": "the rows of finished items are saved; run the same command again to resume",
    "kernels fit": "no model file was written",
    "retrain": "the sample's finished rows are saved; run the same command again to resume (no model file was "
               "written)",
    "zoo list": "no output was written (network facts counted before it stay in the cache)",
    "bench": "no output was written (models exported before it stay in the model cache)",
    "predict": "no output was written (models exported before it stay in the model cache)",
    "calibrate": "nothing was attached to a data set",
}
NOTHING_KEPT = "no output was written"


def _interrupt_message(command: str) -> str:
    return f"interrupted (Ctrl-C): perfmodel {command} stopped; {KEPT_ON_INTERRUPT.get(command, NOTHING_KEPT)}"


def _interruptible(command: str, callback):
    """``callback`` with Ctrl-C turned into one line on stderr and exit code 130.

    Typer catches KeyboardInterrupt itself and exits 130 without a word (typer/core.py ``raise Exit(130)``),
    so the handler must sit inside the command. A command that says what it kept itself (collect, trace)
    exits with ``SystemExit(130)``, which passes through untouched; ``typer.Exit(130)`` (pipeline after an
    interrupted campaign) gets the message too.
    """
    if getattr(callback, "__perfmodel_interruptible__", False):
        return callback

    @functools.wraps(callback)
    def wrapper(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except KeyboardInterrupt:
            typer.echo(_interrupt_message(command), err=True)
            raise SystemExit(130) from None
        except typer.Exit as exc:
            if getattr(exc, "exit_code", None) == 130:
                typer.echo(_interrupt_message(command), err=True)
            raise

    wrapper.__perfmodel_interruptible__ = True
    return wrapper


def install_interrupt_messages(typer_app: typer.Typer, prefix: str = "") -> typer.Typer:
    """Wrap every command of ``typer_app`` (and of its sub-groups) with :func:`_interruptible`."""
    for info in typer_app.registered_commands:
        if info.callback is None:
            continue
        name = info.name or info.callback.__name__.replace("_", "-")
        info.callback = _interruptible(f"{prefix}{name}", info.callback)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            sub = group.name or (group.typer_instance.info.name if group.typer_instance.info else None) or ""
            install_interrupt_messages(group.typer_instance, f"{prefix}{sub} " if sub else prefix)
    return typer_app


install_interrupt_messages(app)

#: the commands that read data sets: they take ``--trust-modified`` (see :func:`add_trust_modified`)
READING_COMMANDS = ("fit", "evaluate", "predict", "select", "correlate", "report")
TRUST_MODIFIED_HELP = ("Read records files that no longer match the sha256 in their sidecar (edited or corrupt "
                       "after they were written) instead of refusing them; each is named in a warning.")


def add_trust_modified(typer_app: typer.Typer, commands=READING_COMMANDS) -> None:
    """Give each of ``commands`` a ``--trust-modified`` option: it lets the command's data-set reads
    (:meth:`perfmodel.data.Dataset.read`) accept records that no longer match their checksum. One option
    added here instead of in each command's signature."""
    import inspect

    for info in typer_app.registered_commands:
        name = info.name or (info.callback.__name__.replace("_", "-") if info.callback else None)
        if name not in commands or info.callback is None:
            continue
        callback = info.callback
        sig = inspect.signature(callback)
        if "trust_modified" in sig.parameters:
            continue

        def wrapper(*args, __callback=callback, trust_modified: bool = False, **kwargs):
            if trust_modified or "perfmodel.data.store" in sys.modules:  # not imported: the default (False) holds
                from perfmodel.data.store import set_trust_modified

                set_trust_modified(trust_modified)
            return __callback(*args, **kwargs)

        functools.update_wrapper(wrapper, callback)
        del wrapper.__wrapped__  # typer reads __signature__, not the wrapped callback's
        import typing

        # the callback's annotations, resolved in its own module (they are strings there)
        wrapper.__annotations__ = {**typing.get_type_hints(callback), "trust_modified": bool}
        option = inspect.Parameter("trust_modified", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                   default=typer.Option(False, "--trust-modified", help=TRUST_MODIFIED_HELP))
        sig = sig.replace(parameters=[p.replace(annotation=wrapper.__annotations__.get(p.name, p.annotation))
                                      for p in sig.parameters.values()])
        params = list(sig.parameters.values())
        at = next((i for i, p in enumerate(params) if p.kind == inspect.Parameter.VAR_KEYWORD), len(params))
        if any(p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params):
            option = option.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        wrapper.__signature__ = sig.replace(parameters=[*params[:at], option, *params[at:]])
        info.callback = wrapper


add_trust_modified(app)


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, prog_name="perfmodel")
    except (PerfmodelError, OSError) as exc:  # OSError: an output path that cannot be written, a full disk, ...
        from perfmodel.cli.checks import error_exit

        raise error_exit(exc) from None
    except KeyboardInterrupt:  # outside any command (e.g. while the options are parsed)
        typer.echo("interrupted (Ctrl-C): nothing was run", err=True)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()

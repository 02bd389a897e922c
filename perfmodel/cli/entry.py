"""The ``perfmodel`` console script's entry point.

``perfmodel predict --model M --graph FILE [--framework F] [--threads N] [--alpha A] [--json]`` is answered
here without building the typer app (its construction and the command modules' imports cost more than the
prediction itself): the same code (:func:`perfmodel.cli.graph.predict_graph_command`), the same output and
errors. Any other command line, or this one with any other option (``--help`` included), goes to the full
CLI (:func:`perfmodel.cli.app.main`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

#: ``predict --graph`` options the fast path takes: option -> (parameter, conversion)
_VALUED = {"--model": ("model_path", Path), "-m": ("model_path", Path), "--graph": ("graph", str),
           "--framework": ("framework", str), "--threads": ("threads", int), "--alpha": ("alpha", float)}
_FLAGS = {"--json": "json_out"}


def graph_fast_args(argv: list[str]) -> dict[str, Any] | None:
    """The arguments of :func:`~perfmodel.cli.graph.predict_graph_command` when ``argv`` is ``predict`` with
    ``--graph`` and only the options above, each once, every value a plain one; None otherwise (the full CLI
    parses it, and says what is wrong with it)."""
    if not argv or argv[0] != "predict":
        return None
    args: dict[str, Any] = {}
    i = 1
    while i < len(argv):
        token = argv[i]
        name, eq, value = token.partition("=")
        if token in _FLAGS:
            key, conv, i = _FLAGS[token], None, i + 1
            value = True
        elif name in _VALUED and (not eq or name.startswith("--")):
            key, conv = _VALUED[name]
            if not eq:
                if i + 1 >= len(argv):
                    return None
                value = argv[i + 1]
            i += 1 if eq else 2
            if not value or value.startswith("-") and conv is not float and conv is not int:
                return None
        else:
            return None
        if key in args:  # an option given twice: the full CLI's rules decide
            return None
        if conv in (int, float) and not value.isascii():  # int("١") works, typer refuses it: its rules decide
            return None
        try:
            args[key] = conv(value) if conv is not None else value
        except ValueError:
            return None
    if "graph" not in args:
        return None
    args.setdefault("model_path", None)
    args.setdefault("framework", None)
    args.setdefault("threads", None)
    args.setdefault("alpha", 0.05)
    args.setdefault("json_out", False)
    return args


def main(argv: list[str] | None = None) -> None:
    args = graph_fast_args(list(sys.argv[1:] if argv is None else argv))
    if args is None:
        from perfmodel.cli.app import main as full

        full(argv)
        return
    from perfmodel.cli.checks import error_exit
    from perfmodel.cli.graph import predict_graph_command
    from perfmodel.errors import PerfmodelError

    try:
        predict_graph_command(**args)
    except (PerfmodelError, OSError) as exc:
        raise error_exit(exc) from None
    except KeyboardInterrupt:
        from perfmodel.cli.app import _interrupt_message

        sys.stderr.write(_interrupt_message("predict") + "\n")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()

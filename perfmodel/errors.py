"""User-facing errors.

Every error a user can cause (bad name, missing file, corrupt input, mismatched model) is raised as a
:class:`PerfmodelError`; the CLI prints its message and exits with code 2, without a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class PerfmodelError(Exception):
    """An error caused by input, configuration or environment, with a message meant for the user."""

    exit_code = 2


class UnknownNameError(PerfmodelError, KeyError):
    """A name (network, framework, event, ...) that is not one of the valid choices."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        self.kind = kind
        self.name = name
        self.valid = sorted(valid)
        super().__init__(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(self.valid)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class InputFileError(PerfmodelError):
    """A file that is missing, unreadable or corrupt."""


def check_choice(kind: str, name: str, valid: Iterable[str]) -> str:
    """Return ``name`` if it is in ``valid``, else raise :class:`UnknownNameError`."""
    valid = list(valid)
    if name not in valid:
        raise UnknownNameError(kind, name, valid)
    return name

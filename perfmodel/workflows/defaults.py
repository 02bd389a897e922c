"""Where the checkout's shipped data lives: ``datasets/reference``, the simulated-count data sets, the
long-run traces and ``trained/`` (next to the ``perfmodel`` package of a source checkout; they may not exist)."""

from __future__ import annotations

from pathlib import Path


def checkout_dir() -> Path:
    """The source checkout perfmodel runs from (the folder above the ``perfmodel`` package)."""
    import perfmodel

    return Path(perfmodel.__file__).resolve().parents[1]


def default_reference() -> Path:
    """``datasets/reference`` of the source checkout perfmodel runs from (it may not exist)."""
    return checkout_dir() / "datasets" / "reference"


def reference_dataset() -> Path | None:
    """``datasets/reference`` of the source checkout perfmodel runs from, if present."""
    p = default_reference()
    return p if (p / "dataset.json").is_file() else None


def trained_dir() -> Path | None:
    """``trained/`` of the source checkout, if present."""
    p = checkout_dir() / "trained"
    return p if p.is_dir() else None


def default_counts_sources() -> list[Path]:
    """Data sets of this checkout whose valgrind cells a quick sample may take its simulated counts from:
    the reference (Cortex-A53 caches) and the same workloads simulated with this VM's caches."""
    return [default_reference(), default_reference().parent / "simulated-l2-2mib"]


def default_traces() -> list[Path]:
    """The trace data sets in ``datasets/traces`` of the source checkout (may be none)."""
    d = default_reference().parent / "traces"
    return sorted(p for p in d.iterdir() if (p / "dataset.json").is_file()) if d.is_dir() else []


def all_trace_datasets() -> list[Path]:
    """Every trace data set shipped in ``datasets/traces*`` of the source checkout (one or two folders deep),
    the default of a command's sample: its long-run ratio pools traces of any framework and network."""
    root = default_reference().parent
    found = [p.parent for pat in ("traces*/*/dataset.json", "traces*/*/*/dataset.json") for p in root.glob(pat)]
    return sorted(set(found))

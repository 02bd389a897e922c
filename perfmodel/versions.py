"""Library versions: installed here, pinned by the lock, recorded by a data set - and which frameworks'
simulated counts a difference invalidates.

Simulated (valgrind) counts are deterministic for one instruction set and one build of the code that runs
per image. The per-image body is pre-processing (OpenCV decode + resize, NumPy normalise; shared by all
frameworks) and the framework's inference. So:

* the framework's own library differs (or is not recorded), or the architecture differs: that framework's
  counts do not apply (*refused*, with both versions named);
* only a pre-processing library (OpenCV for the other frameworks, NumPy) or Python differs: the counts are
  kept with a *note*. Pre-processing is a small share of the simulated instructions
  (:data:`PREPROCESS_SHARE_NOTE`), so such a difference moves a cell's counts by at most that share.

The lock (``requirements.lock`` at the checkout's root, made by ``lock/make-lock``) pins every distribution
the shipped data sets and models were made with; :func:`lock_differences` compares it with what is installed.
Foundation module: imports no stage.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

LOCK_NAME = "requirements.lock"

#: framework -> the library (perfmodel.sysinfo.library_versions() key) whose build decides its inference counts
FRAMEWORK_LIBRARY = {"tensorflow": "tensorflow", "litert": "ai-edge-litert", "onnxruntime": "onnxruntime",
                     "opencv": "opencv"}

#: libraries of the per-image body that every framework runs (decode, resize, normalise), and the interpreter
SHARED_LIBRARIES = ("opencv", "numpy", "python")

#: measured with callgrind on the development VM (2026-12-07, NumPy 2.4.6): decode + resize + normalise of one
#: synthetic image = 9.93 M simulated instructions with OpenCV 5.0.0.93 and 9.94 M with 5.1.0.95 (+0.03 %; L1-d
#: refills +0.3 %), vs 104-134 M per image for SqueezeNet v1.1 (the reference's smallest network) and 820-1085 M
#: for ResNet-50
PREPROCESS_SHARE = "7-10 % of the smallest network's simulated instructions, about 1 % of ResNet-50's"
PREPROCESS_SHARE_NOTE = "pre-processing (decode + resize + normalise) is {share}"


def checkout_root() -> Path:
    """The folder that holds the ``perfmodel`` package (a source checkout's root in an editable install)."""
    import perfmodel

    return Path(perfmodel.__file__).resolve().parents[1]


def lock_path() -> Path | None:
    """``requirements.lock`` of the checkout perfmodel runs from; None where there is none (a wheel install)."""
    p = checkout_root() / LOCK_NAME
    return p if p.is_file() else None


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: str | Path) -> dict[str, str]:
    """``{normalised distribution name: version}`` of a lock / constraints file (``name==version`` lines;
    comments, blank lines and environment markers tolerated)."""
    pins: dict[str, str] = {}
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^\s,]+)", line)
        if m:
            pins[_norm(m.group(1))] = m.group(2)
    return pins


def installed(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def lock_differences(pins: Mapping[str, str] | None = None) -> list[str]:
    """One line per locked distribution whose installed version differs (or that is missing); empty when all
    match. ``pins``: default the checkout's lock (no lock -> one line saying so)."""
    if pins is None:
        path = lock_path()
        if path is None:
            return [f"no {LOCK_NAME} next to this perfmodel ({checkout_root()})"]
        pins = read_lock(path)
    out = []
    for dist, want in sorted(pins.items()):
        have = installed(dist)
        if have is None:
            out.append(f"{dist}: not installed (lock {want})")
        elif have != want:
            out.append(f"{dist}: {have} installed, lock {want}")
    return out


def locked_library_versions(pins: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The lock's version of each :data:`perfmodel.sysinfo.LIBRARIES` key (None where the lock has none)."""
    from perfmodel.sysinfo import LIBRARIES

    if pins is None:
        path = lock_path()
        pins = read_lock(path) if path is not None else {}
    return {lib: next((pins[_norm(d)] for d in dists if _norm(d) in pins), None) for lib, dists in LIBRARIES.items()}


def versions_and_arch(meta: Mapping | None) -> tuple[dict, str | None]:
    """``(library versions, architecture)`` recorded in a data set's or run's metadata."""
    meta = dict(meta or {})
    system = meta.get("system") or {}
    return dict(meta.get("versions") or meta.get("library_versions") or {}), \
        (system.get("arch") or system.get("machine"))


@dataclass
class CountsApplicability:
    """Which frameworks may use a data set's simulated counts here: ``refused`` framework -> reasons;
    ``kept`` framework -> notes (a shared library differs; the counts are kept)."""

    refused: dict[str, list[str]] = field(default_factory=dict)
    kept: dict[str, list[str]] = field(default_factory=dict)

    @property
    def usable(self) -> list[str]:
        return list(self.kept)

    def reasons(self) -> list[str]:
        """Every refusal reason, each once, in framework order."""
        return list(dict.fromkeys(r for rs in self.refused.values() for r in rs))

    def notes(self) -> list[str]:
        return list(dict.fromkeys(n for ns in self.kept.values() for n in ns))

    def describe(self) -> str:
        """One line: which frameworks lose their counts and why, and the notes on the kept ones."""
        parts = [f"{fw}: counts not used ({'; '.join(rs)})" for fw, rs in self.refused.items()]
        notes = self.notes()
        if notes:
            parts.append("kept with a note: " + "; ".join(notes))
        return "; ".join(parts) if parts else "all frameworks' simulated counts apply"


def counts_applicability(ref_meta: Mapping | None, frameworks: str | Sequence[str], *,
                         here_meta: Mapping | None = None) -> CountsApplicability:
    """Whether the simulated counts recorded with ``ref_meta`` apply to each of ``frameworks`` here.

    ``here_meta``: the other side's metadata (a campaign's); what it does not record, and everything when
    it is None, is this machine's. A framework library the reference does not record is a refusal.
    """
    from perfmodel.sysinfo import library_versions

    ref_versions, ref_arch = versions_and_arch(ref_meta)
    here, arch = versions_and_arch(here_meta)
    here, arch = here or library_versions(), arch or platform.machine()
    frameworks = [frameworks] if isinstance(frameworks, str) else list(frameworks)
    out = CountsApplicability()
    arch_reason = f"architecture {ref_arch} (reference) vs {arch} (here)" if ref_arch and ref_arch != arch else None
    for fw in dict.fromkeys(frameworks):
        lib = FRAMEWORK_LIBRARY.get(fw, fw)
        refused, notes = [], []
        a, b = ref_versions.get(lib), here.get(lib)
        if a is None:
            refused.append(f"the reference does not record its {lib} version")
        elif a != b:
            refused.append(f"{lib} {a} (reference) vs {b} (here)")
        if arch_reason:
            refused.append(arch_reason)
        for shared in SHARED_LIBRARIES:
            if shared == lib:
                continue
            a, b = ref_versions.get(shared), here.get(shared)
            if a is not None and a != b:
                notes.append(f"{shared} {a} (reference) vs {b} (here): only its pre-processing share of the "
                             f"counts may differ ({PREPROCESS_SHARE_NOTE.format(share=PREPROCESS_SHARE)})"
                             if shared != "python" else
                             f"python {a} (reference) vs {b} (here): only the per-image interpreter glue may differ")
        if refused:
            out.refused[fw] = refused
        else:
            out.kept[fw] = notes
    return out


def version_rows(reference_meta: Mapping | None = None) -> list[dict[str, str | None]]:
    """Per library: installed, lock and reference versions (``perfmodel doctor``)."""
    from perfmodel.sysinfo import library_versions

    here = library_versions()
    locked = locked_library_versions()
    ref, _ = versions_and_arch(reference_meta)
    rows = []
    for lib in [*FRAMEWORK_LIBRARY.values(), "numpy", "pandas", "scikit-learn", "statsmodels", "python"]:
        if lib in (r["library"] for r in rows):
            continue
        rows.append({"library": lib, "installed": here.get(lib), "lock": locked.get(lib),
                     "reference": ref.get(lib) if ref else None})
    return rows


__all__ = ["FRAMEWORK_LIBRARY", "LOCK_NAME", "SHARED_LIBRARIES", "CountsApplicability", "checkout_root",
           "counts_applicability", "installed", "lock_differences", "lock_path", "locked_library_versions",
           "read_lock", "version_rows", "versions_and_arch"]

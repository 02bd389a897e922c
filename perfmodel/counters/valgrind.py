"""Simulated per-image counters with valgrind's callgrind (cache and branch simulation).

On a machine without a PMU (a VM, a CI runner) the study's per-image events can still be estimated by
simulation: instruction references, data reads and writes, L1 and last-level misses, branches and
mispredictions. Everything is done in ONE valgrind run per workload: the worker starts instrumentation
after set-up (model load), switches collection on around each image only, and dumps the counts after
each image (``CALLGRIND_DUMP_STATS_AT``), so dump *k* holds image *k* exactly.

The client requests come from a tiny C helper compiled on first use against
``<valgrind/callgrind.h>`` (:func:`helper_library`); where the header or a C compiler is missing, the
worker falls back to ``callgrind_control`` (:class:`CallgrindMarker`), which is slower and can only
approximate image boundaries.

Counts are simulated for an explicit cache geometry (default: Cortex-A53-like 32 KiB 4-way L1 I/D and a
512 KiB 16-way L2 as the last level, 64-byte lines), with one BLAS/framework thread. Readings carry
``provenance="simulated"`` and a ``source`` naming the tool and the geometry. They describe the
instruction stream of *this* machine's build of the framework (x86-64 here), not of an Arm board.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from perfmodel.errors import InputFileError, PerfmodelError
from perfmodel.paths import cache_dir
from perfmodel.readings import Reading
from perfmodel.workerproto import (SINGLE_THREAD_ENV, WorkerCrashed, WorkerFailed, WorkerTimeout, run_worker,
                                   serve, worker_env)

CALLGRIND_HEADER_DIRS = ("/usr/include", "/usr/local/include")

#: how per-image counts are delimited; stored with every simulated cell so counts made by different
#: methods are never mixed ("all-threads": costs of every thread, zeroed before and dumped after each image)
COLLECTION_METHOD = "all-threads"

#: callgrind event -> meaning (``--cache-sim=yes --branch-sim=yes``)
CALLGRIND_EVENTS = {
    "Ir": "instruction reads", "Dr": "data reads", "Dw": "data writes",
    "I1mr": "L1 instruction read misses", "D1mr": "L1 data read misses", "D1mw": "L1 data write misses",
    "ILmr": "LL instruction read misses", "DLmr": "LL data read misses", "DLmw": "LL data write misses",
    "Bc": "conditional branches", "Bcm": "conditional branches mispredicted",
    "Bi": "indirect branches", "Bim": "indirect branches mispredicted",
}

#: canonical perfmodel event -> sum of callgrind events. The simulated LL is the L2 of the A53 model.
CANONICAL_FROM_CALLGRIND: dict[str, tuple[str, ...]] = {
    "instructions": ("Ir",),
    "l1d_accesses": ("Dr", "Dw"),
    "l1d_loads": ("Dr",),
    "l1d_stores": ("Dw",),
    "l1d_refills": ("D1mr", "D1mw"),
    "l1i_accesses": ("Ir",),
    "l1i_refills": ("I1mr",),
    "l2d_accesses": ("I1mr", "D1mr", "D1mw"),
    "l2d_refills": ("ILmr", "DLmr", "DLmw"),
    "branches": ("Bc", "Bi"),
    "branch_misses": ("Bcm", "Bim"),
}

#: environment variable naming a file where a simulated workload may write what it ran (JSON, e.g. a
#: runner's details), so the caller can record the settings a library chose under the simulator
SIM_DETAILS_ENV = "PERFMODEL_SIM_DETAILS"

#: one thread for every pool: the simulated run counts one thread's work
THREAD_ENV = SINGLE_THREAD_ENV


@dataclass(frozen=True)
class CacheLevel:
    """One simulated cache: ``size`` bytes, ``assoc`` ways, ``line`` bytes."""

    size: int
    assoc: int
    line: int

    def validate(self, name: str) -> None:
        if self.size <= 0 or self.assoc <= 0 or self.line <= 0:
            raise PerfmodelError(f"{name} cache: size, associativity and line size must be positive")
        if self.line & (self.line - 1):
            raise PerfmodelError(f"{name} cache: line size {self.line} is not a power of two")
        if self.size % (self.assoc * self.line):
            raise PerfmodelError(f"{name} cache: size {self.size} is not a multiple of assoc*line")
        sets = self.size // (self.assoc * self.line)
        if sets & (sets - 1):
            raise PerfmodelError(f"{name} cache: {sets} sets is not a power of two (valgrind requires it)")

    def arg(self) -> str:
        return f"{self.size},{self.assoc},{self.line}"

    def describe(self) -> str:
        size = f"{self.size // 1024}K" if self.size % 1024 == 0 else f"{self.size}B"
        return f"{size}/{self.assoc}-way/{self.line}B"


@dataclass(frozen=True)
class CacheGeometry:
    """The simulated hierarchy (default: Cortex-A53-like, as on a Raspberry Pi 3)."""

    l1i: CacheLevel = CacheLevel(32768, 4, 64)
    l1d: CacheLevel = CacheLevel(32768, 4, 64)
    ll: CacheLevel = CacheLevel(524288, 16, 64)
    name: str = "cortex-a53"

    def validate(self) -> "CacheGeometry":
        self.l1i.validate("I1")
        self.l1d.validate("D1")
        self.ll.validate("LL")
        return self

    def valgrind_args(self) -> list[str]:
        return [f"--I1={self.l1i.arg()}", f"--D1={self.l1d.arg()}", f"--LL={self.ll.arg()}"]

    def describe(self) -> str:
        return f"{self.name}: I1 {self.l1i.describe()}, D1 {self.l1d.describe()}, LL {self.ll.describe()}"

    @classmethod
    def parse(cls, text: str) -> "CacheGeometry":
        """``"l1=32K,4,64;ll=512K,16,64"`` or ``"i1=...;d1=...;ll=..."`` (sizes with K/M suffix)."""
        parts: dict[str, CacheLevel] = {}
        for chunk in filter(None, (c.strip() for c in text.split(";"))):
            key, _, spec = chunk.partition("=")
            nums = [n.strip() for n in spec.split(",")]
            if len(nums) != 3:
                raise PerfmodelError(f"cache geometry {chunk!r}: expected LEVEL=size,assoc,line")
            try:
                level = CacheLevel(_size(nums[0]), int(nums[1]), int(nums[2]))
            except ValueError as exc:
                raise PerfmodelError(f"cache geometry {chunk!r}: {exc}") from exc
            key = key.strip().lower()
            if key == "l1":
                parts["l1i"] = parts["l1d"] = level
            elif key in ("i1", "l1i"):
                parts["l1i"] = level
            elif key in ("d1", "l1d"):
                parts["l1d"] = level
            elif key in ("ll", "l2", "llc"):
                parts["ll"] = level
            else:
                raise PerfmodelError(f"cache geometry: unknown level {key!r} (use l1, i1, d1, ll)")
        return cls(name="custom", **parts).validate()


def _size(text: str) -> int:
    t = text.strip().upper().rstrip("B")
    mult = 1
    if t.endswith("K"):
        mult, t = 1024, t[:-1]
    elif t.endswith("M"):
        mult, t = 1024 * 1024, t[:-1]
    return int(t) * mult


# --------------------------------------------------------------------------------------------------
# callgrind output files
# --------------------------------------------------------------------------------------------------


@dataclass
class CallgrindDump:
    """The header and totals of one callgrind output file (one dump)."""

    path: str
    events: list[str]
    totals: dict[str, int]
    trigger: str = ""
    part: int | None = None
    creator: str = ""
    caches: dict[str, str] = field(default_factory=dict)  # "I1" -> "32768 B, 64 B, 4-way associative"

    @property
    def label(self) -> str:
        """The dump label given to ``CALLGRIND_DUMP_STATS_AT`` (after "Client Request: ")."""
        m = re.match(r"^(?:Client Request:|dump)\s*(.*)$", self.trigger)  # helper / callgrind_control
        return m.group(1).strip() if m else self.trigger


def parse_callgrind_file(path: str | Path) -> CallgrindDump:
    """Read the header, ``events:`` and ``totals:``/``summary:`` lines of a callgrind output file.

    Per the callgrind format, trailing event counts that are zero may be omitted (``summary: 0``); they
    are zero. Raises :class:`~perfmodel.errors.InputFileError` if the file has no events or totals line.
    """
    path = Path(path)
    events: list[str] | None = None
    totals: list[int] | None = None
    summary: list[int] | None = None
    trigger = creator = ""
    part = None
    caches: dict[str, str] = {}
    try:
        with open(path, errors="replace") as fh:
            for line in fh:
                if line.startswith("events:"):
                    events = line.split(":", 1)[1].split()
                elif line.startswith("totals:"):
                    totals = _ints(line, path)
                elif line.startswith("summary:"):
                    summary = _ints(line, path)
                elif line.startswith("desc: Trigger:"):
                    trigger = line.split(":", 2)[2].strip()
                elif line.startswith("creator:"):
                    creator = line.split(":", 1)[1].strip()
                elif line.startswith("part:"):
                    try:
                        part = int(line.split(":", 1)[1])
                    except ValueError:
                        part = None
                else:
                    m = re.match(r"^desc: (I1|D1|LL|L2) cache:\s*(.*)$", line)
                    if m:
                        caches[m.group(1)] = m.group(2).strip()
    except OSError as exc:
        raise InputFileError(f"cannot read callgrind output {path}: {exc.strerror}") from exc
    values = totals if totals is not None else summary
    if events is None or values is None:
        raise InputFileError(f"{path}: not a callgrind output file (no 'events:' or 'totals:' line)")
    if len(values) > len(events):
        raise InputFileError(f"{path}: totals line has more values than events")
    counts = {e: (values[i] if i < len(values) else 0) for i, e in enumerate(events)}
    return CallgrindDump(str(path), events, counts, trigger, part, creator, caches)


def _ints(line: str, path: Path) -> list[int]:
    try:
        return [int(v) for v in line.split(":", 1)[1].split()]
    except ValueError as exc:
        raise InputFileError(f"{path}: bad counts line {line.strip()!r}") from exc


def dump_readings(dump: CallgrindDump, source: str) -> dict[str, Reading]:
    """Canonical readings of one dump (``provenance="simulated"``); events the run did not simulate
    (no ``--cache-sim`` / ``--branch-sim``) are missing with a reason."""
    out: dict[str, Reading] = {}
    for name, parts in CANONICAL_FROM_CALLGRIND.items():
        absent = [p for p in parts if p not in dump.totals]
        if absent:
            out[name] = Reading.missing(name, f"callgrind run did not simulate {', '.join(absent)} "
                                              f"(needs --cache-sim=yes --branch-sim=yes)", "count", source)
        else:
            out[name] = Reading(name, float(sum(dump.totals[p] for p in parts)), "count", source, "simulated")
    return out


def list_dumps(out_file: str | Path) -> list[Path]:
    """The numbered dump files ``OUT.1, OUT.2, ...`` of a ``--callgrind-out-file=OUT`` run, in order."""
    out_file = Path(out_file)
    found = []
    for p in out_file.parent.glob(out_file.name + ".*"):
        suffix = p.name[len(out_file.name) + 1:]
        if suffix.isdigit():
            found.append((int(suffix), p))
    return [p for _, p in sorted(found)]


# --------------------------------------------------------------------------------------------------
# Client requests from Python
# --------------------------------------------------------------------------------------------------

HELPER_SOURCE = r"""
#include <valgrind/valgrind.h>
#include <valgrind/callgrind.h>
void pm_start_instrumentation(void) { CALLGRIND_START_INSTRUMENTATION; }
void pm_stop_instrumentation(void) { CALLGRIND_STOP_INSTRUMENTATION; }
void pm_zero_stats(void) { CALLGRIND_ZERO_STATS; }
void pm_dump_stats_at(const char *label) { CALLGRIND_DUMP_STATS_AT(label); }
unsigned pm_running_on_valgrind(void) { return RUNNING_ON_VALGRIND; }
"""


def callgrind_header() -> Path | None:
    """``valgrind/callgrind.h`` if installed (package valgrind / valgrind-dev), else None."""
    for d in CALLGRIND_HEADER_DIRS:
        p = Path(d) / "valgrind" / "callgrind.h"
        if p.is_file():
            return p
    return None


def c_compiler() -> str | None:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def helper_library(build_dir: Path | None = None) -> Path | None:
    """Compile (once, cached by content) the client-request helper; None if header or compiler is missing."""
    header = callgrind_header()
    cc = c_compiler()
    if header is None or cc is None:
        return None
    digest = hashlib.sha256((HELPER_SOURCE + header.read_text(errors="replace")).encode()).hexdigest()[:16]
    build_dir = Path(build_dir) if build_dir else cache_dir() / "callgrind-helper"
    lib = build_dir / f"libperfmodel_cg_{digest}.so"
    if lib.exists():
        return lib
    build_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=build_dir) as tmp:
        src = Path(tmp) / "helper.c"
        src.write_text(HELPER_SOURCE)
        tmp_lib = Path(tmp) / lib.name
        proc = subprocess.run([cc, "-O1", "-shared", "-fPIC", "-I", str(header.parent.parent), "-o",
                               str(tmp_lib), str(src)], capture_output=True, text=True)
        if proc.returncode != 0:
            return None
        os.replace(tmp_lib, lib)
    return lib


class CallgrindMarker:
    """Marks image boundaries from inside a process running under callgrind.

    ``mode="client"`` uses the compiled helper (exact boundaries, nearly free); ``mode="control"`` calls
    ``callgrind_control`` on this pid (slow; callgrind polls for commands, so boundaries are approximate).
    Outside valgrind every method is a no-op.
    """

    def __init__(self, mode: str = "auto", helper: Path | None = None):
        self._lib = None
        self.mode = "none"
        lib_path = helper if helper is not None else (helper_library() if mode in ("auto", "client") else None)
        if lib_path is not None and mode in ("auto", "client"):
            self._lib = ctypes.CDLL(str(lib_path))
            self._lib.pm_dump_stats_at.argtypes = [ctypes.c_char_p]
            self._lib.pm_running_on_valgrind.restype = ctypes.c_uint
            self.mode = "client"
        elif mode in ("auto", "control") and shutil.which("callgrind_control"):
            self.mode = "control"
        elif mode == "client":
            raise PerfmodelError("callgrind client requests need valgrind/callgrind.h and a C compiler")

    @property
    def on_valgrind(self) -> bool:
        if self._lib is not None:
            return bool(self._lib.pm_running_on_valgrind())
        return os.environ.get("PERFMODEL_UNDER_CALLGRIND") == "1"

    def _control(self, *args: str) -> None:
        subprocess.run(["callgrind_control", *args, str(os.getpid())], capture_output=True, timeout=120)
        time.sleep(0.05)

    def start(self) -> None:
        """Start instrumentation (after set-up; flushes valgrind's translation cache once).

        In ``control`` mode instrumentation is switched on per image instead (callgrind_control cannot
        toggle collection), so the simulated caches start cold for every image.
        """
        if self.mode == "client":
            self._lib.pm_start_instrumentation()

    def begin_image(self) -> None:
        if self.mode == "client":
            # ZERO_STATS resets the costs of ALL threads; TOGGLE_COLLECT would switch collection for the
            # calling thread only, and frameworks such as TensorFlow run the graph on pool threads
            # (the first version of this marker missed ~90% of TensorFlow's instructions that way).
            self._lib.pm_zero_stats()
        elif self.mode == "control" and self.on_valgrind:
            self._control("--instr=on")

    def end_image(self, label: str) -> None:
        if self.mode == "client":
            self._lib.pm_dump_stats_at(label.encode())  # all threads, summed (--separate-threads=no)
        elif self.mode == "control" and self.on_valgrind:
            self._control("--dump=" + label)
            self._control("--instr=off")


# --------------------------------------------------------------------------------------------------
# Running a workload under callgrind
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkloadSpec:
    """A per-image workload the worker can import: ``factory`` is ``"module:function"``; calling
    ``function(**kwargs)`` does the set-up (not counted) and returns ``body(i)`` run for image ``i``."""

    factory: str
    kwargs: Mapping[str, object] = field(default_factory=dict)

    def load(self) -> Callable[[int], object]:
        mod_name, _, fn_name = self.factory.partition(":")
        if not mod_name or not fn_name:
            raise PerfmodelError(f"workload factory must be 'module:function', got {self.factory!r}")
        try:
            fn = getattr(importlib.import_module(mod_name), fn_name)
        except (ImportError, AttributeError) as exc:
            raise PerfmodelError(f"cannot import workload factory {self.factory!r}: {exc}") from exc
        return fn(**dict(self.kwargs))


def matmul_workload(size: int = 64, seed: int = 0, on_thread: bool = False) -> Callable[[int], float]:
    """A small deterministic numpy workload (one ``size x size`` float32 matmul + ReLU per "image").

    ``on_thread``: do the work on a long-lived worker thread and wait for it, as TensorFlow runs a graph
    on its pool threads - the per-image counts must include that thread's work.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    a = rng.standard_normal((size, size)).astype(np.float32)
    w = rng.standard_normal((size, size)).astype(np.float32)

    def work(i: int) -> float:
        y = np.maximum(a @ w, 0.0)
        return float(y[i % size, 0])

    if not on_thread:
        return work
    import queue
    import threading

    jobs: queue.Queue = queue.Queue()
    done: queue.Queue = queue.Queue()

    def loop() -> None:
        while True:
            done.put(work(jobs.get()))

    threading.Thread(target=loop, daemon=True).start()

    def body(i: int) -> float:
        jobs.put(i)
        return done.get()

    return body


def runner_workload(framework: str, network: str, images: Sequence[str] | None = None, n_images: int = 4,
                    seed: int = 0, **options: object) -> Callable[[int], object]:
    """Per-image body for a CNN: read + pre-process + infer image ``i`` with one thread.

    Set-up (model load, reading the image list) happens here, outside the counted region. ``images``:
    paths (cycled); default the deterministic synthetic JPEGs of :func:`perfmodel.images.default_images`.
    """
    from perfmodel.images import default_images, read_image_bytes
    from perfmodel.runners import get_runner

    paths = [Path(p) for p in images] if images else default_images(max(1, n_images), seed=seed)
    runner = get_runner(framework, network, threads=1, **options)
    data = [read_image_bytes(p) for p in paths]

    def body(i: int) -> object:
        tensor = runner.preprocess(data[i % len(data)], name=str(paths[i % len(paths)]))
        return runner.infer(tensor)

    body(0)  # first inference allocates buffers and JIT-prepares kernels: keep it out of the counts
    return body


def valgrind_available() -> tuple[bool, str]:
    """Whether ``valgrind --tool=callgrind`` can run here, and why not."""
    exe = shutil.which("valgrind")
    if exe is None:
        return False, "valgrind not installed"
    try:
        proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"valgrind does not run: {exc}"
    version = proc.stdout.strip()
    marker = "client requests" if helper_library() is not None else "callgrind_control fallback"
    return True, f"{version} ({marker})"


def callgrind_argv(out_file: Path, geometry: CacheGeometry) -> list[str]:
    """valgrind command line. Collection stays on in every thread; per-image boundaries are ZERO_STATS /
    DUMP_STATS_AT (client marker) or instrumentation switched on and off (control marker)."""
    exe = shutil.which("valgrind")
    if exe is None:
        raise PerfmodelError("valgrind not installed; simulated counters need valgrind (callgrind)")
    return [exe, "--tool=callgrind", "--cache-sim=yes", "--branch-sim=yes", *geometry.valgrind_args(),
            "--instr-atstart=no", "--collect-atstart=yes", "--dump-instr=no", "--compress-strings=no",
            f"--callgrind-out-file={out_file}"]


def simulate(target: WorkloadSpec | str | Sequence[str], n_images: int,
             geometry: CacheGeometry | None = None, *, warmup: int = 0, timeout: float | None = None,
             env: Mapping[str, str] | None = None, workdir: str | Path | None = None,
             keep_files: bool = False, marker: str = "auto") -> list[dict[str, Reading]]:
    """Simulated per-image counts from ONE callgrind run.

    ``target``: a :class:`WorkloadSpec` (or ``"module:function"``) run by perfmodel's worker, or an argv
    list for a worker of your own that marks images with :class:`CallgrindMarker` (one dump per image,
    in order). ``warmup`` images run (uncollected) before the counted ones. Returns one dict of canonical
    readings per image (``provenance="simulated"``).

    ``marker``: ``"client"`` (compiled client requests, exact), ``"control"`` (``callgrind_control``:
    the cost of the control calls is counted in each image and caches start cold per image), or
    ``"auto"`` (client when the helper can be built). A worker argv must use the same mode.
    """
    if marker not in ("auto", "client", "control"):
        raise PerfmodelError(f"marker must be auto, client or control, got {marker!r}")
    if marker == "auto":
        marker = "client" if helper_library() is not None else "control"
    if n_images < 1:
        raise PerfmodelError(f"n_images must be >= 1, got {n_images}")
    geometry = (geometry or CacheGeometry()).validate()
    if isinstance(target, str):
        target = WorkloadSpec(target)
    request: dict[str, object] = {}
    if isinstance(target, WorkloadSpec):
        worker = [sys.executable, "-m", "perfmodel.counters.valgrind", "--worker"]
        request = {"factory": target.factory, "kwargs": dict(target.kwargs), "n_images": n_images,
                   "warmup": warmup, "marker": marker}
    else:
        worker = list(target)
        if not worker:
            raise PerfmodelError("simulate: empty worker command")
    tmp_ctx = tempfile.TemporaryDirectory(prefix="perfmodel-callgrind-", dir=workdir)
    tmp = Path(tmp_ctx.name)
    try:
        out_file = tmp / "callgrind.out"
        run_env = worker_env({"PERFMODEL_UNDER_CALLGRIND": "1"}, base=env, single_thread=True)
        argv = callgrind_argv(out_file, geometry) + worker
        try:  # a worker of one's own answers by its exit code alone
            run_worker(argv, request, workdir=tmp, label="callgrind", timeout_s=timeout, env=run_env,
                       reply_required=isinstance(target, WorkloadSpec), quiet=_valgrind_line)
        except WorkerTimeout as exc:
            raise exc.reworded(f"callgrind run timed out after {timeout} s") from None
        except WorkerCrashed as exc:
            raise exc.reworded(f"callgrind worker failed (exit {exc.exit_code}): "
                               f"{chr(10).join(exc.output)[-1500:]}") from None
        except WorkerFailed as exc:
            raise exc.reworded(f"callgrind worker failed (exit {exc.exit_code}): {exc.error}") from None
        dumps = [parse_callgrind_file(p) for p in list_dumps(out_file)]
        dumps = [d for d in dumps if d.label.startswith("image ")]
        if len(dumps) != n_images:
            raise PerfmodelError(f"callgrind produced {len(dumps)} per-image dumps, expected {n_images}")
        version = dumps[0].creator or "callgrind"
        exactness = "" if marker == "client" else ", callgrind_control boundaries (approximate)"
        source = f"valgrind {version} cache-sim ({geometry.describe()}{exactness})"
        results = [dump_readings(d, source) for d in dumps]
        if keep_files:
            keep = Path(workdir or ".") / f"callgrind-{os.getpid()}-{int(time.time())}"
            shutil.copytree(tmp, keep)
        return results
    finally:
        tmp_ctx.cleanup()


def _valgrind_line(line: str) -> bool:
    """valgrind's own stderr lines (``==PID== ...``), which say nothing about a worker's failure."""
    return re.match(r"^==\d+==", line) is not None


def _run_workload(request: dict) -> None:
    """The worker's handler: set up the workload (not counted), then one zeroed-and-dumped region per image."""
    body = WorkloadSpec(request["factory"], request.get("kwargs", {})).load()
    marker = CallgrindMarker(mode=request.get("marker", "auto"))
    n = int(request["n_images"])
    warmup = int(request.get("warmup", 0))
    marker.start()  # instrumented from here on; each image's costs are zeroed before and dumped after it
    for i in range(warmup):  # simulated (warms the simulated caches); zeroed before the first image
        body(i)
    for i in range(n):
        marker.begin_image()
        body(i)
        marker.end_image(f"image {i}")


if __name__ == "__main__":  # worker entry point: python -m perfmodel.counters.valgrind --worker (request on stdin)
    if sys.argv[1:] == ["--worker"]:
        raise SystemExit(serve(_run_workload))
    print("usage: python -m perfmodel.counters.valgrind --worker  (the request comes on stdin, "
          "perfmodel.workerproto)", file=sys.stderr)
    raise SystemExit(2)

"""Where perfmodel keeps caches and outputs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any


def cache_dir() -> Path:
    """The user cache directory (override with ``PERFMODEL_CACHE``)."""
    env = os.environ.get("PERFMODEL_CACHE")
    if env:
        path = Path(env)
    else:
        import platformdirs  # here, so that the counter modules import on a machine without it

        path = Path(platformdirs.user_cache_dir("perfmodel"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename); on any failure the
    temp file is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk, a folder in the way, Ctrl-C: no half-written temp file is left behind
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def update_hash_with_file(h: Any, path: Path) -> None:
    """Feed the bytes of the file ``path`` to the hash object ``h`` (1 MiB at a time)."""
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)


def sha256_file(path: Path) -> str:
    """The sha256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    update_hash_with_file(h, path)
    return h.hexdigest()

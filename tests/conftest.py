"""Shared pytest fixtures.

The model cache: tests use the user's perfmodel cache (``perfmodel.paths.cache_dir()``, or
``PERFMODEL_CACHE`` when set) so that the exported SqueezeNet is built once per machine and reused by
every test session, not rebuilt per test. Tests that corrupt or delete cache entries must use their own
temporary cache (see ``tmp_model_cache``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def squeezenet_exports() -> dict[str, Path]:
    """SqueezeNet v1.1 (seed 0, 227x227) exported to all three formats, from the shared cache."""
    from perfmodel.zoo import FORMATS, export

    return {fmt: export("squeezenet1_1", fmt) for fmt in FORMATS}


@pytest.fixture(scope="session")
def squeezenet_keras():
    """The calibrated Keras SqueezeNet v1.1 (seed 0), built once per session."""
    from perfmodel.zoo import build_keras

    return build_keras("squeezenet1_1", seed=0)


@pytest.fixture
def tmp_model_cache(tmp_path, monkeypatch) -> Path:
    """An empty, private model cache for tests that break or delete cache entries."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("PERFMODEL_CACHE", str(cache))
    return cache

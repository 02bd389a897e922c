"""A short in-worker sample for the model CLI: warm-up + a few images of one cell, optionally with the
simulated (valgrind) counts of the same framework x network.

    df = quick_sample("onnxruntime", "squeezenet1_1", threads=2, images=10, simulate=True)

Returns validated long records (``phase="image"`` and ``"cell"``), not written anywhere; ``cell_meta=``
(a dict) receives each cell's metadata.
"""

from __future__ import annotations

import pandas as pd

from perfmodel.errors import PerfmodelError

MAX_QUICK_IMAGES = 10
MAX_QUICK_SECONDS = 10.0


def quick_sample(framework: str, network: str, threads: int = 1, images: int = 10, counters: str = "auto",
                 simulate: bool = False, *, valgrind_images: int = 3, warmup_images: int = 2,
                 warmup_min_s: float = 0.2, image_folder: str | None = None, timeout_s: float = 900.0,
                 geometry: dict | None = None, seconds: float | None = None,
                 cell_meta: dict | None = None) -> pd.DataFrame:
    """Measure one cell in a fresh worker (``images`` <= 10 counted images after the warm-up).

    ``cell_meta``: a dict that receives cell id -> the cell's metadata (what a campaign writes in its sidecar).

    ``seconds`` (0 < seconds <= 10): count images for that long instead (at least one image), a sample of a
    few seconds: it averages over the second-to-second jitter that ten images of a fast network
    (0.1-0.3 s) see. The simulated (valgrind) pass, when asked for, still takes ``valgrind_images``.
    """
    from perfmodel.data.schema import validate
    from perfmodel.runners import MODEL_FORMATS
    from perfmodel.zoo import export

    from .campaign import CellFailed, image_paths, run_timing_cell, run_valgrind_cell, _record_keys
    from .meta import new_run_id, run_metadata
    from .spec import DEFAULT_GEOMETRY, CampaignSpec

    if isinstance(images, bool) or not 1 <= int(images) <= MAX_QUICK_IMAGES:
        raise PerfmodelError(f"a quick sample takes 1 to {MAX_QUICK_IMAGES} images, got {images}")
    if seconds is not None:
        try:
            if isinstance(seconds, bool):
                raise TypeError
            seconds = float(seconds)
        except (TypeError, ValueError):
            raise PerfmodelError(f"quick sample seconds must be a number, got {seconds!r}") from None
        if not 0 < seconds <= MAX_QUICK_SECONDS:
            raise PerfmodelError(f"a quick sample takes more than 0 and at most {MAX_QUICK_SECONDS:g} seconds, "
                                 f"got {seconds:g}")
        images = 1
    spec = CampaignSpec(frameworks=[framework], networks=[network], threads=[int(threads)], images=int(images),
                        image_folder=image_folder, warmup_images=warmup_images, warmup_min_s=warmup_min_s,
                        counters=counters, simulate=simulate, valgrind_images=valgrind_images,
                        cell_timeout_s=timeout_s, geometry=dict(geometry or DEFAULT_GEOMETRY)).validate()
    paths = image_paths(MAX_QUICK_IMAGES if seconds else spec.images, spec.image_folder, spec.seed)
    run_id = new_run_id()
    board = run_metadata(counters, spec.geometry)["board"]
    model = str(export(network, MODEL_FORMATS[framework], seed=spec.seed))
    frames, metas = [], {}
    for cell in spec.cells():
        keys = _record_keys(cell, run_id, board)
        try:
            if cell.counter_source == "valgrind":
                df, meta = run_valgrind_cell(cell, spec, paths, keys, model)
            else:
                df, meta = run_timing_cell(cell, spec, paths, keys, model, count_min_s=seconds or 0.0)
        except CellFailed as exc:
            raise PerfmodelError(f"quick sample failed: {exc}") from None
        frames.append(df)
        metas[cell.cell_id] = meta
    out = validate(pd.concat(frames, ignore_index=True), what="quick sample records")
    if cell_meta is not None:
        cell_meta.update(metas)
    return out

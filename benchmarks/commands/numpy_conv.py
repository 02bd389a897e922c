"""A numpy "network" outside any framework: three 3x3 convolutions as im2col + matmul (one BLAS thread),
batch 1, one stdout line per image.

    python benchmarks/commands/numpy_conv.py [--images N]   (default: until killed)
"""
import argparse
import os
import time

for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[v] = "1"
import numpy as np  # noqa: E402
from numpy.lib.stride_tricks import sliding_window_view  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--images", type=int, default=0)
args = ap.parse_args()
rng = np.random.default_rng(0)
weights = [(rng.standard_normal((c_in * 9, c_out)) * 0.05).astype(np.float32)
           for c_in, c_out in ((3, 32), (32, 64), (64, 128))]


def forward(x):  # x: H x W x C
    for w in weights:
        cols = sliding_window_view(x, (3, 3), axis=(0, 1))[::2, ::2]  # stride 2
        h, wd = cols.shape[:2]
        x = np.maximum(cols.reshape(h * wd, -1) @ w, 0).reshape(h, wd, -1)
    return x.mean(axis=(0, 1))


img = rng.random((160, 160, 3), dtype=np.float32)
i = 0
while not args.images or i < args.images:
    t = time.perf_counter()
    out = forward(img)
    print(f"image {i} {1e3 * (time.perf_counter() - t):.2f} ms top1={int(out.argmax())}", flush=True)
    i += 1

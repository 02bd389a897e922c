"""A small Keras application model not in perfmodel's zoo (NASNetMobile, random weights), batch 1, one
thread, outside perfmodel's runners; one stdout line per image.

    python benchmarks/commands/keras_nasnet.py [--images N]   (default: until killed)
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--images", type=int, default=0)
args = ap.parse_args()
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
model = tf.keras.applications.NASNetMobile(weights=None, input_shape=(224, 224, 3))
infer = tf.function(lambda x: model(x, training=False))
img = tf.constant(np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32))
i = 0
while not args.images or i < args.images:
    t = time.perf_counter()
    out = infer(img).numpy()
    print(f"image {i} {1e3 * (time.perf_counter() - t):.2f} ms top1={int(out.argmax())}", flush=True)
    i += 1

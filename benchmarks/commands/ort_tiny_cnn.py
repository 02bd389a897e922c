"""A plain ONNX Runtime script, outside perfmodel's runners and zoo: a small CNN (4 conv blocks + classifier)
built here with the onnx helper API, random weights, batch 1, one thread; one stdout line per image.

    python benchmarks/commands/ort_tiny_cnn.py [--images N]   (default: until killed)
"""
import argparse
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ap = argparse.ArgumentParser()
ap.add_argument("--images", type=int, default=0)
args = ap.parse_args()
rng = np.random.default_rng(0)
nodes, inits, c_in, x = [], [], 3, "input"
for i, c_out in enumerate((32, 64, 128, 256)):
    w = numpy_helper.from_array((rng.standard_normal((c_out, c_in, 3, 3)) * 0.05).astype(np.float32), f"w{i}")
    b = numpy_helper.from_array(np.zeros(c_out, np.float32), f"b{i}")
    inits += [w, b]
    nodes += [helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1], strides=[2, 2]),
              helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
    x, c_in = f"r{i}", c_out
inits.append(numpy_helper.from_array((rng.standard_normal((c_in, 1000)) * 0.05).astype(np.float32), "fc"))
nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"]), helper.make_node("Flatten", ["gap"], ["flat"]),
          helper.make_node("MatMul", ["flat", "fc"], ["logits"])]
graph = helper.make_graph(nodes, "tiny_cnn", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
so = ort.SessionOptions()
so.intra_op_num_threads = so.inter_op_num_threads = 1
sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
img = rng.random((1, 3, 224, 224), dtype=np.float32)
i = 0
while not args.images or i < args.images:
    t = time.perf_counter()
    out = sess.run(None, {"input": img})[0]
    print(f"image {i} {1e3 * (time.perf_counter() - t):.2f} ms top1={int(out.argmax())}", flush=True)
    i += 1

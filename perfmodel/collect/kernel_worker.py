"""The measuring process of one kernel-campaign block: ``python -m perfmodel.collect.kernel_worker``.

One block = one framework x thread count in a fresh process (TensorFlow fixes its pools per process, OpenCV's
thread count is process-wide), timing a list of items in order: profiling units (one-kernel models,
:mod:`perfmodel.zoo.units`) and whole zoo networks, unprofiled. Speaks :mod:`perfmodel.workerproto`; every
finished item is appended at once to ``<workdir>/rows.jsonl`` (one JSON object a line, flushed), so a block that
crashes or is killed keeps what it measured and the parent resumes after it.

Timing of one item: build / load, ``warmup`` calls, then calls until at least ``min_reps`` and ``min_time_s``
(at most ``max_reps``); the row has the median, minimum and number of the per-call times (``time.perf_counter``,
milliseconds) of the model call alone (inputs are prepared before: random normal float32, fixed seed).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from perfmodel.errors import PerfmodelError
from perfmodel.workerproto import report_progress, serve

def time_calls(fn: Callable[[], Any], *, warmup: int, min_reps: int, min_time_s: float,
               max_reps: int) -> dict[str, Any]:
    for _ in range(warmup):
        fn()
    times: list[float] = []
    t_end = time.perf_counter() + min_time_s
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() < t_end):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "reps": len(times)}


class _Framework:
    def __init__(self, framework: str, threads: int):
        self.framework = framework
        self.threads = threads
        self.versions: dict[str, str] = {}
        if framework == "tensorflow":
            from perfmodel.runners.tensorflow import configure_threads

            configure_threads(threads)
            import tensorflow as tf

            self.tf = tf
            self.versions["tensorflow"] = tf.__version__
        elif framework == "onnxruntime":
            import onnxruntime as ort

            self.ort = ort
            self.versions["onnxruntime"] = ort.__version__
        elif framework == "opencv":
            import cv2

            from perfmodel.runners.opencv import resolve_engine

            self.cv2 = cv2
            self.engine_args, self.engine = resolve_engine(cv2, "classic", explicit=False)
            cv2.setNumThreads(threads)
            self.versions["opencv"] = cv2.__version__
            self.versions["opencv_engine"] = self.engine  # its fusion rules: zoo.kernels "opencv" / "opencv-new"
        elif framework == "litert":
            from ai_edge_litert.interpreter import Interpreter

            from perfmodel.runners.base import library_version

            self.Interpreter = Interpreter
            self.versions["ai_edge_litert"] = library_version("ai-edge-litert")
        else:
            raise PerfmodelError(f"unknown framework {framework!r}")

    def unit_call(self, unit: Any, files: dict[str, str]) -> Callable[[], Any]:
        from perfmodel.zoo.units import input_shapes

        rng = np.random.default_rng(0)
        fw = self.framework
        if fw == "tensorflow":
            from perfmodel.zoo.units import build_keras

            tf = self.tf
            model = build_keras(unit)
            xs = [tf.constant(rng.standard_normal(s).astype(np.float32)) for s in input_shapes(unit, "NHWC")]
            specs = [tf.TensorSpec(x.shape, tf.float32) for x in xs]
            fn = tf.function(lambda *a: model(list(a) if len(a) > 1 else a[0], training=False),
                             input_signature=specs)
            return lambda: fn(*xs).numpy()
        if fw == "litert":
            it = self.Interpreter(model_path=files["tflite"], num_threads=self.threads)
            it.allocate_tensors()
            details = it.get_input_details()
            out = it.get_output_details()[0]["index"]
            for d in details:
                it.set_tensor(d["index"], rng.standard_normal(d["shape"]).astype(np.float32))

            def call() -> Any:
                it.invoke()
                return it.get_tensor(out)
            return call
        if fw == "onnxruntime":
            sess = self._ort_session(files["onnx"])
            feeds = {i.name: rng.standard_normal([int(d) for d in i.shape]).astype(np.float32)
                     for i in sess.get_inputs()}
            outs = [sess.get_outputs()[0].name]
            return lambda: sess.run(outs, feeds)
        import onnx

        net = self._cv_net(files["onnx"])
        model = onnx.load(files["onnx"], load_external_data=False)
        inits = {i.name for i in model.graph.initializer}
        blobs = []
        for inp in model.graph.input:
            if inp.name in inits:
                continue
            dims = [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]
            blobs.append((inp.name, rng.standard_normal(dims).astype(np.float32)))

        def call_cv() -> Any:
            for name, blob in blobs:
                net.setInput(blob, name)
            return net.forward()
        return call_cv

    def _cv_net(self, path: str) -> Any:
        """An OpenCV network of the ONNX file ``path`` on the runner's engine, backend and target."""
        cv2 = self.cv2
        net = cv2.dnn.readNetFromONNX(path, *self.engine_args)
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        return net

    def _ort_session(self, path: str) -> Any:
        return self.ort.InferenceSession(path, sess_options=self._ort_options(), providers=["CPUExecutionProvider"])

    def profile_network(self, name: str, warmup: int = 2, runs: int = 10) -> list[dict[str, Any]]:
        """ONNX Runtime's per-node profile of a zoo network (the runner's session options + profiling):
        every executed node with its op, shapes, parameter bytes and the median of its ``runs`` durations."""
        if self.framework == "opencv":
            return self._profile_opencv(name, warmup, runs)
        if self.framework == "tensorflow":
            return self._profile_tensorflow(name, warmup, runs)
        if self.framework != "onnxruntime":
            raise PerfmodelError(f"per-node profiles are read from onnxruntime, opencv and tensorflow, not "
                                 f"{self.framework}")
        import tempfile

        from perfmodel.zoo import export

        path = str(export(name, "onnx"))
        ort = self.ort
        with tempfile.TemporaryDirectory(prefix="perfmodel-ortprof-") as tmp:
            so = self._ort_options()
            so.enable_profiling = True
            so.profile_file_prefix = str(Path(tmp) / "prof")
            sess = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
            inp = sess.get_inputs()[0]
            x = np.random.default_rng(0).standard_normal([int(d) for d in inp.shape]).astype(np.float32)
            for _ in range(warmup + runs):
                sess.run(None, {inp.name: x})
            events = json.loads(Path(sess.end_profiling()).read_text())
        per_node: dict[str, list[float]] = {}
        info: dict[str, dict[str, Any]] = {}
        for e in events:
            if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
                continue
            per_node.setdefault(e["name"], []).append(e["dur"] / 1e3)
            info.setdefault(e["name"], e.get("args", {}))
        nodes = []
        for node, durs in per_node.items():
            a = info[node]
            timed = durs[warmup:] if len(durs) > warmup else durs
            nodes.append({"name": node[:-len("_kernel_time")], "op": a.get("op_name", "?"),
                          "ms": statistics.median(timed), "n": len(timed),
                          "inputs": [next(iter(d.values())) for d in a.get("input_type_shape", [])],
                          "outputs": [next(iter(d.values())) for d in a.get("output_type_shape", [])],
                          "parameter_bytes": int(a.get("parameter_size", 0) or 0)})
        return nodes

    def _profile_opencv(self, name: str, warmup: int, runs: int) -> list[dict[str, Any]]:
        """OpenCV's per-layer times (``getPerfProfile``, classic engine) of a zoo network; each timed layer with
        the kernel it runs (``zoo.kernels`` on the same ONNX file, matched by node name: OpenCV names a layer
        ``onnx_node!<node>``; a layer fused into another takes 0 and is left out)."""
        from perfmodel.zoo import export
        from perfmodel.zoo.kernels import detect_kernels, read_onnx, rules_name

        cv2 = self.cv2
        path = str(export(name, "onnx"))
        net = self._cv_net(path)
        from perfmodel.zoo import get_network

        size = get_network(name).input_size
        x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
        for _ in range(warmup):  # the new engine inserts its layout layers during the first forward
            net.setInput(x)
            net.forward()
        names = list(net.getLayerNames())
        freq = cv2.getTickFrequency()
        acc: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(runs):
            net.setInput(x)
            net.forward()
            _, per_layer = net.getPerfProfile()
            for n, t in zip(names, np.asarray(per_layer).ravel()):
                acc[n].append(float(t) / freq * 1e3)
        kernel_of: dict[str, Any] = {}
        for k in detect_kernels(read_onnx(path), rules_name("opencv", self.engine)):
            for layer in k.layers:
                kernel_of.setdefault(layer, k)
        nodes = []
        for n in names:
            ms = statistics.median(acc[n]) if acc[n] else 0.0
            if ms <= 0:
                continue
            k = kernel_of.get(n.split("!", 1)[-1])
            nodes.append({"name": n, "op": net.getLayer(n).type, "ms": ms, "n": len(acc[n]),
                          "kernel": k.as_dict() if k is not None else None})
        return nodes

    def _profile_tensorflow(self, name: str, warmup: int, runs: int) -> list[dict[str, Any]]:
        """TensorFlow's per-op step stats (a v1 session on the zoo's SavedModel, ``FULL_TRACE``): each op's
        time summed onto the kernel of its Keras layer (``zoo.kernels`` on the zoo graph, TensorFlow's rules);
        one entry per kernel that ran ops (an op fused across layers, e.g. oneDNN's pad + conv, counts for the
        layer that names it)."""
        import re

        from perfmodel.zoo import export, get_network
        from perfmodel.zoo.kernels import detect_kernels, read_graph

        tf = self.tf
        path = str(export(name, "savedmodel"))
        kernel_of: dict[str, Any] = {}
        kernels = detect_kernels(read_graph(name), "tensorflow")
        for i, k in enumerate(kernels):
            for layer in k.layers:
                kernel_of.setdefault(layer, i)
        cfg = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=self.threads, inter_op_parallelism_threads=1)
        graph = tf.Graph()
        skip = {"VarHandleOp", "ReadVariableOp", "Const", "Identity", "IdentityN", "NoOp", "_Arg", "_Retval"}
        per_kernel: dict[int, list[float]] = {}
        with graph.as_default(), tf.compat.v1.Session(graph=graph, config=cfg) as sess:
            meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
            sig = meta.signature_def["serving_default"]
            inp, out = next(iter(sig.inputs.values())).name, next(iter(sig.outputs.values())).name
            size = get_network(name).input_size
            x = np.random.default_rng(0).standard_normal((1, size, size, 3)).astype(np.float32)
            for _ in range(warmup):
                sess.run(out, {inp: x})
            opts = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
            for _ in range(runs):
                md = tf.compat.v1.RunMetadata()
                sess.run(out, {inp: x}, options=opts, run_metadata=md)
                run: dict[int, float] = {}
                for dev in md.step_stats.dev_stats:
                    for ns in dev.node_stats:
                        label = ns.timeline_label
                        op = label.split("=", 1)[1].split("(", 1)[0].strip() if "=" in label else ""
                        if op in skip:
                            continue
                        parts = ns.node_name.split("/")
                        if len(parts) < 5:
                            continue
                        layer = re.sub(r"_\d+$", "", parts[3])
                        i = kernel_of.get(layer)
                        if i is None:
                            continue
                        run[i] = run.get(i, 0.0) + (ns.op_end_rel_micros - ns.op_start_rel_micros) / 1e3
                for i, ms in run.items():
                    per_kernel.setdefault(i, []).append(ms)
        return [{"name": "+".join(kernels[i].layers), "op": "+".join(kernels[i].ops),
                 "ms": statistics.median(v), "n": len(v), "kernel": kernels[i].as_dict()}
                for i, v in sorted(per_kernel.items())]

    def _ort_options(self) -> Any:
        from perfmodel.runners.onnxruntime import session_options

        return session_options(self.ort, self.threads)

    def network_call(self, name: str) -> tuple[Callable[[], Any], Any]:
        from perfmodel.runners import get_runner

        runner = get_runner(self.framework, name, self.threads)
        runner.load()
        x = np.random.default_rng(0).standard_normal(runner.input_shape).astype(np.float32)
        self.versions.update(runner.versions)
        return (lambda: runner._infer(x)), runner


def items_workload(framework: str, items: list[dict[str, Any]]) -> Callable[[int], Any]:
    """A :class:`perfmodel.counters.valgrind.WorkloadSpec` factory: "image" ``i`` is one call of item ``i``
    (a unit or a network, model call only), one thread; every item is built and called once here (set-up,
    not counted)."""
    fw = _Framework(framework, 1)
    calls = []
    for item in items:
        if item["kind"] == "unit":
            from perfmodel.zoo.units import Unit

            fn = fw.unit_call(Unit.from_dict(item["unit"]), item.get("files", {}))
        else:
            fn, _ = fw.network_call(item["item"])
        fn()
        calls.append(fn)
    return lambda i: calls[i]()


def _measure(fw: _Framework, item: dict[str, Any], timing: dict[str, Any]) -> dict[str, Any]:
    """One item's timing fields: a unit or a network (median / min / reps of its calls), or a network's
    per-node profile (``nodes``; ``median_ms`` their sum)."""
    if item["kind"] == "profile":
        nodes = fw.profile_network(item["item"])
        return {"median_ms": sum(n["ms"] for n in nodes), "min_ms": float("nan"),
                "reps": min((n["n"] for n in nodes), default=0), "nodes": nodes}
    holder = None
    try:
        if item["kind"] == "unit":
            from perfmodel.zoo.units import Unit

            fn = fw.unit_call(Unit.from_dict(item["unit"]), item.get("files", {}))
            cfg = timing.get("unit", {})
        else:
            fn, holder = fw.network_call(item["item"])
            cfg = timing.get("network", {})
        return time_calls(fn, warmup=int(cfg.get("warmup", 3)), min_reps=int(cfg.get("min_reps", 5)),
                          min_time_s=float(cfg.get("min_time_s", 0.15)), max_reps=int(cfg.get("max_reps", 200)))
    finally:
        if holder is not None:
            holder.close()


def _write_current(workdir: Path, key: str) -> None:
    """Name the item about to start (the parent blames it if this process dies before its row is written)."""
    tmp = workdir / ".current.tmp"
    tmp.write_text(key)
    os.replace(tmp, workdir / "current")


def handle(request: dict[str, Any]) -> dict[str, Any]:
    fw = _Framework(request["framework"], int(request["threads"]))
    rows_path = Path(request["workdir"]) / "rows.jsonl"
    items = request["items"]
    timing = request.get("timing", {})
    done = 0
    with open(rows_path, "a") as out:
        for item in items:
            t0 = time.time()
            base = {k: item[k] for k in ("key", "kind", "item")}
            _write_current(Path(request["workdir"]), item["key"])
            try:
                row = {**base, **_measure(fw, item, timing), "error": ""}
            except Exception as exc:  # noqa: BLE001 - one item's failure is recorded, the block goes on
                row = {**base, "median_ms": float("nan"), "min_ms": float("nan"), "reps": 0,
                       "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            row["wall_s"] = round(time.time() - t0, 3)
            row["t_unix"] = round(t0, 3)
            out.write(json.dumps(row) + "\n")
            out.flush()
            done += 1
            report_progress(done, len(items))
    return {"items": done, "versions": fw.versions}


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return serve(handle, die_with_parent=True)


if __name__ == "__main__":
    sys.exit(main())

"""The four framework runners: cross-framework agreement, shared pre-processing, threads, errors.

TensorFlow fixes its thread pools once per process (and other tests may already have started it), so
TensorFlow inference runs in a fresh process through :func:`perfmodel.runners.scores_isolated`; the
other three frameworks run in this process.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from perfmodel.errors import InputFileError, PerfmodelError, UnknownNameError
from perfmodel.runners import FRAMEWORKS, ThreadsError, get_runner, preprocess_image, scores_isolated
from perfmodel.runners.worker import tensor_digest

REPO = Path(__file__).resolve().parents[1]
IN_PROCESS = ("litert", "onnxruntime", "opencv")
OTHER_NETWORKS = ("squeezenet1_1_224", "googlenet", "resnet50", "mobilenet_v1", "mobilenet_v2", "nin",
                  "squeezenet1_0", "resnet18", "alexnet", "densenet121", "vgg11", "inception_v3")
REL_TOL = 1e-3


@pytest.fixture(scope="session")
def image_path(tmp_path_factory) -> Path:
    """One fixed 500x375 synthetic JPEG."""
    from perfmodel.images import write_synthetic_images

    return write_synthetic_images(tmp_path_factory.mktemp("images"), 1, seed=7)[0]


@pytest.fixture(scope="session")
def image_bytes(image_path) -> bytes:
    return image_path.read_bytes()


_SCORES: dict[str, dict[str, dict]] = {}


def all_scores(network: str, image_path: Path) -> dict[str, dict]:
    """framework -> {"scores", "input_sha256", "details"} for ``network`` (computed once per session)."""
    if network not in _SCORES:
        out = {}
        data = image_path.read_bytes()
        for fw in IN_PROCESS:
            with get_runner(fw, network, threads=1) as r:
                x = r.preprocess(data, image_path.name)
                out[fw] = {"scores": r.infer(x), "input_sha256": tensor_digest(x, r.layout),
                           "details": r.details()}
        # threads=2 in the worker also checks that TensorFlow honours the thread setting
        tf = scores_isolated("tensorflow", network, 2, image_path, timeout_s=600)
        tf["scores"] = np.asarray(tf["scores"], np.float32)
        out["tensorflow"] = tf
        _SCORES[network] = out
    return _SCORES[network]


def _check_agreement(network: str, image_path: Path) -> None:
    res = all_scores(network, image_path)
    assert set(res) == set(FRAMEWORKS)
    ref = res["tensorflow"]["scores"]
    assert ref.shape == (1000,)
    assert abs(float(ref.sum()) - 1.0) < 1e-3  # softmax scores
    assert ref.max() > 5e-3  # a real prediction, not a flat (1/1000) output
    top5 = list(np.argsort(-ref)[:5])
    for fw, r in res.items():
        s = r["scores"]
        assert s.shape == (1000,) and s.dtype == np.float32
        assert list(np.argsort(-s)[:5]) == top5, f"{fw} top-5 differs from tensorflow"
        rel = float(np.abs(s - ref).max() / ref.max())
        assert rel <= REL_TOL, f"{fw}: max |diff| = {rel:.2e} of max score"
        assert r["input_sha256"] == res["tensorflow"]["input_sha256"], f"{fw} got a different input tensor"


def test_agreement_squeezenet(image_path):
    _check_agreement("squeezenet1_1", image_path)


@pytest.mark.slow
@pytest.mark.parametrize("network", OTHER_NETWORKS)
def test_agreement_other_networks(network, image_path):
    _check_agreement(network, image_path)


def test_tensorflow_worker_honours_threads_and_records_versions(image_path):
    details = all_scores("squeezenet1_1", image_path)["tensorflow"]["details"]
    assert details["threads"] == 2
    assert details["effective"]["intra_op_threads"] == 2
    assert details["effective"]["inter_op_threads"] == 1
    assert details["effective"]["onednn_opts"] in (True, False)  # TF's own report (CPU-dependent default)
    assert details["versions"]["tensorflow"]
    assert details["input_size"] == 227 and details["layout"] == "NHWC"


def test_tensorflow_threads_are_fixed_per_process():
    """A second thread count in one process is a clear ThreadsError, not a silently wrong pool."""
    code = textwrap.dedent("""
        from perfmodel.runners import get_runner, ThreadsError
        r = get_runner("tensorflow", "squeezenet1_1", threads=1)
        assert r.details()["effective"]["intra_op_threads"] == 1
        get_runner("tensorflow", "squeezenet1_1", threads=1).close()   # same count: fine
        try:
            get_runner("tensorflow", "squeezenet1_1", threads=2)
        except ThreadsError as exc:
            print("THREADS-ERROR", exc)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "THREADS-ERROR" in proc.stdout and "own process" in proc.stdout


# ------------------------------------------------------------------------------------ pre-processing


def test_preprocessing_is_shared_and_identical(image_bytes):
    nhwc = preprocess_image(image_bytes, 227, "NHWC")
    nchw = preprocess_image(image_bytes, 227, "NCHW")
    assert nhwc.shape == (1, 227, 227, 3) and nchw.shape == (1, 3, 227, 227)
    assert nhwc.dtype == nchw.dtype == np.float32
    assert nchw.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(nchw.transpose(0, 2, 3, 1), nhwc)
    assert -1.0 <= nhwc.min() < -0.5 and 0.5 < nhwc.max() <= 1.0
    tensors = {}
    for fw in IN_PROCESS:
        with get_runner(fw, "squeezenet1_1") as r:
            x = r.preprocess(image_bytes)
            tensors[fw] = x if r.layout == "NHWC" else x.transpose(0, 2, 3, 1)
    for x in tensors.values():
        np.testing.assert_array_equal(x, nhwc)


def test_preprocessing_values():
    """A uniform image maps to the expected normalised value; resize happens."""
    import cv2

    ok, buf = cv2.imencode(".png", np.full((40, 60, 3), 255, np.uint8))
    x = preprocess_image(buf.tobytes(), 32, "NHWC")
    assert x.shape == (1, 32, 32, 3)
    np.testing.assert_allclose(x, 1.0, atol=1e-6)
    ok, buf = cv2.imencode(".png", np.zeros((10, 10, 3), np.uint8))
    np.testing.assert_allclose(preprocess_image(buf.tobytes(), 10), -1.0)


@pytest.mark.parametrize("fw", IN_PROCESS)
def test_corrupt_image_is_a_clear_error(fw):
    with get_runner(fw, "squeezenet1_1") as r:
        with pytest.raises(InputFileError, match="cannot decode image"):
            r.preprocess(b"\xff\xd8 not really a jpeg", "bad.jpg")


# ------------------------------------------------------------------------------------------ threads


def test_onnxruntime_threads_and_no_spinning():
    with get_runner("onnxruntime", "squeezenet1_1", threads=2) as r:
        eff = r.details()["effective"]
        assert eff["intra_op_num_threads"] == 2
        assert eff["inter_op_num_threads"] == 1
        assert eff["allow_spinning"] == "0"
        assert eff["providers"] == ["CPUExecutionProvider"]


def test_opencv_threads_are_set_and_restored(image_bytes):
    import cv2

    with get_runner("opencv", "squeezenet1_1", threads=2) as r:
        assert cv2.getNumThreads() == 2
        x = r.preprocess(image_bytes)
        cv2.setNumThreads(1)  # someone else in the process changes the global setting
        r.infer(x)
        assert cv2.getNumThreads() == 2
        assert r.details()["effective"]["cv2_num_threads"] == 2


def test_litert_xnnpack_switch(image_bytes):
    with get_runner("litert", "squeezenet1_1") as on, get_runner("litert", "squeezenet1_1", xnnpack=False) as off:
        assert on.details()["effective"]["kernels"] == "xnnpack"
        assert on.details()["effective"]["delegate_nodes"] >= 1
        assert off.details()["effective"]["kernels"] == "builtin"
        assert off.details()["effective"]["delegate_nodes"] == 0
        x = on.preprocess(image_bytes)
        a, b = on.infer(x), off.infer(x)
        assert np.abs(a - b).max() <= REL_TOL * a.max()


@pytest.mark.parametrize("options", [{"engine": "new"}, {"engine": "auto"}, {"importer": "tflite"}])
def test_opencv_engines_and_tflite_importer_agree(options, image_bytes):
    import cv2

    from perfmodel.runners.opencv import resolve_engine

    try:
        _, used = resolve_engine(cv2, options.get("engine", "classic"), explicit="engine" in options)
    except PerfmodelError as exc:  # an engine this release does not have: not a failure of the suite
        pytest.skip(f"OpenCV {cv2.__version__} lacks it: {exc}")
    with get_runner("opencv", "squeezenet1_1") as ref, get_runner("opencv", "squeezenet1_1", **options) as r:
        x = ref.preprocess(image_bytes)
        a, b = ref.infer(x), r.infer(x)
        assert np.abs(a - b).max() <= REL_TOL * a.max()
        assert r.details()["options"] == {**ref.details()["options"], **options,
                                          **({"engine": used} if "engine" in options else {})}


def _fake_cv2(version: str, *engines: str):
    from types import SimpleNamespace

    return SimpleNamespace(__version__=version, dnn=SimpleNamespace(**{f"ENGINE_{e}": i for i, e in enumerate(engines)}))


@pytest.mark.parametrize("cv2, requested, explicit, expect", [
    (_fake_cv2("4.10.0"), "classic", True, ((), "classic")),
    (_fake_cv2("4.10.0"), "auto", True, ((), "classic")),
    (_fake_cv2("4.10.0"), "new", True, "has only the classic DNN engine"),
    (_fake_cv2("5.0.0", "CLASSIC", "NEW", "AUTO"), "classic", False, ((0,), "classic")),
    (_fake_cv2("5.0.0", "CLASSIC", "NEW", "AUTO"), "new", True, ((1,), "new")),
    (_fake_cv2("5.0.0", "CLASSIC", "NEW", "AUTO"), "auto", True, ((2,), "auto")),
    (_fake_cv2("5.1.0", "AUTO", "OPENCV", "ORT"), "classic", False, ((1,), "new")),  # the default: its engine
    (_fake_cv2("5.1.0", "AUTO", "OPENCV", "ORT"), "classic", True, "no classic DNN engine"),
    (_fake_cv2("5.1.0", "AUTO", "OPENCV", "ORT"), "new", True, ((1,), "new")),
    (_fake_cv2("5.1.0", "AUTO", "OPENCV", "ORT"), "auto", True, ((1,), "new")),
])
def test_opencv_engine_resolution_per_release(cv2, requested, explicit, expect):
    """OpenCV 4.x has the classic engine only, 5.0 both, 5.1 the new one only (ENGINE_OPENCV): the runner
    works on each, records the engine that runs and refuses only an engine asked for that the release lacks."""
    from perfmodel.runners.opencv import resolve_engine

    if isinstance(expect, str):
        with pytest.raises(PerfmodelError, match=expect):
            resolve_engine(cv2, requested, explicit=explicit)
    else:
        assert resolve_engine(cv2, requested, explicit=explicit) == expect


def test_opencv_tensorflow_importer_is_unsupported_with_reason():
    from perfmodel.runners.opencv import UNSUPPORTED_IMPORTERS

    assert "tensorflow" in UNSUPPORTED_IMPORTERS
    with pytest.raises(PerfmodelError, match="not supported: .*frozen GraphDef"):
        get_runner("opencv", "squeezenet1_1", importer="tensorflow")


# ------------------------------------------------------------------------------------------- errors


def test_unknown_framework_lists_valid_names():
    with pytest.raises(UnknownNameError) as info:
        get_runner("pytorch", "squeezenet1_1")
    msg = str(info.value)
    assert "unknown framework 'pytorch'" in msg
    for fw in FRAMEWORKS:
        assert fw in msg


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_unknown_network_lists_valid_names(fw):
    with pytest.raises(UnknownNameError, match="unknown network 'vgg19'.*squeezenet1_1"):
        get_runner(fw, "vgg19")


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_bad_thread_count(threads):
    with pytest.raises(ThreadsError, match="threads must be"):
        get_runner("onnxruntime", "squeezenet1_1", threads=threads)


def test_unknown_option_is_a_clear_error():
    with pytest.raises(PerfmodelError, match="onnxruntime has no option 'xnnpack'"):
        get_runner("onnxruntime", "squeezenet1_1", xnnpack=False)


def test_wrong_tensor_and_unloaded_runner(image_bytes):
    from perfmodel.runners import runner_class

    with get_runner("onnxruntime", "squeezenet1_1") as r:
        with pytest.raises(PerfmodelError, match=r"input must be float32 \(1, 3, 227, 227\)"):
            r.infer(np.zeros((1, 227, 227, 3), np.float32))
        with pytest.raises(PerfmodelError, match="float32"):
            r.infer(np.zeros((1, 3, 227, 227), np.float64))
    with pytest.raises(PerfmodelError, match="not loaded"):
        r.infer(np.zeros((1, 3, 227, 227), np.float32))
    with pytest.raises(PerfmodelError, match="not loaded"):
        runner_class("litert")("squeezenet1_1").preprocess(image_bytes)


def _model_file(fw: str, tmp_path: Path, kind: str) -> Path:
    """A copy of the SqueezeNet export for ``fw``, truncated or replaced with random bytes."""
    from perfmodel.runners import MODEL_FORMATS
    from perfmodel.zoo import export

    src = export("squeezenet1_1", MODEL_FORMATS[fw])
    rng = np.random.default_rng(123)
    if src.is_dir():  # SavedModel: break its graph file
        dst = tmp_path / "savedmodel"
        shutil.copytree(src, dst)
        target = dst / "saved_model.pb"
    else:
        dst = target = tmp_path / src.name
        shutil.copyfile(src, dst)
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 3] if kind == "truncated" else rng.bytes(min(len(data), 65536)))
    return dst


@pytest.mark.parametrize("kind", ["truncated", "random"])
@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_corrupt_model_file_is_a_clear_error(fw, kind, tmp_path):
    path = _model_file(fw, tmp_path, kind)
    with pytest.raises(InputFileError, match=f"cannot load {fw} model .*: not a valid .*or corrupt"):
        get_runner(fw, None, model_path=path)


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_missing_model_file_is_a_clear_error(fw, tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        get_runner(fw, "mine", model_path=tmp_path / "nope.bin")


def test_savedmodel_must_be_a_folder(tmp_path):
    f = tmp_path / "model.pb"
    f.write_bytes(b"x")
    with pytest.raises(InputFileError, match="not a SavedModel folder"):
        get_runner("tensorflow", None, model_path=f)


# ------------------------------------------------------------------------------------ explicit models


@pytest.mark.parametrize("fw", IN_PROCESS)
def test_explicit_model_path_matches_zoo_network(fw, tmp_path, image_bytes):
    from perfmodel.runners import MODEL_FORMATS
    from perfmodel.zoo import export

    src = export("squeezenet1_1", MODEL_FORMATS[fw])
    mine = tmp_path / f"my_model{src.suffix}"
    shutil.copyfile(src, mine)
    with get_runner(fw, "squeezenet1_1") as zoo_r, get_runner(fw, None, model_path=mine) as own:
        assert own.network == "my_model"
        assert own.input_size == 227  # read from the model file
        assert own.details()["model_path"] == str(mine)
        x = zoo_r.preprocess(image_bytes)
        np.testing.assert_array_equal(zoo_r.infer(x), own.infer(x))
    with pytest.raises(PerfmodelError, match="takes 227x227 inputs, not the requested 224x224"):
        get_runner(fw, None, model_path=mine, input_size=224)


def test_versions_are_recorded():
    with get_runner("litert", "squeezenet1_1") as r:
        v = r.versions
        assert v["ai_edge_litert"] != "missing" and v["numpy"] and v["opencv"]
    with get_runner("onnxruntime", "squeezenet1_1") as r:
        import onnxruntime

        assert r.versions["onnxruntime"] == onnxruntime.__version__

"""The runner protocol shared by the four frameworks, and the shared pre-processing.

A runner wraps one network in one framework with a fixed number of threads::

    with get_runner("onnxruntime", "squeezenet1_1", threads=2) as runner:
        x = runner.preprocess(jpeg_bytes)      # decode, resize, normalise: part of the per-image work
        scores = runner.infer(x)               # (1000,) float32 softmax scores

The model is a zoo network (exported on first use, see :func:`perfmodel.zoo.export`) or an explicit
``model_path`` (a user model, or a file in a test). Threads are set when the model is loaded and cannot be
changed afterwards. Pre-processing is one shared function (:func:`preprocess_image`), so every framework
gets exactly the same numbers, in NHWC (TensorFlow, LiteRT) or NCHW (ONNX Runtime, OpenCV) layout.

Heavy libraries are imported inside :meth:`Runner.load` only.
"""

from __future__ import annotations

import abc
import importlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from perfmodel.errors import InputFileError, PerfmodelError, UnknownNameError

#: The frameworks of the study, in the order tables list them.
FRAMEWORKS: tuple[str, ...] = ("tensorflow", "litert", "onnxruntime", "opencv")

#: framework -> "module:Class" implementing it (imported on demand).
_IMPLEMENTATIONS: dict[str, str] = {
    "tensorflow": "perfmodel.runners.tensorflow:TensorFlowRunner",
    "litert": "perfmodel.runners.litert:LiteRTRunner",
    "onnxruntime": "perfmodel.runners.onnxruntime:OnnxRuntimeRunner",
    "opencv": "perfmodel.runners.opencv:OpenCVRunner",
}

LAYOUTS = ("NHWC", "NCHW")
FORMAT_LABELS = {"savedmodel": "TF SavedModel", "tflite": "TFLite flatbuffer", "onnx": "ONNX model"}
NUM_CLASSES = 1000
#: Pixels are mapped from [0, 255] to [-1, 1]: x / 127.5 - 1 (the zoo's input range).
PIXEL_SCALE = np.float32(1.0 / 127.5)
PIXEL_OFFSET = np.float32(-1.0)
MAX_THREADS = 1024


class FrameworkUnavailableError(PerfmodelError):
    """The library a framework needs is not installed (or does not import)."""


class ThreadsError(PerfmodelError):
    """The requested thread count cannot be applied (bad value, or fixed already in this process)."""


def preprocess_image(data: bytes, size: int, layout: str = "NHWC", name: str = "<image>") -> np.ndarray:
    """Decode JPEG/PNG bytes and make the network input: ``(1, size, size, 3)`` or ``(1, 3, size, size)``.

    Steps (identical for every framework, as in the study, and part of the timed per-image work):
    decode to RGB (:func:`perfmodel.images.decode_rgb`), resize to ``size x size`` with bilinear
    interpolation (``cv2.INTER_LINEAR``, aspect ratio not kept), convert to float32 and map [0, 255] to
    [-1, 1]. NCHW is the transpose of NHWC, made contiguous.
    """
    import cv2

    from perfmodel.images import decode_rgb

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    rgb = decode_rgb(data, name)
    if rgb.shape[0] != size or rgb.shape[1] != size:
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR)
    x = rgb.astype(np.float32)
    x *= PIXEL_SCALE
    x += PIXEL_OFFSET
    x = x[np.newaxis]
    if layout == "NCHW":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


def check_threads(threads: Any) -> int:
    """``threads`` as a positive int, else :class:`ThreadsError`."""
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not 1 <= threads <= MAX_THREADS:
        raise ThreadsError(f"threads must be an integer from 1 to {MAX_THREADS}, got {threads!r}")
    return int(threads)


def library_version(*dists: str) -> str:
    """Installed version of the first distribution of ``dists`` found, or ``"missing"``."""
    from importlib import metadata

    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "missing"


def first_line(exc: BaseException, limit: int = 300) -> str:
    """A short one-line description of a library exception, for user-facing messages."""
    text = str(exc).strip().splitlines()
    line = next((t.strip() for t in text if t.strip()), "") if text else ""
    line = line[:limit]
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


class Runner(abc.ABC):
    """One network loaded in one framework with a fixed thread count.

    Subclasses set :attr:`framework`, :attr:`model_format` (the zoo export they use) and :attr:`layout`,
    and implement :meth:`_load`, :meth:`_infer` and :meth:`_close`.

    Attributes available after :meth:`load`: ``framework``, ``network``, ``threads``, ``input_size``
    (side of the square input), ``model_path``, ``versions`` (library -> version it ran with) and
    ``options`` (framework options in effect).
    """

    framework: ClassVar[str]
    model_format: ClassVar[str]
    layout: ClassVar[str]
    #: Options this framework accepts (name -> default).
    option_defaults: ClassVar[dict[str, Any]] = {}
    #: Keys of :meth:`effective` that select the library's kernels (not thread counts): a simulated run
    #: whose values differ from a timed run's counted other code (``perfmodel.model.codepath``).
    code_path_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, network: str, threads: int = 1, model_path: str | Path | None = None, *,
                 seed: int = 0, input_size: int | None = None, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.option_defaults))
        if unknown:
            valid = ", ".join(sorted(self.option_defaults)) or "none"
            raise PerfmodelError(f"{self.framework} has no option {', '.join(map(repr, unknown))}; "
                                 f"valid options: {valid}")
        self.network = str(network) if network is not None else None
        self.threads = check_threads(threads)
        self.model_path: Path | None = Path(model_path) if model_path is not None else None
        self.seed = seed
        self.requested_input_size = input_size
        self.options: dict[str, Any] = {**self.option_defaults, **options}
        self._given_options = frozenset(options)  # the options asked for (not defaulted)
        self.input_size: int | None = None
        self.versions: dict[str, str] = {}
        self.loaded = False
        if self.network is None and self.model_path is None:
            raise PerfmodelError("give a zoo network name or a model path")

    # ------------------------------------------------------------------------------------ protocol

    def load(self) -> "Runner":
        """Resolve the model file (export the zoo network if needed), set threads and load it."""
        if self.loaded:
            return self
        explicit = self.model_path is not None
        if explicit:
            self._check_path(self.model_path)
        else:
            from perfmodel.zoo import get_network

            get_network(self.network)  # UnknownNameError listing the networks, before any heavy work
        self.versions = {
            "numpy": np.__version__,
            "opencv": _cv2_version(),
        }
        model_size = self._load(self.model_path if explicit else None)
        self.input_size = self._resolve_size(model_size)
        self.loaded = True
        return self

    def preprocess(self, image_bytes: bytes, name: str = "<image>") -> np.ndarray:
        """Decode, resize and normalise one image into this framework's input tensor."""
        self._require_loaded()
        return preprocess_image(image_bytes, self.input_size, self.layout, name)

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """Run the network on one pre-processed tensor; returns the 1000 class scores (float32)."""
        self._require_loaded()
        if tensor.shape != self.input_shape or tensor.dtype != np.float32:
            raise PerfmodelError(f"{self.framework} {self.network}: input must be float32 {self.input_shape}, "
                                 f"got {tensor.dtype} {tuple(tensor.shape)}")
        scores = np.asarray(self._infer(tensor), dtype=np.float32).reshape(-1)
        if scores.size != NUM_CLASSES:
            raise PerfmodelError(f"{self.framework} {self.network}: the model returned {scores.size} scores, "
                                 f"expected {NUM_CLASSES}")
        return scores

    def close(self) -> None:
        """Release the model (the runner cannot be used afterwards)."""
        if self.loaded:
            self._close()
        self.loaded = False

    def __enter__(self) -> "Runner":
        return self.load()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else "not loaded"
        return f"<{type(self).__name__} {self.network} threads={self.threads} {state}>"

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """Shape of the tensor :meth:`infer` takes."""
        self._require_loaded()
        s = self.input_size
        return (1, s, s, 3) if self.layout == "NHWC" else (1, 3, s, s)

    def details(self) -> dict[str, Any]:
        """What ran: framework, network, threads, input size, model file, versions, options and effective
        settings read back from the library where it can tell (``effective``)."""
        self._require_loaded()
        return {
            "framework": self.framework,
            "network": self.network,
            "threads": self.threads,
            "input_size": self.input_size,
            "layout": self.layout,
            "model_path": str(self.model_path) if self.model_path else None,
            "versions": dict(self.versions),
            "options": dict(self.options),
            "effective": self.effective(),
        }

    def effective(self) -> dict[str, Any]:
        """Settings as the library reports them (threads, delegates, ...); subclasses extend."""
        return {}

    # --------------------------------------------------------------------------------- subclasses

    @abc.abstractmethod
    def _load(self, explicit_path: Path | None) -> int | None:
        """Load the model; set ``self.model_path`` (via :meth:`_zoo_path` when ``explicit_path`` is None).

        Returns the model's fixed square input size, or None if the input size is dynamic.
        Must raise :class:`InputFileError` for a missing / corrupt model file.
        """

    @abc.abstractmethod
    def _infer(self, tensor: np.ndarray) -> np.ndarray:
        """Scores for one input tensor."""

    def _close(self) -> None:
        """Drop references to library objects."""

    # ----------------------------------------------------------------------------------- helpers

    def _zoo_path(self) -> Path:
        """Export (or find in the cache) this runner's zoo network in its framework's format."""
        from perfmodel.zoo import export

        path = export(self.network, self.model_format, seed=self.seed, input_size=self.requested_input_size)
        self.model_path = Path(path)
        return self.model_path

    def _check_path(self, path: Path) -> None:
        if not path.exists():
            raise InputFileError(f"{self.framework} model {str(path)!r} not found")

    def _corrupt(self, exc: BaseException | str) -> InputFileError:
        reason = exc if isinstance(exc, str) else first_line(exc)
        label = FORMAT_LABELS.get(self.model_format, self.model_format)
        return InputFileError(f"cannot load {self.framework} model {str(self.model_path)!r}: not a valid "
                              f"{label}, or corrupt ({reason})")

    def _resolve_size(self, model_size: int | None) -> int:
        requested = self.requested_input_size
        if requested is not None:
            requested = int(requested)
        if model_size is None:
            if requested is None:
                from perfmodel.zoo import NETWORKS

                if self.network not in NETWORKS:
                    raise PerfmodelError(f"{self.framework} model {str(self.model_path)!r} has a dynamic input "
                                         "size: give input_size")
                return NETWORKS[self.network].input_size
            return requested
        if requested is not None and requested != model_size:
            raise PerfmodelError(f"{self.framework} model {str(self.model_path)!r} takes {model_size}x{model_size} "
                                 f"inputs, not the requested {requested}x{requested}")
        return model_size

    def _square_size(self, hw: tuple[Any, Any]) -> int | None:
        """Square side from a model's (H, W) input dims; None if dynamic; error if not square."""
        h, w = hw
        dyn = [d for d in (h, w) if not isinstance(d, (int, np.integer)) or d is None or d <= 0]
        if dyn:
            return None
        if h != w:
            raise PerfmodelError(f"{self.framework} model {str(self.model_path)!r} has a {h}x{w} input; only "
                                 "square inputs are supported")
        return int(h)

    def _require_loaded(self) -> None:
        if not self.loaded:
            raise PerfmodelError(f"{self.framework} runner for {self.network} is not loaded (call load())")


def runner_class(framework: str) -> type[Runner]:
    """The :class:`Runner` subclass of ``framework``; :class:`UnknownNameError` listing valid names."""
    if framework not in _IMPLEMENTATIONS:
        raise UnknownNameError("framework", str(framework), FRAMEWORKS)
    module, cls = _IMPLEMENTATIONS[framework].split(":")
    return getattr(importlib.import_module(module), cls)


def get_runner(framework: str, network: str | None, threads: int = 1, model_path: str | Path | None = None,
               **options: Any) -> Runner:
    """A loaded runner of ``network`` (a zoo name, or a label when ``model_path`` is given) in ``framework``.

    ``options``: ``seed`` and ``input_size`` (zoo export), plus framework options (``xnnpack`` for
    LiteRT; ``engine`` and ``importer`` for OpenCV; ``signature`` for TensorFlow).
    """
    cls = runner_class(framework)
    if network is None and model_path is not None:
        network = Path(model_path).stem if Path(model_path).suffix else Path(model_path).name
    runner = cls(network, threads, model_path, **options)
    return runner.load()


def _cv2_version() -> str:
    """OpenCV's version (pre-processing uses it in every framework)."""
    import cv2

    return cv2.__version__

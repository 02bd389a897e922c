"""Export zoo networks to TF SavedModel, TFLite and ONNX, with a content-addressed cache.

Layout (one entry per cache key)::

    <perfmodel.paths.cache_dir()>/models/<network>-<size>-s<seed>-<key16>/
        manifest.json          what is in the entry: key inputs, versions, sha256 of every artifact
        model.weights.h5       the calibrated Keras weights every format is built from
        savedmodel/            model.export() (Keras 3), signature ``serving_default``: input ``input``
                               (1, H, W, 3) -> output ``output_0`` (1, 1000)
        model.tflite           TFLiteConverter.from_saved_model(savedmodel/)
        model.onnx             tf2onnx.convert.from_keras, opset 17, NCHW input named ``input`` (weights over
                               ONNX_BIG_WEIGHT_BYTES go through the converter as inputs: memory, see there)

The key is the sha256 of (network, seed, input size, zoo definition version, TensorFlow / Keras /
tf2onnx / ONNX versions), so a library upgrade or a definition change gives a fresh entry instead of a
stale model. All formats of one entry come from the same ``model.weights.h5``, so they are the same
network. Every artifact is built in a temporary path inside the entry and renamed into place (atomic on
one file system); an ``fcntl`` lock on the entry serialises concurrent builders. On every call the
artifact's sha256 is checked against the manifest: a missing or corrupt artifact (or manifest, or
weights file) is rebuilt, with a warning on the ``perfmodel.zoo`` logger.

TFLite is converted from the SavedModel, never with ``from_concrete_functions`` (which can drop the
weights of a Keras 3 model and produce a model that returns constants).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from perfmodel.errors import PerfmodelError, check_choice
from perfmodel.paths import update_hash_with_file
from perfmodel.zoo.build import build_graph, build_keras, get_network, quiet_tensorflow, resolve_input_size
from perfmodel.zoo.networks import INPUT_NAME, ZOO_VERSION

log = logging.getLogger("perfmodel.zoo")

FORMATS: tuple[str, ...] = ("savedmodel", "tflite", "onnx")
ARTIFACTS: dict[str, str] = {"savedmodel": "savedmodel", "tflite": "model.tflite", "onnx": "model.onnx"}
WEIGHTS_FILE = "model.weights.h5"
MANIFEST = "manifest.json"
ONNX_OPSET = 17
_CACHE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.ENOTDIR, errno.EEXIST}


class ExportError(PerfmodelError):
    """Building or caching a model failed (missing converter, unwritable cache, conversion failure)."""


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose output ends up in an exported model (part of the cache key)."""
    from perfmodel.sysinfo import installed_version

    dists = {"tensorflow": ("tensorflow", "tensorflow-cpu"), "keras": ("keras",), "tf2onnx": ("tf2onnx",),
             "onnx": ("onnx",)}
    return {lib: installed_version(*names) or "missing" for lib, names in dists.items()}


def cache_key(name: str, seed: int = 0, input_size: int | None = None) -> tuple[str, dict[str, Any]]:
    """``(hex key, key inputs)`` of one cache entry."""
    spec = get_network(name)
    size = resolve_input_size(spec, input_size)
    inputs = {
        "network": spec.name,
        "seed": int(seed),
        "input_size": size,
        "zoo_version": ZOO_VERSION,
        "versions": library_versions(),
    }
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode("utf-8")).hexdigest()
    return digest, inputs


def models_dir() -> Path:
    from perfmodel.paths import cache_dir

    return cache_dir() / "models"


def entry_dir(name: str, seed: int = 0, input_size: int | None = None) -> Path:
    """The cache folder of one (network, seed, input size) with the current library versions."""
    key, inputs = cache_key(name, seed, input_size)
    return models_dir() / _entry_name(key, inputs)


def _entry_name(key: str, inputs: dict[str, Any]) -> str:
    return f"{inputs['network']}-{inputs['input_size']}-s{inputs['seed']}-{key[:16]}"


def digest_path(path: Path) -> str:
    """sha256 of a file, or of a folder (relative names and contents of every file, sorted)."""
    h = hashlib.sha256()
    path = Path(path)
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f.relative_to(path).as_posix().encode("utf-8") + b"\0")
            update_hash_with_file(h, f)
    else:
        update_hash_with_file(h, path)
    return h.hexdigest()


@contextlib.contextmanager
def _locked(entry: Path) -> Iterator[None]:
    """Exclusive lock on an entry (POSIX ``fcntl``; no-op where unavailable)."""
    entry.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(entry / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_manifest(entry: Path) -> dict[str, Any] | None:
    """The entry's manifest, or None if missing or unreadable."""
    try:
        data = json.loads((Path(entry) / MANIFEST).read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        log.warning("cache manifest %s is corrupt; rebuilding the entry", Path(entry) / MANIFEST)
        return None
    return data if isinstance(data, dict) else None


def _write_manifest(entry: Path, manifest: dict[str, Any]) -> None:
    from perfmodel.paths import atomic_write_text

    atomic_write_text(entry / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _valid(entry: Path, record: dict[str, Any] | None) -> bool:
    if not record or "path" not in record or "sha256" not in record:
        return False
    path = entry / record["path"]
    if not path.exists():
        log.warning("cached %s is missing; rebuilding", path)
        return False
    if digest_path(path) != record["sha256"]:
        log.warning("cached %s does not match its manifest checksum (corrupt); rebuilding", path)
        return False
    return True


def _install(tmp: Path, final: Path) -> None:
    """Move a built artifact into place (replacing a corrupt one)."""
    if final.is_dir() and not final.is_symlink():
        shutil.rmtree(final)
    elif final.exists() or final.is_symlink():
        final.unlink()
    os.replace(tmp, final)


def _record(entry: Path, rel: str) -> dict[str, Any]:
    path = entry / rel
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    return {"path": rel, "sha256": digest_path(path), "bytes": size, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _keras_model(entry: Path, manifest: dict[str, Any], name: str, seed: int, size: int) -> Any:
    """The entry's Keras model: from its weights file when valid, else built (and the weights saved)."""
    if _valid(entry, manifest.get("weights")):
        model = build_graph(name, size)
        model.load_weights(str(entry / WEIGHTS_FILE))
        return model
    model = build_keras(name, seed, size)
    tmp = entry / f".tmp-{os.getpid()}-{WEIGHTS_FILE}"
    model.save_weights(str(tmp))
    _install(tmp, entry / WEIGHTS_FILE)
    manifest["weights"] = _record(entry, WEIGHTS_FILE)
    manifest["calibration"] = getattr(model, "perfmodel_calibration", {})
    # Formats built from older weights are no longer the same network.
    manifest["artifacts"] = {}
    _write_manifest(entry, manifest)
    return model


def _build_savedmodel(model: Any, size: int, out: Path) -> None:
    import tensorflow as tf

    spec = [tf.TensorSpec((1, size, size, 3), tf.float32, name=INPUT_NAME)]
    model.export(str(out), format="tf_saved_model", input_signature=spec, verbose=False)


def _build_tflite(savedmodel: Path, out: Path) -> None:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel))
    out.write_bytes(converter.convert())


#: a weight tensor larger than this goes through tf2onnx as a graph input and is put back into the ONNX
#: model as an initializer afterwards. As a constant it is copied by the freezing, by grappler and by every
#: pass of tf2onnx's optimizers: VGG-11's 392 MiB FC kernel grew the export past 24 GB resident (killed);
#: as an input it is never copied and the export peaks at about 5 GB. Networks without such a tensor export
#: as before (the same file).
ONNX_BIG_WEIGHT_BYTES = 16 << 20


def _build_onnx(model: Any, size: int, out: Path) -> None:
    import numpy as np
    import tensorflow as tf
    try:
        import tf2onnx
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise ExportError(f"ONNX export needs tf2onnx ({exc})") from None

    spec = (tf.TensorSpec((1, size, size, 3), tf.float32, name=INPUT_NAME),)
    weights = list(model.trainable_variables)
    big = [i for i, v in enumerate(weights)
           if int(np.prod(v.shape)) * np.dtype(str(v.dtype)).itemsize > ONNX_BIG_WEIGHT_BYTES]
    if not big:
        tf2onnx.convert.from_keras(model, input_signature=spec, opset=ONNX_OPSET,
                                   inputs_as_nchw=[INPUT_NAME], output_path=str(out))
        return
    _build_onnx_big_weights(model, spec, big, out)


def _build_onnx_big_weights(model: Any, spec: tuple, big: list[int], out: Path) -> None:
    """ONNX export of ``model`` with its trainable variables ``big`` (positions) fed as graph inputs during the
    conversion (``Model.stateless_call``), then stored as initializers: the same network and the same
    ONNX interface (one input ``input``, NCHW), without tf2onnx copying the big tensors."""
    import onnx
    import tensorflow as tf
    import tf2onnx
    from onnx import numpy_helper

    weights = list(model.trainable_variables)
    fixed = list(model.non_trainable_variables)
    names = [f"perfmodel_weight_{k}" for k in range(len(big))]
    slot = {i: k for k, i in enumerate(big)}

    def forward(x, *fed):
        trainable = [fed[slot[i]] if i in slot else v.value for i, v in enumerate(weights)]
        y, _ = model.stateless_call(trainable, [v.value for v in fixed], x, training=False)
        return y

    signature = [spec[0]] + [tf.TensorSpec(weights[i].shape, weights[i].dtype, name=n) for i, n in zip(big, names)]
    proto, _ = tf2onnx.convert.from_function(tf.function(forward, input_signature=signature),
                                             input_signature=signature, opset=ONNX_OPSET,
                                             inputs_as_nchw=[INPUT_NAME])
    graph_inputs = {i.name.split(":")[0]: i for i in proto.graph.input}
    for i, n in zip(big, names):
        if n not in graph_inputs:
            raise ExportError(f"ONNX export: the converter dropped the weight input {n} ({weights[i].path})")
        proto.graph.initializer.append(numpy_helper.from_array(weights[i].numpy(), graph_inputs[n].name))
        proto.graph.input.remove(graph_inputs[n])
    if [i.name for i in proto.graph.input] != [INPUT_NAME]:
        raise ExportError(f"ONNX export: unexpected graph inputs {[i.name for i in proto.graph.input]}")
    onnx.save(proto, str(out))


def export(name: str, fmt: str, seed: int = 0, input_size: int | None = None) -> Path:
    """Path of network ``name`` exported as ``fmt`` (``savedmodel`` folder, ``.tflite`` or ``.onnx``).

    Built on first use and cached (see the module docstring). The SavedModel and TFLite models take
    NHWC ``(1, H, W, 3)`` float32; the ONNX model takes NCHW ``(1, 3, H, W)`` named ``input``. All
    return softmax scores ``(1, 1000)``.
    """
    spec = get_network(name)
    check_choice("format", fmt, FORMATS)
    size = resolve_input_size(spec, input_size)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise PerfmodelError(f"seed must be a non-negative integer, got {seed!r}")
    key, inputs = cache_key(spec.name, seed, size)
    with contextlib.ExitStack() as stack:
        try:
            entry = models_dir() / _entry_name(key, inputs)
            stack.enter_context(_locked(entry))
        except OSError as exc:
            raise ExportError(f"cannot use the model cache: {exc} "
                              "(set PERFMODEL_CACHE to a writable folder)") from None
        try:
            from perfmodel.runlog import native_output_to_log

            with native_output_to_log(f"export {spec.name} {fmt} (seed {seed}, {size}x{size})"):
                return _export_locked(entry, key, inputs, spec.name, fmt, seed, size)
        except OSError as exc:
            if exc.errno in _CACHE_ERRNOS:
                raise ExportError(f"cannot write the model cache {str(entry)!r}: {exc} "
                                  "(set PERFMODEL_CACHE to a writable folder)") from None
            raise


def _export_locked(entry: Path, key: str, inputs: dict[str, Any], name: str, fmt: str, seed: int,
                   size: int) -> Path:
    for stale in entry.glob(".tmp-*"):  # left by a killed builder (we hold the entry's lock)
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    manifest = read_manifest(entry)
    if not manifest or manifest.get("key") != key:
        manifest = {
            "key": key, **inputs,
            "input_name": INPUT_NAME,
            "input_shape": {"savedmodel": [1, size, size, 3], "tflite": [1, size, size, 3],
                            "onnx": [1, 3, size, size]},
            "output_shape": [1, 1000],
            "input_range": [-1.0, 1.0],
            "onnx_opset": ONNX_OPSET,
            "artifacts": {},
        }
    artifacts = manifest.setdefault("artifacts", {})
    rel = ARTIFACTS[fmt]
    if _valid(entry, artifacts.get(fmt)) and _valid(entry, manifest.get("weights")):
        return entry / rel

    quiet_tensorflow()
    if fmt == "tflite":
        # From the (cached) SavedModel of the same entry.
        savedmodel = _export_locked(entry, key, inputs, name, "savedmodel", seed, size)
        manifest = read_manifest(entry) or manifest
        artifacts = manifest.setdefault("artifacts", {})
        builder = lambda tmp: _build_tflite(savedmodel, tmp)  # noqa: E731
    else:
        model = _keras_model(entry, manifest, name, seed, size)
        artifacts = manifest.setdefault("artifacts", {})
        if fmt == "savedmodel":
            builder = lambda tmp: _build_savedmodel(model, size, tmp)  # noqa: E731
        else:
            builder = lambda tmp: _build_onnx(model, size, tmp)  # noqa: E731

    tmpdir = Path(tempfile.mkdtemp(prefix=f".tmp-{fmt}-", dir=entry))
    try:
        tmp = tmpdir / rel
        log.info("building %s %s in %s", name, fmt, entry)
        builder(tmp)
        _install(tmp, entry / rel)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    artifacts[fmt] = _record(entry, rel)
    _write_manifest(entry, manifest)
    return entry / rel

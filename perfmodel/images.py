"""Input images: a deterministic generator of realistic JPEGs, or a user folder.

The study times read + pre-process + inference per image, so inputs are real JPEG files of typical
photo size (default 500x375, like many ImageNet validation images), not ready-made tensors.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from perfmodel.errors import InputFileError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def synthetic_image(index: int, width: int = 500, height: int = 375, seed: int = 0) -> np.ndarray:
    """A deterministic natural-looking RGB image (uint8, HxWx3): smooth gradients, blobs and texture."""
    rng = np.random.default_rng([seed, index])
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        a, b, p = rng.uniform(-1, 1, 3)
        img[..., c] = 110 + 60 * np.sin(a * xx / 40 + b * yy / 55 + p * 3)
    for _ in range(int(rng.integers(3, 8))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(20, min(width, height) / 2)
        color = rng.uniform(0, 255, 3)
        mask = np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)))[..., None]
        img = img * (1 - mask) + color * mask
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_synthetic_images(folder: Path, count: int, width: int = 500, height: int = 375,
                           seed: int = 0, quality: int = 90) -> list[Path]:
    """Write ``count`` deterministic JPEGs into ``folder`` (kept if already there with the same content)."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img_{seed}_{i:05d}_{width}x{height}.jpg"
        if not path.exists():
            buf = io.BytesIO()
            Image.fromarray(synthetic_image(i, width, height, seed)).save(buf, "JPEG", quality=quality)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(buf.getvalue())
            tmp.replace(path)
        paths.append(path)
    return paths


def default_images(count: int = 16, seed: int = 0) -> list[Path]:
    """``count`` synthetic JPEGs in the user cache (made once)."""
    from perfmodel.paths import cache_dir

    return write_synthetic_images(cache_dir() / "images", count, seed=seed)


def list_images(folder: Path, limit: int | None = None) -> list[Path]:
    """Image files of a user folder, sorted; clear error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"image folder {str(folder)!r} does not exist or is not a folder")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise InputFileError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {str(folder)!r}")
    return paths[:limit] if limit else paths


def read_image_bytes(path: Path) -> bytes:
    """Read an image file; clear error if it is missing."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputFileError(f"image {str(path)!r} not found") from None
    except OSError as exc:
        raise InputFileError(f"cannot read image {str(path)!r}: {exc.strerror}") from None


def decode_rgb(data: bytes, name: str = "<image>") -> np.ndarray:
    """Decode JPEG/PNG bytes to RGB uint8 HxWx3 with OpenCV; clear error on a corrupt file."""
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        raise InputFileError(f"cannot decode image {name}: not a valid JPEG/PNG/BMP file (or corrupt)")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]

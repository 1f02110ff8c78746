"""NumPy ``.npy`` (memory-mapped for pixel-box reads) and PNG formatters."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..exposure import check_bbox
from .base import Formatter


class NpyFormatter(Formatter):
    format = "npy"
    extension = ".npy"
    in_memory = True
    direct_parameters = frozenset({"bbox"})

    def write(self, obj: Any, path: Path, storage_class: str) -> None:
        path.write_bytes(self.to_bytes(obj, storage_class))

    def to_bytes(self, obj: Any, storage_class: str) -> bytes:
        buf = io.BytesIO()
        np.save(buf, np.asarray(obj), allow_pickle=False)
        return buf.getvalue()

    def from_bytes(self, data: bytes, storage_class: str) -> Any:
        return np.load(io.BytesIO(data), allow_pickle=False)

    def read(self, path: Path, storage_class: str, *, component: str | None = None,
             parameters: Mapping[str, Any] | None = None) -> Any:
        if parameters and "bbox" in parameters:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            x0, y0, x1, y1 = check_bbox(parameters["bbox"], arr.shape)
            return np.array(arr[..., y0:y1, x0:x1])
        return np.load(path, allow_pickle=False)


def _to_rgb(obj: Any) -> np.ndarray:
    """A 2-D image becomes 8-bit grey with a 1-99 percentile stretch (a preview); RGB(A)
    arrays pass through (floats in [0, 1] are scaled)."""
    arr = np.asarray(obj)
    if arr.ndim == 2:
        finite = arr[np.isfinite(arr)]
        lo, hi = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
        scaled = np.clip((arr - lo) / ((hi - lo) or 1.0), 0, 1)
        return (np.nan_to_num(scaled) * 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        if arr.dtype != np.uint8:
            arr = (np.clip(arr, 0, 1) * 255).astype(np.uint8)
        return arr
    raise ValueError(f"PNG needs a 2-D image or an RGB(A) array, got shape {arr.shape}")


class PngFormatter(Formatter):
    """Writes a matplotlib Figure or an array; reads back a uint8 array (H, W, 3|4)."""

    format = "png"
    extension = ".png"

    def write(self, obj: Any, path: Path, storage_class: str) -> None:
        if hasattr(obj, "savefig"):
            obj.savefig(path, format="png")
            return
        from PIL import Image

        Image.fromarray(_to_rgb(obj)).save(path, format="PNG")

    def read(self, path: Path, storage_class: str, *, component: str | None = None,
             parameters: Mapping[str, Any] | None = None) -> Any:
        from PIL import Image

        with Image.open(path) as img:
            return np.asarray(img)

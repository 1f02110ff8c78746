"""Sky background: a smooth mesh estimate (sep's SExtractor-style background) subtracted.

Masked pixels (defects, saturation, cosmic rays) are excluded from the mesh statistics so a
bleed trail does not lift the sky around it.
"""

from __future__ import annotations

import numpy as np
import sep

from alertbutler.imaging.exposure import Exposure, Mask


def estimate_background(exposure: Exposure, *, box: int = 128, filter_size: int = 3) -> np.ndarray:
    """The background model (same shape as the image), from unmasked pixels."""
    image = np.ascontiguousarray(exposure.image, dtype=np.float32)
    bad = np.ascontiguousarray(
        ((exposure.mask & (Mask.BAD | Mask.SAT | Mask.CR | Mask.NO_DATA)) != 0)
        | ~np.isfinite(exposure.variance))
    bkg = sep.Background(image, mask=bad, bw=box, bh=box, fw=filter_size, fh=filter_size)
    return bkg.back(dtype=np.float32)


def subtract_background(exposure: Exposure, *, box: int = 128, filter_size: int = 3) -> float:
    """Subtract the background in place; returns its mean level (for metrics)."""
    back = estimate_background(exposure, box=box, filter_size=filter_size)
    exposure.image -= back
    level = float(back.mean())
    exposure.metadata["background_mean"] = level
    return level

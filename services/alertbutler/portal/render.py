"""Images for the portal: light curves as SVG and cutouts as PNG, drawn server-side.

Server-side drawing keeps the pages free of JavaScript plotting libraries and lets the light
curve be fetched, cached and linked like any image. Cutouts are shown with a z-scale interval
and an asinh stretch (astropy.visualization): difference images are mostly noise around zero
with one bright or negative source, which a linear min-max stretch would flatten.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Colour-blind-safe band colours (Okabe-Ito), with a marker each so colour is not the only cue.
BAND_STYLE = {"u": ("#0072B2", "v"), "g": ("#009E73", "o"), "r": ("#D55E00", "s"),
              "i": ("#CC79A7", "D"), "z": ("#E69F00", "^"), "y": ("#000000", "P")}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def light_curve_svg(sources: Sequence[Mapping[str, Any]],
                    forced: Sequence[Mapping[str, Any]], *, title: str) -> bytes:
    """Difference-image PSF flux against time, per band: filled markers for detections
    (DiaSources), open ones for forced photometry."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bands = sorted({str(r.get("band") or "?") for r in [*sources, *forced]})
    for band in bands:
        colour, marker = BAND_STYLE.get(band, ("#555555", "x"))
        for rows, filled, what in ((sources, True, "detections"),
                                   (forced, False, "forced")):
            pts = [(r["midpointMjdTai"], r["psfFlux"], r.get("psfFluxErr"))
                   for r in rows if str(r.get("band") or "?") == band
                   and _finite(r.get("psfFlux")) and _finite(r.get("midpointMjdTai"))]
            if not pts:
                continue
            t, f, e = zip(*pts, strict=True)
            err = [x if _finite(x) else 0.0 for x in e]
            ax.errorbar(t, f, yerr=err, fmt=marker, color=colour, ms=6, capsize=2,
                        mfc=colour if filled else "white", label=f"{band} {what}",
                        zorder=3 if filled else 2)
    ax.axhline(0.0, color="#888888", lw=0.8)
    ax.set_xlabel("MJD (TAI)")
    ax.set_ylabel("difference PSF flux (nJy)")
    ax.set_title(title)
    if bands:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    return buf.getvalue()


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def cutout_png(data: bytes, *, scale: int = 3) -> bytes:
    """A cutout's flux plane as a greyscale PNG, z-scaled and asinh-stretched, each pixel
    drawn as ``scale`` x ``scale`` pixels (stamps are only 30-100 px on a side)."""
    from astropy.visualization import AsinhStretch, ImageNormalize, ZScaleInterval

    from alertbutler.alerts.cutouts import read_cutout

    flux = np.asarray(read_cutout(data).flux, dtype=float)
    flux = np.where(np.isfinite(flux), flux, np.nanmedian(flux) if np.isfinite(flux).any()
                    else 0.0)
    norm = ImageNormalize(flux, interval=ZScaleInterval(), stretch=AsinhStretch(0.1))
    scaled = np.clip(np.asarray(norm(flux).filled(0.0), dtype=float), 0.0, 1.0)
    scaled = np.kron(scaled[::-1], np.ones((scale, scale)))  # north up, as FITS viewers show
    plt = _pyplot()
    buf = io.BytesIO()
    plt.imsave(buf, scaled, cmap="gray", vmin=0.0, vmax=1.0, format="png")
    return buf.getvalue()

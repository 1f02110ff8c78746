"""Forced PSF photometry at given sky positions (known DiaObjects), on any exposure.

The position is not refitted: the flux at a fixed place is what a light curve needs, and a
fit would drift toward noise peaks for faint or absent sources.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from alertbutler.imaging.exposure import Exposure, Mask
from alertbutler.imaging.measurement import psf_flux
from alertbutler.imaging.psf import PsfModel


def forced_photometry(exposure: Exposure, psf: PsfModel, ra: np.ndarray, dec: np.ndarray,
                      ids: np.ndarray | None = None) -> Table:
    """PSF flux and error (nJy if the exposure is calibrated) at each (ra, dec), degrees.

    Positions off the image get NaN fluxes and ``flag_off_image``; a stamp that leaves the
    image or touches missing template data is ``flag_edge``.
    """
    ra = np.atleast_1d(np.asarray(ra, float))
    dec = np.atleast_1d(np.asarray(dec, float))
    if ra.shape != dec.shape:
        raise ValueError(f"ra and dec differ in length: {ra.shape} vs {dec.shape}")
    ids = np.arange(len(ra)) if ids is None else np.asarray(ids)
    calib = exposure.photo_calib or 1.0
    ny, nx = exposure.shape
    if len(ra):
        x, y = exposure.wcs.all_world2pix(ra, dec, 0)
    else:
        x = y = np.zeros(0)
    flux = np.full(len(ra), np.nan)
    err = np.full(len(ra), np.nan)
    edge = np.zeros(len(ra), bool)
    off = ~((x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5))
    for i in np.nonzero(~off)[0]:
        f, e, _, msk, clipped = psf_flux(exposure, psf, x[i], y[i])
        flux[i], err[i] = f * calib, e * calib
        edge[i] = bool(clipped or np.any(msk & (Mask.EDGE | Mask.NO_DATA)))
    table = Table({"id": ids, "ra": ra, "dec": dec, "x": x, "y": y, "psf_flux": flux,
                   "psf_flux_err": err, "flag_edge": edge | off, "flag_off_image": off})
    table.meta["flux_unit"] = "nJy" if exposure.photo_calib else "count"
    return table

"""The central repository the workers preload from: calibrations, templates, the sky map.

The layout is the contract between whoever fills the central repo (today: the main job, from
the simulator) and :mod:`alertbutler.prompt.preload`:

* dimension records: the instrument, its detectors (with their size) and physical filters;
* ``bias``, ``dark``, ``defects`` {instrument, detector} and ``flat`` {instrument, detector,
  physical_filter}: calibrations certified in the CALIBRATION collection
  ``<instrument>/calib`` for their validity range;
* ``template`` {band, tract, patch}: deep templates (nJy image, variance, WCS, PSF FWHM in the
  metadata) in the RUN ``templates/deep``. While the butler's universe has no tract/patch
  dimensions, a template is ``template`` {band} in a RUN of its own per patch,
  ``templates/deep/t<tract>p<patch>`` (:func:`template_location` hides which);
* ``skyMap`` {}: the tracts' geometry (centre, pixel scale, patch size, margin, patches per
  side), so a worker can tell which patches cover a detector's footprint.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.time import Time

from alertbutler.butler import Butler, Exposure, Timespan

if TYPE_CHECKING:
    from alertbutler.sim import Simulator

TEMPLATE_RUN = "templates/deep"
SKYMAP_RUN = "skymaps"
CALIB_TYPES = {"bias": "Image", "dark": "Image", "defects": "Mask"}


def calib_collection(instrument: str) -> str:
    return f"{instrument}/calib"


def _has_patches() -> bool:
    from alertbutler.butler import UNIVERSE

    return "tract" in UNIVERSE and "patch" in UNIVERSE


def template_location(band: str, tract: int, patch: int) -> tuple[dict[str, Any], str]:
    """(data ID, RUN collection) of one template patch."""
    if _has_patches():
        return {"band": band, "tract": int(tract), "patch": int(patch)}, TEMPLATE_RUN
    return {"band": band}, f"{TEMPLATE_RUN}/t{int(tract)}p{int(patch)}"


def register_types(butler: Butler) -> None:
    """Dataset types of the central repo (idempotent)."""
    for name, storage in CALIB_TYPES.items():
        butler.register_dataset_type(name, ["instrument", "detector"], storage,
                                     is_calibration=True)
    butler.register_dataset_type("flat", ["instrument", "detector", "physical_filter"], "Image",
                                 is_calibration=True)
    butler.register_dataset_type("template",
                                 ["band", "tract", "patch"] if _has_patches() else ["band"],
                                 "Exposure")
    butler.register_dataset_type("skyMap", [], "StructuredDataDict")


def _mjd(mjd_tai: float) -> Time:
    return Time(mjd_tai, format="mjd", scale="tai")


def build_central_repo(root: Path, sim: Simulator, *, detectors: list[int] | None = None) -> Path:
    """Fill a new central repo at ``root`` from a :class:`alertbutler.sim.Simulator`."""
    camera = sim.camera
    dets = list(camera.detectors if detectors is None else detectors)
    instrument = camera.name
    with Butler.create(root, run=f"{instrument}/calib/run") as butler:
        register_types(butler)
        butler.insert_dimension_records("instrument", [
            {"instrument": instrument, "n_detectors": camera.n_detectors}])
        butler.insert_dimension_records("detector", [
            {"instrument": instrument, "detector": d, "full_name": f"D{d:03d}",
             "nx": camera.nx, "ny": camera.ny} for d in camera.detectors])
        butler.insert_dimension_records("physical_filter", [
            {"instrument": instrument, "physical_filter": b, "band": b}
            for b in sim.night.bands])
        collection = calib_collection(instrument)
        for d in dets:
            cal = sim.calibs(d)
            span = Timespan.of(_mjd(cal.valid_from_mjd), _mjd(cal.valid_to_mjd))
            refs = [
                butler.put(cal.bias.astype(np.float32), "bias", instrument=instrument,
                           detector=d),
                butler.put(cal.dark.astype(np.float32), "dark", instrument=instrument,
                           detector=d),
                butler.put(cal.defects.astype(np.int32), "defects", instrument=instrument,
                           detector=d),
            ]
            refs += [butler.put(flat.astype(np.float32), "flat", instrument=instrument,
                                detector=d, physical_filter=band)
                     for band, flat in cal.flats.items()]
            butler.certify(collection, refs, span)
        tracts = [sim.tract(field).to_record() for field in sim.fields]
        butler.put({"tracts": tracts}, "skyMap", {}, run=SKYMAP_RUN)
        for field, band, patch in sim.needed_templates():
            p = sim.template(field, band, patch)
            exposure = Exposure(image=p.image, variance=p.variance, mask=None, wcs=p.wcs,
                                metadata={"PSFFWHM": float(p.psf_fwhm_arcsec), "BUNIT": "nJy"})
            data_id, run = template_location(band, field, patch)
            butler.put(exposure, "template", data_id, run=run)
    return root

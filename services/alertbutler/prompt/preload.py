"""Preload: the calibrations and templates of one visit-detector, central repo -> local repo.

Before the raw arrives a worker pulls, through the butler, the calibrations certified for the
visit's time and the template patches covering the predicted footprint
(``Butler.transfer_from``, by hard link when both repos share a file system, else by copy;
datasets already local are not transferred again). What was read is cached in memory by
dataset id, enough for the calibrations of the detectors a worker serves to survive each
visit's new flat and templates.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.time import Time

from alertbutler.butler import Butler, DatasetRef, Exposure, MissingCollectionError
from alertbutler.imaging.geometry import TractGeometry
from alertbutler.prompt.central import SKYMAP_RUN, calib_collection, template_location
from alertbutler.prompt.errors import MissingInputError
from alertbutler.prompt.events import WorkItem
from alertbutler.prompt.geometry import CameraGeometry

CALIBS = ("bias", "dark", "defects")


@dataclass(frozen=True)
class Inputs:
    """Calibrations and templates of one visit-detector, read from the local repo."""

    bias: np.ndarray
    dark: np.ndarray
    flat: np.ndarray
    defects: np.ndarray
    templates: tuple[Exposure, ...]  # nJy image, variance, wcs, metadata


class Preloader:
    """Finds a visit-detector's inputs in the central repo and brings them to the local one.

    ``transfer``: "hardlink" falls back to "copy" for good at the first cross-device link.
    """

    def __init__(self, *, central: Butler, local: Butler, geometry: CameraGeometry,
                 transfer: str = "hardlink", cache_size: int = 32) -> None:
        self.central = central
        self.local = local
        self.geometry = geometry
        self.transfer = transfer
        self._cache: OrderedDict[uuid.UUID, Any] = OrderedDict()
        self._cache_size = cache_size
        self._skymap: list[TractGeometry] | None = None

    def preload(self, item: WorkItem) -> Inputs:
        """Calibrations valid at mid-exposure and templates of the predicted footprint."""
        when = Time(item.start_time + 0.5 * item.duration / 86400.0, format="mjd", scale="tai")
        collection = calib_collection(item.instrument)
        refs: dict[str, DatasetRef] = {}
        for name in (*CALIBS, "flat"):
            data_id: dict[str, str | int] = {"instrument": item.instrument,
                                             "detector": item.detector}
            if name == "flat":
                data_id["physical_filter"] = item.band
            ref = self.central.find_dataset(name, data_id, collections=collection,
                                            timespan=when)
            if ref is None:
                raise MissingInputError(f"{item.label}: no {name} certified in {collection} "
                                        f"at MJD {when.mjd:.5f}", visit=item.visit,
                                        detector=item.detector)
            refs[name] = ref
        templates = self.template_refs(item)
        if not templates:
            raise MissingInputError(f"{item.label}: no {item.band} template covers the "
                                    "predicted footprint", visit=item.visit,
                                    detector=item.detector)
        wanted = [*refs.values(), *templates]
        try:
            self.local.transfer_from(self.central, wanted, calibration_collections=[collection],
                                     transfer=self.transfer)
        except OSError:  # a hard link across file systems: copy instead, from now on
            if self.transfer == "copy":
                raise
            self.transfer = "copy"
            self.local.transfer_from(self.central, wanted, calibration_collections=[collection],
                                     transfer="copy")
        return Inputs(bias=self._get(refs["bias"]), dark=self._get(refs["dark"]),
                      flat=self._get(refs["flat"]), defects=self._get(refs["defects"]) != 0,
                      templates=tuple(self._get(r) for r in templates))

    def _get(self, ref: DatasetRef) -> Any:
        if ref.id in self._cache:
            self._cache.move_to_end(ref.id)
            return self._cache[ref.id]
        obj = self.local.get(ref)
        self._cache[ref.id] = obj
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return obj

    def template_refs(self, item: WorkItem) -> list[DatasetRef]:
        """The central repo's template patches that overlap the item's predicted footprint."""
        if self._skymap is None:
            self._skymap = [TractGeometry.from_record(t) for t in self.central.get(
                "skyMap", {}, collections=SKYMAP_RUN)["tracts"]]
        corners = self.geometry.camera.detector_corners(item.detector, item.ra, item.dec,
                                                        item.camera_angle, margin=64.0)
        found: list[DatasetRef] = []
        for tract in self._skymap:
            if not tract.overlaps(corners[:, 0], corners[:, 1]):
                continue
            for patch in tract.patches_covering(corners[:, 0], corners[:, 1]):
                data_id, run = template_location(item.band, tract.field, patch)
                try:
                    ref = self.central.find_dataset("template", data_id, collections=run)
                except MissingCollectionError:
                    ref = None
                if ref is not None:
                    found.append(ref)
        return found

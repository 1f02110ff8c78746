"""What a visit-detector leaves in the repositories besides its alerts.

``calexp`` and ``difference`` (Exposure), ``diaSourceTable`` (Catalog), ``preview`` (a PNG
of the calibrated image with the alerts circled) and ``metrics`` (YAML: counts and stage
timings), all {instrument, visit, detector}, in the RUN ``prompt/<instrument>/outputs``.
They are put into the worker's local repo, then transferred into the central repo
(:class:`OutputExporter`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.table import Table

from alertbutler.butler import Butler, DatasetRef, Exposure, IdGenerationMode

if TYPE_CHECKING:
    from alertbutler import imaging
    from alertbutler.prompt.science import Result

DIMENSIONS = ["instrument", "visit", "detector"]
OUTPUT_TYPES = {"calexp": "Exposure", "difference": "Exposure", "diaSourceTable": "Catalog",
                "preview": "Plot", "metrics": "StructuredDataDict"}
_TABLE_COLUMNS = ("diaSourceId", "diaObjectId", "visit", "detector", "midpointMjdTai", "ra",
                  "dec", "x", "y", "psfFlux", "psfFluxErr", "snr", "scienceFlux",
                  "templateFlux", "isNegative", "isDipole", "pixelFlags_edge",
                  "pixelFlags_saturated", "pixelFlags_bad")


#: one output to export: (object, dataset type, data ID)
OutputItem = tuple[Any, str, dict[str, Any]]


def output_run(instrument: str) -> str:
    return f"prompt/{instrument}/outputs"


def register_output_types(butler: Butler) -> None:
    for name, storage in OUTPUT_TYPES.items():
        butler.register_dataset_type(name, DIMENSIONS, storage)


def to_butler_exposure(exposure: imaging.Exposure) -> Exposure:
    """The imaging library's exposure as the butler's (mask widened for its formatter)."""
    psf = exposure.psf
    kernel = None if psf is None else np.asarray(psf.at(0.0, 0.0), np.float32)
    metadata = {k: v for k, v in exposure.metadata.items()
                if isinstance(v, str | int | float | bool)}
    if exposure.photo_calib is not None:
        metadata["PHOTCALIB"] = float(exposure.photo_calib)
    return Exposure(image=exposure.image, variance=exposure.variance,
                    mask=exposure.mask.astype(np.int32), wcs=exposure.wcs, psf=kernel,
                    metadata=metadata)


def preview(image: np.ndarray, xy: Sequence[tuple[float, float]], *,
            bin_factor: int = 8) -> np.ndarray:
    """An RGB uint8 thumbnail: binned, asinh-stretched, alerts marked in red."""
    ny, nx = image.shape
    by, bx = ny // bin_factor, nx // bin_factor
    small = np.nan_to_num(image[:by * bin_factor, :bx * bin_factor]).reshape(
        by, bin_factor, bx, bin_factor).mean(axis=(1, 3))
    lo, hi = np.percentile(small, [5, 99.7])
    scaled = np.arcsinh(np.clip((small - lo) / max(hi - lo, 1e-9), 0, None) * 10) / np.arcsinh(10)
    grey = (np.clip(scaled, 0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(grey[::-1, :, None], 3, axis=2)  # row 0 at the top of the PNG
    for x, y in xy:
        cx, cy = int(x / bin_factor), by - 1 - int(y / bin_factor)
        for dy in range(-3, 4):
            for dx in range(-3, 4):
                if 2 <= dx * dx + dy * dy <= 10 and 0 <= cy + dy < by and 0 <= cx + dx < bx:
                    rgb[cy + dy, cx + dx] = (255, 40, 40)
    return rgb


def output_items(*, instrument: str, visit: int, detector: int, result: Result,
                 alerts: Sequence[Mapping[str, Any]],
                 metrics: Mapping[str, Any]) -> list[OutputItem]:
    """(object, dataset type, data ID) of every output of one visit-detector."""
    data_id = {"instrument": instrument, "visit": visit, "detector": detector}
    sources = [a["diaSource"] for a in alerts]
    table = Table({c: [s[c] for s in sources] for c in _TABLE_COLUMNS}) if sources else \
        Table(names=_TABLE_COLUMNS)
    thumb = preview(result.calexp.image, [(s["x"], s["y"]) for s in sources])
    return [
        (to_butler_exposure(result.calexp), "calexp", data_id),
        (to_butler_exposure(result.difference), "difference", data_id),
        (table, "diaSourceTable", data_id),
        (thumb, "preview", data_id),
        (dict(metrics), "metrics", data_id),
    ]


class OutputExporter:
    """Puts a visit-detector's outputs into the local repo and transfers them to the central.

    ``transfer``: "hardlink" falls back to "copy" for good at the first cross-device link.
    """

    def __init__(self, *, local: Butler, central: Butler, transfer: str = "hardlink") -> None:
        self.local = local
        self.central = central
        self.transfer = transfer
        register_output_types(local)

    def export_outputs(self, items: Sequence[OutputItem], run: str) -> list[DatasetRef]:
        """Put outputs into the local repo (deterministic ids: a re-run finds them there),
        then transfer them into the central repo."""
        refs = []
        todo = []
        for obj, dataset_type, data_id in items:
            ref = self.local.make_ref(dataset_type, data_id, run=run,
                                      id_mode=IdGenerationMode.DETERMINISTIC)
            refs.append(ref)
            if self.local.registry.get_dataset(ref.id) is None:
                todo.append((obj, ref))
        if todo:
            self.local.put_refs(todo)
        try:
            self.central.transfer_from(self.local, refs, transfer=self.transfer)
        except OSError:  # a hard link across file systems: copy instead, from now on
            self.transfer = "copy"
            self.central.transfer_from(self.local, refs, transfer="copy")
        return refs

"""A seeded, deterministic simulated survey: camera, calibrations, templates, a night of raws.

Everything is generated on demand from ``SimConfig.seed``; nothing here needs the butler.
``Simulator`` renders raws (with their ground truth), template patches and calibrations as
numpy arrays and FITS headers; ``write_night`` writes them as files; ``score`` grades a
catalog of difference-image sources against the truth.
"""

from alertbutler.sim.calibs import DetectorCalibs
from alertbutler.sim.camera import Camera
from alertbutler.sim.errors import SimError
from alertbutler.sim.files import (
    RAW_REQUIRED_KEYS,
    NightFiles,
    read_raw,
    read_template,
    write_night,
)
from alertbutler.sim.night import NEXT_VISIT_LEAD_S, NightConfig, Visit
from alertbutler.sim.scoring import Score, match, score
from alertbutler.sim.simulator import RawExposure, SimConfig, Simulator
from alertbutler.sim.sky import SkyDensity
from alertbutler.sim.templates import TemplatePatch, TractGeometry

__all__ = [
    "NEXT_VISIT_LEAD_S",
    "RAW_REQUIRED_KEYS",
    "Camera",
    "DetectorCalibs",
    "NightConfig",
    "NightFiles",
    "RawExposure",
    "Score",
    "SimConfig",
    "SimError",
    "Simulator",
    "SkyDensity",
    "TemplatePatch",
    "TractGeometry",
    "Visit",
    "match",
    "read_raw",
    "read_template",
    "score",
    "write_night",
]

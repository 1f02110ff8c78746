"""Shared fixtures: one simulated night, and helpers to feed the sim to the algorithms."""

from __future__ import annotations

import pytest

from alertbutler.imaging import IsrCalibs, TemplateImage
from alertbutler.sim import SimConfig, Simulator


def inputs(sim: Simulator, visit, detector: int):
    """(raw exposure, ISR calibrations, template images) of one visit-detector."""
    v = sim.visit(visit)
    raw = sim.raw(v, detector)
    cal = sim.calibs(detector)
    calibs = IsrCalibs(bias=cal.bias, dark=cal.dark, flat=cal.flats[v.band],
                       defects=cal.defects)
    templates = [TemplateImage(image=p.image, variance=p.variance, wcs=p.wcs)
                 for p in (sim.template(v.field, v.band, q) for q in sim.patches_for(v, detector))]
    return raw, calibs, templates


@pytest.fixture(scope="session")
def default_sim() -> Simulator:
    """The default night (4 detectors of 2k x 2k, 12 visits, g/r/i, 2 fields)."""
    return Simulator(SimConfig())

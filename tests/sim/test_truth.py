"""The ground truth: what was injected where, with difference fluxes and S/N."""

from __future__ import annotations

import numpy as np

from alertbutler.sim import SimConfig, Simulator


def test_truth_lists_variables_transients_and_movers_with_consistent_fluxes() -> None:
    sim = Simulator(SimConfig(seed=11))
    tables = [sim.raw(v, 0).truth for v in sim.visits[:4]]
    kinds = set(np.concatenate([np.asarray(t["kind"]) for t in tables]))
    assert kinds == {"variable", "transient", "mover"}
    for t in tables:
        assert np.allclose(t["diff_flux_njy"], t["flux_njy"] - t["template_flux_njy"])
        new = t["kind"] != "variable"
        assert np.all(t["template_flux_njy"][new] == 0.0)
        assert np.all(t["flux_njy"][t["kind"] == "transient"] > 0)
        assert np.all(np.sign(t["diff_snr"]) == np.sign(t["diff_flux_njy"]))
        assert np.all(t["trail_px"][t["kind"] == "mover"] > 0)
        on = t["on_detector"]
        assert np.all((t["x"][on] >= -0.5) & (t["x"][on] < 2047.5))


def test_movers_move_between_visits() -> None:
    sim = Simulator(SimConfig(seed=11))
    sky = sim.field_sky(0)
    ra0, dec0 = sky.mover_position(sim.visits[0].mid_mjd)
    ra1, dec1 = sky.mover_position(sim.visits[2].mid_mjd)
    moved = np.hypot((ra1 - ra0) * np.cos(np.radians(dec0)), dec1 - dec0) * 3600
    assert np.all(moved > 1.0)


def test_templates_hold_the_static_sky_without_transients() -> None:
    sim = Simulator(SimConfig(seed=11))
    v = sim.visits[0]
    patch = sim.patches_for(v, 0)[0]
    t = sim.template(v.field, v.band, patch)
    assert t.image.dtype == np.float32 and t.image.shape == t.variance.shape
    assert np.all(t.variance > 0)
    # low noise: the sky noise is a fifth of one visit's (depth 25)
    sky_sigma = np.sqrt(np.median(t.variance))
    assert sky_sigma == np.float32(sky_sigma)
    assert abs(sky_sigma - sim.template_noise_njy(v.band)) / sky_sigma < 0.05

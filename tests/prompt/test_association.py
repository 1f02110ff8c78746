"""Association: one-to-one, nearest first, order-independent, correct across RA 0/360."""

from __future__ import annotations

import numpy as np

from alertbutler.prompt.association import associate, summarize_object

ARCSEC = 1.0 / 3600.0


def test_matches_within_radius_and_new_objects_take_source_ids() -> None:
    obj_ids = [100, 200]
    obj_ra, obj_dec = np.array([10.0, 10.01]), np.array([-5.0, -5.0])
    src_ids = [1, 2, 3]
    src_ra = np.array([10.0 + 0.3 * ARCSEC, 10.01, 10.5])
    src_dec = np.array([-5.0, -5.0 + 2.0 * ARCSEC, -5.0])
    result = associate(src_ids, src_ra, src_dec, obj_ids, obj_ra, obj_dec, radius_arcsec=1.0)
    assert result.object_ids == (100, 2, 3)
    assert result.is_new == (False, True, True)
    assert result.n_new == 2


def test_one_to_one_nearest_wins_whatever_the_order() -> None:
    obj_ids, obj_ra, obj_dec = [7], np.array([50.0]), np.array([20.0])
    src_ra = np.array([50.0 + 0.8 * ARCSEC, 50.0 + 0.2 * ARCSEC])
    src_dec = np.array([20.0, 20.0])
    first = associate([1, 2], src_ra, src_dec, obj_ids, obj_ra, obj_dec)
    flipped = associate([2, 1], src_ra[::-1], src_dec[::-1], obj_ids, obj_ra, obj_dec)
    assert first.object_ids == (1, 7)
    assert dict(zip([2, 1], flipped.object_ids, strict=True)) == {1: 1, 2: 7}


def test_across_ra_zero() -> None:
    result = associate([1], np.array([359.99999]), np.array([0.0]),
                       [9], np.array([0.00001]), np.array([0.0]), radius_arcsec=0.1)
    assert result.object_ids == (9,)


def test_summary_is_recomputed_from_history() -> None:
    rows = [
        {"diaSourceId": 1, "midpointMjdTai": 61000.1, "ra": 10.0, "dec": 0.0, "band": "r",
         "psfFlux": 100.0, "psfFluxErr": 10.0},
        {"diaSourceId": 2, "midpointMjdTai": 61000.2, "ra": 10.0 + 2 * ARCSEC / 10,
         "dec": 0.0, "band": "r", "psfFlux": 300.0, "psfFluxErr": 10.0},
        {"diaSourceId": 3, "midpointMjdTai": 61000.3, "ra": 10.0, "dec": 0.0, "band": "g",
         "psfFlux": 50.0, "psfFluxErr": 5.0},
    ]
    obj = summarize_object(1, reversed(rows), validity_start=61000.3)
    assert obj["diaObjectId"] == 1 and obj["nDiaSources"] == 3
    assert obj["r_psfFluxNdata"] == 2 and obj["r_psfFluxMean"] == 200.0
    assert obj["g_psfFluxNdata"] == 1 and obj["g_psfFluxSigma"] is None
    assert obj["u_psfFluxNdata"] == 0 and obj["u_psfFluxMean"] is None
    assert obj["firstDiaSourceMjdTai"] == 61000.1 and obj["lastDiaSourceMjdTai"] == 61000.3
    assert abs(obj["r_psfFluxMeanErr"] - 10.0 / np.sqrt(2)) < 1e-9
    assert summarize_object(1, rows, validity_start=61000.3) == obj

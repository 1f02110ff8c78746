"""The portal's REST API over a served main-job night (``alertbutler serve``, no options)."""

from __future__ import annotations

import pytest

from alertbutler.night.main_job import MainJobResult
from tests.portal.conftest import Server

pytestmark = pytest.mark.slow


def _transient(night: MainJobResult) -> dict:
    """An alerted object with at least two detections (a light curve worth the name)."""
    return max(night.alerts, key=lambda a: (len(a["prvDiaSources"] or []),
                                            a["diaSource"]["snr"] or 0))


def test_health_and_openapi(portal: Server) -> None:
    health = portal.json("/api/health")
    assert health["status"] == "ok" and health["l1db"] == "sqlite"
    assert health["night"].endswith("mainjob") and health["live_topic"] is None
    paths = portal.json("/openapi.json")["paths"]
    assert {"/api/health", "/api/objects", "/api/objects/{object_id}", "/api/cone",
            "/api/night", "/api/live"} <= set(paths)


def test_objects_object_and_cone_search(portal: Server, portal_night: MainJobResult) -> None:
    recent = portal.json("/api/objects?limit=5")
    assert 0 < len(recent) <= 5
    assert set(recent[0]) >= {"diaObjectId", "ra", "dec", "nDiaSources"}
    times = [o["lastDiaSourceMjdTai"] for o in recent]
    assert times == sorted(times, reverse=True)

    alert = _transient(portal_night)
    oid = alert["diaSource"]["diaObjectId"]
    obj = portal.json(f"/api/objects/{oid}")
    assert obj["diaObjectId"] == oid
    ids = {s["diaSourceId"] for s in obj["diaSources"]}
    assert alert["diaSourceId"] in ids
    assert {p["diaSourceId"] for p in alert["prvDiaSources"]} <= ids  # the light curve
    assert len(obj["diaSources"]) == obj["nDiaSources"] >= 2
    assert all(s["hasCutouts"] for s in obj["diaSources"])
    assert isinstance(obj["diaForcedSources"], list)

    found = portal.json(f"/api/cone?ra={obj['ra']}&dec={obj['dec']}&radius=1")
    assert found[0]["diaObjectId"] == oid and found[0]["separation_arcsec"] < 1e-3
    # Offset by 2 arcsec in declination: inside a 3 arcsec cone, outside a 1 arcsec one.
    dec = obj["dec"] + 2.0 / 3600.0
    assert oid in [o["diaObjectId"] for o in portal.json(
        f"/api/cone?ra={obj['ra']}&dec={dec}&radius=3")]
    assert oid not in [o["diaObjectId"] for o in portal.json(
        f"/api/cone?ra={obj['ra']}&dec={dec}&radius=1")]


def test_images_night_and_bad_requests(portal: Server, portal_night: MainJobResult) -> None:
    alert = _transient(portal_night)
    oid, sid = alert["diaSource"]["diaObjectId"], alert["diaSourceId"]
    status, svg, kind = portal.get(f"/objects/{oid}/lightcurve.svg")
    assert status == 200 and kind == "image/svg+xml" and b"<svg" in svg
    for cutout in ("science", "template", "difference"):
        status, png, kind = portal.get(f"/cutouts/{sid}/{cutout}.png")
        assert status == 200 and kind == "image/png" and png.startswith(b"\x89PNG")
    night = portal.json("/api/night")
    assert night["matches"] is True and len(night["visit_detectors"]) == 6

    assert portal.get("/api/objects/12345")[0] == 404
    assert portal.get("/api/cone?ra=10&dec=95&radius=1")[0] == 422
    assert portal.get("/api/cone?ra=abc&dec=0")[0] == 422
    assert portal.get("/api/objects?limit=0")[0] == 422
    assert portal.get(f"/cutouts/{sid}/..%2Fetc.png")[0] == 404
    assert portal.get("/api/live")[0] == 503  # the night's broker is gone; nothing configured
    status, body, _ = portal.get("/cone?ra=x&dec=0")
    assert status == 400 and b"Not a cone" in body


def test_filter_check_gives_the_error_position_or_the_yield(
        portal: Server, portal_night: MainJobResult) -> None:
    from urllib.parse import quote

    from alertbutler.subscribe.filters import compile_filter

    bad = portal.json("/api/filters/check?text=" + quote("diaSource.snr >> 5"))
    assert bad["ok"] is False
    assert (bad["error"]["line"], bad["error"]["column"]) == (1, 16)
    assert bad["error"]["source_line"] == "diaSource.snr >> 5"
    text = "diaSource.snr > 20 and diaSource.band == 'g'"
    good = portal.json("/api/filters/check?text=" + quote(text))
    expected = int(compile_filter(text).keep(portal_night.alerts).sum())
    assert good["ok"] is True and 0 < good["yield"]["kept"] == expected
    assert good["yield"]["alerts"] == len(portal_night.alerts)

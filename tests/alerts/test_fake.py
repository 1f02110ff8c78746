"""The fake-alert generator: valid, deterministic, consistent."""

from __future__ import annotations

from alertbutler.alerts import decode_alert, encode_alerts
from alertbutler.alerts.cutouts import read_cutout
from alertbutler.alerts.fake import fake_alerts


def test_deterministic_unique_and_consistent() -> None:
    a = fake_alerts(40, seed=5, n_history=4, cutout_size=30, n_objects=10, cutout_pool=2)
    assert a == fake_alerts(40, seed=5, n_history=4, cutout_size=30, n_objects=10,
                            cutout_pool=2)
    assert a != fake_alerts(40, seed=6, n_history=4, cutout_size=30, n_objects=10,
                            cutout_pool=2)
    ids = [s["diaSourceId"] for r in a for s in [r["diaSource"], *r["prvDiaSources"]]]
    assert len(ids) == len(set(ids)) == 40 * 5
    assert len({r["diaObject"]["diaObjectId"] for r in a}) == 10
    for r in a:
        obj = r["diaObject"]["diaObjectId"]
        assert r["diaSourceId"] == r["diaSource"]["diaSourceId"]
        assert all(s["diaObjectId"] == obj for s in [r["diaSource"], *r["prvDiaSources"]])
        assert all(s["diaObjectId"] == obj for s in r["prvDiaForcedSources"])
        times = [s["midpointMjdTai"] for s in [*r["prvDiaSources"], r["diaSource"]]]
        assert times == sorted(times)
        assert read_cutout(r["cutoutScience"]).flux.shape == (30, 30)
    assert [decode_alert(m) for m in encode_alerts(a)] == a


def test_fixed_visit_and_no_cutouts() -> None:
    a = fake_alerts(5, visit=123, cutout_size=None, n_history=0)
    assert {r["diaSource"]["visit"] for r in a} == {123}
    assert all(r["cutoutScience"] is None and r["prvDiaSources"] == [] for r in a)

"""Watchlists: a 100,000-row CSV accepted, bad ones refused naming each line, matches from
the L1 database (through its spatial index) equal to a brute-force match, and live matches
of alerts published after the feed opened."""

from __future__ import annotations

import io
import time
import uuid
from pathlib import Path

import numpy as np
from confluent_kafka import Producer

from alertbutler.alerts import encode_alerts
from alertbutler.alerts.fake import fake_alerts
from alertbutler.kafka import create_topics
from alertbutler.l1db import L1db, rows_from_alerts
from alertbutler.portal import PortalSettings
from alertbutler.portal.tokens import TokenStore
from alertbutler.portal.watchlists import MAX_ROWS, WatchlistError, parse_csv
from tests.portal.served import Served

N = 100_000


def _unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    r, d = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)], axis=-1)


def _csv(ra: np.ndarray, dec: np.ndarray, radius: np.ndarray) -> bytes:
    buf = io.StringIO()
    buf.write("name,ra,dec,radius\n")
    for i, (r, d, rad) in enumerate(zip(ra, dec, radius, strict=True)):
        buf.write(f"w{i},{float(r)!r},{float(d)!r},{float(rad)!r}\n")
    return buf.getvalue().encode()


def test_bad_watchlists_name_their_lines() -> None:
    text = ("ra,dec,radius\n10,20,1\nabc,20,1\n\n10,95,1\n10,20,nan\n10,20\n"
            "__import__('os'),1,1\n10,20,0\n")
    try:
        parse_csv("w", text)
    except WatchlistError as exc:
        problems = dict(exc.problems)
    else:
        raise AssertionError("accepted")
    assert problems == {3: "ra 'abc' is not a number",
                        5: "dec 95 is outside [-90, 90] degrees",
                        6: "radius 'nan' is not a finite number",
                        7: "2 fields, the header has 3",
                        8: "ra \"__import__('os')\" is not a number",
                        9: "radius 0 is outside (0, 3600] arcsec"}
    cases: list[tuple[str | bytes, int, str]] = [
        ("dec,radius\n1,1\n", 1, "lacks ra"), ("", 1, "empty"),
        ("ra,dec,radius\n", 2, "no positions"),
        (b"ra,dec,radius\n1,2,\xff\n", 2, "not UTF-8")]
    for bad, line, words in cases:
        try:
            parse_csv("w", bad)
        except WatchlistError as exc:
            assert exc.problems[0][0] == line and words in exc.problems[0][1], exc.problems
        else:
            raise AssertionError(bad)
    many = "ra,dec,radius\n" + "1,1,1\n" * (MAX_ROWS + 1)
    try:
        parse_csv("w", many)
    except WatchlistError as exc:
        assert exc.problems == [(MAX_ROWS + 2, f"more than {MAX_ROWS:,} positions")]
    else:
        raise AssertionError("more than MAX_ROWS accepted")


def test_100k_watchlist_matches_history_like_brute_force(sqlite_url: str,
                                                         tmp_path: Path) -> None:
    alerts = fake_alerts(300, seed=41, n_history=1, cutout_size=None)
    db = L1db.create(sqlite_url)
    db.store(rows_from_alerts(alerts))
    objects = db.latest_objects(10_000).to_pylist()
    db.close()
    rng = np.random.default_rng(5)
    ora = np.array([o["ra"] for o in objects])
    odec = np.array([o["dec"] for o in objects])
    # every 3rd object watched from a few arcsec away, the rest of the rows spread around
    # the same patch of sky (many near misses) and over the whole sky
    near = np.arange(0, len(objects), 3)
    offset = rng.uniform(0.5, 4.0, near.size) / 3600.0
    ra = np.concatenate([ora[near], rng.uniform(ora.min() - 0.5, ora.max() + 0.5, 50_000),
                         rng.uniform(0, 360, N - 50_000 - near.size)]) % 360.0
    dec = np.concatenate([odec[near] + offset,
                          rng.uniform(odec.min() - 0.5, odec.max() + 0.5, 50_000),
                          np.degrees(np.arcsin(rng.uniform(-1, 1, N - 50_000 - near.size)))])
    dec = np.clip(dec, -90, 90)
    radius = rng.uniform(1.0, 10.0, N)
    body = _csv(ra, dec, radius)
    # brute force: every (object, row) pair within the row's radius
    sep = np.degrees(np.arccos(np.clip(_unit(ora, odec) @ _unit(ra, dec).T, -1, 1))) * 3600
    want = {(int(objects[i]["diaObjectId"]), int(j) + 1)
            for i, j in zip(*np.nonzero(sep <= radius[None, :]), strict=True)}
    assert len(want) > near.size // 2  # the test means something

    state = tmp_path / "portal"
    token = TokenStore(state / "tokens.json").create("t")
    with Served(PortalSettings(l1db_url=sqlite_url, state_dir=state)) as portal:
        status, got = portal.request("PUT", "/api/watchlists/big", body=body,
                                     content_type="text/csv", token=token)
        assert (status, got) == (200, {"name": "big", "positions": N})
        status, bad = portal.request("PUT", "/api/watchlists/big",
                                     body=body.replace(b",", b";", 7), token=token,
                                     content_type="text/csv")
        assert status == 422 and bad["problems"][0]["line"] == 1
        assert portal.request("GET", "/api/watchlists")[1] == [{"name": "big",
                                                                "positions": N}]
        started = time.monotonic()
        status, found = portal.request("GET", "/api/watchlists/big/matches")
        took = time.monotonic() - started
        assert status == 200
    pairs = {(m["diaObjectId"], m["watch"]["row"]) for m in found["matches"]}
    assert pairs == want
    assert all(m["separation_arcsec"] <= m["watch"]["radius_arcsec"] for m in found["matches"])
    print(f"100k watchlist: {len(want)} matches from history in {took:.2f} s")


def test_live_matches(kafka_bootstrap: str, sqlite_url: str, tmp_path: Path) -> None:
    topic = f"wl-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {topic: 2})
    alerts = fake_alerts(60, seed=43, n_history=1, cutout_size=None)
    watched = alerts[::4]
    text = "ra,dec,radius\n" + "".join(
        f"{float(a['diaSource']['ra'])!r},{a['diaSource']['dec'] + 1.0 / 3600:.10f},2\n"
        for a in watched)
    L1db.create(sqlite_url).close()
    state = tmp_path / "portal"
    token = TokenStore(state / "tokens.json").create("t")
    settings = PortalSettings(l1db_url=sqlite_url, state_dir=state,
                              bootstrap=kafka_bootstrap, alert_topic=topic)
    got: list[str] = []
    with Served(settings) as portal:
        assert portal.request("PUT", "/api/watchlists/live", body=text.encode(), token=token,
                              content_type="text/csv")[0] == 200
        for name, data in portal.events("/api/watchlists/live/live"):
            if name == "ready":
                producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
                for i, v in enumerate(encode_alerts(alerts)):
                    producer.produce(topic, v, partition=i % 2)
                assert producer.flush(30) == 0
            elif name == "match":
                assert abs(data["separation_arcsec"] - 1.0) < 0.01
                got.append(data["diaSourceId"])
                if len(got) >= len(watched):
                    break
    assert sorted(got) == sorted(str(a["diaSourceId"]) for a in watched)

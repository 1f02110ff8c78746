"""End markers of attempts that closed one visit-detector differently (an empty close by a
worker that gave up, then the alerts of the attempt that redid the item): the L1 database
completes the visit-detector on the attempt that published the alerts, never hides them
behind the empty close. SQLite and PostgreSQL here; the rules themselves (shared with the
Cassandra backend) below, without a database."""

from __future__ import annotations

from alertbutler.l1db import ConsumedOffsets, L1db, RowBatch, VisitDetector, VisitDetectorEnd
from alertbutler.l1db._markers import prevails, raises, settled_count

EMPTY = RowBatch.build()


def _marker(vd: VisitDetector, p: int, n: int, total: int,
            last: int | None = None) -> VisitDetectorEnd:
    return VisitDetectorEnd(visit=vd.visit, detector=vd.detector, partition=p, n_partitions=2,
                            n_alerts=n, n_alerts_total=total, topic="a", last_offset=last)


def _offsets(**by_partition: int) -> ConsumedOffsets:
    return ConsumedOffsets(consumer="g", member="m", n_messages=1, next_offsets={
        ("a", int(p[1:])): o for p, o in by_partition.items()})


def test_alerts_published_after_an_empty_close_complete_the_visit_detector(
        db_url: str) -> None:
    db = L1db.create(db_url)
    vd = VisitDetector(instrument="", visit=21, detector=3)
    empty = [_marker(vd, p, 0, 0) for p in (0, 1)]
    alerts = [_marker(vd, 0, 3, 5, last=10), _marker(vd, 1, 2, 5, last=4)]
    # the gave-up attempt's close: complete with nothing, as that attempt said
    assert db.store(EMPTY, markers=empty).completed == (vd,)
    assert db.ingested_alerts([vd]) == {vd: 0}
    # the redone item's markers: the count follows once their alerts are stored, not before
    assert db.store(EMPTY, markers=alerts[:1]).completed == ()
    assert db.store(EMPTY, markers=alerts[1:], consumed=_offsets(p0=11)).completed == ()
    assert db.ingested_alerts([vd]) == {vd: 0}
    assert db.store(EMPTY, consumed=_offsets(p1=5)).completed == (vd,)
    assert db.ingested_alerts([vd]) == {vd: 5}
    # the empty close read again (a replay) changes nothing
    assert db.store(EMPTY, markers=empty).completed == ()
    assert db.ingested_alerts([vd]) == {vd: 5}


def test_an_empty_close_after_the_alerts_never_overrides_them(db_url: str) -> None:
    db = L1db.create(db_url)
    vd = VisitDetector(instrument="", visit=22, detector=3)
    alerts = [_marker(vd, 0, 3, 3, last=7), _marker(vd, 1, 0, 3)]
    assert db.store(EMPTY, markers=alerts, consumed=_offsets(p0=8)).completed == (vd,)
    assert db.store(EMPTY, markers=[_marker(vd, p, 0, 0) for p in (0, 1)]).completed == ()
    assert db.ingested_alerts([vd]) == {vd: 3}


def test_partitions_of_two_attempts_never_add_up_to_a_completion(db_url: str) -> None:
    """The empty close of partition 1 and the alerts' marker of partition 0 recorded, the
    alerts' marker of partition 1 not yet read: not complete (it would count 3 of 5)."""
    db = L1db.create(db_url)
    vd = VisitDetector(instrument="", visit=23, detector=3)
    assert db.store(EMPTY, markers=[_marker(vd, 1, 0, 0), _marker(vd, 0, 3, 5, last=2)],
                    consumed=_offsets(p0=3, p1=9)).completed == ()
    assert db.ingested_alerts([vd]) == {}
    assert db.store(EMPTY, markers=[_marker(vd, 1, 2, 5, last=8)],
                    consumed=_offsets(p1=9)).completed == (vd,)
    assert db.ingested_alerts([vd]) == {vd: 5}


def test_the_rules_shared_by_every_backend() -> None:
    # a marker replaces the recorded one of its partition only for an attempt of more alerts
    # (or as many, more of them here): (n_alerts_total, n_alerts)
    assert prevails((5, 0), (0, 0)) and not prevails((0, 0), (5, 3))
    assert not prevails((5, 3), (5, 3)) and prevails((5, 4), (5, 3))
    assert prevails((0, 0), (None, 0)) and not prevails((None, 0), (None, 0))
    # settled: every partition in, counts adding up to the largest total named
    assert settled_count([(2, 3, 5), (2, 2, 5)]) == 5
    assert settled_count([(2, 0, 0), (2, 0, 0)]) == 0
    assert settled_count([(2, 3, 5)]) is None  # a partition missing
    assert settled_count([(2, 3, 5), (2, 0, 0)]) is None  # the rest of the 5 to come
    assert settled_count([(2, 4, 5), (2, 2, 5)]) == 6  # two re-runs, partitions apart
    assert settled_count([(2, 1, None), (2, 2, None)]) == 3  # 2.1 markers: counted
    assert settled_count([(2, 1, 1), (2, 2, 2)]) == 3  # hand made: per-partition totals
    assert settled_count([]) is None
    # a completion's count only grows
    assert raises(5, 0) and raises(0, None) and not raises(0, 5) and not raises(5, 5)

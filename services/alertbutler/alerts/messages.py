"""The non-alert messages: the nextVisit event and the end-of-visit-detector marker.

They travel in the same wire format as alerts, so a consumer tells them apart by the schema
id alone (``Decoded.kind``) without decoding the body. End markers travel on the alert
topic's control topic (:func:`control_topic`), so that an alert topic holds alerts only and
any reader of Rubin's alert schema reads all of it (docs/alerts.md, "End markers").
"""

from __future__ import annotations

import contextlib
import datetime
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from alertbutler.alerts.codec import Codec

ICRS = "ICRS"
SKY = "SKY"


def _now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


#: Suffix of the control topic that carries an alert topic's end markers.
CONTROL_SUFFIX = ".control"


def control_topic(alert_topic: str) -> str:
    """The control topic of an alert topic: where its end-of-visit-detector markers go."""
    return alert_topic + CONTROL_SUFFIX


def visit_detector_end_record(*, visit: int, detector: int, partition: int, n_partitions: int,
                              n_alerts: int, instrument: str = "",
                              n_alerts_total: int | None = None, run: str | None = None,
                              sent_at: datetime.datetime | None = None,
                              topic: str | None = None, first_offset: int | None = None,
                              last_offset: int | None = None) -> dict[str, Any]:
    """The marker record for one partition (see the schema's doc for the protocol).

    ``topic`` (the alert topic) and the offsets make it an out-of-band marker, for the control
    topic; without them it is an inline marker of the old protocol, sent to ``partition``."""
    if not 0 <= partition < n_partitions:
        raise ValueError(f"partition {partition} is not in 0..{n_partitions - 1}")
    if n_alerts < 0:
        raise ValueError(f"n_alerts must be >= 0, got {n_alerts}")
    if topic is not None and n_alerts > 0 and last_offset is None:
        raise ValueError(f"an out-of-band marker of {n_alerts} alerts on {topic}[{partition}] "
                         "needs their last offset")
    return {
        "instrument": instrument, "visit": int(visit), "detector": int(detector),
        "partition": int(partition), "n_partitions": int(n_partitions),
        "n_alerts": int(n_alerts),
        "n_alerts_total": int(n_alerts if n_alerts_total is None else n_alerts_total),
        "run": run, "topic": topic,
        "first_offset": None if first_offset is None else int(first_offset),
        "last_offset": None if last_offset is None else int(last_offset),
        "sent_at": sent_at or _now_utc(),
    }


def next_visit_record(*, instrument: str, group_id: str, ra: float, dec: float,
                      camera_angle: float, filters: str, start_time: float,
                      duration: float = 30.0, nimages: int = 1, survey: str = "",
                      visit: int | None = None, detectors: list[int] | None = None,
                      dome: str | None = "OPEN", sent: float | None = None) -> dict[str, Any]:
    """A nextVisit record pointing at (ra, dec) in ICRS with a sky position angle."""
    return {
        "instrument": instrument, "groupId": group_id, "visit": visit,
        "coordinateSystem": ICRS, "position": [float(ra), float(dec)],
        "rotationSystem": SKY, "cameraAngle": float(camera_angle), "filters": filters,
        "dome": dome, "duration": float(duration), "nimages": int(nimages), "survey": survey,
        "startTime": float(start_time), "totalCheckpoints": None,
        "private_sndStamp": time.time() if sent is None else float(sent),
        "detectors": None if detectors is None else [int(d) for d in detectors],
    }


def encode_visit_detector_end(*, visit: int, detector: int, partition: int, n_partitions: int,
                              n_alerts: int, instrument: str = "",
                              n_alerts_total: int | None = None, run: str | None = None,
                              sent_at: datetime.datetime | None = None,
                              topic: str | None = None, first_offset: int | None = None,
                              last_offset: int | None = None,
                              codec: Codec | None = None) -> bytes:
    """One end-of-visit-detector marker, framed, for one partition of the alert topic
    (out of band with ``topic`` and the offsets, inline without)."""
    record = visit_detector_end_record(
        visit=visit, detector=detector, partition=partition, n_partitions=n_partitions,
        n_alerts=n_alerts, instrument=instrument, n_alerts_total=n_alerts_total, run=run,
        sent_at=sent_at, topic=topic, first_offset=first_offset, last_offset=last_offset)
    return (codec or default_codec()).encode(record, "visit_detector_end")


def encode_next_visit(record: Mapping[str, Any], *, codec: Codec | None = None) -> bytes:
    """A nextVisit event, framed (build the record with :func:`next_visit_record`)."""
    return (codec or default_codec()).encode(record, "next_visit")


_DEFAULT: list[Codec] = []
_FACTORY: list[Callable[[], Codec]] = []
_LOCK = threading.Lock()


def default_codec() -> Codec:
    """The process-wide codec (built on first use): the fixed ids of ``schemas/ids.toml``,
    or a Schema Registry's once :func:`use_default_codec` installed one."""
    if not _DEFAULT:
        with _LOCK:
            if not _DEFAULT:
                _DEFAULT.append(_FACTORY[-1]() if _FACTORY else Codec())
    return _DEFAULT[0]


@contextlib.contextmanager
def use_default_codec(factory: Callable[[], Codec]) -> Iterator[None]:
    """Make ``factory``'s codec (built on first use) the process-wide one for the block.

    Every encode and decode that names no codec follows it, so one switch in an entry point
    (a configured registry) reaches every producer and consumer of the process.
    """
    with _LOCK:
        saved = list(_DEFAULT)
        _DEFAULT.clear()
        _FACTORY.append(factory)
    try:
        yield
    finally:
        with _LOCK:
            _FACTORY.pop()
            _DEFAULT[:] = saved

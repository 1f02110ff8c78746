"""The messages of prompt processing: the nextVisit event and the per-detector work item.

Both are frozen value types. Both travel in the Confluent wire format through the alerts
package's codec (schemas and fixed ids in ``schemas/``: ``next_visit``, and ``work_item``, the
service's own internal message), so any Kafka tool shows them like every alertbutler message.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from alertbutler.alerts.messages import next_visit_record
from alertbutler.prompt.errors import BadEventError
from alertbutler.visit_detector import VisitDetector

#: What a group id may look like: it names a directory where the raw lands, so nothing else.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}$")


def safe_name(value: str, what: str) -> str:
    """``value`` if it is safe as one path component, else ``BadEventError`` naming it."""
    if not _SAFE_NAME.match(value) or ".." in value:
        raise BadEventError(f"{what} {value!r} is not a safe name "
                            "(letters, digits, '_', '.', ':', '+', '-'; at most 128)")
    return value


@dataclass(frozen=True, kw_only=True)
class NextVisit:
    """A nextVisit event: a visit announced before its first exposure."""

    instrument: str
    group_id: str
    visit: int | None
    ra: float
    dec: float
    camera_angle: float
    band: str
    start_time: float  # MJD TAI
    duration: float
    nimages: int
    survey: str
    sent_at: float  # seconds since the Unix epoch
    detectors: tuple[int, ...] | None = None  # None: every detector of the instrument

    @classmethod
    def from_record(cls, record: dict[str, Any], *, sent_at: float | None = None) -> NextVisit:
        """From a decoded nextVisit Avro record; positions must be ICRS.

        ``sent_at`` stamps an event about to be sent (a simulator's event record has no
        ``private_sndStamp`` yet); None keeps the record's.
        """
        if record.get("coordinateSystem") != "ICRS":
            raise BadEventError(f"nextVisit {record.get('groupId')!r}: coordinateSystem "
                                f"{record.get('coordinateSystem')!r} is not ICRS")
        position = record.get("position") or []
        if len(position) != 2:
            raise BadEventError(f"nextVisit {record.get('groupId')!r}: position must hold "
                                f"two values, got {len(position)}")
        detectors = record.get("detectors")
        return cls(
            instrument=record["instrument"], group_id=record["groupId"], visit=record["visit"],
            ra=float(position[0]), dec=float(position[1]),
            camera_angle=float(record["cameraAngle"]), band=record["filters"],
            start_time=float(record["startTime"]), duration=float(record["duration"]),
            nimages=int(record["nimages"]), survey=record["survey"],
            sent_at=float(record["private_sndStamp"] if sent_at is None else sent_at),
            detectors=None if detectors is None else tuple(int(d) for d in detectors),
        )

    def to_record(self) -> dict[str, Any]:
        """The Avro record of the nextVisit schema."""
        return next_visit_record(
            instrument=self.instrument, group_id=self.group_id, visit=self.visit, ra=self.ra,
            dec=self.dec, camera_angle=self.camera_angle, filters=self.band,
            duration=self.duration, nimages=self.nimages, survey=self.survey,
            start_time=self.start_time, sent=self.sent_at, detectors=None
            if self.detectors is None else list(self.detectors))


@dataclass(frozen=True, kw_only=True)
class WorkItem:
    """One detector of one announced visit: what a worker processes and commits as a unit."""

    instrument: str
    group_id: str
    visit: int | None
    detector: int
    band: str
    ra: float
    dec: float
    camera_angle: float
    start_time: float
    duration: float
    nimages: int
    survey: str
    event_sent_at: float
    depends_on: tuple[VisitDetector, ...] = field(default=())

    @classmethod
    def for_detector(cls, event: NextVisit, detector: int,
                     depends_on: tuple[VisitDetector, ...] = ()) -> WorkItem:
        return cls(instrument=event.instrument, group_id=event.group_id, visit=event.visit,
                   detector=detector, band=event.band, ra=event.ra, dec=event.dec,
                   camera_angle=event.camera_angle, start_time=event.start_time,
                   duration=event.duration, nimages=event.nimages, survey=event.survey,
                   event_sent_at=event.sent_at, depends_on=depends_on)

    @property
    def key(self) -> bytes:
        """The Kafka key: the detector, so one detector's items keep their order."""
        return str(self.detector).encode()

    @property
    def visit_detector(self) -> VisitDetector | None:
        """The item's identity; None while the scheduler has not given the visit an id."""
        if self.visit is None:
            return None
        return VisitDetector(instrument=self.instrument, visit=self.visit,
                             detector=self.detector)

    @property
    def label(self) -> str:
        """For logs and errors (the group stands in for a visit without an id)."""
        vd = self.visit_detector
        return vd.label if vd is not None else \
            f"{self.instrument} group {self.group_id} detector {self.detector}"

    def to_record(self) -> dict[str, Any]:
        return {
            "instrument": self.instrument, "groupId": self.group_id, "visit": self.visit,
            "detector": self.detector, "band": self.band, "ra": self.ra, "dec": self.dec,
            "cameraAngle": self.camera_angle, "startTime": self.start_time,
            "duration": self.duration, "nimages": self.nimages, "survey": self.survey,
            "eventSentAt": self.event_sent_at,
            "dependsOn": [{"visit": vd.visit, "detector": vd.detector}
                          for vd in self.depends_on],
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> WorkItem:
        return cls(
            instrument=record["instrument"], group_id=record["groupId"], visit=record["visit"],
            detector=record["detector"], band=record["band"], ra=record["ra"],
            dec=record["dec"], camera_angle=record["cameraAngle"],
            start_time=record["startTime"], duration=record["duration"],
            nimages=record["nimages"], survey=record["survey"],
            event_sent_at=record["eventSentAt"],
            depends_on=tuple(VisitDetector(instrument=record["instrument"], visit=d["visit"],
                                           detector=d["detector"])
                             for d in record["dependsOn"]),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def encode_work_item(item: WorkItem) -> bytes:
    """The work item in the Confluent wire format (schema kind ``work_item``)."""
    from alertbutler.alerts import encode_message

    return encode_message(item.to_record(), "work_item")


def _decode(data: bytes | None, kind: str, what: str, expected: str) -> dict:
    """The record of a ``kind`` message; anything else raises ``BadEventError`` naming it."""
    from alertbutler.alerts import AlertFormatError, decode_message

    if data is None:
        raise BadEventError(f"{what} does not decode: the message has no value")
    try:
        decoded = decode_message(data)
    except AlertFormatError as exc:
        raise BadEventError(f"{what} does not decode: {exc}") from exc
    if decoded.kind != kind:
        raise BadEventError(f"expected {expected}, got a {decoded.kind!r} message "
                            f"(schema id {decoded.schema_id})")
    return decoded.record


def decode_work_item(data: bytes | None) -> WorkItem:
    """A work item from wire-format bytes; anything else raises ``BadEventError``."""
    return WorkItem.from_record(_decode(data, "work_item", "work item", "a work item"))


def encode_next_visit(event: NextVisit) -> bytes:
    """A nextVisit event in the wire format, through the alerts package's codec."""
    from alertbutler.alerts import encode_next_visit as encode

    return encode(event.to_record())


def decode_next_visit(data: bytes | None) -> NextVisit:
    """A nextVisit event from wire-format bytes; anything else raises ``BadEventError``."""
    return NextVisit.from_record(_decode(data, "next_visit", "nextVisit message",
                                         "a nextVisit event"))

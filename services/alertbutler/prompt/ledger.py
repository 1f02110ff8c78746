"""A night's ledger: what each visit-detector produced, had acknowledged and put on the topic.

The main job's broker is gone when ``alertbutler run`` returns (unless ``kafka.bootstrap_servers``
names a lasting one), so the counts that only Kafka knew are written down at the end of the
night, next to an Avro archive of the alerts read back from the topic. ``alertbutler night
reconcile`` and the portal compare them with the L1 database, which outlives the night.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from alertbutler.alerts.topic_positions import TopicPositions
from alertbutler.errors import AlertbutlerError
from alertbutler.prompt.status import VisitDetectorStatus

LEDGER = "ledger.json"
ALERTS = "alerts.avro"
VERSION = 1


class LedgerError(AlertbutlerError):
    """A night directory without a readable ledger."""


@dataclass(frozen=True, kw_only=True)
class VisitDetectorEntry:
    """One visit-detector's counts as the worker and Kafka reported them."""

    visit: int
    detector: int
    ok: bool
    reason: str
    worker: str
    produced: int  # alerts the worker packaged (its status record's n_alerts)
    acknowledged: int  # alerts Kafka acknowledged (alert_ids of a status with alerts_acked_at)
    on_topic: int  # distinct acknowledged alerts read back from the alert topic
    alert_ids: tuple[int, ...] = ()
    stages: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class NightLedger:
    """The ledger of one night: where its data lives and one entry per visit-detector."""

    root: Path
    alert_topic: str
    l1db_url: str
    entries: tuple[VisitDetectorEntry, ...]
    filters: tuple[str, ...] = ()  # filter services that ran (none in the main job)

    @property
    def alerts_path(self) -> Path:
        return self.root / "night" / ALERTS


def entries_from(statuses: Mapping[tuple[int, int], VisitDetectorStatus],
                 topic_alerts: Iterable[Mapping[str, Any]]) -> list[VisitDetectorEntry]:
    """Ledger entries from the final status of each visit-detector and the topic's alerts."""
    on_topic: set[int] = {int(a["diaSourceId"]) for a in topic_alerts}
    out = []
    for (visit, detector), s in sorted(statuses.items()):
        acked = s.alert_ids if s.alerts_acked_at is not None else ()
        out.append(VisitDetectorEntry(
            visit=visit, detector=detector, ok=s.ok, reason=s.reason, worker=s.worker,
            produced=s.n_alerts, acknowledged=len(acked),
            on_topic=sum(1 for i in acked if i in on_topic), alert_ids=tuple(acked),
            stages=dict(s.stages)))
    return out


def write_ledger(root: Path, *, alert_topic: str, l1db_url: str,
                 entries: Iterable[VisitDetectorEntry],
                 alerts: Iterable[Mapping[str, Any]],
                 positions: TopicPositions | None = None) -> Path:
    """Write ``<root>/night/ledger.json`` and the alerts' archive beside it (with each
    alert's topic position in its header when ``positions`` are given)."""
    from alertbutler.alerts.archive import write_alert_file

    out = root / "night"
    out.mkdir(parents=True, exist_ok=True)
    write_alert_file(out / ALERTS, alerts,
                     metadata=positions.header() if positions is not None else None)
    data = {"version": VERSION, "alert_topic": alert_topic, "l1db_url": l1db_url,
            "filters": [],
            "visit_detectors": [{**asdict(e), "alert_ids": list(e.alert_ids)}
                                for e in entries]}
    path = out / LEDGER
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)
    return path


def night_root(data_dir: str | Path, night: str | Path | None = None) -> Path:
    """The night directory: ``night`` if given (a main-job directory or its ledger file),
    else the last main-job night of the data directory (``<data_dir>/mainjob``)."""
    if night is None:
        return Path(data_dir).resolve() / "mainjob"
    path = Path(night)
    if path.name == LEDGER:
        return path.resolve().parents[1]
    return path.resolve()


def read_ledger(root: Path) -> NightLedger:
    path = root / "night" / LEDGER
    if path.is_symlink() or not path.is_file():
        raise LedgerError(f"no night ledger at {path} (run `alertbutler run` first, or name a "
                          "night directory written by it)")
    try:
        data = json.loads(path.read_text())
        entries = tuple(
            VisitDetectorEntry(**{**e, "alert_ids": tuple(int(i) for i in e["alert_ids"])})
            for e in data["visit_detectors"])
        return NightLedger(root=root, alert_topic=str(data["alert_topic"]),
                           l1db_url=str(data["l1db_url"]), entries=entries,
                           filters=tuple(data.get("filters", ())))
    except (ValueError, KeyError, TypeError) as exc:
        raise LedgerError(f"the night ledger {path} is unreadable: {exc}") from None

"""A night's reconciliation: every visit-detector's alerts counted at each hand-over.

An alert can be lost (or duplicated) between the worker that packaged it, the Kafka broker that
acknowledged it, the topic a consumer reads, the L1 database the ingester fills, and the filter
services that forward it. Counting the same alerts at each hand-over, per visit-detector, says
where one went missing; broker users cannot account for losses otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from alertbutler.l1db import L1db
from alertbutler.prompt.ledger import NightLedger


@dataclass(frozen=True, kw_only=True)
class Reconciliation:
    """One visit-detector's counts at each hand-over, and what does not add up."""

    visit: int
    detector: int
    ok: bool
    reason: str
    produced: int
    acknowledged: int
    on_topic: int
    in_l1db: int
    unexpected_in_l1db: int = 0  # L1 rows of this visit-detector that no status announced
    #: per active filter of a filter service: its alerts of this visit-detector on its topic
    forwarded: dict[str, int] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"visit {self.visit} detector {self.detector}"

    @property
    def matches(self) -> bool:
        return not self.problems


def reconcile(ledger: NightLedger, db: L1db,
              forwarded: Mapping[str, Mapping[str, int]] | None = None) -> list[Reconciliation]:
    """Compare the ledger's counts with the L1 database, one row per visit-detector.

    ``forwarded``: per filter, its forwarded alerts per ``"visit/detector"`` (as
    :func:`alertbutler.subscribe.night_yield.night_filter_yield` counts them), shown per row;
    a filter's own mismatches are that function's to name."""
    rows = []
    for e in ledger.entries:
        ids = set(db.sources_of_visit_detector(e.visit, e.detector)
                  .column("diaSourceId").to_pylist())
        announced = set(e.alert_ids)
        in_l1 = len(ids & announced)
        unexpected = len(ids - announced)
        problems = []
        if e.acknowledged != e.produced:
            problems.append(f"the worker produced {e.produced} alerts, Kafka acknowledged "
                            f"{e.acknowledged}")
        if e.on_topic != e.acknowledged:
            problems.append(f"{e.acknowledged - e.on_topic} acknowledged alerts are not on "
                            f"the topic {ledger.alert_topic!r}")
        if in_l1 != e.acknowledged:
            problems.append(f"{e.acknowledged - in_l1} acknowledged alerts are missing from "
                            "the L1 database")
        if unexpected:
            problems.append(f"{unexpected} DiaSources in the L1 database that no worker "
                            "announced")
        rows.append(Reconciliation(
            visit=e.visit, detector=e.detector, ok=e.ok, reason=e.reason, produced=e.produced,
            acknowledged=e.acknowledged, on_topic=e.on_topic, in_l1db=in_l1,
            unexpected_in_l1db=unexpected,
            forwarded={n: int(by_vd.get(f"{e.visit}/{e.detector}", 0))
                       for n, by_vd in (forwarded or {}).items()},
            problems=tuple(problems)))
    return rows

"""Which end markers of a visit-detector count, and when they complete it (every backend).

A visit-detector can be closed more than once, by attempts that disagree. A worker that gives
up on a work item (or meets bad input: a raw that came too late) closes its visit-detector
with an empty batch, whose markers say 0 alerts; if that worker dies before committing the
item, the item is delivered again and the next attempt may publish the alerts after all
(the raw is there now), with markers of their own. Taking the first marker of each partition
(as the ingester did) then completes the visit-detector on the empty close: the L1 database
says "complete, 0 alerts" while the alerts are on the topic and not (yet) stored, and whoever
trusts it (association of later visits, a night's progress) goes on without them.

Every marker carries ``n_alerts_total``, the alerts its attempt published in all; the
markers of one attempt agree on it. The rules:

1. Per partition, a marker replaces the recorded one only when its attempt published more
   alerts in all, or as many and more of them on this partition (:func:`prevails`): an
   empty close never overrides published alerts, alerts published after an empty close
   override it, and re-runs of deterministic code (same ids, keys, partitions) change
   nothing. The second key keeps two re-runs whose alerts went to different partitions
   (association saw a different history) from never adding up: each partition keeps the
   larger count, so their sum can only reach the total.
2. A visit-detector is settled when a marker of every partition is recorded and their counts
   add up to at least the largest total any of them names (:func:`settled_count`): partitions
   of an empty close beside some of a later attempt's wait for the rest of that attempt. Its
   alert offsets must also be stored (the caller checks).
3. A visit-detector completed already is completed again when a later attempt's markers
   settle with more alerts: its recorded count only grows (:func:`raises`).

Markers of the old protocol (inline, or recorded by schema 2.1) may lack the total, or (hand
made) give each partition's count as the total; they rank below any marker with a total and
settle as they always did, once every partition is in.
"""

from __future__ import annotations

from collections.abc import Iterable


def rank(n_alerts_total: int | None, n_alerts: int) -> tuple[int, int]:
    """Order of markers of one partition: by their attempt's alerts, then their own; an
    unknown total ranks lowest."""
    return (-1 if n_alerts_total is None else int(n_alerts_total), int(n_alerts))


def prevails(new: tuple[int | None, int], recorded: tuple[int | None, int]) -> bool:
    """Whether a marker ``(n_alerts_total, n_alerts)`` replaces the one recorded for its
    partition (rule 1)."""
    return rank(*new) > rank(*recorded)


#: :func:`prevails` as a SQL condition of an upsert into ``visit_detector_end``
PREVAILS_SQL = ("(COALESCE(excluded.n_alerts_total, -1), excluded.n_alerts) > "
                "(COALESCE(visit_detector_end.n_alerts_total, -1), visit_detector_end.n_alerts)")


def settled_count(recorded: Iterable[tuple[int, int, int | None]]) -> int | None:
    """The alerts of a visit-detector whose recorded markers settle it, else None (rule 2).

    ``recorded``: ``(n_partitions, n_alerts, n_alerts_total)`` of each partition's marker.
    Whether the alert offsets they name are stored is the caller's to check.
    """
    rows = list(recorded)
    if not rows or len(rows) < max(n for n, _, _ in rows):
        return None
    count = sum(n for _, n, _ in rows)
    if count < max((t for _, _, t in rows if t is not None), default=0):
        return None  # partitions of a later attempt are still to come
    return count


def raises(new_count: int, recorded_count: int | None) -> bool:
    """Whether a settled count replaces a completion already recorded (rule 3)."""
    return recorded_count is None or new_count > recorded_count

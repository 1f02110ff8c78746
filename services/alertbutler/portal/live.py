"""The live page's feed: alerts from the alert topic as server-sent events.

Each browser gets a consumer of its own, outside any consumer group (it assigns every
partition and starts at the end), so watching the page never takes partitions from, or
commits offsets for, the deployment's consumers. The first event, ``ready``, is sent once the
consumer's positions are fixed: every alert published after it reaches the page.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from alertbutler.portal.data import PortalSettings

#: fields of an alert the live page shows (the rest is on the object page)
SUMMARY_FIELDS = ("diaSourceId", "diaObjectId", "visit", "detector", "band", "ra", "dec",
                  "psfFlux", "snr", "midpointMjdTai")


#: 64-bit ids go out as strings: JavaScript numbers hold integers exactly only up to 2**53
ID_FIELDS = ("diaSourceId", "diaObjectId", "alertId")


def summary(alert: dict[str, Any]) -> dict[str, Any]:
    source = alert.get("diaSource") or {}
    out = {k: source.get(k) for k in SUMMARY_FIELDS}
    out["alertId"] = alert.get("alertId", alert.get("diaSourceId"))
    for k in ID_FIELDS:
        if out.get(k) is not None:
            out[k] = str(out[k])
    return out


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


async def alert_events(settings: PortalSettings,
                       on_alerts: Callable[[list[dict[str, Any]]], None], *,
                       watchlist: Any = None) -> AsyncIterator[str]:
    """Server-sent events: ``ready``, then one ``alert`` per alert published from now on
    (with a watchlist: one ``match`` per alert within a row's radius)."""
    from aiokafka import TopicPartition

    from alertbutler.alerts import decode_message
    from alertbutler.kafka import list_topics
    from alertbutler.kafka.factory import make_aio_consumer

    topics = await asyncio.to_thread(list_topics, settings.bootstrap,
                                     settings=settings.confluent)
    n = topics.get(settings.alert_topic, 0)
    if not n:
        yield _event("problem", {"message": f"no topic {settings.alert_topic!r} on "
                                 f"{settings.bootstrap}"})
        return
    consumer = make_aio_consumer(settings.aiokafka, settings.bootstrap,
                                 enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.alert_topic, p) for p in range(n)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the positions now, so "ready" means what it says
            await consumer.position(tp)
        yield _event("ready", {"topic": settings.alert_topic, "partitions": len(tps)})
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=200)
            if not batches:
                yield ": keep-alive\n\n"
                continue
            alerts = []
            for records in batches.values():
                for record in records:
                    try:
                        decoded = decode_message(record.value)
                    except Exception:  # not ours to judge here; the ingester dead-letters it
                        continue
                    if decoded.kind == "alert":
                        alerts.append(decoded.record)
            if alerts and watchlist is not None:
                from alertbutler.portal.watchlists import live_matches

                on_alerts(alerts)
                for alert, row, sep in await asyncio.to_thread(live_matches, watchlist,
                                                               alerts):
                    yield _event("match", {**summary(dict(alert)), "watch": row,
                                           "separation_arcsec": sep})
            elif alerts:
                on_alerts(alerts)
                for alert in alerts:
                    yield _event("alert", summary(alert))
    finally:
        await consumer.stop()


def backfill_events(settings: PortalSettings, start: object, flt: Any, *,
                    limit: int | None, idle_timeout: float | None,
                    archives: Sequence[Path] = ()) -> Iterator[str]:
    """Server-sent events of a backfill-then-live subscription (see
    :mod:`alertbutler.subscribe.backfill`): ``alert`` events (with ``phase`` history or live,
    partition and offset) kept by ``flt`` (None: all), one ``seam`` event with the offsets
    where the history ended, and ``end`` when ``limit`` alerts were sent or the live part was
    idle for ``idle_timeout`` seconds. With ``archives`` (night archives), their alerts come
    first and an ``archive_seam`` event gives the offsets where the topic takes over; an
    error after the stream began (the topic cannot continue there) is an ``error`` event.
    A sync generator: Starlette runs it in a thread."""
    from alertbutler.subscribe.backfill import Backfill
    from alertbutler.subscribe.errors import SubscribeError
    from alertbutler.subscribe.stream import default_decoder

    url = f"kafka://{settings.bootstrap}/{settings.alert_topic}"
    with Backfill(url, start=start, decoder=default_decoder(), settings=settings.confluent,
                  idle_timeout=idle_timeout, archives=archives) as sub:
        yield _event("ready", {"topic": settings.alert_topic})
        try:
            yield from _backfill_alerts(sub, flt, limit)
        except SubscribeError as exc:
            yield _event("error", {"message": str(exc)})


def _backfill_alerts(sub: Any, flt: Any, limit: int | None) -> Iterator[str]:
    sent = 0
    archive_seam_sent = not sub.archives
    for phase, batch in sub.batches(max_alerts=500):
        if not archive_seam_sent and sub.archive_seam is not None:
            archive_seam_sent = True
            yield _event("archive_seam", sub.archive_seam.as_json())
        if phase == "seam":
            assert sub.seam is not None
            yield _event("seam", sub.seam.as_json())
            continue
        mask = flt.keep([a.record for a in batch]) if flt is not None else None
        for i, alert in enumerate(batch):
            if mask is not None and not mask[i]:
                continue
            yield _event("alert", {**summary(alert.record), "phase": phase,
                                   "partition": alert.partition, "offset": alert.offset})
            sent += 1
            if limit is not None and sent >= limit:
                yield _event("end", {"sent": sent, "reason": "limit"})
                return
    yield _event("end", {"sent": sent, "reason": "idle"})

"""Backfill, then live: one subscription that serves the past and then continues with new alerts.

    with Backfill("kafka://host:9092/alerts", start="2026-12-06T02:00:00Z") as sub:
        for phase, batch in sub.batches():  # "history", one ("seam", []), then "live"
            ...

The history is a bounded read: from the offset of the start (a time is found by the messages'
own timestamps) up to each partition's high watermark taken from a fetch response when the
history read opens. Those end offsets are the **seam**: the live part is a second stream that
starts at exactly those offsets (:class:`AtOffsets`). Every message of a partition lies below
its seam offset (history) or at or above it (live), never both and never neither, whatever
arrives while the history is read or while the live part opens: no gap, no duplicate.

Why two streams and not one endless one: the history is a finished thing with a known size
(read in large batches, counted, reported: "N alerts up to offsets ..."), and the seam is the
recorded answer to "what did the past cover", which a caller (the portal's API, a test, an
operator after a crash) can state and check. A live part that cannot start at its seam (the
broker deleted the offsets, or the topic lost messages) is an error naming the partition,
never a silent jump. With a group, the history commits up to the seam when it ends, so a
restart continues live from there.

With ``archives`` (night archives, :mod:`.night_archive`) and a start that is a time or
``earliest``, the past comes first from the archives: their alerts at or after the start, up
to their recorded end offsets (the **archive seam**), then the topic's history from exactly
those offsets, then live as above. The topic's retention may have deleted everything the
archives hold; if it deleted more (the topic starts past an archive's end) that is an error
naming the partition. With a group, the archive seam is committed before the topic is read,
so a restart without a start continues on the topic from it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from alertbutler.faults import crash_point
from alertbutler.subscribe.errors import SubscribeError
from alertbutler.subscribe.night_archive import NightArchives, open_archives
from alertbutler.subscribe.positions import AtOffsets, AtTime, Earliest, parse_start
from alertbutler.subscribe.stream import AlertStream, StreamAlert, default_decoder
from alertbutler.subscribe.url import StreamURL

log = logging.getLogger(__name__)

#: crash point: the history was read to the seam (and committed with a group); live not open
CRASH_AT_SEAM = "subscribe.backfill.at-seam"
#: crash point: the archives were served (and, with a group, their seam committed); the
#: topic's history not read
CRASH_AT_ARCHIVE_SEAM = "subscribe.backfill.at-archive-seam"

Phase = Literal["history", "seam", "live"]


@dataclass(frozen=True)
class Seam:
    """Where the history ended: the first offset of each partition that the live part reads."""

    offsets: Mapping[tuple[str, int], int]
    history_alerts: int  # alerts the history read handed out

    def as_json(self) -> dict[str, Any]:
        return {"offsets": {f"{t}[{p}]": o for (t, p), o in sorted(self.offsets.items())},
                "history_alerts": self.history_alerts}


class Backfill:
    """History from ``start`` to the seam, then the live topic from the seam, as batches.

    ``options`` go to both :class:`AlertStream`\\ s (``group``, ``decoder``, ``config``,
    ``settings``, ...); ``idle_timeout`` only to the live part (the history ends at the seam).
    ``on_seam`` is called with the :class:`Seam` between the two parts. ``archives``: night
    archive paths (a night directory, its ``night/``, the file, or a data directory) serving
    the past before the topic; ``on_archive_seam`` is called with their :class:`Seam`.
    """

    def __init__(self, url: str, *, start: object, idle_timeout: float | None = None,
                 on_seam: Callable[[Seam], None] | None = None,
                 archives: Sequence[str | os.PathLike[str]] = (),
                 on_archive_seam: Callable[[Seam], None] | None = None,
                 **options: Any) -> None:
        self.url = url
        self.start = start
        self.archives = tuple(archives)
        self.on_archive_seam = on_archive_seam
        self.archive_seam: Seam | None = None
        self.idle_timeout = idle_timeout
        self.on_seam = on_seam
        self.options = options
        self.seam: Seam | None = None
        self._current: AlertStream | None = None
        self._received = 0

    @property
    def received(self) -> int:
        """Alerts read so far, both parts."""
        return self._received + (self._current.received if self._current else 0)

    @property
    def lag(self) -> int:
        return self._current.lag if self._current is not None else 0

    @property
    def stream(self) -> AlertStream | None:
        """The part being read (history, then live)."""
        return self._current

    def __enter__(self) -> Backfill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        current, self._current = self._current, None
        if current is not None:
            current.close()

    def batches(self, max_alerts: int = 500) -> Iterator[tuple[Phase, list[StreamAlert]]]:
        """``("history", batch)`` until the seam, ``("seam", [])`` once the live part is
        open at it, then ``("live", batch)`` until the live part ends (``idle_timeout``, or
        never). With archives the history begins with theirs (see the module)."""
        start = parse_start(self.start) if self.start is not None else None
        archived = self._archives() if isinstance(start, AtTime | Earliest) else None
        if archived is None:
            yield from self._topic(self.start, max_alerts)
            return
        start_ms = start.ms if isinstance(start, AtTime) else None
        decoder = self.options.get("decoder") or default_decoder()
        served = 0
        for batch in archived.batches(start_ms=start_ms, decoder=decoder,
                                      max_alerts=max_alerts):
            served += len(batch)
            self._received += len(batch)
            yield "history", batch
        self.archive_seam = Seam(dict(archived.ends), served)
        log.info("backfill: archives served to their seam; the topic from there",
                 extra={"url": self.url, "archives": archived.describe(),
                        **self.archive_seam.as_json()})
        if self.on_archive_seam is not None:
            self.on_archive_seam(self.archive_seam)
        yield from self._topic(AtOffsets.of(dict(archived.ends)), max_alerts,
                               archived=archived, start_ms=start_ms)

    def _archives(self) -> NightArchives | None:
        return open_archives(self.archives, StreamURL.parse(self.url).topics) \
            if self.archives else None

    def _topic(self, start: object, max_alerts: int, *, archived: NightArchives | None = None,
               start_ms: int | None = None) -> Iterator[tuple[Phase, list[StreamAlert]]]:
        """The topic's history from ``start`` to the seam, then live from the seam. After
        archives, alerts stamped before ``start_ms`` are left out (a partition the archives
        do not name is read from its beginning)."""
        history = AlertStream(self.url, start=start, end="end", **self.options)
        try:
            self._current = history.open()
        except SubscribeError as exc:
            if archived is None:
                raise
            raise SubscribeError(f"the topic cannot continue where the night archives "
                                 f"({archived.describe()}) end: {exc}") from None
        if archived is not None:
            archived.check_cluster(history.cluster_id())
            if history.group:  # a restart without a start continues from the archive seam
                history.commit()
            crash_point(CRASH_AT_ARCHIVE_SEAM)
        for batch in history.batches(max_alerts):
            if start_ms is not None:
                batch = [a for a in batch if a.timestamp_ms >= start_ms]
            yield "history", batch
        ends = history.ends
        assert ends is not None
        # at_end: every partition's position reached its end, so ends are the next offsets
        self.seam = Seam(dict(ends), history.received)
        self._received += history.received
        self.close()  # with a group, commits the history up to the seam
        log.info("backfill: history read to the seam; live from there",
                 extra={"url": self.url, **self.seam.as_json()})
        crash_point(CRASH_AT_SEAM)
        if self.on_seam is not None:
            self.on_seam(self.seam)
        live = AlertStream(self.url, start=AtOffsets.of(dict(ends)),
                           idle_timeout=self.idle_timeout, **self.options)
        self._current = live.open()
        yield "seam", []  # the live part reads from the seam: what arrives now is served
        for batch in live.batches(max_alerts):
            yield "live", batch

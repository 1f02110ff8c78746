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
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from alertbutler.faults import crash_point
from alertbutler.subscribe.positions import AtOffsets
from alertbutler.subscribe.stream import AlertStream, StreamAlert

log = logging.getLogger(__name__)

#: crash point: the history was read to the seam (and committed with a group); live not open
CRASH_AT_SEAM = "subscribe.backfill.at-seam"

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
    ``on_seam`` is called with the :class:`Seam` between the two parts.
    """

    def __init__(self, url: str, *, start: object, idle_timeout: float | None = None,
                 on_seam: Callable[[Seam], None] | None = None, **options: Any) -> None:
        self.url = url
        self.start = start
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
        never)."""
        history = AlertStream(self.url, start=self.start, end="end", **self.options)
        self._current = history.open()
        for batch in history.batches(max_alerts):
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

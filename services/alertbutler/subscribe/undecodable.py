"""What a subscriber does with a message it cannot decode: stop, skip, or keep it aside.

A message that was neither delivered nor explicitly skipped must never be committed past: a
group that resumes would have lost it for good, and nobody would know. So by default the
first undecodable message stops the subscriber with an error naming it, after what came
before it was delivered (and committed); ``skip`` reports and counts each one and goes on;
``deadletter:FILE`` also appends its raw bytes, with where they came from, to a JSON-lines
file that is synced before anything past them is committed.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from alertbutler.subscribe.errors import SubscribeError

if TYPE_CHECKING:
    from alertbutler.subscribe.stream import StreamAlert

Action = Literal["stop", "skip", "deadletter"]
ON_ERROR_HELP = ("what to do with a message that cannot be decoded: stop (default: exit 1, "
                 "nothing committed past it), skip (report and count each one), "
                 "deadletter:FILE (also append its raw bytes, base64, with topic, partition "
                 "and offset, to the JSON-lines FILE)")


class UndecodableError(SubscribeError):
    """A message could not be decoded and the policy is to stop there."""


@dataclass(frozen=True, slots=True)
class OnError:
    action: Action = "stop"
    path: Path | None = None

    def __str__(self) -> str:
        return f"deadletter:{self.path}" if self.path is not None else self.action


def parse_on_error(text: str | None) -> OnError:
    """``stop`` | ``skip`` | ``deadletter:FILE``; anything else is refused by name."""
    if text is None or text == "stop":
        return OnError()
    if text == "skip":
        return OnError("skip")
    kind, _, target = text.partition(":")
    if kind == "deadletter" and target:
        return OnError("deadletter", Path(target))
    raise ValueError(f"on-error {text!r}: expected stop, skip or deadletter:FILE")


def on_error_arg(text: str) -> OnError:
    """:func:`parse_on_error` for argparse (a bad value is a usage error, exit 2)."""
    import argparse

    try:
        return parse_on_error(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def offsets_before(batch: Sequence[StreamAlert], stop: int) -> dict[tuple[str, int], int]:
    """The next offset per partition after the alerts ``batch[:stop]`` (what may be
    committed when the subscriber stops at ``batch[stop]``)."""
    offsets: dict[tuple[str, int], int] = {}
    for alert in batch[:stop]:
        part = (alert.topic, alert.partition)
        offsets[part] = max(offsets.get(part, 0), alert.offset + 1)
    return offsets


class Undecodable:
    """Applies one policy to the undecodable messages of each batch, and counts them."""

    def __init__(self, policy: OnError, report: Callable[[StreamAlert, str, str], None]
                 ) -> None:
        self.policy = policy
        self.report = report  # (alert, reason, what was done) -> shown to the user
        self.count = 0
        self._fd: int | None = None

    def handle(self, batch: Sequence[StreamAlert], bad: Sequence[tuple[int, str]]
               ) -> int | None:
        """Index of the message the subscriber stops at (None: every bad one was handled)."""
        if not bad:
            return None
        if self.policy.action == "stop":
            return bad[0][0]
        lines = []
        for i, reason in bad:
            alert = batch[i]
            self.count += 1
            if self.policy.path is not None:
                lines.append(_record(alert, reason))
                self.report(alert, reason, f"kept in {self.policy.path}")
            else:
                self.report(alert, reason, "skipped")
        if lines:
            self._append(b"".join(lines))
        return None

    def error(self, batch: Sequence[StreamAlert], bad: Sequence[tuple[int, str]]
              ) -> UndecodableError:
        index, reason = bad[0]
        alert = batch[index]
        return UndecodableError(
            f"{alert.topic}[{alert.partition}] offset {alert.offset} cannot be decoded "
            f"({reason}); stopped there, nothing after it committed (use --on-error skip or "
            "--on-error deadletter:FILE to go on past such messages)")

    def _append(self, data: bytes) -> None:
        if self._fd is None:
            assert self.policy.path is not None
            try:
                self._fd = os.open(self.policy.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND
                                   | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise SubscribeError(f"dead-letter file {self.policy.path}: {exc.strerror}"
                                     ) from None
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        os.fsync(self._fd)  # before any commit past these messages

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _record(alert: StreamAlert, reason: str) -> bytes:
    row = {"topic": alert.topic, "partition": alert.partition, "offset": alert.offset,
           "timestamp_ms": alert.timestamp_ms, "error": reason,
           "key": base64.b64encode(alert.key).decode() if alert.key is not None else None,
           "value": base64.b64encode(alert.value).decode()}
    return json.dumps(row).encode() + b"\n"

"""Acknowledged produce: queue messages, wait for every delivery report, name what failed.

Every service that commits a consumed offset, or reports an alert published, may do so only
once everything it produced was acknowledged: :func:`produce_acknowledged` is that loop, in
one place, and :class:`DeliveryError` its one error. It lives here, below ``alerts/`` and the
services, so that the alert publisher, the prompt workers, the fan-out, the ingester's dead
letters and the feeds all raise the same type with the same traits (``outage``: the broker
is away or refused, not the work; ``retriable``: a later attempt may succeed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, KafkaException, Producer

from alertbutler.errors import AlertbutlerError

#: message headers as confluent-kafka takes and gives them
Headers = Sequence[tuple[str, bytes | str | None]]


class DeliveryError(AlertbutlerError, RuntimeError):
    """Some messages of a batch were not acknowledged by the broker.

    ``undelivered`` holds the idents of the messages (a diaSourceId, or the batch index for
    messages without one) that the broker did not acknowledge; every other message of the
    batch was acknowledged. ``retriable`` says whether all failures were of a kind that a
    later retry may fix; ``errors`` are the broker's error reports (a fatal one means the
    producer must be replaced).
    """

    outage = True

    def __init__(self, message: str, *, undelivered: Sequence[int | str],
                 delivered: int = 0, retriable: bool = True,
                 errors: Sequence[KafkaError] = ()) -> None:
        super().__init__(message)
        self.undelivered = tuple(undelivered)
        self.delivered = delivered
        self.retriable = retriable
        self.errors = tuple(errors)


class Outgoing(NamedTuple):
    """One message to produce; ``ident`` names it in a :class:`DeliveryError`."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    partition: int | None = None
    headers: Headers | None = None
    ident: int | str | None = None


class Delivery(NamedTuple):
    """Where the broker put an acknowledged message."""

    partition: int
    offset: int


def produce_acknowledged(producer: Producer, messages: Sequence[Outgoing], *,
                         timeout: float = 30.0,
                         progress: Callable[[int], None] | None = None) -> list[Delivery]:
    """Produce ``messages`` in order and wait until every one is acknowledged.

    Returns one :class:`Delivery` per message, in input order. Raises :class:`DeliveryError`
    naming the messages whose report was an error or did not come within ``timeout``
    seconds (a produce the client refused outright, e.g. a fenced idempotent producer, stops
    the queuing: the rest count as undelivered, and the refusal is the error's cause).
    ``progress`` is called with the count acknowledged so far, from the delivery reports.
    """
    results: list[Delivery | None] = [None] * len(messages)
    errors: dict[int, KafkaError] = {}
    acked = [0]

    def report(index: int) -> Callable[[KafkaError | None, Any], None]:
        def on_delivery(err: KafkaError | None, msg: Any) -> None:
            if err is None:
                results[index] = Delivery(msg.partition(), msg.offset())
                acked[0] += 1
                if progress is not None:
                    progress(acked[0])
            else:
                errors[index] = err
        return on_delivery

    refused: KafkaException | None = None
    for i, m in enumerate(messages):
        kwargs: dict[str, Any] = {"key": m.key, "value": m.value, "on_delivery": report(i)}
        if m.partition is not None:
            kwargs["partition"] = m.partition
        if m.headers:
            kwargs["headers"] = list(m.headers)
        try:
            while True:
                try:
                    producer.produce(m.topic, **kwargs)
                    break
                except BufferError:  # local queue full: let deliveries drain it
                    producer.poll(0.05)
        except KafkaException as exc:
            refused = exc
            break
        if (i + 1) % 1000 == 0:
            producer.poll(0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if producer.flush(min(1.0, max(0.0, deadline - time.monotonic()))) == 0:
            break
    producer.poll(0)
    missing = [i for i in range(len(messages)) if results[i] is None]
    if not missing:
        return results  # type: ignore[return-value]
    retriable = all(errors.get(i) is None or errors[i].retriable() or
                    errors[i].code() == KafkaError._MSG_TIMED_OUT for i in missing)
    causes = sorted({str(errors[i].name()) if i in errors else "no delivery report"
                     for i in missing})
    if refused is not None:
        causes.insert(0, f"refused: {refused}")
    idents: list[int | str] = []
    for i in missing:
        ident = messages[i].ident
        idents.append(i if ident is None else ident)
    shown = ", ".join(map(str, idents[:20])) + (" ..." if len(idents) > 20 else "")
    topics = sorted({messages[i].topic for i in missing})
    raise DeliveryError(
        f"{len(missing)} of {len(messages)} messages to {', '.join(map(repr, topics))} were "
        f"not acknowledged ({', '.join(causes)}): {shown}",
        undelivered=idents, delivered=len(messages) - len(missing), retriable=retriable,
        errors=[*errors.values(), *([refused.args[0]] if refused is not None and refused.args
                                    and isinstance(refused.args[0], KafkaError) else [])],
    ) from refused

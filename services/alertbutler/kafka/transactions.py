"""Does the broker hide aborted messages from ``read_committed`` readers? Ask the broker.

Exactly-once forwarding rests on one property: a message written in a transaction that
was aborted never reaches a ``read_committed`` reader. Apache Kafka has it. The embedded
Tansu broker answers every transactional request with OK and still hands aborted messages
to ``read_committed`` readers, so a successful ``init_transactions`` proves nothing, and
neither does a setting or the engine's name (a bootstrap address says nothing about the
broker behind it). The probe therefore tests the property itself, in a private topic:

1. a transactional producer writes ``aborted`` in a transaction it aborts, then
   ``committed`` in a transaction it commits (one partition, so in that order in the log);
2. a ``read_committed`` consumer reads the partition from the aborted message's offset
   until ``committed`` arrives.

Because ``committed`` lies after ``aborted`` in the log, by the time it arrives the reader
has passed the aborted one: seen means aborted messages leak, unseen means they are
hidden. The answer never rests on waiting for something not to happen. The probe costs a
topic creation and two transactions (about a second on Apache Kafka); the answer is kept
for the life of the process (:func:`transaction_support`).

Only an answer the broker gave is kept: what the reader saw, or a refusal that will not
change (credentials, an unsupported request). A broker that could not be reached says
nothing about transactions: a process started during an outage asks again until it is
back, instead of running without transactions for its whole life.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition as TP

from alertbutler.errors import AlertbutlerError
from alertbutler.kafka.access import is_refusal
from alertbutler.kafka.message import placed, value_of
from alertbutler.kafka.topics import TopicError, create_topics, delete_topics, list_topics

if TYPE_CHECKING:
    from collections.abc import Callable

    from confluent_kafka import Message

log = logging.getLogger(__name__)

PROBE_TOPIC_PREFIX = "alertbutler-txn-probe-"
#: A probe topic named this long ago is a leftover of a process killed mid-probe (a probe
#: takes seconds, and gives up after its timeout); the next probe deletes it.
STALE_PROBE_S = 3600.0


def probe_topic(nonce: str, now: float) -> str:
    """``alertbutler-txn-probe-<unix seconds>-<nonce>``: the time tells a leftover apart."""
    return f"{PROBE_TOPIC_PREFIX}{int(now)}-{nonce}"


def stale_probe_topics(names: Iterable[str], now: float) -> list[str]:
    """The probe topics named more than :data:`STALE_PROBE_S` before ``now``. Names without
    a time (named so before) are left alone: one of them may be probing now."""
    stale = []
    for name in names:
        stamp, dash, _ = name.removeprefix(PROBE_TOPIC_PREFIX).partition("-")
        if (name.startswith(PROBE_TOPIC_PREFIX) and dash and stamp.isdigit()
                and now - int(stamp) > STALE_PROBE_S):
            stale.append(name)
    return stale


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionSupport:
    """The probe's answer: whether aborted messages are hidden, and what showed it.

    ``topic`` names the private topic this probe created (empty if it could not), so a
    caller can tell its own probe from a leftover of a process killed mid-probe.
    ``settled``: the broker answered (see the module doc); False when it could not be reached
    or did not finish the probe in time, which says nothing either way.
    """

    available: bool
    reason: str
    topic: str = ""
    settled: bool = True


class TransactionProbeError(AlertbutlerError, ConnectionError):
    """The broker could not be asked whether it hides aborted messages within the wait."""

    retriable = True
    outage = True


#: refusals that will not change by asking again
_FINAL = {KafkaError.UNSUPPORTED_VERSION, KafkaError.INVALID_TRANSACTION_TIMEOUT,
          KafkaError._NOT_IMPLEMENTED, KafkaError._UNSUPPORTED_FEATURE}


def _final(exc: KafkaException) -> bool:
    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    return is_refusal(exc) or (err is not None and err.code() in _FINAL)


def probe_transactions(bootstrap: str, *, settings: Mapping[str, object] | None = None,
                       timeout: float = 60.0) -> TransactionSupport:
    """Probe the broker now (see the module doc); any refusal on the way means "no".

    ``settings`` are librdkafka keys for every client (security), without
    ``bootstrap.servers``.
    """
    nonce = uuid.uuid4().hex[:12]
    topic = probe_topic(nonce, time.time())
    common = {"bootstrap.servers": bootstrap, **(settings or {})}
    try:
        create_topics(bootstrap, {topic: 1}, settings=settings, timeout=timeout)
    except (TopicError, KafkaException) as exc:
        return TransactionSupport(available=False, settled=False,
                                  reason=f"cannot create the probe topic: {exc}")
    try:
        return replace(_probe(common, topic, nonce, timeout), topic=topic)
    except KafkaException as exc:
        return TransactionSupport(available=False, reason=f"transactions refused: {exc}",
                                  topic=topic, settled=_final(exc))
    finally:
        try:
            delete_topics(bootstrap, [topic], settings=settings, timeout=timeout)
        except (TopicError, KafkaException) as exc:  # a leftover probe topic harms nothing
            log.warning("probe topic not deleted: %s", exc, extra={"topic": topic})
        _delete_stale(bootstrap, settings, timeout)


def _delete_stale(bootstrap: str, settings: Mapping[str, object] | None,
                  timeout: float) -> None:
    """Delete the probe topics that processes killed mid-probe left behind (best effort: a
    user may see or delete only its own topics)."""
    try:
        stale = stale_probe_topics(list_topics(bootstrap, settings=settings,
                                               timeout=timeout), time.time())
        delete_topics(bootstrap, stale, settings=settings, timeout=timeout)
    except (TopicError, KafkaException) as exc:
        log.info("stale probe topics not deleted: %s", exc)
        return
    if stale:
        log.info("deleted %d stale probe topics", len(stale), extra={"topics": stale})


def _probe(common: Mapping[str, object], topic: str, nonce: str,
           timeout: float) -> TransactionSupport:
    user = common.get("sasl.username")
    txn_id = f"{user}-" if user else ""
    producer = Producer({**common, "transactional.id": f"{txn_id}alertbutler-probe-{nonce}",
                         "transaction.timeout.ms": 10_000})
    offsets: dict[bytes, int] = {}
    errors: list[str] = []

    def delivered(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err.str())
        else:
            _, _, offset = placed(msg)
            offsets[value_of(msg)] = offset

    producer.init_transactions(timeout)
    producer.begin_transaction()
    producer.produce(topic, b"aborted", on_delivery=delivered)
    producer.flush(timeout)  # written to the log before the abort
    producer.abort_transaction(timeout)
    producer.begin_transaction()
    producer.produce(topic, b"committed", on_delivery=delivered)
    producer.commit_transaction(timeout)
    producer.flush(timeout)
    if errors or b"aborted" not in offsets:
        return TransactionSupport(available=False, settled=False,
                                  reason=f"probe message not written: "
                                  f"{errors[0] if errors else 'no delivery report'}")

    consumer = Consumer({**common, "group.id": f"alertbutler-probe-{nonce}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.partition.eof": False})
    try:
        consumer.assign([TP(topic, 0, offsets[b"aborted"])])
        seen: list[bytes | None] = []
        deadline = time.monotonic() + timeout
        while b"committed" not in seen:
            if time.monotonic() > deadline:
                return TransactionSupport(available=False, settled=False, reason=(
                    f"a committed message was not readable read_committed within {timeout} s"))
            for msg in consumer.consume(num_messages=16, timeout=0.5):
                if msg.error() is None:
                    seen.append(msg.value())
    finally:
        consumer.close()
    if b"aborted" in seen:
        return TransactionSupport(available=False, reason=(
            "the broker hands aborted messages to read_committed readers"))
    return TransactionSupport(available=True, reason=(
        "aborted messages are hidden from read_committed readers"))


_cache: dict[tuple[str, tuple[tuple[str, str], ...]], TransactionSupport] = {}
_lock = threading.Lock()


def transaction_support(bootstrap: str, *, settings: Mapping[str, object] | None = None,
                        timeout: float = 60.0, wait: float = 600.0) -> TransactionSupport:
    """:func:`probe_transactions`, once per broker and settings in this process.

    A probe the broker did not answer (unreachable, too slow) is repeated for up to ``wait``
    seconds and never kept; then :class:`TransactionProbeError` (an outage: the caller's
    process exits and is restarted, rather than guess).
    """
    key = (bootstrap, tuple(sorted((k, str(v)) for k, v in (settings or {}).items()
                                   if not callable(v))))
    with _lock:  # one probe even when several threads ask at once
        if key in _cache:
            return _cache[key]
        deadline = time.monotonic() + wait
        while True:
            remaining = deadline - time.monotonic()
            support = probe_transactions(bootstrap, settings=settings,
                                         timeout=max(min(timeout, remaining), 1.0))
            if support.settled:
                break
            if time.monotonic() + 1.0 > deadline:
                raise TransactionProbeError(
                    f"cannot tell whether the broker at {bootstrap} hides aborted messages "
                    f"(probed for {wait:.0f} s): {support.reason}")
            log.warning("broker transactions not probed yet, asking again: %s",
                        support.reason, extra={"bootstrap": bootstrap})
            time.sleep(1.0)
        _cache[key] = support
        log.info("broker transactions probed", extra={
            "bootstrap": bootstrap, "available": support.available, "reason": support.reason})
        return support


class CallStuck(AlertbutlerError, KafkaException):
    """A transactional call did not return within its bound (see :func:`bounded_call`); the
    producer is still inside it and must be kept alive, never used again. An outage (the
    broker's coordinator is stale), handled where a KafkaException is."""

    outage = True


def bounded_call(call: Callable[..., object], *args: object, timeout: float) -> None:
    """``call(*args)`` in a helper thread, waited for at most ``timeout`` seconds.

    librdkafka's ``send_offsets_to_transaction`` can block far past its own timeout when its
    cached group coordinator went away (a broker restarted: librdkafka issues 5456 and 5511),
    which would freeze the caller's loop and its liveness. Raises :class:`CallStuck` (a
    ``_TIMED_OUT`` KafkaException) when the call is still running; the caller then abandons
    the producer and fences it with a new one under the same transactional id.
    """
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call(*args)
            outcome.append(None)
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=run, name="kafka-txn-call", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise CallStuck(KafkaError(KafkaError._TIMED_OUT,
                                   f"transactional call did not return within {timeout:g} s"))
    if outcome[0] is not None:
        raise outcome[0]

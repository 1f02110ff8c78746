"""Topic administration: create (idempotent), list, delete."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from alertbutler.errors import AlertbutlerError
from alertbutler.kafka.access import access_error, is_refusal


class TopicError(AlertbutlerError, RuntimeError):
    """A topic operation the broker refused."""


def _admin(bootstrap: str, settings: Mapping[str, object] | None) -> AdminClient:
    from alertbutler.kafka.factory import make_admin

    return make_admin({"bootstrap.servers": bootstrap, **(settings or {})})


def create_topics(bootstrap: str, topics: Mapping[str, int], *,
                  settings: Mapping[str, object] | None = None,
                  topic_config: Mapping[str, str] | None = None,
                  timeout: float = 30.0) -> dict[str, int]:
    """Create each topic with its number of partitions; existing topics are left alone.

    Returns the partition count of every named topic as the broker reports it, so a caller
    can see that an existing topic has fewer partitions than asked for.
    """
    bad = {name: n for name, n in topics.items()
           if isinstance(n, bool) or not isinstance(n, int) or n < 1}
    if bad:  # a 0-partition topic is "created" only after a long stall, and holds nothing
        raise ValueError(f"topics need at least 1 partition: {bad}")
    admin = _admin(bootstrap, settings)
    existing = list_topics(bootstrap, settings=settings, timeout=timeout)
    wanted = [NewTopic(name, num_partitions=n, replication_factor=1,
                       config=dict(topic_config or {}))
              for name, n in topics.items() if name not in existing]
    if wanted:
        futures = admin.create_topics(wanted, operation_timeout=timeout, request_timeout=timeout)
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
            except KafkaException as exc:
                if is_refusal(exc):
                    raise access_error(exc, settings=settings or {},
                                       doing=f"creating topic {name!r}") from None
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise TopicError(f"cannot create topic {name!r}: {exc}") from exc
    deadline = time.monotonic() + timeout
    while True:  # metadata becomes visible shortly after creation
        existing = list_topics(bootstrap, settings=settings, timeout=timeout)
        if all(existing.get(name, 0) > 0 for name in topics) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    missing = [name for name in topics if name not in existing]
    if missing:
        raise TopicError(f"topics not visible after creation: {', '.join(missing)}")
    return {name: existing[name] for name in topics}


class BrokerUnreachable(AlertbutlerError, ConnectionError):
    """No Kafka broker answered at the bootstrap address."""

    retriable = True
    outage = True


def probe_broker(bootstrap: str, *, settings: Mapping[str, object] | None = None,
                 timeout: float = 10.0) -> None:
    """One metadata request: return if a broker answers within ``timeout``, else raise
    :class:`BrokerUnreachable` naming ``bootstrap``.

    A producer would instead queue messages and report a dead broker only when its delivery
    timeout (minutes) ran out.
    """
    try:
        _admin(bootstrap, {"log_level": 0, **(settings or {})}).list_topics(timeout=timeout)
    except KafkaException as exc:
        reason = exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) \
            else str(exc)
        raise BrokerUnreachable(f"no Kafka broker answered at {bootstrap} within "
                                f"{timeout:g} s ({reason})") from None


def list_topics(bootstrap: str, *, settings: Mapping[str, object] | None = None,
                timeout: float = 10.0) -> dict[str, int]:
    """Every topic (internal ones excluded) with its partition count."""
    metadata = _admin(bootstrap, settings).list_topics(timeout=timeout)
    return {name: len(meta.partitions) for name, meta in metadata.topics.items()
            if not name.startswith("__") and meta.error is None}


def delete_topics(bootstrap: str, names: Iterable[str], *,
                  settings: Mapping[str, object] | None = None, timeout: float = 30.0) -> None:
    """Delete the named topics; a topic that does not exist is not an error."""
    names = list(names)
    if not names:
        return
    admin = _admin(bootstrap, settings)  # keep the handle alive until the futures resolve
    futures = admin.delete_topics(names, operation_timeout=timeout, request_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise TopicError(f"cannot delete topic {name!r}: {exc}") from exc

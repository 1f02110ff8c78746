"""Refusals by a secured broker, named: authentication failed, or which authorization did.

librdkafka reports a wrong password only through its error callback and keeps retrying,
and a consumer group the ACLs forbid only as "Timed out" or "Waiting for coordinator";
left alone, a client of a secured broker hangs for its whole timeout and then names the
wrong cause. :func:`probe_access` asks the broker up front, with the client's own
credentials, and :func:`access_error` turns a refusal into one sentence that names it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaError, KafkaException

from alertbutler.errors import AlertbutlerError

#: error code -> what was refused, as the message says it
REFUSALS = {
    KafkaError._AUTHENTICATION: "authentication failed",
    KafkaError.SASL_AUTHENTICATION_FAILED: "authentication failed",
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "topic authorization failed",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "group authorization failed",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "cluster authorization failed",
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "transactional id authorization failed",
}


class KafkaAccessError(AlertbutlerError, PermissionError):
    """The broker refused these credentials (authentication) or this use (authorization)."""


def is_refusal(err: KafkaError | KafkaException | BaseException) -> bool:
    """True for an authentication or authorization error."""
    code = _code(err)
    return code in REFUSALS


def access_error(err: KafkaError | KafkaException, *, settings: Mapping[str, object],
                 doing: str) -> KafkaAccessError:
    """A :class:`KafkaAccessError` saying what was refused, to whom, doing what."""
    code = _code(err)
    cause = "refused" if code is None else REFUSALS.get(code, "refused")
    user = settings.get("sasl.username") or "(no user)"
    mechanism = settings.get("sasl.mechanism") or settings.get("sasl.mechanisms") or "SASL"
    detail = err.args[0] if isinstance(err, KafkaException) and err.args else err
    text = detail.str() if isinstance(detail, KafkaError) else str(detail)
    if cause == "authentication failed" and "mechanism" in text.lower() and \
            "handshake" in text.lower():
        hint = f"the broker does not offer {mechanism} (kafka.client sasl.mechanism)"
    elif cause == "authentication failed":
        hint = f"wrong user name or password for {mechanism}"
    elif cause == "cluster authorization failed":
        hint = "the user may not write (no Write ACL on any topic, so no idempotent producer)"
    else:
        hint = "the broker's ACLs do not allow it"
    return KafkaAccessError(f"{doing}: {cause} for user {user!r}: {hint} ({text})")


def probe_access(settings: Mapping[str, object], *, topics: Iterable[str] = (),
                 group: str | None = None, timeout: float = 30.0) -> None:
    """Log in with ``settings`` and check that ``topics`` may be described and ``group``
    used; raise :class:`KafkaAccessError` naming the cause, else return. Errors that are
    not refusals are left to the caller's own client to meet and report."""
    from confluent_kafka.admin import AdminClient

    refused: list[KafkaError] = []

    def on_error(err: KafkaError) -> None:
        if err.code() in REFUSALS:
            refused.append(err)

    conf = {k: v for k, v in settings.items() if k in _ADMIN_KEYS or k.startswith(_PREFIXES)}
    # confluent-kafka's stub types the configuration's values as str | int | float, leaving out
    # the callbacks (error_cb) that librdkafka's Python binding accepts.
    admin = AdminClient({**conf, "error_cb": on_error,  # type: ignore[dict-item]
                         "log_level": 0})
    deadline = time.monotonic() + timeout
    topics = list(topics)
    while True:
        try:
            meta = admin.list_topics(topics[0] if len(topics) == 1 else None, timeout=0.5)
            break
        except KafkaException:
            admin.poll(0)  # serves error_cb, where a wrong password shows
            if refused:
                raise access_error(refused[0], settings=settings,
                                   doing="connecting to Kafka") from None
            if time.monotonic() > deadline:
                return  # unreachable: the caller's client says so in its own words
    for topic in topics:
        found = meta.topics.get(topic)
        if found is not None and found.error is not None and found.error.code() in REFUSALS:
            raise access_error(found.error, settings=settings, doing=f"reading topic {topic!r}")
    if group:
        # DescribeGroups needs the group's Describe right, as OffsetFetch does. (Not
        # list_consumer_group_offsets: confluent-kafka 2.16 segfaults when that request
        # fails with NOT_COORDINATOR, as it does on a fresh broker.)
        future = admin.describe_consumer_groups([group], request_timeout=timeout)[group]
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if is_refusal(exc):
                raise access_error(exc, settings=settings,
                                   doing=f"using consumer group {group!r}") from None
        except TimeoutError:
            pass  # no answer: the consumer meets and reports whatever it is


_ADMIN_KEYS = frozenset({"bootstrap.servers", "security.protocol", "client.id", "log_level"})
_PREFIXES = ("sasl.", "ssl.", "enable.ssl.")


def _code(err: KafkaError | KafkaException | BaseException) -> int | None:
    if isinstance(err, KafkaException) and err.args and isinstance(err.args[0], KafkaError):
        err = err.args[0]
    return err.code() if isinstance(err, KafkaError) else None

"""The root of every error alertbutler raises, and the traits callers ask instead of types.

::

    AlertbutlerError                    .retriable  .outage
    ├── ConfigError                     (configuration: a key, a value, a file)
    ├── ButlerError ── ...              (butler: data IDs, datasets, collections, imports)
    ├── AlertFormatError, CutoutError   (alert packets on the wire)
    ├── DeliveryError                   retriable, outage (the broker did not acknowledge;
    │                                   kafka.produce, also alerts' and ingest's DeadLetterError)
    ├── L1dbError ── ...                (the L1 database)
    ├── ImagingError ── ...             (pixel algorithms)
    ├── BrokerError, JvmError           (starting a broker)
    ├── TopicError, KafkaAccessError    (Kafka administration, refusals)
    ├── BrokerUnreachable               retriable, outage
    ├── SimError                        (the simulator)
    └── services: PromptError, SubscribeError, ReplayError, Deployment...

Each package keeps its own errors (mixed with the stdlib meaning, ``LookupError``,
``ValueError``...); this root lets a caller catch alertbutler's errors as one, and ask
``retriable`` (a later retry may succeed) and ``outage`` (a broker or database is away,
nothing is wrong with the work itself) instead of enumerating types. Third-party errors are
translated in one place, :func:`is_outage`.
"""

from __future__ import annotations

__all__ = ["AlertbutlerError", "is_outage", "is_retriable"]


class AlertbutlerError(Exception):
    """Base of alertbutler's errors; ``retriable`` and ``outage`` are its traits."""

    #: a later attempt of the same operation may succeed
    retriable: bool = False
    #: a broker or database is unavailable; the work itself is not at fault
    outage: bool = False


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means a broker or database is away (a failover, a restart, a full
    connection pool) rather than anything about the work being done."""
    if isinstance(exc, AlertbutlerError):
        return exc.outage
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    from confluent_kafka import KafkaException

    if isinstance(exc, KafkaException):
        return True
    import sqlalchemy.exc

    return isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError)


def is_retriable(exc: BaseException) -> bool:
    """Whether retrying the operation that raised ``exc`` may succeed."""
    if isinstance(exc, AlertbutlerError):
        return exc.retriable or exc.outage
    return is_outage(exc)

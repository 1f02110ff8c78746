"""One error root with traits: every error alertbutler raises is an ``AlertbutlerError``, and
callers ask ``outage``/``retriable`` instead of listing types."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import sqlalchemy.exc
from confluent_kafka import KafkaError, KafkaException

import alertbutler
from alertbutler.alerts import DeliveryError
from alertbutler.butler import DatasetNotFoundError
from alertbutler.config import ConfigError
from alertbutler.errors import AlertbutlerError, is_outage, is_retriable
from alertbutler.kafka.topics import BrokerUnreachable

#: control-flow signals that never leave their module (caught where they are raised)
INTERNAL = {"Unsupported", "FastReadError", "Fallback"}


def _error_classes() -> list[type[BaseException]]:
    found = []
    for info in pkgutil.walk_packages(alertbutler.__path__, "alertbutler."):
        if info.name.endswith("__main__"):
            continue  # runs the CLI when imported
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, Exception) \
                    and obj.__module__ == module.__name__:
                found.append(obj)
    return found


def test_every_public_error_has_the_common_root() -> None:
    classes = _error_classes()
    assert len(classes) > 40
    strays = sorted(f"{c.__module__}.{c.__qualname__}" for c in classes
                    if not issubclass(c, AlertbutlerError)
                    and not c.__name__.startswith("_") and c.__name__ not in INTERNAL)
    assert not strays, "errors outside AlertbutlerError: " + ", ".join(strays)


def test_stdlib_meanings_are_kept() -> None:
    assert issubclass(DatasetNotFoundError, LookupError)
    assert issubclass(ConfigError, ValueError)
    assert issubclass(BrokerUnreachable, ConnectionError)


def test_outage_is_a_trait_not_a_list_of_types() -> None:
    assert is_outage(DeliveryError("broker gone", undelivered=[1]))
    assert is_outage(BrokerUnreachable("nobody at 127.0.0.1:1"))
    assert not is_outage(ConfigError("bad key"))
    assert not is_outage(DatasetNotFoundError("no calexp"))
    assert not is_outage(ValueError("a bug"))
    # third-party errors are translated in one place
    assert is_outage(KafkaException(KafkaError(KafkaError._TRANSPORT)))
    assert is_outage(sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("down")))
    assert is_outage(TimeoutError())


def test_retriable_follows_the_instance() -> None:
    assert is_retriable(DeliveryError("x", undelivered=[1], retriable=True))
    assert not DeliveryError("x", undelivered=[1], retriable=False).retriable
    assert not is_retriable(ConfigError("bad key"))

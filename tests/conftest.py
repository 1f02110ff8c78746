"""Session fixtures shared by every test package: brokers of both engines, PostgreSQL, SQLite.

Every test that talks to Kafka takes ``kafka_bootstrap`` (or ``broker_engine``) and so runs
twice: on the embedded Tansu broker and on Apache Kafka. The summary at the end counts the
tests run on each engine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from alertbutler.broker import ENGINES, Broker, make_broker
from alertbutler.testing import (
    kafka_unavailable_reason,
    pg_unreachable_reason,
    temporary_pg_database,
)

_engine_outcomes: Counter[tuple[str, str]] = Counter()


@pytest.fixture(scope="session", params=ENGINES)
def broker_engine(request: pytest.FixtureRequest) -> str:
    """The broker engine of this run of the test: ``embedded`` or ``kafka``."""
    if request.param == "kafka":
        reason = kafka_unavailable_reason()
        if reason:
            pytest.skip(reason)
    return str(request.param)


@pytest.fixture(scope="session")
def kafka_broker(broker_engine: str, tmp_path_factory: pytest.TempPathFactory,
                 ) -> Iterator[Broker]:
    """One broker of the engine for the whole session; tests use topics with unique names."""
    log = tmp_path_factory.mktemp(f"broker-{broker_engine}") / "broker.log"
    with make_broker(broker_engine, log_file=log) as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Broker) -> str:
    return kafka_broker.bootstrap


@pytest.fixture(scope="session")
def schema_registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Confluent-compatible Schema Registry server (Apicurio, from Maven Central) for the
    session; its Confluent API's URL. Skipped only when it cannot be installed here."""
    from alertbutler.broker import BrokerError
    from alertbutler.broker.schema_registry import SchemaRegistryServer, registry_app

    try:
        registry_app()
    except BrokerError as exc:
        pytest.skip(str(exc))
    log = tmp_path_factory.mktemp("schema-registry") / "registry.log"
    with SchemaRegistryServer(log_file=log) as server:
        yield server.url


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A throw-away PostgreSQL database for the session, dropped at the end."""
    reason = pg_unreachable_reason()
    if reason:
        pytest.skip(reason)
    with temporary_pg_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A temporary SQLite database file."""
    return f"sqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on SQLite and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    reason = pg_unreachable_reason()
    if reason:
        pytest.skip(reason)
    with temporary_pg_database() as url:
        yield url


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    callspec = getattr(item, "callspec", None)
    engine = callspec.params.get("broker_engine") if callspec else None
    if engine and (report.when == "call" or report.skipped):
        _engine_outcomes[(str(engine), report.outcome)] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _engine_outcomes:
        return
    terminalreporter.section("tests per broker engine")
    for engine in ENGINES:
        counts = {o: n for (e, o), n in _engine_outcomes.items() if e == engine}
        terminalreporter.write_line(
            f"{engine}: " + ", ".join(f"{n} {o}" for o, n in sorted(counts.items())))


@pytest.fixture(scope="session")
def cassandra_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real 3-node Apache Cassandra cluster on 127.0.0.1-3, started once per session when
    a test asks for it (minutes on a busy machine) and stopped at the end."""
    from alertbutler.l1db.cassandra import CassandraCluster, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(f"Apache Cassandra cannot run here: {reason}")
    with CassandraCluster(nodes=3, data_dir=tmp_path_factory.mktemp("cassandra")) as cluster:
        yield cluster


@pytest.fixture
def cassandra_url(cassandra_cluster: object) -> str:
    """A new keyspace (replication factor 3) on the session's Cassandra cluster."""
    import uuid

    return cassandra_cluster.url(f"t_{uuid.uuid4().hex[:16]}")  # type: ignore[attr-defined]

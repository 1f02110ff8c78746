"""Fixtures of the ingester tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alertbutler.testing import pg_unreachable_reason, temporary_pg_database


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A PostgreSQL database of this test's own (the session one is shared), dropped after."""
    reason = pg_unreachable_reason()
    if reason:
        pytest.skip(reason)
    with temporary_pg_database("alertbutler_ingest") as url:
        yield url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The crash test's Cassandra case runs on the embedded broker only: what it tests is the
    L1 backend (the broker engines are both covered by its SQL cases), and each run is a
    quarter of an hour of a 3-node cluster on a 2-core machine."""
    dropped = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("backend") == "cassandra" and params.get("broker_engine") == "kafka":
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]

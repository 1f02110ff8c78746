"""The L1 database's API tests run on SQLite, PostgreSQL and a 3-node Cassandra cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alertbutler.testing import pg_unreachable_reason, temporary_pg_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres),
                        pytest.param("cassandra", marks=pytest.mark.cassandra)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on SQLite, a fresh PostgreSQL database and a fresh Cassandra keyspace."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    if request.param == "cassandra":
        yield request.getfixturevalue("cassandra_url")
        return
    reason = pg_unreachable_reason()
    if reason:
        pytest.skip(reason)
    with temporary_pg_database() as url:
        yield url

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

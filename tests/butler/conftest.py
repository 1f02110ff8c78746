"""Butler fixtures: every repo-backed test runs on SQLite and on PostgreSQL.

The PostgreSQL variant gives each test its own *schema* (via ``search_path`` in the URL) in
the session's throw-away database: the same isolation as a fresh database, at a fraction
of the cost of CREATE DATABASE on this shared machine.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from alertbutler.butler import Butler
from alertbutler.butler.testing import populate


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """"" (SQLite in the repo root, the default) or a PostgreSQL URL with a fresh schema."""
    if request.param == "sqlite":
        yield ""
        return
    pg_url: str = request.getfixturevalue("pg_url")
    schema = f"butler_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.engine.make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def butler(tmp_path: Path, registry_url: str) -> Iterator[Butler]:
    b = Butler.create(tmp_path / "repo", registry_url=registry_url, run="test/run")
    populate(b)
    yield b
    b.close()

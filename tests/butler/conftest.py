"""Butler fixtures: every repo-backed test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alertbutler.butler import Butler
from alertbutler.butler.testing import populate


@pytest.fixture
def registry_url(db_url: str) -> str:
    """"" (SQLite in the repo root, the default) or the throw-away PostgreSQL URL."""
    return "" if db_url.startswith("sqlite") else db_url


@pytest.fixture
def butler(tmp_path: Path, registry_url: str) -> Iterator[Butler]:
    b = Butler.create(tmp_path / "repo", registry_url=registry_url, run="test/run")
    populate(b)
    yield b
    b.close()

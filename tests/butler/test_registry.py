"""Repository creation, schema versions, dataset types and collections (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from alertbutler.butler import (
    Butler,
    CollectionType,
    CollectionTypeError,
    ConflictingDefinitionError,
    DatasetType,
    MissingCollectionError,
    MissingDatasetTypeError,
    RepositoryError,
    SchemaVersionError,
)


def test_create_then_open_with_default_run_and_collections(butler: Butler) -> None:
    butler.register_dataset_type("metrics", ["visit", "detector"], "StructuredDataDict")
    again = Butler(butler.root, collections=["test/run"])
    try:
        assert again.get_dataset_type("metrics").storage_class == "StructuredDataDict"
        assert again.collections == ["test/run"]
        assert again.run is None
    finally:
        again.close()


def test_create_twice_is_refused(butler: Butler) -> None:
    with pytest.raises(RepositoryError, match="already exists"):
        Butler.create(butler.root)


def test_open_non_repo_is_clear(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="not a butler repository"):
        Butler(tmp_path)


def test_incompatible_schema_version_is_a_clear_error(butler: Butler) -> None:
    table = butler.registry.tables["attributes"]
    with butler.registry.transaction() as conn:
        conn.execute(table.update().where(table.c.name == "schema_version").values(value="0"))
    with pytest.raises(SchemaVersionError, match="schema version '0'.*needs schema '1'"):
        Butler(butler.root, registry_url=butler.registry.db.url)


def test_dataset_type_registered_once_and_conflicts_refused(butler: Butler) -> None:
    dt = butler.register_dataset_type("calexp", ["visit", "detector"], "Exposure")
    butler.register_dataset_type(dt)  # identical: fine
    with pytest.raises(ConflictingDefinitionError,
                       match="calexp.*storage_class: Image != registered Exposure"):
        butler.register_dataset_type("calexp", ["visit", "detector"], "Image")
    with pytest.raises(ConflictingDefinitionError, match="dimensions"):
        butler.register_dataset_type(DatasetType("calexp", ["exposure", "detector"], "Exposure"))
    with pytest.raises(MissingDatasetTypeError, match="'nope' is not registered.*calexp"):
        butler.get_dataset_type("nope")
    assert butler.get_dataset_type("calexp.wcs").storage_class == "Wcs"


def test_collections_chains_and_types(butler: Butler) -> None:
    butler.register_run("a")
    butler.register_run("b")
    butler.register_collection("tags", CollectionType.TAGGED)
    butler.set_chain("chain", ["a", "tags", "b"])
    butler.set_chain("outer", ["chain", "a"])
    assert [c.name for c in butler.registry.flatten(["outer"])] == ["a", "tags", "b"]
    with pytest.raises(CollectionTypeError, match="cycle"):
        butler.set_chain("chain", ["outer"])
    with pytest.raises(CollectionTypeError, match="exists with type RUN"):
        butler.register_collection("a", CollectionType.TAGGED)
    with pytest.raises(MissingCollectionError, match="'zzz' does not exist"):
        butler.set_chain("chain", ["zzz"])
    names = {c.name: c.type for c in butler.query_collections()}
    assert names["chain"] is CollectionType.CHAINED and names["tags"] is CollectionType.TAGGED
    assert [c.name for c in butler.query_collections("a*")] == ["a"]
    assert {c.name for c in butler.query_collections(types=[CollectionType.RUN])} >= {"a", "b"}


def test_sqlite_registry_uses_wal(butler: Butler) -> None:
    if not butler.registry.db.is_sqlite:
        pytest.skip("SQLite only")
    with butler.registry.db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert (butler.root / "registry.sqlite3").exists()
    assert isinstance(butler.registry.db.engine, sa.Engine)

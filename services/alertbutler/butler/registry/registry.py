"""The registry: which dataset types, collections and datasets exist, on SQLAlchemy Core.

Lookups of dataset types and collections are cached per process (they are created once and
never change definition); the put and find paths are one or two small prepared statements.
Nothing read inside a write transaction is cached: the transaction may still roll back (an
import that fails is undone whole), and the cache would then name rows that do not exist.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from .._errors import (
    CollectionTypeError,
    DatasetExistsError,
    MissingCollectionError,
    MissingDatasetTypeError,
    RepositoryError,
    SchemaVersionError,
)
from ..collections import CollectionRecord, CollectionType
from ..dataset_ref import DatasetRef
from ..dataset_type import DatasetType
from ..datastores.base import DatastoreRecord
from ..dimensions import UNIVERSE, DataCoordinate, DimensionUniverse
from . import schema
from .database import Database
from .dimension_store import DimensionRecordStore


class Registry:
    """Dataset types, collections, datasets, dimension records and datastore records."""

    def __init__(self, db: Database, universe: DimensionUniverse = UNIVERSE) -> None:
        self.db = db
        self.universe = universe
        self.metadata, self.tables = schema.build(universe)
        self.dimensions = DimensionRecordStore(db, self.tables, universe)
        self._types: dict[str, tuple[int, DatasetType]] = {}
        self._types_by_id: dict[int, DatasetType] = {}
        self._collections: dict[str, CollectionRecord] = {}
        self._collections_by_id: dict[int, CollectionRecord] = {}
        quote = self.db.engine.dialect.identifier_preparer.quote
        d = self.tables["dataset"]
        #: hot statements as plain SQL for the SQLite DBAPI cursor (see Database.raw_cursor)
        self.fast = self.db.is_sqlite
        self.sql_insert_dataset = (
            f"INSERT INTO dataset ({', '.join(quote(c.name) for c in d.columns)}) "
            f"VALUES ({', '.join('?' for _ in d.columns)})")
        self.dataset_columns = [c.name for c in d.columns]

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    def create(cls, url: str, universe: DimensionUniverse = UNIVERSE) -> Registry:
        reg = cls(Database(url), universe)
        inspector = sa.inspect(reg.db.engine)
        if inspector.has_table("butler_attributes"):
            reg.db.close()
            raise RepositoryError(f"a butler registry already exists at {url}")
        reg.metadata.create_all(reg.db.engine)
        with reg.db.transaction() as conn:
            conn.execute(reg.tables["attributes"].insert(), [
                {"name": "schema_version", "value": schema.SCHEMA_VERSION},
                {"name": "universe_version", "value": str(universe.version)},
                {"name": "created", "value": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            ])
        return reg

    @classmethod
    def open(cls, url: str, universe: DimensionUniverse = UNIVERSE) -> Registry:
        reg = cls(Database(url), universe)
        try:
            rows = dict(reg.db.read().execute(
                sa.select(reg.tables["attributes"].c.name, reg.tables["attributes"].c.value)
            ).all())
            reg.db.end_read()
        except sa.exc.DBAPIError as exc:
            reg.db.close()
            raise RepositoryError(f"no butler registry at {url} ({type(exc).__name__})") \
                from exc
        found = rows.get("schema_version")
        if found != schema.SCHEMA_VERSION or rows.get("universe_version") != str(universe.version):
            reg.db.close()
            raise SchemaVersionError(
                f"registry at {url} has schema version {found!r} and universe version "
                f"{rows.get('universe_version')!r}; this code needs schema "
                f"{schema.SCHEMA_VERSION!r} and universe {universe.version!r} "
                "(migrate the repository or use a matching alertbutler)")
        return reg

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        with self.db.transaction() as conn:
            yield conn

    def _insert_ignore(self, table: sa.Table, rows: list[dict[str, Any]],
                       keys: Sequence[str]) -> sa.Insert:
        if self.db.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            lite = sqlite_insert(table).values(rows) if rows else sqlite_insert(table)
            return lite.on_conflict_do_nothing(index_elements=list(keys))
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table).values(rows) if rows else pg_insert(table)
        return stmt.on_conflict_do_nothing(index_elements=list(keys))

    # -- dataset types ---------------------------------------------------------------------
    def register_dataset_type(self, dataset_type: DatasetType) -> bool:
        """Register once; True when newly inserted. A different definition is an error."""
        if dataset_type.component:
            raise ValueError(f"register the parent of component {dataset_type.name!r}")
        try:
            self.get_dataset_type(dataset_type.name).check_same(dataset_type)
            return False
        except MissingDatasetTypeError:
            pass
        t = self.tables["dataset_type"]
        row = {"name": dataset_type.name, "dimensions": ",".join(dataset_type.dimensions),
               "storage_class": dataset_type.storage_class,
               "is_calibration": dataset_type.is_calibration}

        def _insert() -> int:
            with self.db.transaction() as conn:
                return conn.execute(self._insert_ignore(t, [row], ["name"])).rowcount

        inserted = self.db.retry(_insert)
        self.get_dataset_type(dataset_type.name).check_same(dataset_type)  # lost a race?
        return bool(inserted)

    def _load_type(self, row: Any) -> tuple[int, DatasetType]:
        dims = [d for d in row.dimensions.split(",") if d]
        dt = DatasetType(row.name, dims, row.storage_class,
                         is_calibration=bool(row.is_calibration), universe=self.universe)
        if not self.db.in_transaction:  # a write transaction may still roll it back
            self._types[dt.name] = (row.id, dt)
            self._types_by_id[row.id] = dt
        return row.id, dt

    def dataset_type_id(self, name: str) -> tuple[int, DatasetType]:
        hit = self._types.get(name)
        if hit is not None:
            return hit
        t = self.tables["dataset_type"]
        row = self.db.read().execute(sa.select(t).where(t.c.name == name)).first()
        self.db.end_read()
        if row is None:
            known = ", ".join(sorted(d.name for d in self.dataset_types())) or "none"
            raise MissingDatasetTypeError(f"dataset type {name!r} is not registered in this "
                                          f"repository (registered: {known})")
        return self._load_type(row)

    def get_dataset_type(self, name: str) -> DatasetType:
        """The registered type; ``calexp.wcs`` gives the component type of ``calexp``."""
        parent, _, component = name.partition(".")
        dt = self.dataset_type_id(parent)[1]
        if component:
            from ..storage_classes import STORAGE_CLASSES

            sc = STORAGE_CLASSES[dt.storage_class].check_component(component)
            return dt.make_component(component, sc)
        return dt

    def dataset_types(self) -> list[DatasetType]:
        rows = self.db.read().execute(sa.select(self.tables["dataset_type"])).all()
        self.db.end_read()
        return [self._load_type(r)[1] for r in rows]

    # -- collections -----------------------------------------------------------------------
    def register_collection(self, name: str, type: CollectionType, doc: str = "") -> bool:
        """Create a collection; True when new. Existing with another type is an error."""
        if not name or len(name) > 256 or "\x00" in name:
            raise ValueError(f"invalid collection name {name!r}")
        t = self.tables["collection"]

        def _insert() -> int:
            with self.db.transaction() as conn:
                return conn.execute(self._insert_ignore(
                    t, [{"name": name, "type": int(type), "doc": doc}], ["name"])).rowcount

        inserted = self.db.retry(_insert)
        rec = self.get_collection(name)
        if rec.type != type:
            raise CollectionTypeError(f"collection {name!r} exists with type {rec.type.name}, "
                                      f"not {type.name}")
        return bool(inserted)

    def register_run(self, name: str, doc: str = "") -> bool:
        return self.register_collection(name, CollectionType.RUN, doc)

    def get_collection(self, name: str) -> CollectionRecord:
        rec = self._collections.get(name)
        if rec is not None:
            return rec
        t = self.tables["collection"]
        row = self.db.read().execute(sa.select(t).where(t.c.name == name)).first()
        self.db.end_read()
        if row is None:
            raise MissingCollectionError(f"collection {name!r} does not exist")
        rec = CollectionRecord(row.name, CollectionType(row.type), row.id, row.doc)
        if not self.db.in_transaction:  # a write transaction may still roll it back
            self._collections[name] = rec
            self._collections_by_id[rec.id] = rec
        return rec

    def collection_by_id(self, cid: int) -> CollectionRecord:
        rec = self._collections_by_id.get(cid)
        if rec is None:
            t = self.tables["collection"]
            row = self.db.read().execute(sa.select(t.c.name).where(t.c.id == cid)).first()
            self.db.end_read()
            if row is None:
                raise MissingCollectionError(f"collection id {cid} does not exist")
            rec = self.get_collection(row.name)
        return rec

    def set_chain(self, parent: str, children: Sequence[str]) -> None:
        """Define (or redefine) a CHAINED collection's search path; cycles are refused."""
        prec = self.get_collection(parent)
        if prec.type is not CollectionType.CHAINED:
            raise CollectionTypeError(f"collection {parent!r} is a {prec.type.name}, "
                                      "not CHAINED")
        recs = [self.get_collection(c) for c in children]
        for c in recs:
            if c.name == parent or self._reaches(c.name, parent):
                raise CollectionTypeError(f"chain {parent!r} -> {c.name!r} would be a cycle")
        t = self.tables["collection_chain"]
        with self.db.transaction() as conn:
            conn.execute(t.delete().where(t.c.parent == prec.id))
            if recs:
                conn.execute(t.insert(), [{"parent": prec.id, "position": i, "child": c.id}
                                          for i, c in enumerate(recs)])

    def _reaches(self, start: str, target: str) -> bool:
        todo, seen = [start], set()
        while todo:
            name = todo.pop()
            if name == target:
                return True
            if name in seen or self.get_collection(name).type is not CollectionType.CHAINED:
                continue
            seen.add(name)
            todo.extend(self.get_chain(name))
        return False

    def get_chain(self, parent: str) -> list[str]:
        prec = self.get_collection(parent)
        t = self.tables["collection_chain"]
        ids = self.db.read().execute(sa.select(t.c.child).where(t.c.parent == prec.id)
                                     .order_by(t.c.position)).scalars().all()
        self.db.end_read()
        return [self.collection_by_id(i).name for i in ids]

    def flatten(self, collections: Iterable[str] | str) -> list[CollectionRecord]:
        """A search path with chains expanded, in order, without duplicates."""
        if isinstance(collections, str):
            collections = [collections]
        out: list[CollectionRecord] = []
        seen: set[str] = set()

        def visit(name: str, depth: int) -> None:
            if depth > 32:
                raise CollectionTypeError(f"collection chain through {name!r} is too deep")
            rec = self.get_collection(name)
            if rec.type is CollectionType.CHAINED:
                for child in self.get_chain(name):
                    visit(child, depth + 1)
            elif name not in seen:
                seen.add(name)
                out.append(rec)

        for name in collections:
            visit(name, 0)
        return out

    def query_collections(self, pattern: str = "*",
                          types: Iterable[CollectionType] | None = None) -> list[CollectionRecord]:
        import fnmatch

        rows = self.db.read().execute(sa.select(self.tables["collection"])
                                      .order_by(self.tables["collection"].c.name)).all()
        self.db.end_read()
        wanted = set(types) if types else None
        return [CollectionRecord(r.name, CollectionType(r.type), r.id, r.doc) for r in rows
                if fnmatch.fnmatchcase(r.name, pattern)
                and (wanted is None or CollectionType(r.type) in wanted)]

    # -- datasets --------------------------------------------------------------------------
    def dataset_row(self, ref: DatasetRef, type_id: int, run_id: int) -> dict[str, Any]:
        row = {"id": ref.id, "dataset_type_id": type_id, "run_id": run_id,
               "data_id": ref.data_id.key, "ingest_ns": time.time_ns()}
        row.update(ref.data_id.items())
        for d in self.universe.names:
            row.setdefault(d, None)
        return row

    def insert_datasets(self, refs: Sequence[DatasetRef], *, skip_same_id: bool = False
                        ) -> set[uuid.UUID]:
        """Insert dataset rows (call inside :meth:`transaction` to join a datastore put);
        returns the ids inserted. ``skip_same_id``: a row with the same id is no error but
        skipped (two writers transferring the same dataset at once: the second waits for the
        first's commit, then skips it); another dataset under the same type, run and data ID
        still is a :class:`DatasetExistsError`."""
        if not refs:
            return set()
        rows = []
        for ref in refs:
            type_id = self.dataset_type_id(ref.dataset_type.parent_name)[0]
            run = self.get_collection(ref.run)
            if run.type is not CollectionType.RUN:
                raise CollectionTypeError(f"datasets are written to RUN collections; "
                                          f"{ref.run!r} is {run.type.name}")
            rows.append(self.dataset_row(ref, type_id, run.id))
        try:
            with self.db.transaction() as conn:
                if skip_same_id:  # parameters apart from the statement: compiled once
                    t = self.tables["dataset"]
                    return set(conn.execute(self._insert_ignore(t, [], ["id"])
                                            .returning(t.c.id), rows).scalars())
                if self.fast:
                    cols = self.dataset_columns
                    self.db.raw_cursor().executemany(self.sql_insert_dataset, [
                        [r["id"].hex if c == "id" else r[c] for c in cols] for r in rows])
                else:
                    conn.execute(self.tables["dataset"].insert(), rows)
                return {ref.id for ref in refs}
        except (sa.exc.IntegrityError, self.db.engine.dialect.loaded_dbapi.IntegrityError) as exc:
            refs_txt = ", ".join(str(r) for r in refs[:3])
            raise DatasetExistsError(
                f"a dataset with the same id, or the same type and data ID in the same run, "
                f"already exists: {refs_txt}{' ...' if len(refs) > 3 else ''}") from exc

    def ref_from_row(self, row: Any) -> DatasetRef:
        dt = self._types_by_id.get(row.dataset_type_id)
        if dt is None:
            dt = {i: t for i, t in (self._load_type(r) for r in self.db.read().execute(
                sa.select(self.tables["dataset_type"])).all())}[row.dataset_type_id]
            self.db.end_read()
        return DatasetRef(dt, DataCoordinate.from_key(dt.dimensions, row.data_id),
                          self.collection_by_id(row.run_id).name, row.id)

    def get_dataset(self, dataset_id: uuid.UUID) -> DatasetRef | None:
        t = self.tables["dataset"]
        row = self.db.read().execute(
            sa.select(t.c.id, t.c.dataset_type_id, t.c.run_id, t.c.data_id)
            .where(t.c.id == dataset_id)).first()
        self.db.end_read()
        return None if row is None else self.ref_from_row(row)

    def existing_ids(self, dataset_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these dataset ids are registered: one query per 500 ids (a transfer
        asks for all its refs at once instead of one round trip each)."""
        ids = list(dataset_ids)
        t = self.tables["dataset"]
        found: set[uuid.UUID] = set()
        conn = self.db.read()
        for i in range(0, len(ids), 500):
            found.update(conn.execute(sa.select(t.c.id).where(t.c.id.in_(ids[i:i + 500])))
                         .scalars())
        self.db.end_read()
        return found

    def remove_datasets(self, refs: Sequence[DatasetRef]) -> None:
        """Delete rows of datasets, their tags, certifications and datastore records."""
        ids = [r.id for r in refs]
        with self.db.transaction() as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                conn.execute(self.tables["dataset_tag"].delete()
                             .where(self.tables["dataset_tag"].c.dataset_id.in_(chunk)))
                conn.execute(self.tables["dataset_calib"].delete()
                             .where(self.tables["dataset_calib"].c.dataset_id.in_(chunk)))
                conn.execute(self.tables["datastore_record"].delete()
                             .where(self.tables["datastore_record"].c.dataset_id.in_(chunk)))
                conn.execute(self.tables["dataset"].delete()
                             .where(self.tables["dataset"].c.id.in_(chunk)))

    def refs_in_run(self, run: str) -> list[DatasetRef]:
        rec = self.get_collection(run)
        t = self.tables["dataset"]
        rows = self.db.read().execute(
            sa.select(t.c.id, t.c.dataset_type_id, t.c.run_id, t.c.data_id)
            .where(t.c.run_id == rec.id)).all()
        self.db.end_read()
        return [self.ref_from_row(r) for r in rows]

    def remove_collection(self, name: str) -> None:
        """Delete an (empty, for RUNs) collection and its chain/tag/calib memberships."""
        rec = self.get_collection(name)
        t = self.tables
        with self.db.transaction() as conn:
            chain, tag = t["collection_chain"], t["dataset_tag"]
            conn.execute(chain.delete().where(sa.or_(chain.c.parent == rec.id,
                                                     chain.c.child == rec.id)))
            conn.execute(tag.delete().where(tag.c.collection_id == rec.id))
            conn.execute(t["dataset_calib"].delete()
                         .where(t["dataset_calib"].c.collection_id == rec.id))
            conn.execute(t["collection"].delete().where(t["collection"].c.id == rec.id))
        self._collections.pop(name, None)
        self._collections_by_id.pop(rec.id, None)

    # -- tagged collections ------------------------------------------------------------------
    def associate(self, collection: str, refs: Sequence[DatasetRef]) -> None:
        rec = self.get_collection(collection)
        if rec.type is not CollectionType.TAGGED:
            raise CollectionTypeError(f"associate needs a TAGGED collection; {collection!r} "
                                      f"is {rec.type.name}")
        rows = [{"collection_id": rec.id, "dataset_id": r.id, "data_id": r.data_id.key,
                 "dataset_type_id": self.dataset_type_id(r.dataset_type.parent_name)[0]}
                for r in refs]
        try:
            with self.db.transaction() as conn:
                conn.execute(self.tables["dataset_tag"].insert(), rows)
        except sa.exc.IntegrityError as exc:
            raise DatasetExistsError(f"TAGGED collection {collection!r} already holds a "
                                     "dataset of the same type and data ID") from exc

    def disassociate(self, collection: str, refs: Sequence[DatasetRef]) -> None:
        rec = self.get_collection(collection)
        t = self.tables["dataset_tag"]
        with self.db.transaction() as conn:
            conn.execute(t.delete().where(t.c.collection_id == rec.id,
                                          t.c.dataset_id.in_([r.id for r in refs])))

    # -- datastore records -------------------------------------------------------------------
    def bridge(self, datastore_name: str) -> SqlBridge:
        return SqlBridge(self, datastore_name)


class SqlBridge:
    """Datastore records of one datastore, in the generic ``datastore_record`` table."""

    def __init__(self, registry: Registry, datastore_name: str) -> None:
        self.registry = registry
        self.datastore_name = datastore_name
        self._table = registry.tables["datastore_record"]

    def insert(self, records: Sequence[DatastoreRecord]) -> None:
        if not records:
            return
        db = self.registry.db
        if self.registry.fast:
            with db.transaction():
                db.raw_cursor().executemany(
                    "INSERT INTO datastore_record (dataset_id, datastore, key, payload) "
                    "VALUES (?, ?, ?, ?)",
                    [(r.dataset_id.hex, self.datastore_name, r.key,
                      json.dumps(r.payload, separators=(",", ":"))) for r in records])
            return
        rows = [{"dataset_id": r.dataset_id, "datastore": self.datastore_name, "key": r.key,
                 "payload": json.dumps(r.payload, separators=(",", ":"))} for r in records]
        with db.transaction() as conn:
            conn.execute(self._table.insert(), rows)

    def fetch(self, dataset_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[DatastoreRecord]]:
        ids = list(dataset_ids)
        t = self._table
        out: dict[uuid.UUID, list[DatastoreRecord]] = {}
        if self.registry.fast and len(ids) == 1:
            cur = self.registry.db.raw_cursor()
            for key, payload in cur.execute(
                    "SELECT key, payload FROM datastore_record WHERE datastore = ? "
                    "AND dataset_id = ?", (self.datastore_name, ids[0].hex)).fetchall():
                out.setdefault(ids[0], []).append(
                    DatastoreRecord(ids[0], json.loads(payload), key))
            return out
        conn = self.registry.db.read()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            cond = t.c.dataset_id == chunk[0] if len(chunk) == 1 else t.c.dataset_id.in_(chunk)
            for row in conn.execute(sa.select(t.c.dataset_id, t.c.key, t.c.payload)
                                    .where(t.c.datastore == self.datastore_name, cond)):
                out.setdefault(row.dataset_id, []).append(
                    DatastoreRecord(row.dataset_id, json.loads(row.payload), row.key))
        self.registry.db.end_read()
        return out

    def delete(self, dataset_ids: Iterable[uuid.UUID]) -> None:
        ids = list(dataset_ids)
        t = self._table
        with self.registry.db.transaction() as conn:
            for i in range(0, len(ids), 500):
                conn.execute(t.delete().where(t.c.datastore == self.datastore_name,
                                              t.c.dataset_id.in_(ids[i:i + 500])))

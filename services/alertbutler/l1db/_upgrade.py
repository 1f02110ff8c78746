"""In-place upgrade of an L1 database made by an older schema version (``alertbutler l1db
upgrade URL``).

1.0 -> 1.1 added ``work_attempt``; 1.x -> 2.0 partitions ``DiaSource`` and
``DiaForcedSource`` by time on PostgreSQL; 2.0 -> 2.1 adds ``visit_detector_wait``; 2.1 -> 2.2
adds ``visit_detector_end.n_alerts_total`` (markers recorded before it have none); 2.x -> 2.3
keys the attempt ledger by (instrument, visit, detector): ``work_attempt``'s rows, keyed by
the text ``<work topic>:<instrument> visit V detector D``, move to ``visit_detector_attempt``
(a key that does not read so is dropped with its row: it counted nothing a worker can find);
2.x -> 2.4 sets ``DiaObjectLast``'s fillfactor on PostgreSQL (pages written from then on
keep the room).
The upgrade runs in ONE transaction: each old
table is renamed aside (its key and indexes dropped, so their names are free), the
partitioned table is created with the partitions the old rows need, the rows are moved with
one ``INSERT ... SELECT`` each, and the old table is dropped; then the version is written. A
failure or a kill part-way leaves the database exactly as it was. Writers are locked out for
the duration (the tables are locked up front), so stop the ingesters first. On SQLite the
table layout does not change: only missing tables and the version number.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from alertbutler.l1db import _partitions
from alertbutler.l1db._engine import WRITE_OPTION
from alertbutler.l1db._errors import L1dbNotFoundError, SchemaVersionError
from alertbutler.l1db.schema import (
    LAST_FILLFACTOR,
    PARTITIONED,
    SCHEMA_VERSION,
    build_metadata,
)

#: Versions this code upgrades from.
UPGRADABLE = ("1.0", "1.1", "2.0", "2.1", "2.2", "2.3")

#: the old ledger's text key
_OLD_KEY = re.compile(r"^.*:(?P<instrument>\S+) visit (?P<visit>\d+) "
                      r"detector (?P<detector>\d+)$")


def upgrade(engine: sa.Engine) -> str:
    """Upgrade the database in place; returns the version it had."""
    pg = engine.dialect.name == "postgresql"
    with engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
        try:
            found = conn.execute(sa.text(
                "SELECT value FROM metadata WHERE name = 'schema_version'")).scalar()
        except sa.exc.DBAPIError:
            found = None
        if found is None:
            raise L1dbNotFoundError(f"{engine.url.render_as_string()} holds no L1 database: "
                                    "create it with 'alertbutler l1db create'")
        if found == SCHEMA_VERSION:
            return str(found)
        if found not in UPGRADABLE:
            raise SchemaVersionError(
                f"L1 schema version {found} cannot be upgraded to {SCHEMA_VERSION} by this "
                f"alertbutler (it upgrades {', '.join(UPGRADABLE)})",
                found=found, expected=SCHEMA_VERSION)
        md = build_metadata(partitioned=pg)
        if pg and found.split(".")[0] == "1":
            for table in PARTITIONED:
                _partition_table(conn, md.tables[table])
        md.create_all(conn, checkfirst=True)  # tables added by later versions
        _add_columns(conn, md)
        if pg:
            conn.exec_driver_sql(
                f'ALTER TABLE "DiaObjectLast" SET (fillfactor = {LAST_FILLFACTOR})')
        if sa.inspect(conn).has_table("work_attempt"):
            _move_attempts(conn, md.tables["visit_detector_attempt"])
        conn.execute(sa.text("UPDATE metadata SET value = :v WHERE name = 'schema_version'"),
                     {"v": SCHEMA_VERSION})
    return str(found)


def _add_columns(conn: sa.Connection, md: sa.MetaData) -> None:
    """Nullable columns added by later versions to tables that existed before."""
    inspector = sa.inspect(conn)
    for table in md.tables.values():
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have:
                assert column.nullable, f"{table.name}.{column.name} added NOT NULL"
                kind = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(
                    f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}')


def _partition_table(conn: sa.Connection, table: sa.Table) -> None:
    name, old = table.name, f"{table.name}_v1"
    conn.exec_driver_sql(f'LOCK TABLE "{name}" IN ACCESS EXCLUSIVE MODE')
    conn.exec_driver_sql(f'ALTER TABLE "{name}" RENAME TO "{old}"')
    for (constraint,) in conn.exec_driver_sql(
            f"SELECT conname FROM pg_constraint WHERE conrelid = '\"{old}\"'::regclass"):
        conn.exec_driver_sql(f'ALTER TABLE "{old}" DROP CONSTRAINT "{constraint}"')
    for (index,) in conn.exec_driver_sql(
            f"SELECT indexname FROM pg_indexes WHERE tablename = '{old}'"):
        conn.exec_driver_sql(f'DROP INDEX "{index}"')
    table.create(conn)
    numbers = {int(p) for (p,) in conn.exec_driver_sql(
        f'SELECT DISTINCT floor("midpointMjdTai" / {_partitions.PARTITION_DAYS}) '
        f'FROM "{old}"')}
    _partitions.lock(conn)
    _partitions.create(conn, name, numbers)
    columns = ", ".join(f'"{c.name}"' for c in table.columns)
    conn.exec_driver_sql(f'INSERT INTO "{name}" ({columns}) SELECT {columns} FROM "{old}"')
    conn.exec_driver_sql(f'DROP TABLE "{old}"')


def _move_attempts(conn: sa.Connection, table: sa.Table) -> None:
    """The text-keyed ledger's rows into the (instrument, visit, detector)-keyed one; of two
    rows naming one visit-detector (two work topics), the later start is kept."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql('LOCK TABLE "work_attempt" IN ACCESS EXCLUSIVE MODE')
    rows: dict[tuple[str, int, int], dict[str, object]] = {}
    for row in conn.execute(sa.text("SELECT * FROM work_attempt ORDER BY started_at")).mappings():
        match = _OLD_KEY.match(str(row["item"]))
        if match is None:
            continue
        key = (match["instrument"], int(match["visit"]), int(match["detector"]))
        rows[key] = {**{k: v for k, v in row.items() if k != "item"},
                     "instrument": key[0], "visit": key[1], "detector": key[2]}
    if rows:
        conn.execute(table.insert(), list(rows.values()))
    conn.exec_driver_sql('DROP TABLE "work_attempt"')

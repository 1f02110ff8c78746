"""The L1 database's tables in CQL: the same columns as :mod:`alertbutler.l1db.schema`,
partitioned for Cassandra.

- ``DiaSource`` and ``DiaForcedSource``: partition ``(apdb_part, apdb_time_part)``: the
  HEALPix nested pixel of order :data:`PART_ORDER` (~0.23 deg, ~190 per Rubin visit, 1-4 per
  detector) and the 30-day time partition of :mod:`.._partitions`; clustered by
  ``diaObjectId`` so one partition read answers many objects. A 12-month history touches 13
  time partitions of the few pixels an object's sources fall in.
- ``object_history_part``: per object, the (table, time, pixel) partitions holding its
  sources, so a history by object id reads only those partitions.
- ``DiaObjectLast``: partition ``apdb_part``, so a region is read as its few pixels; written
  with ``USING TIMESTAMP`` = the version's validity time, so Cassandra's last-write-wins keeps
  the newest version whatever order versions arrive in. ``DiaObject`` (every version) is
  partitioned by ``diaObjectId``.
- Bookkeeping: markers (out-of-band ones with the alert offset they wait for, and an index of
  those waits by alert partition, ``visit_detector_wait``), completeness (written with a
  lightweight transaction, so exactly one writer reports a visit-detector complete), consumer
  offsets (their write timestamp is the offset, so a stale replay never moves one back),
  progress counters, the work-attempt ledger.

Every key is the SQL table's key, so a replayed write rewrites the same cells: idempotent.
"""

from __future__ import annotations

from alertbutler.l1db.schema import CATALOG

#: HEALPix order of the spatial partition (``pixelId >> 2 * (16 - PART_ORDER)``).
PART_ORDER = 8

_CQL = {"long": "bigint", "int": "int", "double": "double", "float": "float",
        "boolean": "boolean", "string": "text"}

#: catalog table -> (partition key, clustering columns)
LAYOUT: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "DiaObject": (("diaObjectId",), ("validityStartMjdTai",)),
    "DiaObjectLast": (("apdb_part",), ("diaObjectId",)),
    "DiaSource": (("apdb_part", "apdb_time_part"), ("diaObjectId", "diaSourceId")),
    "DiaForcedSource": (("apdb_part", "apdb_time_part"), ("diaObjectId", "visit", "detector")),
    "SSSource": (("diaSourceId",), ()),
}
#: columns the Cassandra tables add to the catalog's
EXTRA = {"DiaObjectLast": ("apdb_part",), "DiaSource": ("apdb_part", "apdb_time_part"),
         "DiaForcedSource": ("apdb_part", "apdb_time_part")}


def q(name: str) -> str:
    """A CQL identifier, quoted (Rubin's names are mixed case)."""
    return f'"{name}"'


#: columns added to existing tables by later minor versions: (version, table, column, type)
ADDED_COLUMNS = (("2.2", "visit_detector_end", "n_alerts_total", "int"),)

#: the work-attempt ledger (also made by the ledger itself in a keyspace older than it)
ATTEMPT_TABLE = ("CREATE TABLE IF NOT EXISTS {ks}.visit_detector_attempt (instrument text, "
                 "visit bigint, detector int, attempts int, worker text, previous_worker text, "
                 "started_at double, last_error text, finished_at double, "
                 "PRIMARY KEY ((instrument, visit, detector)))")


def statements(keyspace: str, replication: int) -> list[str]:
    """CREATE statements of every table (existing ones are kept)."""
    ks = q(keyspace)
    out = [f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = "
           f"{{'class': 'SimpleStrategy', 'replication_factor': {int(replication)}}}"]
    for table, (columns, _) in CATALOG.items():
        part, cluster = LAYOUT[table]
        cols = [f"{q(c.name)} {_CQL[c.kind]}" for c in columns]
        if table == "DiaObjectLast":
            cols.append('"apdb_part" bigint')
        if table in ("DiaSource", "DiaForcedSource"):
            cols += ['"apdb_part" bigint', '"apdb_time_part" int']
        key = "(" + ", ".join(q(c) for c in part) + ")"
        if cluster:
            key += ", " + ", ".join(q(c) for c in cluster)
        out.append(f"CREATE TABLE IF NOT EXISTS {ks}.{q(table)} ({', '.join(cols)}, "
                   f"PRIMARY KEY ({key}))")
    out += [
        f"CREATE TABLE IF NOT EXISTS {ks}.visit_source (visit bigint, detector int, "
        '"diaSourceId" bigint, apdb_part bigint, apdb_time_part int, "diaObjectId" bigint, '
        'PRIMARY KEY ((visit, detector), "diaSourceId"))',
        f"CREATE TABLE IF NOT EXISTS {ks}.object_history_part (\"diaObjectId\" bigint, "
        "tab text, apdb_time_part int, apdb_part bigint, "
        'PRIMARY KEY (("diaObjectId"), tab, apdb_time_part, apdb_part))',
        f"CREATE TABLE IF NOT EXISTS {ks}.object_last_part (\"diaObjectId\" bigint PRIMARY KEY, "
        "apdb_part bigint)",
        f"CREATE TABLE IF NOT EXISTS {ks}.metadata (name text PRIMARY KEY, value text)",
        f"CREATE TABLE IF NOT EXISTS {ks}.consumer_offset (consumer text, topic text, "
        "partition int, next_offset bigint, updated_at double, "
        "PRIMARY KEY ((consumer), topic, partition))",
        f"CREATE TABLE IF NOT EXISTS {ks}.offset_generation (consumer text, topic text, "
        "partition int, generation int, PRIMARY KEY ((consumer), topic, partition))",
        f"CREATE TABLE IF NOT EXISTS {ks}.ingest_progress (consumer text, member text, "
        "n_messages counter, n_rows counter, PRIMARY KEY ((consumer), member))",
        f"CREATE TABLE IF NOT EXISTS {ks}.ingest_progress_time (consumer text, member text, "
        "updated_at double, PRIMARY KEY ((consumer), member))",
        f"CREATE TABLE IF NOT EXISTS {ks}.visit_detector_end (visit bigint, detector int, "
        "partition int, n_partitions int, n_alerts int, recorded_at double, topic text, "
        "last_offset bigint, n_alerts_total int, PRIMARY KEY ((visit, detector), partition))",
        f"CREATE TABLE IF NOT EXISTS {ks}.visit_detector_wait (topic text, partition int, "
        "visit bigint, detector int, last_offset bigint, "
        "PRIMARY KEY ((topic, partition), visit, detector))",
        f"CREATE TABLE IF NOT EXISTS {ks}.ingested_visit_detector (visit bigint, detector int, "
        "n_alerts int, completed_at double, PRIMARY KEY ((visit), detector))",
        ATTEMPT_TABLE.format(ks=ks),
    ]
    return out

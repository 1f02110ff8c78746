"""The L1 database on Apache Cassandra: the API of :class:`alertbutler.l1db.L1db`, for
``cassandra://host[:port][,host...]/keyspace`` URLs.

Cassandra has no transaction across partitions, so a store is a sequence of idempotent
writes in a fixed order (see docs/l1db.md): index rows, catalog rows, newest object versions,
end markers and completeness, and last the consumer's offsets and totals. A writer that dies
part-way left no offsets behind, so its messages are consumed again and the same keys are
rewritten with the same values. Every request runs at QUORUM (a majority of the replicas), so
with replication factor 3 one node may be down without stopping reads or writes, and every
read sees every acknowledged write.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alertbutler.l1db import _markers
from alertbutler.l1db._common import VisitDetectorStore, count_of, topic_key
from alertbutler.l1db._errors import L1dbError, L1dbNotFoundError, SchemaVersionError
from alertbutler.l1db._partitions import PARTITION_DAYS
from alertbutler.l1db._read import int_list
from alertbutler.l1db._types import (
    ConsumedOffsets,
    ConsumerProgress,
    L1dbInfo,
    PartitionOffset,
    StoreResult,
    VisitDetector,
    VisitDetectorEnd,
    VisitDetectorLike,
    as_visit_detector,
    of_l1,
)
from alertbutler.l1db.cassandra.schema import (
    ADDED_COLUMNS,
    EXTRA,
    LAYOUT,
    PART_ORDER,
    q,
    statements,
)
from alertbutler.l1db.rows import RowBatch
from alertbutler.l1db.schema import CATALOG, SCHEMA_VERSION, arrow_schema
from alertbutler.l1db.spatial import PIXEL_ORDER, Region

_SHIFT = 2 * (PIXEL_ORDER - PART_ORDER)
_CHUNK = 100  # ids per IN list
_CONCURRENCY = 32
_CROSS = 2_000  # pixels x objects in one read of many spatial partitions
_COUNT_SLICES = 64  # token ranges a table's rows are counted in
_BATCH_BYTES = 40_000  # values per batch (Cassandra refuses over 50 KiB by default)
_BATCH_CONCURRENCY = 8  # batches in flight
_GEN_SHIFT = 40  # offset timestamps: generation << 40 | offset
_US_PER_DAY = 86_400_000_000
DEFAULT_PORT = 9042
_NO_OBJECT = -1  # diaObjectId of a DiaSource without one (a clustering column is not null)


class _MultiPartitionBatchWarning(logging.Filter):
    """Drop the server's warning on every unlogged batch over several partitions: they are
    batched by replica set on purpose (see ``CassandraL1db._write``), and a cluster with the
    default threshold (10) would say so for almost every batch."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Unlogged batch covering" not in record.getMessage()


logging.getLogger("cassandra.protocol").addFilter(_MultiPartitionBatchWarning())


def parse_url(url: str) -> tuple[list[tuple[str, int]], str, dict[str, str]]:
    """Contact points, keyspace and options of a ``cassandra://`` URL."""
    parts = urlsplit(url)
    if parts.scheme != "cassandra":
        raise L1dbError(f"{url!r} is not a cassandra:// URL")
    keyspace = parts.path.strip("/")
    if not keyspace.replace("_", "").isalnum() or not keyspace[:1].isalpha():
        raise L1dbError(f"{url!r}: the keyspace must be letters, digits and _ (starting with "
                        "a letter), as in cassandra://127.0.0.1/l1")
    hosts = []
    for item in parts.netloc.split(","):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item, "", "")
        if not host or (port and not port.isdigit()):
            raise L1dbError(f"{url!r}: bad contact point {item!r} (want host or host:port)")
        hosts.append((host, int(port) if port else DEFAULT_PORT))
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return hosts, keyspace, options


def _time_part(mjd: np.ndarray) -> np.ndarray:
    return np.floor(np.asarray(mjd, dtype=np.float64) / PARTITION_DAYS).astype(np.int64)


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterable[list[Any]]:
    for i in range(0, len(values), size):
        yield list(values[i:i + size])


class CassandraL1db(VisitDetectorStore):
    """An L1 database in one Cassandra keyspace. Thread-safe (one driver session)."""

    backend = "cassandra"

    def __init__(self, url: str, *, _create: bool = False) -> None:
        from cassandra import ConsistencyLevel
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import RoundRobinPolicy, TokenAwarePolicy
        from cassandra.query import tuple_factory

        hosts, self.keyspace, options = parse_url(url)
        self._url = url
        ports = {p for _, p in hosts}
        if len(ports) != 1:
            raise L1dbError(f"{url!r}: every contact point must use the same port")
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(RoundRobinPolicy()),
            consistency_level=ConsistencyLevel.QUORUM,
            serial_consistency_level=ConsistencyLevel.SERIAL,
            request_timeout=float(options.get("timeout", 60)), row_factory=tuple_factory)
        self._cluster = Cluster([h for h, _ in hosts], port=ports.pop(), protocol_version=5,
                                execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                                connect_timeout=30, control_connection_timeout=30)
        from cassandra.cluster import NoHostAvailable

        try:
            self._session = self._cluster.connect()
        except NoHostAvailable as exc:
            self._cluster.shutdown()
            raise L1dbNotFoundError(f"cannot reach the Cassandra cluster of {url}: "
                                    f"{exc}") from None
        self._prepared: dict[str, Any] = {}
        self._generations: dict[tuple[str, str, int], int] = {}
        if _create:
            n_hosts = len(self._cluster.metadata.all_hosts())
            factor = int(options.get("replication_factor", min(3, n_hosts)))
            for cql in statements(self.keyspace, factor):
                self._session.execute(cql, timeout=120)
            self._session.execute(
                f"INSERT INTO {q(self.keyspace)}.metadata (name, value) "
                "VALUES ('schema_version', %s) IF NOT EXISTS", (SCHEMA_VERSION,))
        self.schema_version = self._check_version()

    @classmethod
    def create(cls, url: str) -> CassandraL1db:
        """Make the keyspace (replication factor ``?replication_factor=N``, default
        min(3, nodes)) and its tables; existing ones are kept."""
        return cls(url, _create=True)

    # ---- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._url

    def close(self) -> None:
        self._cluster.shutdown()

    def __enter__(self) -> CassandraL1db:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _t(self, name: str) -> str:
        return f"{q(self.keyspace)}.{q(name)}"

    def _prep(self, cql: str) -> Any:
        stmt = self._prepared.get(cql)
        if stmt is None:
            stmt = self._prepared[cql] = self._session.prepare(cql)
        return stmt

    def _run(self, cql: str, params: Sequence[Sequence[Any]]) -> list[Any]:
        """Run one prepared read for every parameter tuple, concurrently; the rows."""
        from cassandra.concurrent import execute_concurrent_with_args

        if not params:
            return []
        results = execute_concurrent_with_args(self._session, self._prep(cql), list(params),
                                               concurrency=_CONCURRENCY)
        rows: list[Any] = []
        for result in results:
            rows.extend(result.result_or_exc)
        return rows

    def _write(self, cql: str, params: Sequence[Sequence[Any]]) -> None:
        """Run one prepared write for every parameter tuple, as unlogged batches of the rows
        whose partitions have the same replicas, each sent to one of those replicas.

        A request costs the driver and the coordinator far more than a row costs a replica
        (one alert's rows fall in many partitions, each a request of its own before); a
        batch of one replica set is applied by its replicas without a second hop. Rows of one
        partition sit together in a batch, so Cassandra merges them into one mutation. Each
        batch stays under :data:`_BATCH_BYTES`, below Cassandra's default size limit."""
        from cassandra.concurrent import execute_concurrent
        from cassandra.query import BatchStatement, BatchType

        if not params:
            return
        stmt = self._prep(cql)
        metadata = self._cluster.metadata
        # the token map hands out one stored list per token range: its identity finds the
        # replica set (the hosts' identities) without sorting hosts for every row
        sets: dict[int, tuple[list[Any], tuple[int, ...]]] = {}
        groups: dict[tuple[int, ...], list[tuple[bytes, Any]]] = defaultdict(list)
        for p in params:
            bound = stmt.bind(p)
            key = bound.routing_key
            replicas = metadata.get_replicas(self.keyspace, key)
            known = sets.get(id(replicas))
            if known is None:
                known = sets[id(replicas)] = (replicas, tuple(sorted(map(id, replicas))))
            groups[known[1]].append((key, bound))
        sample = [stmt.bind(p) for p in params[:: max(1, len(params) // 20)]]
        row_bytes = 32 + max(sum(len(v) for v in b.values if isinstance(v, bytes))
                             for b in sample)
        per_batch = max(1, _BATCH_BYTES // (row_bytes * 2))  # twice the largest sampled row
        batches = []
        for group in groups.values():
            group.sort(key=lambda item: item[0])
            for i in range(0, len(group), per_batch):
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                for _, bound in group[i:i + per_batch]:
                    batch.add(bound)
                batches.append((batch, ()))
        for result in execute_concurrent(self._session, batches,
                                         concurrency=_BATCH_CONCURRENCY):
            if not result.success:
                raise result.result_or_exc

    def _check_version(self) -> str:
        from cassandra import InvalidRequest

        try:
            row = self._session.execute(
                f"SELECT value FROM {self._t('metadata')} WHERE name = 'schema_version'").one()
        except InvalidRequest:
            row = None
        if row is None:
            raise L1dbNotFoundError(f"{self.url} holds no L1 database (no keyspace "
                                    f"{self.keyspace} with a schema version): create it with "
                                    "'alertbutler l1db create'")
        found = str(row[0])
        if found.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise SchemaVersionError(
                f"{self.url} has L1 schema version {found}; this alertbutler reads and writes "
                f"version {SCHEMA_VERSION}", found=found, expected=SCHEMA_VERSION)
        if _minor(found) < _minor(SCHEMA_VERSION):
            found = self._add_columns(found)
        return found

    def _add_columns(self, found: str) -> str:
        """Add the nullable columns of later minor versions (a keyspace made by an older
        alertbutler) and record the version: Cassandra adds a column without rewriting."""
        from cassandra import InvalidRequest

        for version, table, column, kind in ADDED_COLUMNS:
            if _minor(version) > _minor(found):
                try:
                    self._session.execute(f"ALTER TABLE {self._t(table)} ADD {column} {kind}",
                                          timeout=120)
                except InvalidRequest as exc:  # another process added it first
                    if "conflicts with an existing column" not in str(exc) \
                            and "already exist" not in str(exc):
                        raise
        self._session.execute(f"UPDATE {self._t('metadata')} SET value = %s WHERE name = "
                              "'schema_version'", (SCHEMA_VERSION,))
        return SCHEMA_VERSION

    # ---- writes --------------------------------------------------------------------------

    def store(self, batch: RowBatch, *, markers: Iterable[VisitDetectorEnd] = (),
              consumed: ConsumedOffsets | None = None,
              complete: Iterable[VisitDetectorLike] = ()) -> StoreResult:
        """Write rows, then end markers and completeness, then the consumer's offsets.

        Not one transaction: each step is idempotent and later steps only follow earlier
        ones, so a writer that dies part-way is repaired by storing the same batch again.
        """
        from alertbutler.faults import crash_point

        markers = list(markers)
        finished = [as_visit_detector(vd) for vd in complete]
        now = time.time()
        inserted = self._write_catalog(batch)
        crash_point("l1db.store.mid-transaction")
        self._write_markers(markers, now)
        done: list[VisitDetector] = []
        for vd in finished:
            n = count_of(batch, vd)
            if self._mark_complete(vd, n, now):
                done.append(vd)
        # Completeness before the offsets (the rows are written: the batch's offsets count
        # already), so a writer dying after its offsets leaves nothing half-settled; and once
        # more after them, so that of two writers (one storing markers, one the alert offsets
        # they wait for) the later always sees the other's write (QUORUM both ways).
        done += self._settle(markers, consumed, now)
        if consumed is not None:
            self._write_offsets(consumed, sum(inserted.values()), now)
            done += self._settle((), consumed, now)
        return StoreResult(inserted=inserted, completed=tuple(done))

    def _write_catalog(self, batch: RowBatch) -> dict[str, int]:
        inserted: dict[str, int] = {}
        for table, rows in (("DiaSource", batch.sources),
                            ("DiaForcedSource", batch.forced_sources),
                            ("SSSource", batch.ss_sources), ("DiaObject", batch.objects)):
            if not rows.num_rows:
                continue
            rows = _with_partitions(table, rows)
            new = rows.filter(pa.array(~self._existing(table, rows)))
            if table in ("DiaSource", "DiaForcedSource"):
                # index rows before the rows they point to; a stored row's are stored already
                # (an alert's history sources mostly are)
                self._write_index(table, new)
            self._insert(table, new.drop(["apdb_part"]) if table == "DiaObject" else new)
            inserted[table] = new.num_rows
            if table == "DiaObject":
                self._write_last(rows)
        return inserted

    def _write_index(self, table: str, rows: pa.Table) -> None:
        obj = rows.column("diaObjectId").to_numpy(zero_copy_only=False)
        part = rows.column("apdb_part").to_numpy()
        tpart = rows.column("apdb_time_part").to_numpy()
        keys = {(int(o), int(t), int(p)) for o, t, p in zip(obj, tpart, part, strict=True)
                if o >= 0}
        self._write(f"INSERT INTO {self._t('object_history_part')} (\"diaObjectId\", tab, "
                    "apdb_time_part, apdb_part) VALUES (?, ?, ?, ?)",
                    [(o, table, t, p) for o, t, p in sorted(keys)])
        if table == "DiaSource":
            cols = [rows.column(c).to_pylist() for c in
                    ("visit", "detector", "diaSourceId", "apdb_part", "apdb_time_part",
                     "diaObjectId")]
            self._write(f"INSERT INTO {self._t('visit_source')} (visit, detector, "
                        '"diaSourceId", apdb_part, apdb_time_part, "diaObjectId") '
                        "VALUES (?, ?, ?, ?, ?, ?)", list(zip(*cols, strict=True)))

    def _existing(self, table: str, rows: pa.Table) -> np.ndarray:
        """Which rows' keys are already stored (read at QUORUM)."""
        _, key = CATALOG[table]
        part, cluster = LAYOUT[table]
        key_cols = [rows.column(k).to_pylist() for k in key]
        wanted = list(zip(*key_cols, strict=True))
        found: set[tuple[Any, ...]] = set()
        select = ", ".join(q(k) for k in key)
        if len(part) == 1:  # partition = object or source id: IN over partitions
            ids = sorted({int(v) for v in rows.column(part[0]).to_pylist()})
            got = self._run(f"SELECT {select} FROM {self._t(table)} WHERE {q(part[0])} IN ?",
                            [(chunk,) for chunk in _chunks(ids)])
        else:  # spatial x time partitions: IN over pixels and the first clustering column
            got = self._run(
                f"SELECT {select} FROM {self._t(table)} WHERE apdb_part IN ? AND "
                f"apdb_time_part = ? AND {q(cluster[0])} IN ?",
                _pixel_object_chunks(rows.column("apdb_part").to_pylist(),
                                     rows.column("apdb_time_part").to_pylist(),
                                     rows.column(cluster[0]).to_pylist()))
        found = {tuple(r) for r in got}
        return np.array([w in found for w in wanted], dtype=bool)

    def _insert(self, table: str, rows: pa.Table, *, using: str = "",
                unset_nulls: bool = True, extra: Sequence[Any] = ()) -> None:
        from cassandra.query import UNSET_VALUE

        if not rows.num_rows:
            return
        names = rows.column_names
        cql = (f"INSERT INTO {self._t(table)} ({', '.join(q(n) for n in names)}) VALUES "
               f"({', '.join('?' * len(names))}){using}")
        columns = [rows.column(n).to_pylist() for n in names]
        params = []
        for i, row in enumerate(zip(*columns, strict=True)):
            values = [UNSET_VALUE if v is None and unset_nulls else v for v in row]
            params.append((*values, *([extra[i]] if extra else [])))
        self._write(cql, params)

    def _write_last(self, rows: pa.Table) -> None:
        """Newest version of each object, by write timestamp = its validity time."""
        stamps = (rows.column("validityStartMjdTai").to_numpy() * _US_PER_DAY).astype(np.int64)
        ids = rows.column("diaObjectId").to_pylist()
        parts = rows.column("apdb_part").to_pylist()
        previous = {int(o): (int(p), int(w)) for o, p, w in self._run(
            f"SELECT \"diaObjectId\", apdb_part, WRITETIME(apdb_part) FROM "
            f"{self._t('object_last_part')} WHERE \"diaObjectId\" IN ?",
            [(c,) for c in _chunks(sorted(set(ids)))]) if p is not None}
        moved = [(int(s), int(previous[o][0]), o) for o, p, s in zip(ids, parts, stamps,
                                                                      strict=True)
                 if o in previous and previous[o][0] != p and previous[o][1] < s]
        last = rows.select([c.name for c in CATALOG["DiaObjectLast"][0]] + ["apdb_part"])
        # A null must overwrite an older version's value, but a written null is a tombstone
        # that every region read scans: write nulls only for objects stored before (or with
        # several versions in this batch); a first version leaves its null cells unset.
        counts = pc.value_counts(rows.column("diaObjectId")).to_pylist()
        several = {c["values"] for c in counts if c["counts"] > 1}
        known = set(previous) | several
        first = pa.array([o not in known for o in ids])
        for mask, unset in ((first, True), (pc.invert(first), False)):
            chosen = last.filter(mask)
            self._insert("DiaObjectLast", chosen, using=" USING TIMESTAMP ?",
                         unset_nulls=unset,
                         extra=[int(s) for s in stamps[np.asarray(mask, dtype=bool)]])
        self._write(f"INSERT INTO {self._t('object_last_part')} (\"diaObjectId\", apdb_part) "
                    "VALUES (?, ?) USING TIMESTAMP ?",
                    [(o, p, int(s)) for o, p, s in zip(ids, parts, stamps, strict=True)])
        self._write(f"DELETE FROM {self._t('DiaObjectLast')} USING TIMESTAMP ? WHERE "
                    "apdb_part = ? AND \"diaObjectId\" = ?", [(s - 1, p, o) for s, p, o in moved])

    def _write_markers(self, markers: Sequence[VisitDetectorEnd], now: float) -> None:
        """Markers that prevail over the recorded ones (:func:`._markers.prevails`: read,
        then written; one ingester reads a control partition, so no two write the same
        cell at once), and for out-of-band ones the wait on their alert partition."""
        if not markers:
            return
        recorded: dict[tuple[int, int, int], tuple[int | None, int]] = {}
        for vd in sorted({(m.visit, m.detector) for m in markers}):
            for p, total, n in self._session.execute(self._prep(
                    f"SELECT partition, n_alerts_total, n_alerts FROM "
                    f"{self._t('visit_detector_end')} WHERE visit = ? AND detector = ?"), vd):
                recorded[(*vd, int(p))] = (total, int(n))
        kept = []
        for m in markers:
            key, this = (m.visit, m.detector, m.partition), (m.n_alerts_total, m.n_alerts)
            if key not in recorded or _markers.prevails(this, recorded[key]):
                recorded[key] = this
                kept.append(m)
        self._write(f"INSERT INTO {self._t('visit_detector_end')} (visit, detector, partition, "
                    "n_partitions, n_alerts, n_alerts_total, recorded_at, topic, last_offset) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(m.visit, m.detector, m.partition, m.n_partitions, m.n_alerts,
                      m.n_alerts_total, now, m.topic, m.last_offset) for m in kept])
        # a prevailing attempt published later: its offset is the higher one
        self._write(f"INSERT INTO {self._t('visit_detector_wait')} (topic, partition, visit, "
                    "detector, last_offset) VALUES (?, ?, ?, ?, ?)",
                    [(m.topic, m.partition, m.visit, m.detector, m.last_offset) for m in kept
                     if m.topic is not None and m.last_offset is not None])

    def _settle(self, markers: Sequence[VisitDetectorEnd], consumed: ConsumedOffsets | None,
                now: float) -> list[VisitDetector]:
        """Complete the visit-detectors of ``markers``, and those waiting on the partitions
        ``consumed`` moves past their offsets, whose recorded markers settle them
        (:func:`._markers.settled_count`) and whose every alert offset is stored. A wait is
        deleted only after its visit-detector's completeness row is written, so a writer
        dying in between leaves it to be settled again."""
        offsets: dict[tuple[str, int], int] = {}
        if consumed is not None:
            offsets.update(self._stored_offsets(consumed.consumer))
            for key, o in consumed.next_offsets.items():
                offsets[key] = max(offsets.get(key, 0), o)
        candidates = {of_l1(m.visit, m.detector) for m in markers}
        for (topic, partition) in sorted(consumed.next_offsets if consumed else ()):
            for v, d, last in self._session.execute(self._prep(
                    f"SELECT visit, detector, last_offset FROM {self._t('visit_detector_wait')} "
                    "WHERE topic = ? AND partition = ?"), (topic, partition)):
                if offsets[(topic, partition)] > last:
                    candidates.add(of_l1(v, d))
        done = []
        for vd in sorted(candidates):
            got = list(self._session.execute(self._prep(
                f"SELECT n_partitions, n_alerts, n_alerts_total, topic, partition, last_offset "
                f"FROM {self._t('visit_detector_end')} WHERE visit = ? AND detector = ?"),
                (vd.visit, vd.detector)))
            count = _markers.settled_count((n, a, t) for n, a, t, *_ in got)
            if count is None:
                continue
            waits = [(t, p, last) for *_, t, p, last in got if t is not None and last is not None]
            if any(offsets.get((t, p), 0) <= last for t, p, last in waits):
                continue
            if self._mark_complete(vd, count, now, raise_count=True):
                done.append(vd)
            self._write(f"DELETE FROM {self._t('visit_detector_wait')} WHERE topic = ? AND "
                        "partition = ? AND visit = ? AND detector = ?",
                        [(t, p, vd.visit, vd.detector) for t, p, _ in waits])
        return done

    def _stored_offsets(self, consumer: str) -> dict[tuple[str, int], int]:
        return {key: o.next_offset for key, o in self.consumer_offsets(consumer).items()}

    def _mark_complete(self, vd: VisitDetector, n_alerts: int, now: float, *,
                       raise_count: bool = False) -> bool:
        """Insert the completeness row once: a lightweight transaction, so of concurrent
        writers exactly one is told it completed the visit-detector. ``raise_count``: a row
        of fewer alerts is raised to ``n_alerts`` (:func:`._markers.raises`) by a
        conditional update."""
        result = self._session.execute(self._prep(
            f"INSERT INTO {self._t('ingested_visit_detector')} (visit, detector, n_alerts, "
            "completed_at) VALUES (?, ?, ?, ?) IF NOT EXISTS"),
            (vd.visit, vd.detector, int(n_alerts), now))
        if result.was_applied or not raise_count:
            return bool(result.was_applied)
        # the condition is _markers.raises on the recorded row
        result = self._session.execute(self._prep(
            f"UPDATE {self._t('ingested_visit_detector')} SET n_alerts = ?, completed_at = ? "
            "WHERE visit = ? AND detector = ? IF n_alerts < ?"),
            (int(n_alerts), now, vd.visit, vd.detector, int(n_alerts)))
        return bool(result.was_applied)

    def _generation(self, consumer: str, topic: str, partition: int) -> int:
        key = (consumer, topic, partition)
        if key not in self._generations:
            row = self._session.execute(self._prep(
                f"SELECT generation FROM {self._t('offset_generation')} WHERE consumer = ? "
                "AND topic = ? AND partition = ?"), key).one()
            self._generations[key] = int(row[0]) if row else 0
        return self._generations[key]

    def _write_offsets(self, consumed: ConsumedOffsets, n_rows: int, now: float) -> None:
        """Offsets carry their own value as write timestamp (within the reset generation),
        so the highest offset wins whatever order concurrent or replayed writes land in."""
        self._write(f"INSERT INTO {self._t('consumer_offset')} (consumer, topic, partition, "
                    "next_offset, updated_at) VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?",
                    [(consumed.consumer, t, p, o, now,
                      (self._generation(consumed.consumer, t, p) << _GEN_SHIFT) | int(o))
                     for (t, p), o in sorted(consumed.next_offsets.items())])
        self._session.execute(self._prep(
            f"UPDATE {self._t('ingest_progress')} SET n_messages = n_messages + ?, "
            "n_rows = n_rows + ? WHERE consumer = ? AND member = ?"),
            (consumed.n_messages, n_rows, consumed.consumer, consumed.member))
        self._session.execute(self._prep(
            f"INSERT INTO {self._t('ingest_progress_time')} (consumer, member, updated_at) "
            "VALUES (?, ?, ?)"), (consumed.consumer, consumed.member, now))

    def prepare(self, batch: RowBatch) -> RowBatch:
        """The batch as it is: a Cassandra store has no client-side share to do ahead."""
        return batch

    def prepare_time_partitions(self, start_mjd: float, end_mjd: float) -> None:
        """Nothing to do: Cassandra partitions exist as soon as a row is written."""

    # ---- reads ---------------------------------------------------------------------------

    def _table(self, table: str, rows: list[Any], names: list[str],
               columns: Iterable[str] | None) -> pa.Table:
        schema = arrow_schema(table)
        data: list[Sequence[Any]] = (list(zip(*rows, strict=True)) if rows
                                     else [[] for _ in names])
        out = pa.Table.from_arrays([pa.array(list(values), type=schema.field(n).type)
                                    for n, values in zip(names, data, strict=True)],
                                   schema=pa.schema([schema.field(n) for n in names]))
        if table == "DiaSource" and out.num_rows:
            index = out.schema.get_field_index("diaObjectId")
            column = out.column(index)
            out = out.set_column(index, out.schema.field(index), pc.if_else(
                pc.equal(column, _NO_OBJECT), pa.scalar(None, pa.int64()), column))
        return out.select([f.name for f in schema] if columns is None else list(columns))

    def _select(self, table: str) -> tuple[str, list[str]]:
        names = [c.name for c in CATALOG[table][0]]
        return ", ".join(q(n) for n in names), names

    def objects_in_region(self, region: Region, *,
                          columns: Iterable[str] | None = None) -> pa.Table:
        """The latest version of every DiaObject inside ``region``: one read per pixel."""
        parts: set[int] = set()
        for lo, hi in region.pixel_ranges():
            parts.update(range(int(lo) >> _SHIFT, (int(hi) >> _SHIFT) + 1))
        select, names = self._select("DiaObjectLast")
        rows = self._run(f"SELECT {select} FROM {self._t('DiaObjectLast')} WHERE apdb_part = ?",
                         [(p,) for p in sorted(parts)])
        table = self._table("DiaObjectLast", rows, names, None)
        if table.num_rows:
            mask = region.contains(table.column("ra").to_numpy(),
                                   table.column("dec").to_numpy())
            table = table.filter(pa.array(mask))
        return table if columns is None else table.select(list(columns))

    def _history(self, table: str, object_ids: Iterable[int], since_mjd: float | None,
                 columns: Iterable[str] | None) -> pa.Table:
        ids = int_list(object_ids)
        select, names = self._select(table)
        if not ids:
            return self._table(table, [], names, columns)
        since = -(2**31) if since_mjd is None else int(_time_part(np.array([since_mjd]))[0])
        found = self._run(
            f"SELECT \"diaObjectId\", apdb_part, apdb_time_part FROM "
            f"{self._t('object_history_part')} WHERE \"diaObjectId\" IN ? AND tab = ? "
            "AND apdb_time_part >= ?", [(chunk, table, since) for chunk in _chunks(ids)])
        groups: dict[tuple[int, int], set[int]] = defaultdict(set)
        for obj, part, tpart in found:
            groups[(part, tpart)].add(obj)
        rows = self._run(
            f"SELECT {select} FROM {self._t(table)} WHERE apdb_part = ? AND apdb_time_part = ? "
            "AND \"diaObjectId\" IN ?",
            [(p, t, chunk) for (p, t), objs in sorted(groups.items())
             for chunk in _chunks(sorted(objs))])
        out = self._table(table, rows, names, None)
        if since_mjd is not None and out.num_rows:
            out = out.filter(pa.array(out.column("midpointMjdTai").to_numpy()
                                      >= float(since_mjd)))
        return out if columns is None else out.select(list(columns))

    def source_history(self, object_ids: Iterable[int], *, since_mjd: float | None = None,
                       columns: Iterable[str] | None = None) -> pa.Table:
        """Every DiaSource of these objects with ``midpointMjdTai >= since_mjd``."""
        return self._history("DiaSource", object_ids, since_mjd, columns)

    def forced_source_history(self, object_ids: Iterable[int], *,
                              since_mjd: float | None = None,
                              columns: Iterable[str] | None = None) -> pa.Table:
        """Every DiaForcedSource of these objects with ``midpointMjdTai >= since_mjd``."""
        return self._history("DiaForcedSource", object_ids, since_mjd, columns)

    def object_versions(self, object_ids: Iterable[int]) -> pa.Table:
        """Every stored version of these DiaObjects."""
        select, names = self._select("DiaObject")
        rows = self._run(f"SELECT {select} FROM {self._t('DiaObject')} WHERE "
                         "\"diaObjectId\" IN ?", [(c,) for c in _chunks(int_list(object_ids))])
        return self._table("DiaObject", rows, names, None)

    def objects(self, object_ids: Iterable[int]) -> pa.Table:
        """The latest version of these DiaObjects (missing ids are simply absent)."""
        ids = int_list(object_ids)
        found = self._run(f"SELECT \"diaObjectId\", apdb_part FROM "
                          f"{self._t('object_last_part')} WHERE \"diaObjectId\" IN ?",
                          [(c,) for c in _chunks(ids)])
        groups: dict[int, list[int]] = defaultdict(list)
        for obj, part in found:
            if part is not None:
                groups[int(part)].append(int(obj))
        select, names = self._select("DiaObjectLast")
        rows = self._run(f"SELECT {select} FROM {self._t('DiaObjectLast')} WHERE apdb_part = ? "
                         "AND \"diaObjectId\" IN ?",
                         [(p, c) for p, objs in sorted(groups.items())
                          for c in _chunks(sorted(objs))])
        return self._table("DiaObjectLast", rows, names, None)

    def latest_objects(self, limit: int) -> pa.Table:
        """The ``limit`` DiaObjects most recently detected (the newest first). A full scan
        on Cassandra: for operators and small databases."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        select, names = self._select("DiaObjectLast")
        rows = list(self._session.execute(f"SELECT {select} FROM {self._t('DiaObjectLast')}",
                                          timeout=600))
        table = self._table("DiaObjectLast", rows, names, None)
        if not table.num_rows:
            return table
        table = table.sort_by([("lastDiaSourceMjdTai", "descending"),
                               ("diaObjectId", "ascending")])
        return table.slice(0, int(limit))

    def topic_id(self, consumer: str, topic: str) -> str | None:
        """The Kafka topic id the consumer's stored offsets of ``topic`` belong to."""
        row = self._session.execute(self._prep(
            f"SELECT value FROM {self._t('metadata')} WHERE name = ?"),
            (topic_key(consumer, topic),)).one()
        return None if row is None or row[0] is None else str(row[0])

    def set_topic_id(self, consumer: str, topic: str, topic_id: str | None) -> None:
        """Record (or, with None, forget) the topic id of the consumer's offsets."""
        key = topic_key(consumer, topic)
        if topic_id is None:
            self._session.execute(self._prep(
                f"DELETE FROM {self._t('metadata')} WHERE name = ?"), (key,))
        else:
            self._session.execute(self._prep(
                f"INSERT INTO {self._t('metadata')} (name, value) VALUES (?, ?)"),
                (key, topic_id))

    def sources_of_visit_detector(self, visit: int, detector: int) -> pa.Table:
        keys = list(self._session.execute(self._prep(
            f"SELECT \"diaSourceId\", apdb_part, apdb_time_part, \"diaObjectId\" FROM "
            f"{self._t('visit_source')} WHERE visit = ? AND detector = ?"),
            (int(visit), int(detector))))
        select, names = self._select("DiaSource")
        groups: dict[tuple[int, int], set[int]] = defaultdict(set)
        for _, part, tpart, obj in keys:
            groups[(part, tpart)].add(obj)
        rows = self._run(
            f"SELECT {select} FROM {self._t('DiaSource')} WHERE apdb_part = ? AND "
            "apdb_time_part = ? AND \"diaObjectId\" IN ?",
            [(p, t, c) for (p, t), objs in sorted(groups.items()) for c in _chunks(sorted(objs))])
        out = self._table("DiaSource", rows, names, None)
        if not out.num_rows:
            return out
        mask = (out.column("visit").to_numpy() == int(visit)) & \
               (out.column("detector").to_numpy() == int(detector))
        return out.filter(pa.array(mask))

    # ---- ingestion state ------------------------------------------------------------------

    def ingested(self, visit_detectors: Iterable[VisitDetectorLike]) -> set[VisitDetector]:
        """Those of ``visit_detectors`` that are completely ingested (as they were given:
        the database matches visit and detector)."""
        wanted = {as_visit_detector(vd) for vd in visit_detectors}
        if not wanted:
            return set()
        visits = sorted({vd.visit for vd in wanted})
        rows = self._run(f"SELECT visit, detector FROM {self._t('ingested_visit_detector')} "
                         "WHERE visit IN ?", [(c,) for c in _chunks(visits)])
        found = {(int(v), int(d)) for v, d in rows}
        return {vd for vd in wanted if (vd.visit, vd.detector) in found}

    def ingested_alerts(self, visit_detectors: Iterable[VisitDetectorLike]
                        ) -> dict[VisitDetector, int]:
        """Alerts of each completely ingested one of ``visit_detectors``, as its end markers
        count them (a later attempt that published more raises the count)."""
        wanted = {as_visit_detector(vd) for vd in visit_detectors}
        if not wanted:
            return {}
        visits = sorted({vd.visit for vd in wanted})
        rows = self._run(f"SELECT visit, detector, n_alerts FROM "
                         f"{self._t('ingested_visit_detector')} WHERE visit IN ?",
                         [(c,) for c in _chunks(visits)])
        found = {(int(v), int(d)): int(n) for v, d, n in rows}
        return {vd: found[(vd.visit, vd.detector)] for vd in wanted
                if (vd.visit, vd.detector) in found}

    def consumer_offsets(self, consumer: str) -> dict[tuple[str, int], PartitionOffset]:
        """The offsets an ingester stored here after its rows: where it resumes."""
        rows = self._session.execute(self._prep(
            f"SELECT topic, partition, next_offset, updated_at FROM "
            f"{self._t('consumer_offset')} WHERE consumer = ?"), (consumer,))
        return {(t, int(p)): PartitionOffset(consumer=consumer, topic=t, partition=int(p),
                                             next_offset=int(o), updated_at=float(u))
                for t, p, o, u in rows if o is not None}

    def reset_consumer_offsets(self, consumer: str, topic: str, *,
                               partitions: Iterable[int] | None = None,
                               to: int | None = None) -> dict[int, int | None]:
        """Set where the ingester resumes (``to`` None: the partition's start); the only way
        offsets move backwards: a new generation outranks every earlier write. Stop the
        ingesters first."""
        if to is not None and to < 0:
            raise ValueError(f"offset {to} is negative")
        before: dict[int, int | None] = {
            p: o.next_offset for (t, p), o in self.consumer_offsets(consumer).items()
            if t == topic}
        targets = sorted(before) if partitions is None else sorted({int(p) for p in partitions})
        for partition in targets:
            before.setdefault(partition, None)
            self._generations.pop((consumer, topic, partition), None)
            generation = self._generation(consumer, topic, partition) + 1
            self._session.execute(self._prep(
                f"INSERT INTO {self._t('offset_generation')} (consumer, topic, partition, "
                "generation) VALUES (?, ?, ?, ?)"), (consumer, topic, partition, generation))
            self._generations[(consumer, topic, partition)] = generation
            base = generation << _GEN_SHIFT
            if to is None:
                self._session.execute(self._prep(
                    f"DELETE FROM {self._t('consumer_offset')} USING TIMESTAMP ? WHERE "
                    "consumer = ? AND topic = ? AND partition = ?"),
                    (base - 1, consumer, topic, partition))
            else:
                self._session.execute(self._prep(
                    f"INSERT INTO {self._t('consumer_offset')} (consumer, topic, partition, "
                    "next_offset, updated_at) VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"),
                    (consumer, topic, partition, int(to), time.time(), base | int(to)))
        self.set_topic_id(consumer, topic, None)  # the ingester records the current one
        return {p: before[p] for p in targets}

    def consumer_progress(self, consumer: str) -> ConsumerProgress:
        totals = list(self._session.execute(self._prep(
            f"SELECT n_messages, n_rows FROM {self._t('ingest_progress')} WHERE consumer = ?"),
            (consumer,)))
        times = [r[0] for r in self._session.execute(self._prep(
            f"SELECT updated_at FROM {self._t('ingest_progress_time')} WHERE consumer = ?"),
            (consumer,)) if r[0] is not None]
        return ConsumerProgress(consumer=consumer,
                                n_messages=int(sum(r[0] or 0 for r in totals)),
                                n_rows=int(sum(r[1] or 0 for r in totals)),
                                updated_at=max(times) if times else None)

    def row_counts(self) -> dict[str, int]:
        """Row counts: full scans, for operators and tests, not for a busy night.

        Each table is counted in :data:`_COUNT_SLICES` token ranges, concurrently: one
        ``COUNT(*)`` over a whole table is one request that must finish within the server's
        read timeout, which a table of 10^5 rows on a busy cluster did not."""
        step = 2**64 // _COUNT_SLICES
        bounds = [-(2**63) + i * step for i in range(_COUNT_SLICES)] + [2**63 - 1]
        ranges = list(pairwise(bounds))
        counts = {}
        for name in CATALOG:
            token = f"token({', '.join(q(c) for c in LAYOUT[name][0])})"
            counts[name] = sum(int(r[0]) for r in self._run(
                f"SELECT COUNT(*) FROM {self._t(name)} WHERE {token} > ? AND {token} <= ?",
                ranges))
        return counts

    def info(self) -> L1dbInfo:
        counts = self.row_counts()
        done = list(self._session.execute(
            f"SELECT visit, detector, completed_at FROM {self._t('ingested_visit_detector')}",
            timeout=600))
        last = max(done, key=lambda r: (r[2], r[0], r[1])) if done else None
        visits = [r[0] for r in self._session.execute(
            f"SELECT DISTINCT visit, detector FROM {self._t('visit_source')}", timeout=600)]
        return L1dbInfo(
            url=self.url, backend=self.backend, schema_version=self.schema_version,
            row_counts=counts, n_ingested_visit_detectors=len(done),
            last_ingested=None if last is None else of_l1(last[0], last[1]),
            last_ingested_at=None if last is None else float(last[2]),
            last_visit=max(visits) if visits else None)


def _pixel_object_chunks(parts: list[int], tparts: list[int],
                         objects: list[int]) -> list[tuple[list[int], int, list[int]]]:
    """(pixels, time partition, objects) for reads of many spatial partitions at once: a
    request reads every object of its list in every pixel of its list, so pixels and objects
    are gathered until their product reaches :data:`_CROSS` (all-sky rows, one object per
    pixel, and a detector's rows, hundreds of objects in a few pixels, both fit)."""
    groups: dict[int, dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))
    for p, t, o in zip(parts, tparts, objects, strict=True):
        groups[t][p].add(o)
    out: list[tuple[list[int], int, list[int]]] = []
    for t, pixels in sorted(groups.items()):
        chosen: list[int] = []
        objs: set[int] = set()
        for p, mine in sorted(pixels.items()):
            if chosen and (len(chosen) + 1) * len(objs | mine) > _CROSS:
                out.extend((chosen, t, chunk) for chunk in _chunks(sorted(objs)))
                chosen, objs = [], set()
            chosen.append(p)
            objs |= mine
        out.extend((chosen, t, chunk) for chunk in _chunks(sorted(objs)))
    return out


def _with_partitions(table: str, rows: pa.Table) -> pa.Table:
    """Add the spatial and time partition columns Cassandra's tables key on."""
    if table == "DiaSource":  # a clustering column is never null: -1 stands for none
        index = rows.schema.get_field_index("diaObjectId")
        rows = rows.set_column(index, rows.schema.field(index),
                               pc.fill_null(rows.column("diaObjectId"), _NO_OBJECT))
    for name in EXTRA.get(table, ()):
        if name == "apdb_part":
            values = pa.array(rows.column("pixelId").to_numpy() >> _SHIFT, type=pa.int64())
        else:
            values = pa.array(_time_part(rows.column("midpointMjdTai").to_numpy())
                              .astype(np.int32), type=pa.int32())
        rows = rows.append_column(name, values)
    if table == "DiaObject":
        rows = rows.append_column("apdb_part", pa.array(
            rows.column("pixelId").to_numpy() >> _SHIFT, type=pa.int64()))
    return rows


def _minor(version: str) -> int:
    return int(version.split(".")[1])


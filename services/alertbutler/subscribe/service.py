"""The filter service: many named filters, one pass over the stream, one topic per filter.

Each batch is decoded once (only the fields the filters read), every filter is evaluated
over the batch's columns, the kept messages are forwarded as they arrived (same wire-format
bytes, keyed by diaSourceId) and written to files; only when every message the batch
produced was acknowledged, and its files are synced, are its offsets committed, in reading
order. The next batch is read and evaluated while one is being delivered (two in flight).

How filtered topics are written depends on what the broker offers, found by probing it
(:func:`alertbutler.kafka.transaction_support`), never from a setting:

* exactly once, where aborted messages are hidden from ``read_committed`` readers (Apache
  Kafka): each batch is one transaction holding the kept messages of every filter and the
  source offsets (``send_offsets_to_transaction``). A crash (even SIGKILL) leaves the open
  transaction to be aborted by the restarted service, which resumes from the offsets of the
  last committed one, so a ``read_committed`` reader sees every kept alert exactly once.
  One batch per transaction: the next is read only once this one committed.
* at least once, elsewhere (the embedded broker): the service resumes from the last
  committed offsets, so a consumer sees every kept alert at least once; the alerts of the
  batches in flight at the crash may appear twice, with the same key (diaSourceId) and the
  same bytes, so a consumer that keeps the last message per key sees each alert once.

Files are written at least once in both cases (a file takes no part in a transaction).

A message that cannot be decoded stops the service (exit 1) after the batch's messages
before it were forwarded and committed, unless ``on_error`` (in the file, or ``--on-error``)
says ``skip`` or ``deadletter:FILE``: the source offsets never move past a message that was
neither forwarded nor explicitly skipped.

The filters file is re-read when it changes. A filter that no longer compiles is refused
with a logged error and its previous version keeps running; the others are unaffected.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import yaml
from confluent_kafka import KafkaException, Producer

from alertbutler.config import Config
from alertbutler.faults import crash_point
from alertbutler.kafka import confluent_settings, create_topics, group_id, transaction_support
from alertbutler.kafka.transactions import CallStuck
from alertbutler.metrics import Health, ServiceMetrics
from alertbutler.subscribe.errors import FilterConfigError, FilterError, SubscribeError
from alertbutler.subscribe.outputs import (
    Output,
    TopicOutput,
    file_output,
    make_producer,
)
from alertbutler.subscribe.positions import Committed, parse_start
from alertbutler.subscribe.selection import Selector, writers_for
from alertbutler.subscribe.stream import AlertStream, StreamAlert, alert_bytes_decoder
from alertbutler.subscribe.undecodable import (
    OnError,
    Undecodable,
    offsets_before,
    parse_on_error,
)
from alertbutler.subscribe.url import StreamURL

if TYPE_CHECKING:
    from confluent_kafka import KafkaError, Message

log = logging.getLogger(__name__)

#: Where a crash test kills the service: every message of a batch was acknowledged by the
#: broker (inside the open transaction, with exactly-once) and its offsets are not committed.
CRASH_BEFORE_COMMIT = "filter.after-produce-before-commit"

_SERVICE_KEYS = {"source", "group", "start", "batch_size", "partitions", "filters",
                 "on_error"}
_FILTER_KEYS = {"filter", "topic", "file"}


@dataclass(frozen=True)
class FilterSpec:
    name: str
    text: str
    topic: str | None = None
    file: str | None = None


@dataclass(frozen=True)
class ServiceSpec:
    """The parsed filters file."""

    source: str
    group: str
    start: str = "earliest"
    batch_size: int = 2000
    partitions: int = 1
    filters: dict[str, FilterSpec] = field(default_factory=dict)
    on_error: OnError = field(default_factory=OnError)


def load_service_spec(path: str | os.PathLike[str]) -> ServiceSpec:
    """Read and check the file's structure (filter texts are compiled by the service)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise FilterConfigError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise FilterConfigError(f"{path}: expected a mapping with source, group and filters")
    unknown = set(data) - _SERVICE_KEYS
    if unknown:
        raise FilterConfigError(f"{path}: unknown keys {sorted(unknown)} (known: "
                                f"{sorted(_SERVICE_KEYS)})")
    for key in ("source", "group"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise FilterConfigError(f"{path}: '{key}' must be given as text")
    StreamURL.parse(data["source"])
    filters_raw = data.get("filters") or {}
    if not isinstance(filters_raw, dict):
        raise FilterConfigError(f"{path}: 'filters' must map names to filter settings")
    filters: dict[str, FilterSpec] = {}
    for name, item in filters_raw.items():
        if isinstance(item, str):
            item = {"filter": item}
        if not isinstance(item, dict) or not isinstance(item.get("filter"), str):
            raise FilterConfigError(f"{path}: filter {name!r} needs 'filter: <expression>'")
        extra = set(item) - _FILTER_KEYS
        if extra:
            raise FilterConfigError(f"{path}: filter {name!r}: unknown keys {sorted(extra)}")
        if not item.get("topic") and not item.get("file"):
            raise FilterConfigError(f"{path}: filter {name!r} needs a 'topic' or a 'file'")
        filters[str(name)] = FilterSpec(str(name), item["filter"], item.get("topic"),
                                        item.get("file"))
    try:
        batch_size = int(data.get("batch_size", 2000))
        partitions = int(data.get("partitions", 1))
    except (TypeError, ValueError):
        raise FilterConfigError(f"{path}: batch_size and partitions are integers") from None
    if not (1 <= batch_size <= 1_000_000 and 1 <= partitions <= 10_000):
        raise FilterConfigError(f"{path}: batch_size must be 1 to 1000000 and partitions 1 to "
                                f"10000 (got {batch_size} and {partitions})")
    try:
        on_error = parse_on_error(data.get("on_error"))
    except ValueError as exc:
        raise FilterConfigError(f"{path}: {exc}") from None
    return ServiceSpec(data["source"], data["group"], str(data.get("start", "earliest")),
                       batch_size, partitions, filters, on_error)


@dataclass
class _Active:
    spec: FilterSpec
    outputs: list[Output]
    kept: int = 0
    #: this version of the filter: since when, from which source offsets (None: from the
    #: stream's start), and what it has seen and kept since
    activated_at: float = field(default_factory=time.time)
    active_from: dict[tuple[str, int], int] | None = None
    seen: int = 0
    kept_since: int = 0


def status_path(filters_file: str | os.PathLike[str]) -> Path:
    """Where the service says what runs: ``<filters file>.status.json`` beside the file."""
    path = Path(filters_file)
    return path.with_name(path.name + ".status.json")


class _Acks:
    """Deliveries of one batch still awaited, and the failures seen."""

    def __init__(self) -> None:
        self.pending = 0
        self.errors: list[str] = []

    def delivered(self, err: KafkaError | None, msg: Message) -> None:
        self.pending -= 1
        if err is not None:
            self.errors.append(f"{msg.topic()}: {err.str()}")


@dataclass
class ServiceStats:
    batches: int = 0
    alerts: int = 0
    kept: dict[str, int] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    undecodable: int = 0
    #: "exactly-once" (transactions) or "at-least-once", as the broker probe decided
    delivery: str = ""


class FilterService:
    """Runs the filters of one file until stopped (or, with ``until_end``, the stream's end)."""

    def __init__(self, path: str | os.PathLike[str], *, config: Config,
                 until_end: bool = False, start: str | None = None,
                 reload_interval: float = 0.25, max_in_flight: int = 2,
                 on_error: OnError | None = None,
                 metrics: ServiceMetrics | None = None, health: Health | None = None) -> None:
        self.path = Path(path)
        self.config = config
        self.until_end = until_end
        self.start_override = start
        self.reload_interval = reload_interval
        #: batches produced but not yet acknowledged (a crash may duplicate these)
        self.max_in_flight = max(1, max_in_flight)
        self.spec = load_service_spec(self.path)
        self.url = StreamURL.parse(self.spec.source)
        self.stats = ServiceStats()
        self._fingerprint = self._file_fingerprint()
        self._stat = self._file_stat()
        #: the stream's next offsets while it runs: where a filter changed now takes effect
        self._positions: dict[tuple[str, int], int] | None = None
        #: the stream's next offsets after the last batch evaluated: how far the filters saw
        self._read_to: dict[tuple[str, int], int] = {}
        self._active: dict[str, _Active] = {}
        #: what the status file of a previous run says each filter version applied from: a
        #: restart (after a crash, too) keeps the versions that did not change
        self._previous = _previous_versions(status_path(self.path))
        self._producer: Any = None
        self._transactional = False
        #: writer schemas by wire id: ours, Rubin's, replayed archives', the registry's
        self.writers = writers_for(config)
        self._selector = Selector({}, self.writers)
        #: the file's ``on_error``, unless the command line chose (not reloaded)
        self.undecodable = Undecodable(on_error or self.spec.on_error, self._report)
        self.stop_event = threading.Event()
        #: observability for ``filter serve --metrics-port`` (None: nothing recorded)
        self.metrics = metrics
        self.health = health

    # -- filters ---------------------------------------------------------------------------
    def _file_stat(self) -> tuple[int, int, int]:
        try:
            st = self.path.stat()
        except OSError:
            return (0, 0, 0)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _file_fingerprint(self) -> str:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return ""

    def _apply(self, spec: ServiceSpec) -> None:
        """Compile and activate the filters of ``spec``; a refused filter keeps its old version."""
        if (spec.source, spec.group) != (self.spec.source, self.spec.group):
            log.error("source and group cannot change while running; restart the service",
                      extra={"file": str(self.path)})
        new_active: dict[str, _Active] = {}
        known = {n: a.spec.topic for n, a in self._active.items()}
        wanted = {f.topic for n, f in spec.filters.items() if f.topic and known.get(n) != f.topic}
        if wanted:  # one admin round for every new topic (100 filters start in one go)
            create_topics(self.url.bootstrap, dict.fromkeys(sorted(wanted), spec.partitions),
                          settings=self._client_settings())
        for name, fspec in spec.filters.items():
            old = self._active.get(name)
            if old is not None and old.spec == fspec:
                new_active[name] = old
                continue
            try:
                Selector({name: fspec.text}, self.writers).check()
            except FilterError as exc:
                self.stats.refused[name] = str(exc)
                log.error("filter refused: %s", exc, extra={"filter": name,
                                                             "file": str(self.path)})
                if old is not None:
                    new_active[name] = old
                continue
            self.stats.refused.pop(name, None)
            if old is not None and (old.spec.topic, old.spec.file) == (fspec.topic, fspec.file):
                outputs = old.outputs
            else:
                if old is not None:
                    _close(old.outputs)
                outputs = self._outputs(fspec)
            since = (self._previous.get(name, {}).get(_version(fspec))
                     if old is None and self._positions is None else None)
            if since is not None:
                new_active[name] = _Active(fspec, outputs, activated_at=since[0],
                                           active_from=since[1])
            else:
                new_active[name] = _Active(fspec, outputs, old.kept if old else 0,
                                           active_from=self._positions)
            log.info("filter active", extra={"filter": name, "topic": fspec.topic})
        for name, old in self._active.items():
            if name not in new_active:
                _close(old.outputs)
                log.info("filter removed", extra={"filter": name})
        self._active = new_active
        # each filter is compiled against every schema the stream brings (Rubin's, ZTF's,
        # ours); one that does not fit a schema keeps nothing of it, said once
        self._selector = Selector({n: a.spec.text for n, a in new_active.items()},
                                  self.writers, on_refused=self._refused_on_schema)
        self.spec = ServiceSpec(self.spec.source, self.spec.group, spec.start,
                                spec.batch_size, spec.partitions, spec.filters,
                                self.spec.on_error)

    def _refused_on_schema(self, name: str, exc: FilterError) -> None:
        self.stats.refused[name] = str(exc)
        log.error("filter refused for a schema: %s", exc, extra={"filter": name})

    def _outputs(self, fspec: FilterSpec) -> list[Output]:
        outputs: list[Output] = []
        if fspec.topic:  # created in _apply
            outputs.append(TopicOutput(self._producer, fspec.topic, who=self.config.kafka.client))
        if fspec.file:
            outputs.append(file_output(fspec.file, self.writers))
        return outputs

    def _client_settings(self) -> dict[str, Any]:
        settings = confluent_settings(self.config, self.url.bootstrap)
        settings.pop("bootstrap.servers")
        return settings

    def maybe_reload(self) -> bool:
        """Re-read the file if its content changed; True when something was applied.

        A stat() is all it costs while nothing changed, so it runs before every batch:
        a filter saved (by the portal, an editor) applies to the next batch read."""
        stat = self._file_stat()
        if stat == self._stat:
            return False
        self._stat = stat
        fingerprint = self._file_fingerprint()
        if fingerprint == self._fingerprint or not fingerprint:
            return False
        self._fingerprint = fingerprint
        try:
            spec = load_service_spec(self.path)
        except (FilterConfigError, ValueError) as exc:
            log.error("filters file refused, previous filters keep running: %s", exc)
            return False
        log.info("filters file changed: reloading", extra={"file": str(self.path)})
        self._apply(spec)
        self.write_status()
        return True

    def write_status(self) -> None:
        """``<file>.status.json``: the file version applied and each filter's version, the
        source offsets from which it applies, and its yield since (what the portal shows).
        Written after each batch and each reload; a reader never sees half a file.
        ``read_to`` is the source position after the last batch evaluated: with
        ``active_from`` it bounds what each filter version saw (``alertbutler night
        reconcile --filters`` counts a night's alerts between the two)."""
        now = time.time()
        data = {"fingerprint": self._fingerprint, "updated_at": now,
                "alerts": self.stats.alerts, "delivery": self.stats.delivery,
                "source": self.spec.source,
                "read_to": {f"{t}[{p}]": o for (t, p), o in sorted(self._read_to.items())},
                "refused": dict(self.stats.refused),
                "filters": {n: {"filter": a.spec.text, "topic": a.spec.topic,
                                "file": a.spec.file, "activated_at": a.activated_at,
                                "active_from": None if a.active_from is None else
                                {f"{t}[{p}]": o for (t, p), o in
                                 sorted(a.active_from.items())},
                                "seen": a.seen, "kept": a.kept_since,
                                "kept_total": a.kept,
                                "fraction": round(a.kept_since / a.seen, 6) if a.seen
                                else None} for n, a in self._active.items()}}
        path = status_path(self.path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            tmp.replace(path)
        except OSError as exc:
            log.warning("cannot write the status file: %s", exc)

    # -- the loop ----------------------------------------------------------------------------
    def _open_producer(self) -> Producer:
        """The producer of the filtered topics: transactional where the broker hides
        aborted messages from read_committed readers (probed once per process), otherwise
        idempotent. Opened before the stream: starting transactions aborts one that a
        killed predecessor left open, which would otherwise hold back both the committed
        offsets the stream resumes from and every read_committed reader of the topics."""
        settings = confluent_settings(self.config, self.url.bootstrap)
        support = transaction_support(self.url.bootstrap, settings=self._client_settings())
        self._transactional = support.available
        self.stats.delivery = "exactly-once" if support.available else "at-least-once"
        if not support.available:
            log.warning("filtered topics get every alert at least once (a crash may repeat "
                        "some): %s", support.reason)
            return make_producer(settings)
        # stable across restarts, so a restart fences its predecessor and ends its transaction
        txn_id = f"{group_id(self.config, self.spec.group)}-filter"
        producer = make_producer(settings, transactional_id=txn_id)
        try:
            producer.init_transactions(60)
        except KafkaException as exc:
            raise SubscribeError(f"cannot start transactions as {txn_id!r}: "
                                 f"{exc.args[0].str()}") from exc
        log.info("filtered topics get every alert exactly once (Kafka transactions)",
                 extra={"transactional_id": txn_id})
        return producer

    def run(self) -> ServiceStats:
        self._producer = self._open_producer()
        self._apply(self.spec)
        self.write_status()
        fallback: Literal["earliest", "latest"] = (
            "latest" if self.spec.start == "latest" else "earliest")
        text = self.start_override
        start = Committed(fallback) if text in (None, "committed", "group") else \
            parse_start(text)
        stream = AlertStream(self.url, group=self.spec.group, start=start,
                             end="end" if self.until_end else None,
                             decoder=alert_bytes_decoder(self.writers),
                             config=self.config, commit="manual")
        last_reload = time.monotonic()
        last_report = time.monotonic()
        inflight: deque[tuple[dict[tuple[str, int], int], _Acks]] = deque()
        with stream:
            if self.health is not None:
                self.health.set_ready(True, "stream open")
            while not self.stop_event.is_set():
                if self.health is not None:
                    self.health.beat()
                if time.monotonic() - last_reload >= self.reload_interval:
                    last_reload = time.monotonic()
                    self._positions = stream.positions  # the next batch starts here
                    self.maybe_reload()
                batch = stream.read_batch(self.spec.batch_size, timeout=0.5)
                # every turn, batch or not: a fetch of markers alone moves the position too
                self._observe(stream, len(batch))
                if batch and self._transactional:
                    stopped = self._forward_in_transaction(stream, batch)
                    self.stats.batches += 1
                    self.stats.alerts += len(batch)
                elif batch:
                    acks, stopped = self._evaluate(batch)
                    offsets = stream.positions if stopped is None else stopped[0]
                    inflight.append((offsets, acks))
                    self.stats.batches += 1
                    self.stats.alerts += len(batch)
                    # the next batch is read and evaluated while this one is delivered
                    self._settle(stream, inflight,
                                 keep=self.max_in_flight - 1 if stopped is None else 0)
                elif stream.at_end:
                    break
                else:
                    stopped = None
                    self._settle(stream, inflight, keep=0)
                if stopped is not None:  # what came before it is forwarded and committed
                    self._close_outputs()
                    raise stopped[1]
                if batch:
                    self._read_to = stream.positions
                    self.write_status()
                if time.monotonic() - last_report >= 10:
                    last_report = time.monotonic()
                    log.info("progress", extra={"alerts": self.stats.alerts,
                                                "lag": stream.lag})
            self._settle(stream, inflight, keep=0)
        self._close_outputs()
        return self.stats

    def _close_outputs(self) -> None:
        for active in self._active.values():
            _close(active.outputs)
        self.undecodable.close()
        self.stats.kept = {n: a.kept for n, a in self._active.items()}

    def _report(self, alert: StreamAlert, reason: str, done: str) -> None:
        self.stats.undecodable += 1
        if self.metrics is not None:
            self.metrics.errors.labels(self.metrics.service, "undecodable").inc()
        log.error("undecodable message %s: %s", done, reason, extra={
            "topic": alert.topic, "partition": alert.partition, "offset": alert.offset})

    def _observe(self, stream: AlertStream, n: int) -> None:
        """Alerts consumed, and the lag of every partition (all messages, markers included,
        after the position)."""
        m = self.metrics
        if m is None:
            return
        if n:
            m.messages_consumed.labels(m.service).inc(n)
        for (topic, partition), lag in stream.lag_by_partition.items():
            m.consumer_lag.labels(m.service, topic, str(partition)).set(lag)

    def _settle(self, stream: AlertStream, inflight: deque, keep: int) -> None:
        """Commit, in reading order, every batch whose messages were all acknowledged;
        wait for deliveries until at most ``keep`` batches remain in flight."""
        self._producer.poll(0)
        while inflight:
            offsets, acks = inflight[0]
            if acks.pending and len(inflight) > keep:
                deadline = time.monotonic() + 60
                while acks.pending:
                    self._producer.poll(0.05)
                    if time.monotonic() > deadline:
                        raise SubscribeError(f"{acks.pending} filtered messages not "
                                             "acknowledged in 60 s")
            if acks.pending:
                return
            if acks.errors:  # never commit past a message that did not arrive
                raise SubscribeError(f"delivery failed: {acks.errors[0]} "
                                     f"({len(acks.errors)} errors)")
            crash_point(CRASH_BEFORE_COMMIT)
            stream.commit(offsets)
            inflight.popleft()

    def _forward_in_transaction(self, stream: AlertStream, batch: list
                                ) -> tuple[dict, Exception] | None:
        """One batch, one transaction: the kept messages of every filter and the source
        offsets after the batch become visible together, or (crash, error) not at all.
        Stopped at an undecodable message, the transaction holds what came before it."""
        producer = self._producer
        try:
            producer.begin_transaction()
            acks, stopped = self._evaluate(batch)
            left = producer.flush(60)
            if left:
                raise SubscribeError(f"{left} filtered messages not acknowledged in 60 s")
            if acks.errors:
                raise SubscribeError(f"delivery failed: {acks.errors[0]} "
                                     f"({len(acks.errors)} errors)")
            stream.send_offsets_to_transaction(
                producer, stream.positions if stopped is None else stopped[0])
            crash_point(CRASH_BEFORE_COMMIT)
            producer.commit_transaction(60)
            return stopped
        except CallStuck as exc:  # inside the producer still: no abort, never used again
            raise SubscribeError(f"transaction stuck sending the offsets ({exc}): the "
                                 "service stops, and its restart fences the stuck "
                                 "producer and aborts its transaction") from exc
        except (KafkaException, SubscribeError) as exc:
            self._abort(exc)
            if isinstance(exc, KafkaException):
                raise SubscribeError(f"transaction failed: {exc.args[0].str()}") from exc
            raise

    def _abort(self, cause: Exception) -> None:
        """Abort the open transaction so readers are not held up until it times out; a
        fenced producer (another service took over the same group) cannot, and need not."""
        try:
            self._producer.abort_transaction(30)
        except KafkaException as exc:
            log.error("transaction not aborted: %s (after: %s)", exc.args[0].str(), cause)

    def _evaluate(self, batch: list) -> tuple[_Acks, tuple[dict, Exception] | None]:
        if self.metrics is None:
            return self._process(batch)
        with self.metrics.stage("filter"):
            return self._process(batch)

    def _process(self, batch: list) -> tuple[_Acks, tuple[dict, Exception] | None]:
        """Evaluate every filter, produce what each keeps, write and sync files; the
        returned tracker tells when every produced message was acknowledged. Stopped at
        an undecodable message (policy ``stop``), only what came before it is forwarded,
        and the offsets to commit and the error to raise come back too."""
        selection = self._selector.select([a.value for a in batch])
        stop = self.undecodable.handle(batch, selection.bad)
        stopped = None
        if stop is not None:
            stopped = (offsets_before(batch, stop),
                       self.undecodable.error(batch, selection.bad))
            log.error("stopping at an undecodable message: %s", stopped[1])
        keys = selection.keys
        acks = _Acks()
        for active in self._active.values():
            active.seen += len(batch) if stop is None else stop
        files: list[Output] = []
        for active in self._active.values():
            idx = selection.kept.get(active.spec.name, np.zeros(0, dtype=np.int64))
            if stop is not None:
                idx = idx[idx < stop]
            if not idx.size:
                continue
            kept = [batch[i] for i in idx]
            for out in active.outputs:
                if isinstance(out, TopicOutput):
                    acks.pending += len(kept)
                    out.write(kept, [keys[i] or batch[i].key or b"" for i in idx],
                              on_delivery=acks.delivered)
                else:
                    out.write(kept)
                    files.append(out)
            active.kept += len(kept)
            active.kept_since += len(kept)
        for out in files:
            out.flush()
        return acks, stopped

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT finish the current batch, commit it and stop."""
        def stop(signum: int, frame: object) -> None:
            log.info("stopping on signal %d", signum)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)


def _version(spec: FilterSpec) -> str:
    return json.dumps([spec.text, spec.topic, spec.file])


def _previous_versions(path: Path) -> dict[str, dict[str, tuple[float, dict | None]]]:
    """name -> {version: (activated_at, active_from)} from a previous run's status file
    (nothing if there is none, or it cannot be read: every filter then applies from the
    stream's start, as on a first run)."""
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
        out: dict[str, dict[str, tuple[float, dict | None]]] = {}
        for name, f in data.get("filters", {}).items():
            raw = f.get("active_from")
            since = None if raw is None else {
                (k.rpartition("[")[0], int(k.rpartition("[")[2].rstrip("]"))): int(o)
                for k, o in raw.items()}
            spec = FilterSpec(name, f["filter"], f.get("topic"), f.get("file"))
            out[name] = {_version(spec): (float(f["activated_at"]), since)}
        return out
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _close(outputs: list[Output]) -> None:
    for out in outputs:
        try:
            out.close()
        except Exception:
            log.exception("closing an output failed")


def describe(stats: ServiceStats) -> Mapping[str, Any]:
    return {"batches": stats.batches, "alerts": stats.alerts, "kept": stats.kept,
            "refused": stats.refused, "undecodable": stats.undecodable,
            "delivery": stats.delivery}

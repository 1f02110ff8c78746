"""The L1 database on a real 3-node Cassandra cluster (replication factor 3): a node stops
in the middle of a night and comes back; the URL and the local cluster's own checks."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from alertbutler.l1db import L1db, L1dbError
from alertbutler.l1db.cassandra import CassandraCluster, CassandraError, parse_url
from alertbutler.l1db.testing import fake_visit_rows, random_cap
from alertbutler.visit_detector import VisitDetector


def test_url_names_contact_points_and_keyspace() -> None:
    hosts, keyspace, options = parse_url(
        "cassandra://127.0.0.1:9043,127.0.0.2/l1?replication_factor=1")
    assert hosts == [("127.0.0.1", 9043), ("127.0.0.2", 9042)]
    assert keyspace == "l1" and options == {"replication_factor": "1"}
    for bad in ("cassandra://127.0.0.1/", "cassandra://127.0.0.1/l1;DROP",
                "cassandra://h:x/l1"):
        with pytest.raises(L1dbError):
            parse_url(bad)


def test_a_directory_of_something_else_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CassandraError, match="not a Cassandra cluster made by alertbutler"):
        CassandraCluster(nodes=1, data_dir=tmp_path).start()
    with pytest.raises(CassandraError, match="1 to 9"):
        CassandraCluster(nodes=0)


def _night(db: L1db, visits: range, ids: np.ndarray, ra: np.ndarray, dec: np.ndarray) -> None:
    rng = np.random.default_rng(visits.start)
    for visit in visits:
        rows = fake_visit_rows(rng, visit=visit, detector=1, object_ids=ids, ra=ra, dec=dec,
                               mjd=60000.0 + visit, source_id_start=1 + 1000 * visit)
        db.store_visit_detector(visit, 1, **rows)


def _hint_files(cluster: CassandraCluster) -> list[Path]:
    assert cluster.data_dir is not None
    return sorted(cluster.data_dir.glob("node*/hints/*.hints"))


@pytest.mark.cassandra
def test_a_node_stops_mid_night_and_catches_up(cassandra_cluster: CassandraCluster,
                                               cassandra_url: str) -> None:
    ids = np.arange(1, 201)
    ra, dec = random_cap(np.random.default_rng(1), ids.size, 150.0, 2.0, 0.1)
    db = L1db.create(cassandra_url)
    try:
        _night(db, range(1, 4), ids, ra, dec)
        cassandra_cluster.stop_node(3)
        assert not cassandra_cluster.is_running(3)
        _night(db, range(4, 8), ids, ra, dec)  # QUORUM = 2 of 3: writes go on
        history = db.source_history(ids, since_mjd=60000.0)
        assert history.num_rows == 7 * ids.size  # and reads see every write
        assert db.ingested([(v, 1) for v in range(1, 8)]) == {
            VisitDetector(instrument="", visit=v, detector=1) for v in range(1, 8)}

        cassandra_cluster.start_node(3)
        _night(db, range(8, 10), ids, ra, dec)
        # node 3 catches up: the others replay their hints to it, then delete them
        deadline = time.monotonic() + 600
        while _hint_files(cassandra_cluster) and time.monotonic() < deadline:
            time.sleep(1.0)
        assert not _hint_files(cassandra_cluster)
        assert db.source_history(ids).num_rows == 9 * ids.size
        assert db.row_counts()["DiaSource"] == 9 * ids.size
    finally:
        db.close()
        if not cassandra_cluster.is_running(3):
            cassandra_cluster.start_node(3)


@pytest.mark.cassandra
def test_work_attempt_ledger_counts_starts(cassandra_url: str) -> None:
    from alertbutler.l1db.attempts import WorkAttempts

    with L1db.create(cassandra_url) as db:
        ledger = WorkAttempts(db)
        item = VisitDetector(instrument="SimCam", visit=1, detector=1)
        first = ledger.begin(item, "w1")
        assert first.number == 1 and first.previous_worker is None
        ledger.failed(first, "boom")
        second = ledger.begin(item, "w2")  # w1 died or failed: a retry
        assert (second.number, second.previous_worker, second.last_error) == (2, "w1", "boom")
        ledger.finished(first)  # w1 lost the item: cannot finish w2's attempt
        assert ledger.get(item)["finished_at"] is None  # type: ignore[index]
        ledger.finished(second)
        assert ledger.begin(item, "w3").number == 1  # delivered again: new work
        other = VisitDetector(instrument="SimCam", visit=2, detector=1)
        released = ledger.begin(other, "w3")
        ledger.release(released)
        assert ledger.begin(other, "w3").number == 1
        assert {(r["visit"], r["detector"]) for r in ledger.rows(unfinished=True)} == {
            (1, 1), (2, 1)}


@pytest.mark.cassandra
@pytest.mark.slow
def test_server_prints_contact_points_first_and_its_nodes_die_with_it(tmp_path: Path) -> None:
    """``alertbutler l1db server``: a 1-node cluster on ports of its own; SIGKILL of the CLI
    takes the JVM with it."""
    from alertbutler.l1db.cassandra import unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(f"Apache Cassandra cannot run here: {reason}")
    import os
    import signal
    import subprocess
    import sys

    data = tmp_path / "cluster"
    proc = subprocess.Popen([sys.executable, "-m", "alertbutler", "l1db", "server",
                             "--engine", "cassandra", "--nodes", "1", "--data-dir", str(data)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
        with L1db.create(f"cassandra://{first}/l1") as db:
            assert db.store_visit_detector(1, 1, mark_ingested=True).completed == (
                VisitDetector(instrument="", visit=1, detector=1),)
        jvms = [int(p) for p in os.listdir("/proc") if p.isdigit()
                and str(data) in _cmdline(int(p))]
        assert jvms
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        deadline = time.monotonic() + 60
        while any(_alive(p) for p in jvms) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in jvms)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"

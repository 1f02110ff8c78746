"""Many workers exporting into one central repo at the same moment (issue 18, item 3).

Each writer is a thread with its own central butler (its own registry session), as each
prompt worker has; all are released together by a barrier, so their transactions overlap on
the shared rows (the new visit, day_obs and detector records) and on the dataset tables.
Nothing here depends on timing: the test asserts that no export failed (a deadlock would
surface as an error or a hang caught by the timeout) and that every dataset is readable.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from alertbutler.butler import Butler, DatasetRef
from alertbutler.butler.testing import INSTRUMENT, make_exposure, visit_records

N_WRITERS = 24
RUN = "prompt/SimCam/outputs"
TYPES = {"calexp": "Exposure", "difference": "Exposure", "diaSourceTable": "Catalog",
         "preview": "Plot", "metrics": "StructuredDataDict"}
VISIT = visit_records(5)[4]  # not in the central repo: every writer brings it


def _local_repo(root: Path) -> Butler:
    """A worker's local repo with one visit's outputs for N_WRITERS detectors."""
    local = Butler.create(root, run=RUN)
    for name, storage in TYPES.items():
        local.register_dataset_type(name, ["instrument", "visit", "detector"], storage)
    local.insert_dimension_records("instrument", [{"instrument": INSTRUMENT,
                                                   "n_detectors": 4}])  # as in populate()
    local.insert_dimension_records("physical_filter", [
        {"instrument": INSTRUMENT, "physical_filter": "r_sim", "band": "r"}])
    local.insert_dimension_records("detector", [
        {"instrument": INSTRUMENT, "detector": d, "full_name": f"R00_S{d:02d}", "nx": 64,
         "ny": 64} for d in range(N_WRITERS)])
    local.insert_dimension_records("day_obs", [{"instrument": INSTRUMENT,
                                                "day_obs": 20261119}])
    local.insert_dimension_records("visit", [VISIT])
    for d in range(N_WRITERS):
        did = {"instrument": INSTRUMENT, "visit": VISIT["visit"], "detector": d}
        exp = make_exposure((32, 32), seed=d)
        local.put_refs([
            (exp, local.make_ref("calexp", did)), (exp, local.make_ref("difference", did)),
            (Table({"id": np.arange(5) + 10 * d}), local.make_ref("diaSourceTable", did)),
            (np.zeros((8, 8, 3), np.uint8), local.make_ref("preview", did)),
            ({"detector": d}, local.make_ref("metrics", did))])
    return local


def _outputs(local: Butler, detector: int) -> list[DatasetRef]:
    return [r for t in TYPES for r in local.query_datasets(
        t, RUN, where={"visit": VISIT["visit"], "detector": detector})]


def _export_together(central_root: Path, local_root: Path, detectors: list[int]) -> list[str]:
    """Each detector's outputs exported by its own thread and butlers, all at once."""
    barrier = threading.Barrier(len(detectors))
    errors: list[str] = []

    def writer(d: int) -> None:
        try:
            with Butler(local_root) as local, Butler(central_root) as central:
                refs = _outputs(local, d)
                barrier.wait()
                central.transfer_from(local, refs, transfer="hardlink")
        except Exception as exc:  # collected: the assertion names every failure
            barrier.abort()
            errors.append(f"detector {d}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=writer, args=(d,)) for d in detectors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def _check_all_readable(central: Butler, n_detectors: int) -> None:
    refs = [r for t in TYPES for r in central.query_datasets(t, RUN)]
    assert len(refs) == n_detectors * len(TYPES)
    assert {int(r.data_id["detector"]) for r in refs} == set(range(n_detectors))
    for ref in refs:
        central.get(ref)  # whole read: size and checksum verified
    owned = {Path(central.datastore.artifact_path(r)).resolve() for r in refs}
    on_disk = {p.resolve() for p in (central.root / RUN).rglob("*") if p.is_file()}
    assert on_disk == owned  # no file left behind by a rolled-back export


@pytest.mark.timeout(600)
def test_concurrent_exports_never_deadlock_and_all_are_readable(
        butler: Butler, tmp_path: Path) -> None:
    local = _local_repo(tmp_path / "local")
    local.close()
    central_root = butler.root
    errors = _export_together(central_root, tmp_path / "local", list(range(N_WRITERS)))
    assert errors == []
    _check_all_readable(butler, N_WRITERS)
    visits = butler.query_dimension_records("visit", where={"visit": VISIT["visit"]})
    assert len(visits) == 1


@pytest.mark.timeout(600)
def test_two_workers_exporting_the_same_outputs_at_once(butler: Butler, tmp_path: Path) -> None:
    """A redelivered work item exported twice at the same moment: one copy, no error."""
    local = _local_repo(tmp_path / "local")
    local.close()
    errors = _export_together(butler.root, tmp_path / "local", [3, 3, 5, 5])
    assert errors == []
    refs = [r for t in TYPES for r in butler.query_datasets(t, RUN)]
    assert len(refs) == 2 * len(TYPES)
    for ref in refs:
        butler.get(ref)

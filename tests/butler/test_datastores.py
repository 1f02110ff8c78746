"""File, in-memory and chained datastores; the datastore contract through the bridge."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from alertbutler.butler import (
    STORAGE_CLASSES,
    Butler,
    ChainedDatastore,
    ChecksumError,
    DatasetNotFoundError,
    DatasetRef,
    Datastore,
    DatastoreRecord,
    InMemoryDatastore,
    UnsafePathError,
)
from alertbutler.butler.datastores.templates import FileTemplates, check_relative_path

DID = {"instrument": "SimCam", "visit": 1000, "detector": 1}


@pytest.fixture
def metrics(butler: Butler) -> Butler:
    butler.register_dataset_type("metrics", ["visit", "detector"], "StructuredDataDict")
    return butler


def test_files_are_named_from_templates_and_recorded(metrics: Butler) -> None:
    ref = metrics.put({"v": 1}, "metrics", DID)
    info = metrics.file_datastore.artifact_info(ref)
    assert info["path"] == "test/run/metrics/SimCam/1/metrics_SimCam_1_1000.yaml"
    assert info["size"] == (metrics.root / info["path"]).stat().st_size
    assert len(info["checksum"]) == 32 and info["format"] == "yaml"


def test_checksum_mismatch_on_get_is_a_clear_error(metrics: Butler) -> None:
    ref = metrics.put({"value": 1}, "metrics", DID)
    path = metrics.datastore.artifact_path(ref)
    path.write_bytes(path.read_bytes().replace(b"1", b"2"))  # same size, other bytes
    with pytest.raises(ChecksumError, match=rf"{path.name} .* is corrupted: checksum"):
        metrics.get("metrics", DID)


def test_missing_file_is_not_found(metrics: Butler) -> None:
    ref = metrics.put({"v": 1}, "metrics", DID)
    metrics.datastore.artifact_path(ref).unlink()
    assert not metrics.exists(ref)
    with pytest.raises(DatasetNotFoundError, match="is missing"):
        metrics.get(ref)


def test_run_names_that_escape_the_root_are_refused(metrics: Butler) -> None:
    for run in ["../escape", "/abs/run", "a/../../b", "a//b", "nul\x00", "back\\slash",
                ".hidden"]:
        with pytest.raises((UnsafePathError, ValueError)):
            metrics.put({"v": 1}, "metrics", DID, run=run)
    assert not (metrics.root.parent / "escape").exists()
    outside = [p for p in metrics.root.parent.rglob("metrics_*") if metrics.root not in p.parents]
    assert outside == []
    assert {c.name for c in metrics.query_collections()} == {"test/run"}  # none registered


def test_template_guard_catches_hostile_templates(metrics: Butler) -> None:
    ref = metrics.make_ref("metrics", DID)
    with pytest.raises(UnsafePathError):
        FileTemplates({"metrics": "../{run}/{dataset_type}"}).render(ref)
    with pytest.raises(UnsafePathError, match="lacks"):
        FileTemplates({"metrics": "{run}/{tract}"}).render(ref)
    assert check_relative_path("u/alice/night-1", "run") == "u/alice/night-1"
    assert check_relative_path("night/2026-11-20T03:00:00-replay-1", "run")


def test_nested_run_names_are_fine(metrics: Butler) -> None:
    ref = metrics.put({"v": 1}, "metrics", DID, run="u/alice/night1")
    assert metrics.get(ref) == {"v": 1}
    assert metrics.datastore.artifact_path(ref).is_relative_to(metrics.root / "u/alice/night1")


def test_in_memory_and_chained(metrics: Butler) -> None:
    mem = InMemoryDatastore()
    chained = ChainedDatastore([mem, metrics.default_datastore()])
    b = Butler(metrics.root, run="chain", datastore=chained,
               registry_url=metrics.registry.db.url)
    try:
        ref = b.put({"v": 7}, "metrics", DID)
        assert mem.exists(ref) and b.datastore.children()[1].exists(ref)
        assert b.get(ref) == {"v": 7}
        mem.remove(ref)  # now only the file child has it
        assert b.get(ref) == {"v": 7}
        b.prune_datasets([ref])
        assert not b.datastore.exists(ref)
    finally:
        b.close()
    # a memory-only butler sees nothing of the files
    only_mem = Butler(metrics.root, run="mem", datastore=InMemoryDatastore(),
                      registry_url=metrics.registry.db.url)
    try:
        ref = only_mem.put({"v": 8}, "metrics", DID)
        assert only_mem.get(ref) == {"v": 8}
    finally:
        only_mem.close()


class RecordOnlyDatastore(Datastore):
    """A datastore whose whole artifact lives in its registry record (like a Kafka offset
    pointing at a message): it shows a new datastore plugs in with no schema change."""

    def put_many(self, items: Sequence[tuple[Any, DatasetRef]]) -> None:
        self.flushes = getattr(self, "flushes", 0) + 1
        self.bridge.insert([DatastoreRecord(ref.id, {"value": obj}) for obj, ref in items])

    def get(self, ref: DatasetRef, *, component: str | None = None,
            parameters: Mapping[str, Any] | None = None,
            python_type: type | None = None) -> Any:
        recs = self.bridge.fetch([ref.id]).get(ref.id)
        if not recs:
            raise DatasetNotFoundError(str(ref))
        return STORAGE_CLASSES.finish_read(recs[0].payload["value"],
                                           ref.dataset_type.storage_class, component=component,
                                           parameters=parameters, python_type=python_type)

    def exists(self, ref: DatasetRef) -> bool:
        return bool(self.bridge.fetch([ref.id]))

    def remove_many(self, refs: Sequence[DatasetRef]) -> None:
        self.bridge.delete([r.id for r in refs])


def test_custom_datastore_records_commit_with_the_dataset(metrics: Butler) -> None:
    store = RecordOnlyDatastore("records")
    b = Butler(metrics.root, run="rec", datastore=store, registry_url=metrics.registry.db.url)
    try:
        refs = b.put_many([({"i": i}, "metrics", {**DID, "detector": i}) for i in range(3)])
        assert store.flushes == 1  # one put_many for the batch
        assert [b.get(r) for r in refs] == [{"i": 0}, {"i": 1}, {"i": 2}]
        # a failing put leaves neither dataset row nor record
        with pytest.raises(Exception):  # noqa: B017 - the duplicate error itself is tested elsewhere
            b.put_many([({"i": 9}, "metrics", {**DID, "detector": 9}),
                        ({"i": 0}, "metrics", {**DID, "detector": 0})])
        assert b.find_dataset("metrics", {**DID, "detector": 9}) is None
        assert store.bridge.fetch([uuid.uuid4()]) == {}
        b.remove_runs(["rec"])
        assert not store.exists(refs[0])
    finally:
        b.close()


def test_repo_config_templates_and_formats(tmp_path, registry_url: str) -> None:  # type: ignore[no-untyped-def]
    b = Butler.create(tmp_path / "cfg", registry_url=registry_url, run="r",
                      templates={"metrics": "{run}/{instrument}/m{visit:06d}/{detector}"},
                      formats={"metrics": "json", "Catalog": "parquet"})
    try:
        b.register_dataset_type("metrics", ["visit", "detector"], "StructuredDataDict")
        b.register_dataset_type("cat", ["visit", "detector"], "Catalog")
        ref = b.put({"v": 1}, "metrics", DID)
        assert b.file_datastore.artifact_info(ref)["path"] == "r/SimCam/m001000/1.json"
        from astropy.table import Table

        cref = b.put(Table({"a": [1, 2]}), "cat", DID)
        assert b.datastore.artifact_path(cref).suffix == ".parquet"
    finally:
        b.close()
    reopened = Butler(tmp_path / "cfg", collections="r")
    try:  # the config is read back from butler.yaml
        assert reopened.get("metrics", DID) == {"v": 1}
        assert reopened.file_datastore.formats == {"metrics": "json", "Catalog": "parquet"}
    finally:
        reopened.close()

"""put/get of small datasets, errors on bad input, deterministic ids, removal."""

from __future__ import annotations

import pytest

from alertbutler.butler import (
    Butler,
    CollectionType,
    CollectionTypeError,
    DataIdError,
    DatasetExistsError,
    DatasetNotFoundError,
    IdGenerationMode,
    MissingDatasetTypeError,
    StorageClassError,
)

DID = {"instrument": "SimCam", "visit": 1000, "detector": 1}


@pytest.fixture
def metrics(butler: Butler) -> Butler:
    butler.register_dataset_type("metrics", ["visit", "detector"], "StructuredDataDict")
    return butler


def test_put_get_roundtrip(metrics: Butler) -> None:
    ref = metrics.put({"n_sources": 12, "fwhm": 0.8}, "metrics", DID)
    assert metrics.get("metrics", DID) == {"n_sources": 12, "fwhm": 0.8}
    assert metrics.get(ref) == {"n_sources": 12, "fwhm": 0.8}
    assert metrics.exists("metrics", DID)
    assert metrics.find_dataset("metrics", DID) == ref
    assert metrics.registry.get_dataset(ref.id) == ref


def test_put_many_in_one_transaction(metrics: Butler) -> None:
    refs = metrics.put_many([({"i": i}, "metrics", {**DID, "detector": i}) for i in range(4)])
    assert [metrics.get(r)["i"] for r in refs] == [0, 1, 2, 3]


def test_unknown_dataset_type(metrics: Butler) -> None:
    with pytest.raises(MissingDatasetTypeError, match="'mertics' is not registered"):
        metrics.put({}, "mertics", DID)
    with pytest.raises(MissingDatasetTypeError):
        metrics.get("mertics", DID)


def test_incomplete_or_wrong_data_id(metrics: Butler) -> None:
    with pytest.raises(DataIdError, match=r"missing \['detector'\]"):
        metrics.put({}, "metrics", {"instrument": "SimCam", "visit": 1})
    with pytest.raises(DataIdError, match=r"unexpected \['exposure'\]"):
        metrics.put({}, "metrics", {**DID, "exposure": 4})
    with pytest.raises(DataIdError, match="needs an integer"):
        metrics.get("metrics", {**DID, "visit": "1000"})


def test_escaping_data_id_value_is_refused_and_writes_nothing(metrics: Butler) -> None:
    with pytest.raises(DataIdError, match="unsafe value"):
        metrics.put({}, "metrics", {**DID, "instrument": "../../outside"})
    assert not (metrics.root.parent / "outside").exists()
    assert metrics.query_datasets("metrics") == []


def test_wrong_python_type_refused(metrics: Butler) -> None:
    with pytest.raises(StorageClassError, match="stores builtins.dict, not builtins.list"):
        metrics.put([1, 2], "metrics", DID)


def test_duplicate_in_run_refused_and_first_kept(metrics: Butler) -> None:
    metrics.put({"v": 1}, "metrics", DID)
    with pytest.raises(DatasetExistsError):
        metrics.put({"v": 2}, "metrics", DID)
    assert metrics.get("metrics", DID) == {"v": 1}


def test_not_found(metrics: Butler) -> None:
    with pytest.raises(DatasetNotFoundError, match="no metrics with data ID"):
        metrics.get("metrics", DID)
    assert metrics.find_dataset("metrics", DID) is None
    assert not metrics.exists("metrics", DID)


def test_deterministic_ids_reproduce(metrics: Butler) -> None:
    a = metrics.put({"v": 1}, "metrics", DID, run="replay/1",
                    id_mode=IdGenerationMode.DETERMINISTIC)
    metrics.remove_runs(["replay/1"])
    b = metrics.put({"v": 1}, "metrics", DID, run="replay/1",
                    id_mode=IdGenerationMode.DETERMINISTIC)
    c = metrics.put({"v": 1}, "metrics", DID, run="replay/2",
                    id_mode=IdGenerationMode.DETERMINISTIC)
    assert a.id == b.id != c.id
    assert a.id.version == 5


def test_search_path_finds_first(metrics: Butler) -> None:
    metrics.put({"v": "old"}, "metrics", DID, run="old")
    metrics.put({"v": "new"}, "metrics", DID, run="new")
    metrics.set_chain("latest", ["new", "old"])
    assert metrics.get("metrics", DID, collections="latest") == {"v": "new"}
    assert metrics.get("metrics", DID, collections=["old", "new"]) == {"v": "old"}
    refs = metrics.query_datasets("metrics", "latest")
    assert [r.run for r in refs] == ["new"]
    assert len(metrics.query_datasets("metrics", "latest", find_first=False)) == 2


def test_tagged_collection(metrics: Butler) -> None:
    ref = metrics.put({"v": 1}, "metrics", DID)
    metrics.associate("best", [ref])
    assert metrics.get("metrics", DID, collections="best") == {"v": 1}
    with pytest.raises(DatasetExistsError, match="TAGGED"):
        metrics.associate("best", [metrics.put({"v": 2}, "metrics", DID, run="other")])


def test_remove_runs_deletes_files_and_rows(metrics: Butler) -> None:
    ref = metrics.put({"v": 1}, "metrics", DID, run="scratch")
    path = metrics.datastore.artifact_path(ref)
    assert path is not None and path.exists()
    assert metrics.remove_runs(["scratch"]) == 1
    assert not path.exists()
    assert metrics.registry.get_dataset(ref.id) is None
    assert "scratch" not in {c.name for c in metrics.query_collections()}
    metrics.register_collection("tags", CollectionType.TAGGED)
    with pytest.raises(CollectionTypeError, match="not a RUN"):
        metrics.remove_runs(["tags"])

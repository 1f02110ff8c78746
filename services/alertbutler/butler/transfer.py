"""Moving datasets between repositories: repo-to-repo transfer (a worker preloading calibs
and templates from the central repo) and export/import through a directory with a manifest
(recording and replaying nights).

Both carry, with the datasets: their dataset types, runs, the dimension records their data
IDs need (including implied ones: a visit's physical_filter), and their certifications in
the named CALIBRATION collections. Dataset ids are preserved, so a dataset transferred twice
is skipped the second time.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import (
    ButlerError,
    CalibrationOverlapError,
    ManifestError,
    MissingCollectionError,
    UnsafePathError,
)
from .collections import CollectionType
from .dataset_ref import DatasetRef
from .dataset_type import DatasetType
from .datastores.templates import check_relative_path, inside
from .dimensions import UNIVERSE, DataCoordinate, DimensionRecord
from .foreign_tree import check_regular, check_tree
from .storage_classes import STORAGE_CLASSES
from .timespan import Timespan

if TYPE_CHECKING:
    from .butler import Butler

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def _records_for(source: Butler, refs: Iterable[DatasetRef]) -> list[DimensionRecord]:
    """Every dimension record the data IDs need (required and implied), parents first."""
    universe = source.registry.universe
    wanted: dict[tuple[str, tuple[Any, ...]], DimensionRecord] = {}
    seen: set[DataCoordinate] = set()
    for ref in refs:
        if ref.data_id in seen:  # a visit-detector's outputs share one data ID
            continue
        seen.add(ref.data_id)
        values = dict(source.expand_data_id(ref.data_id).items())
        for name in universe.names:
            dim = universe[name]
            if not dim.has_table or name not in values:
                continue
            keys = (*dim.requires, name)
            if not all(k in values for k in keys):
                continue
            key = (name, tuple(values[k] for k in keys))
            if key in wanted:
                continue
            rec = source.get_dimension_record(name, values)
            if rec is not None:
                wanted[key] = rec
                for imp in dim.implies:
                    if rec.values.get(imp) is not None:
                        values.setdefault(imp, rec.values[imp])
    order = {n: i for i, n in enumerate(universe.names)}
    return sorted(wanted.values(), key=lambda r: order[r.element])


def _certifications(source: Butler, refs: Sequence[DatasetRef],
                    collections: Iterable[str]) -> list[tuple[str, DatasetRef, Timespan]]:
    ids = {r.id for r in refs}
    out = []
    for coll in collections:
        for cert in source.certifications(coll):
            if cert.ref.id in ids:
                out.append((coll, cert.ref, cert.timespan))
    return out


def _apply_certifications(dest: Butler, certs: Iterable[tuple[str, DatasetRef, Timespan]]
                          ) -> None:
    for coll, ref, ts in certs:
        dest.registry.register_collection(coll, CollectionType.CALIBRATION)
        existing = {(c.ref.id, c.timespan) for c in dest.certifications(coll,
                                                                         ref.dataset_type.name)}
        if (ref.id, ts) in existing:
            continue
        try:
            dest.certify(coll, [ref], ts)
        except CalibrationOverlapError as exc:
            raise CalibrationOverlapError(f"transfer into {coll!r}: {exc}") from None


def _prepare(dest: Butler, dataset_types: Iterable[DatasetType],
             records: Iterable[DimensionRecord], runs: Iterable[str]) -> None:
    for dt in dataset_types:
        dest.register_dataset_type(dt)
    for rec in records:
        dest.insert_dimension_records(rec.element, [rec])
    for run in runs:
        dest.register_run(run)


def _ensure_runs(dest: Butler, runs: Iterable[str]) -> None:
    for run in runs:
        try:
            if dest.registry.get_collection(run).type is CollectionType.RUN:
                continue  # known (cached after the first look): no write transaction
        except MissingCollectionError:
            pass
        dest.register_run(run)


def transfer(source: Butler, dest: Butler, refs: Sequence[DatasetRef], *,
             transfer: str = "copy", calibration_collections: Iterable[str] = ()
             ) -> list[DatasetRef]:
    """Copy datasets (same ids) with their records; returns the refs newly added to dest.

    Shaped for many writers into one registry at once (every prompt worker exports its
    outputs into the central repo when a visit ends): dimension records go first, in one
    short transaction of ``INSERT ... ON CONFLICT DO NOTHING`` in a fixed order
    (:meth:`DimensionRecordStore.ensure`), and only those this process has not seen; then
    the files are placed and every dataset row and file record of the transfer commit in ONE
    transaction, or none (the placed files are removed if it fails). Nothing is half
    written, and no transaction waits on a row another holds for longer than one commit.
    """
    calibration_collections = list(calibration_collections)
    parents = {r.dataset_type.parent_name: source.get_dataset_type(r.dataset_type.parent_name)
               for r in refs}
    store, src_store = dest.file_datastore, source.file_datastore
    files: list[tuple[DatasetRef, Path, str]] = []
    known: dict[uuid.UUID, Mapping[str, Any]] = {}
    objects: list[DatasetRef] = []
    for ref in refs:
        ref = ref.parent(parents[ref.dataset_type.parent_name])
        path = source.datastore.artifact_path(ref)
        info = src_store.artifact_info(ref) if src_store is not None else None
        if path is not None and store is not None and info is not None:
            files.append((ref, Path(path), info["format"]))
            known[ref.id] = info
        else:
            objects.append(ref)
    if objects or calibration_collections:
        # objects are put, and certifications made, only for datasets dest lacks: ask first.
        # Files alone (a worker's export) need no question: the insert below skips a dataset
        # dest already has (same id) in its own round trip, and only what it inserted is
        # placed and returned.
        found = dest.registry.existing_ids([r.id for r in refs])
        refs = [r for r in refs if r.id not in found]
        files = [f for f in files if f[0].id not in found]
        objects = [r for r in objects if r.id not in found]
        if not refs:
            return []
    for dt in parents.values():
        dest.register_dataset_type(dt)
    dest.registry.dimensions.ensure(_records_for(source, refs))
    _ensure_runs(dest, sorted({r.run for r in refs}))
    added = {r.id for r in objects}
    if files:
        assert store is not None

        def once() -> None:
            made: list[tuple[Path, Path | None]] = []
            try:
                with dest.registry.transaction():
                    mine = dest.registry.insert_datasets([ref for ref, _, _ in files],
                                                         skip_same_id=True)
                    made = store.ingest_many([f for f in files if f[0].id in mine], transfer,
                                             known=known)
            except BaseException:
                store.revert_ingest(made)
                raise
            added.update(mine)

        dest.registry.db.retry(once)
    if objects:
        dest.put_refs([(source.datastore.get(ref), ref) for ref in objects])
    _apply_certifications(dest, _certifications(source, refs, calibration_collections))
    return [r for r in refs if r.id in added]


def export_datasets(butler: Butler, directory: str | Path, refs: Sequence[DatasetRef], *,
                    calibration_collections: Iterable[str] = ()) -> Path:
    """Write files and a ``manifest.json`` describing them into ``directory``."""
    out = Path(directory)
    files = out / "files"
    files.mkdir(parents=True, exist_ok=True)
    store = butler.file_datastore
    datasets = []
    types = {}
    for ref in refs:
        dt = butler.get_dataset_type(ref.dataset_type.parent_name)
        types[dt.name] = dt
        ref = ref.parent(dt)
        entry: dict[str, Any] = ref.to_json()
        info = store.artifact_info(ref) if store is not None else None
        path = butler.datastore.artifact_path(ref)
        if info is None or path is None:
            raise ButlerError(f"cannot export {ref}: it has no file artifact")
        rel = (f"{ref.run}/{ref.dataset_type.name}/{ref.id}"
               f"{''.join(Path(path).suffixes) or '.dat'}")
        dest = inside(files, check_relative_path(rel, "export path"))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        entry.update(path=rel, format=info["format"])
        datasets.append(entry)
    certs = _certifications(butler, refs, calibration_collections)
    manifest = {
        "version": MANIFEST_VERSION,
        "dataset_types": [dt.to_json() for dt in types.values()],
        "dimension_records": [r.to_json() for r in _records_for(butler, refs)],
        "runs": sorted({r.run for r in refs}),
        "datasets": datasets,
        "certifications": [{"collection": c, "dataset_id": str(r.id), "timespan": ts.to_json()}
                           for c, r, ts in certs],
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return out / MANIFEST


def _fail(where: Path, entry: str, problem: str) -> ManifestError:
    return ManifestError(f"{where}: {entry}: {problem}")


def _list(manifest: Mapping[str, Any], key: str, where: Path) -> list[Any]:
    if key not in manifest:
        raise _fail(where, key, "missing (an export manifest needs version, dataset_types, "
                    "dimension_records, runs, datasets and certifications)")
    value = manifest[key]
    if not isinstance(value, list):
        raise _fail(where, key, f"must be a list, not {type(value).__name__}")
    return value


def _entry(kind: str, i: int, item: Any, where: Path, keys: Iterable[str]) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _fail(where, f"{kind}[{i}]", f"must be an object, not {type(item).__name__}")
    missing = [k for k in keys if k not in item]
    if missing:
        raise _fail(where, f"{kind}[{i}]", f"missing key {missing[0]!r}")
    return item


@dataclass(frozen=True)
class ExportManifest:
    """An export manifest, checked whole before anything is written."""

    types: dict[str, DatasetType]
    records: list[DimensionRecord]
    runs: list[str]
    datasets: list[tuple[DatasetRef, str, str | None]]  # ref, path under files/, format
    certifications: list[tuple[str, uuid.UUID, Timespan]]


def read_manifest(root: Path) -> ExportManifest:
    """Parse and check ``root/manifest.json``: every error names the key or entry."""
    where = root / MANIFEST
    try:
        manifest = json.loads(where.read_text())
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{where}: not a readable export manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise ManifestError(f"{where}: not an export manifest (a JSON object is expected)")
    if manifest.get("version") != MANIFEST_VERSION:
        raise _fail(where, "version", f"{manifest.get('version')!r} is not "
                    f"{MANIFEST_VERSION}")
    types: dict[str, DatasetType] = {}
    for i, item in enumerate(_list(manifest, "dataset_types", where)):
        d = _entry("dataset_types", i, item, where, ("name", "dimensions", "storage_class"))
        try:
            dt = DatasetType.from_json(d)
            STORAGE_CLASSES[dt.storage_class]
        except (ButlerError, LookupError, TypeError, ValueError) as exc:
            raise _fail(where, f"dataset_types[{i}] ({d.get('name')!r})", str(exc)) from None
        types[dt.name] = dt
    records = []
    for i, item in enumerate(_list(manifest, "dimension_records", where)):
        d = _entry("dimension_records", i, item, where, ("element", "values"))
        try:
            rec = DimensionRecord.from_json(d)
            if rec.element not in UNIVERSE.names:
                raise ValueError(f"unknown dimension element {rec.element!r}")
        except (ButlerError, LookupError, TypeError, ValueError) as exc:
            raise _fail(where, f"dimension_records[{i}]", str(exc)) from None
        records.append(rec)
    runs = []
    for i, run in enumerate(_list(manifest, "runs", where)):
        if not isinstance(run, str):
            raise _fail(where, f"runs[{i}]", f"must be a string, not {run!r}")
        try:
            runs.append(check_relative_path(run, "run name"))
        except UnsafePathError as exc:
            raise _fail(where, f"runs[{i}]", str(exc)) from None
    datasets = []
    for i, item in enumerate(_list(manifest, "datasets", where)):
        d = _entry("datasets", i, item, where,
                   ("id", "dataset_type", "run", "data_id", "path", "format"))
        name = f"datasets[{i}]"
        try:
            ref_type = types.get(d["dataset_type"])
            if ref_type is None:
                raise ValueError(f"dataset type {d['dataset_type']!r} is not among the "
                                 "manifest's dataset_types")
            if d["run"] not in runs:
                raise ValueError(f"run {d['run']!r} is not among the manifest's runs")
            if not isinstance(d["data_id"], dict):
                raise ValueError(f"data_id must be an object, not {d['data_id']!r}")
            if not isinstance(d["path"], str):
                raise ValueError(f"path must be a string, not {d['path']!r}")
            try:
                check_relative_path(d["path"], "manifest path")
            except UnsafePathError as exc:  # keeps its type: a path escaping the export
                raise UnsafePathError(f"{where}: {name}: {exc}") from None
            if d["format"] is not None and not isinstance(d["format"], str):
                raise ValueError(f"format must be a string, not {d['format']!r}")
            data_id = DataCoordinate.standardize(d["data_id"], ref_type.dimensions)
            ref = DatasetRef(ref_type, data_id, d["run"], uuid.UUID(str(d["id"])))
        except UnsafePathError:
            raise
        except (ButlerError, LookupError, TypeError, ValueError) as exc:
            raise _fail(where, name, str(exc)) from None
        datasets.append((ref, d["path"], d["format"]))
    ids = {ref.id for ref, _, _ in datasets}
    certs = []
    for i, item in enumerate(_list(manifest, "certifications", where)):
        d = _entry("certifications", i, item, where, ("collection", "dataset_id", "timespan"))
        try:
            did = uuid.UUID(str(d["dataset_id"]))
            if did not in ids:
                raise ValueError(f"dataset_id {did} is not among the manifest's datasets")
            ts = d["timespan"]
            if not isinstance(ts, list) or len(ts) != 2 or not all(
                    t is None or (isinstance(t, int) and not isinstance(t, bool)) for t in ts):
                raise ValueError(f"timespan must be [begin_ns, end_ns] (int or null), not {ts!r}")
            if not isinstance(d["collection"], str) or not d["collection"]:
                raise ValueError(f"collection must be a name, not {d['collection']!r}")
            certs.append((d["collection"], did, Timespan(*ts)))
        except (ButlerError, LookupError, TypeError, ValueError) as exc:
            raise _fail(where, f"certifications[{i}]", str(exc)) from None
    return ExportManifest(types, records, runs, datasets, certs)


def import_datasets(butler: Butler, directory: str | Path, *, transfer: str = "copy"
                    ) -> list[DatasetRef]:
    """Load an exported directory (ids preserved; datasets already present are skipped).

    The export is a tree this project did not write: it is refused whole, before anything is
    written, if its manifest is malformed, if it holds a symbolic link or special file
    anywhere, or if a listed file is missing. The import is then all or nothing: one registry
    transaction, and the files already placed are removed (moved ones put back) if it fails.
    """
    root = Path(directory).absolute()
    if not root.is_dir():
        raise ButlerError(f"{root}: no such export directory")
    check_tree(root, "export")
    plan = read_manifest(root)
    store = butler.file_datastore
    if store is None:
        raise ButlerError("this butler has no file datastore to import into")
    files = root / "files"
    for i, (ref, rel, _fmt) in enumerate(plan.datasets):
        try:
            check_regular(files, rel)
        except FileNotFoundError:
            raise _fail(root / MANIFEST, f"datasets[{i}]", f"file {files / rel} of {ref} is "
                        "missing from the export") from None
    by_id = {ref.id: ref for ref, _, _ in plan.datasets}

    def once() -> list[DatasetRef]:
        made: list[tuple[Path, Path | None]] = []
        try:
            with butler.registry.transaction():
                _prepare(butler, plan.types.values(), plan.records, plan.runs)
                new = [(ref, rel, fmt) for ref, rel, fmt in plan.datasets
                       if butler.registry.get_dataset(ref.id) is None]
                butler.registry.insert_datasets([ref for ref, _, _ in new])
                _apply_certifications(butler, [(c, by_id[i], ts)
                                               for c, i, ts in plan.certifications])
                made = store.ingest_many([(ref, files / rel, fmt) for ref, rel, fmt in new],
                                         transfer, within=files)
        except BaseException:
            store.revert_ingest(made)
            raise
        return [ref for ref, _, _ in new]

    return butler.registry.db.retry_race(once)

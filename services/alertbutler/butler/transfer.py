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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import ButlerError, CalibrationOverlapError
from .collections import CollectionType
from .dataset_ref import DatasetRef
from .dataset_type import DatasetType
from .datastores.templates import check_relative_path, inside
from .dimensions import DataCoordinate, DimensionRecord
from .timespan import Timespan

if TYPE_CHECKING:
    from .butler import Butler

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def _records_for(source: Butler, refs: Iterable[DatasetRef]) -> list[DimensionRecord]:
    """Every dimension record the data IDs need (required and implied), parents first."""
    universe = source.registry.universe
    wanted: dict[tuple[str, tuple[Any, ...]], DimensionRecord] = {}
    for ref in refs:
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


def transfer(source: Butler, dest: Butler, refs: Sequence[DatasetRef], *,
             transfer: str = "copy", calibration_collections: Iterable[str] = ()
             ) -> list[DatasetRef]:
    """Copy datasets (same ids) with their records; returns the refs newly added to dest."""
    refs = [r for r in refs if dest.registry.get_dataset(r.id) is None]
    parents = {r.dataset_type.parent_name: source.get_dataset_type(r.dataset_type.parent_name)
               for r in refs}
    _prepare(dest, parents.values(), _records_for(source, refs), {r.run for r in refs})
    store = dest.file_datastore
    for ref in refs:
        ref = ref.parent(parents[ref.dataset_type.parent_name])
        path = source.datastore.artifact_path(ref)
        src_store = source.file_datastore
        info = src_store.artifact_info(ref) if src_store is not None else None
        if path is not None and store is not None and info is not None:
            def once(ref: DatasetRef = ref, path: Path = path, fmt: str = info["format"],
                     info: Mapping[str, Any] = info) -> None:
                with dest.registry.transaction():
                    dest.registry.insert_datasets([ref])
                    store.ingest_many([(ref, path, fmt)], transfer, known={ref.id: info})

            dest.registry.db.retry(once)
        else:
            dest.put_refs([(source.datastore.get(ref), ref)])
    _apply_certifications(dest, _certifications(source, refs, calibration_collections))
    return refs


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


def import_datasets(butler: Butler, directory: str | Path, *, transfer: str = "copy"
                    ) -> list[DatasetRef]:
    """Load an exported directory (ids preserved; datasets already present are skipped)."""
    root = Path(directory).absolute()
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ButlerError(f"{root / MANIFEST}: not a readable export manifest ({exc})") from None
    if manifest.get("version") != MANIFEST_VERSION:
        raise ButlerError(f"{root / MANIFEST}: manifest version {manifest.get('version')!r} "
                          f"is not {MANIFEST_VERSION}")
    types = {d["name"]: DatasetType.from_json(d) for d in manifest["dataset_types"]}
    _prepare(butler, types.values(),
             [DimensionRecord.from_json(r) for r in manifest["dimension_records"]],
             manifest["runs"])
    store = butler.file_datastore
    if store is None:
        raise ButlerError("this butler has no file datastore to import into")
    import uuid

    added, by_id = [], {}
    for entry in manifest["datasets"]:
        dt = butler.get_dataset_type(entry["dataset_type"])
        ref = DatasetRef(dt, DataCoordinate.standardize(entry["data_id"], dt.dimensions),
                         entry["run"], uuid.UUID(entry["id"]))
        by_id[str(ref.id)] = ref
        if butler.registry.get_dataset(ref.id) is not None:
            continue
        src = inside(root / "files", check_relative_path(entry["path"], "manifest path"))

        def once(ref: DatasetRef = ref, src: Path = src, fmt: str = entry["format"]) -> None:
            with butler.registry.transaction():
                butler.registry.insert_datasets([ref])
                store.ingest_many([(ref, src, fmt)], transfer)

        butler.registry.db.retry(once)
        added.append(ref)
    _apply_certifications(butler, [(c["collection"], by_id[c["dataset_id"]],
                                    Timespan(*c["timespan"]))
                                   for c in manifest["certifications"]])
    return added

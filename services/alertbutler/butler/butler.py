"""The :class:`Butler`: one object to read and write datasets by type and data ID.

The hot paths (``put`` and ``get`` of a small dataset) do: a cached dataset-type and run
lookup, data ID validation, one registry transaction (dataset row + datastore record) with
the file write inside it, or one prepared SELECT plus one record fetch and a file read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

from . import registry as reg
from ._errors import (
    CollectionTypeError,
    DatasetNotFoundError,
    MissingCollectionError,
    RepositoryError,
)
from .collections import CollectionRecord, CollectionType
from .dataset_ref import DatasetRef, IdGenerationMode
from .dataset_type import DatasetType
from .datastores import ChainedDatastore, Datastore, FileDatastore
from .datastores.templates import check_relative_path
from .dimensions import DataCoordinate, DimensionRecord
from .ingest import RAW, IngestResult, RawMetadata, ingest_files
from .regions import Circle
from .repository import RepoConfig, normalize_root
from .storage_classes import STORAGE_CLASSES
from .timespan import TimeLike, Timespan, to_ns

#: where a search looks: collection names (one or many), or None for the butler's own
Collections: TypeAlias = "Sequence[str] | str | None"
#: a validity range, or an instant it must contain
TimespanArg: TypeAlias = "Timespan | TimeLike | None"

DatasetTypeArg = str | DatasetType


class Butler:
    """A repository opened with a default ``run`` (for writes) and ``collections`` (a search
    path for reads; defaults to ``[run]``). ``datastore`` replaces the repository's file
    datastore (e.g. a chain with the publish datastore); its children get their records
    through this butler's registry."""

    def __init__(self, root: str | Path, *, run: str | None = None,
                 collections: Sequence[str] | str | None = None,
                 datastore: Datastore | None = None, registry_url: str | None = None) -> None:
        self.root = normalize_root(root)
        self.config = RepoConfig.read(self.root)
        self.registry = reg.Registry.open(registry_url or
                                          self.config.resolved_registry_url(self.root))
        self.datastore = datastore or self.default_datastore()
        self.datastore.attach(self.registry.bridge)
        self.run = run
        if isinstance(collections, str):
            collections = [collections]
        self.collections = list(collections) if collections is not None else (
            [run] if run else [])
        self._runs: set[str] = set()
        if run is not None:
            self.register_run(run)

    def default_datastore(self) -> FileDatastore:
        return FileDatastore(self.root, templates=self.config.templates,
                             formats=self.config.formats,
                             verify_checksums=self.config.verify_checksums)

    @property
    def file_datastore(self) -> FileDatastore | None:
        """The first file datastore (ingest writes there)."""
        todo = [self.datastore]
        while todo:
            ds = todo.pop(0)
            if isinstance(ds, FileDatastore):
                return ds
            todo.extend(ds.children())
        return None

    @classmethod
    def create(cls, root: str | Path, *, registry_url: str = "",
               templates: Mapping[str, str] | None = None,
               formats: Mapping[str, str] | None = None, **kwargs: Any) -> Butler:
        """Make a new repository (root directory, ``butler.yaml``, registry tables)."""
        root = normalize_root(root)
        if (root / "butler.yaml").exists():
            raise RepositoryError(f"a butler repository already exists at {root}")
        root.mkdir(parents=True, exist_ok=True)
        config = RepoConfig(registry_url=registry_url, templates=dict(templates or {}),
                            formats=dict(formats or {}))
        reg.Registry.create(config.resolved_registry_url(root)).close()
        config.write(root)
        return cls(root, **kwargs)

    def close(self) -> None:
        self.datastore.close()
        self.registry.close()

    def __enter__(self) -> Butler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- dataset types and collections -------------------------------------------------------
    def register_dataset_type(self, dataset_type: DatasetTypeArg,
                              dimensions: Iterable[str] = (), storage_class: str = "", *,
                              is_calibration: bool = False) -> DatasetType:
        if isinstance(dataset_type, str):
            STORAGE_CLASSES[storage_class]  # unknown storage class: error before registering
            dataset_type = DatasetType(dataset_type, dimensions, storage_class,
                                       is_calibration=is_calibration,
                                       universe=self.registry.universe)
        else:
            STORAGE_CLASSES[dataset_type.storage_class]
        self.registry.register_dataset_type(dataset_type)
        return dataset_type

    def get_dataset_type(self, name: str) -> DatasetType:
        return self.registry.get_dataset_type(name)

    def register_run(self, name: str, doc: str = "") -> None:
        """Create a RUN. Run names become directories, so they must be safe relative paths
        (``u/alice/night1`` is fine; ``..``, absolute paths, NUL, backslashes are not)."""
        if name not in self._runs:
            check_relative_path(name, "run name")
            self.registry.register_run(name, doc)
            if not self.registry.db.in_transaction:  # a write transaction may roll it back
                self._runs.add(name)

    def register_collection(self, name: str, type: CollectionType, doc: str = "") -> bool:
        return self.registry.register_collection(name, type, doc)

    def set_chain(self, parent: str, children: Sequence[str]) -> None:
        self.registry.register_collection(parent, CollectionType.CHAINED)
        self.registry.set_chain(parent, children)

    def query_collections(self, pattern: str = "*",
                          types: Iterable[CollectionType] | None = None
                          ) -> list[CollectionRecord]:
        return self.registry.query_collections(pattern, types)

    def _search_path(self, collections: Sequence[str] | str | None) -> list[CollectionRecord]:
        names = self.collections if collections is None else (
            [collections] if isinstance(collections, str) else list(collections))
        if not names:
            raise MissingCollectionError("no collections to search: pass collections= or open "
                                         "the butler with collections/run")
        return self.registry.flatten(names)

    # -- dimension records ---------------------------------------------------------------------
    def insert_dimension_records(self, element: str,
                                 records: Iterable[DimensionRecord | Mapping[str, Any]], *,
                                 update: bool = False) -> int:
        return self.registry.dimensions.sync(element, records, update=update)

    def get_dimension_record(self, element: str,
                             data_id: Mapping[str, Any]) -> DimensionRecord | None:
        return self.registry.dimensions.get(element, data_id)

    def query_dimension_records(self, element: str, *, where: Mapping[str, Any] | None = None,
                                timespan: Timespan | None = None,
                                region: Circle | None = None) -> list[DimensionRecord]:
        return reg.query_dimension_records(self.registry, element, where=where,
                                           timespan=timespan, region=region)

    def expand_data_id(self, data_id: DataCoordinate) -> DataCoordinate:
        return self.registry.dimensions.expand(data_id)

    # -- writing -------------------------------------------------------------------------------
    def _type(self, dataset_type: DatasetTypeArg) -> DatasetType:
        if isinstance(dataset_type, DatasetType):
            return self.registry.get_dataset_type(dataset_type.name)
        return self.registry.get_dataset_type(dataset_type)

    def make_ref(self, dataset_type: DatasetTypeArg, data_id: Mapping[str, Any] | None = None,
                 *, run: str | None = None,
                 id_mode: IdGenerationMode = IdGenerationMode.UNIQUE,
                 **kwargs: Any) -> DatasetRef:
        dt = self._type(dataset_type)
        if dt.component:
            raise ValueError(f"cannot put component {dt.name!r}: put the whole {dt.parent_name}")
        run = run or self.run
        if not run:
            raise MissingCollectionError("no run to write into: pass run= or open the butler "
                                         "with run=")
        did = DataCoordinate.standardize(data_id, dt.dimensions, **kwargs)
        return DatasetRef.make(dt, did, run, id_mode)

    def put(self, obj: Any, dataset_type: DatasetTypeArg,
            data_id: Mapping[str, Any] | None = None, *, run: str | None = None,
            id_mode: IdGenerationMode = IdGenerationMode.UNIQUE, **kwargs: Any) -> DatasetRef:
        """Store ``obj`` as a new dataset; returns its ref. Data ID values may be keywords."""
        ref = self.make_ref(dataset_type, data_id, run=run, id_mode=id_mode, **kwargs)
        self.put_refs([(obj, ref)])
        return ref

    def put_many(self, items: Iterable[tuple[Any, DatasetTypeArg, Mapping[str, Any]]], *,
                 run: str | None = None,
                 id_mode: IdGenerationMode = IdGenerationMode.UNIQUE) -> list[DatasetRef]:
        """Store several datasets in one transaction (one datastore flush)."""
        pairs = [(obj, self.make_ref(dt, did, run=run, id_mode=id_mode))
                 for obj, dt, did in items]
        self.put_refs(pairs)
        return [ref for _, ref in pairs]

    def put_refs(self, items: Sequence[tuple[Any, DatasetRef]]) -> None:
        """Store objects under already-made refs (fixed ids: replays, imports)."""
        for run in {ref.run for _, ref in items}:
            self.register_run(run)
        refs = [ref for _, ref in items]
        state = {"stored": False}

        def once() -> None:
            state["stored"] = False
            try:
                with self.registry.transaction():
                    self.registry.insert_datasets(refs)
                    self.datastore.put_many(items)
                    state["stored"] = True
            except BaseException:
                if state["stored"]:  # the commit itself failed: artifacts are orphans
                    self.datastore.discard(refs)
                raise

        self.registry.db.retry(once)

    # -- finding and reading -----------------------------------------------------------------
    def find_dataset(self, dataset_type: DatasetTypeArg,
                     data_id: Mapping[str, Any] | None = None, *,
                     collections: Sequence[str] | str | None = None,
                     timespan: TimespanArg = None, **kwargs: Any) -> DatasetRef | None:
        """The first dataset along the search path (calibrations: valid at ``timespan``, an
        instant or a :class:`Timespan`), or None."""
        dt = self._type(dataset_type)
        did = DataCoordinate.standardize(data_id, dt.dimensions, **kwargs)
        ts = timespan if isinstance(timespan, Timespan) or timespan is None \
            else Timespan.at(timespan)
        ref = reg.find_dataset(self.registry, dt, did, self._search_path(collections), ts)
        if ref is not None and dt.component:
            ref = ref.make_component(dt.component, dt.storage_class)
        return ref

    def _resolve(self, dataset_type: DatasetTypeArg | DatasetRef,
                 data_id: Mapping[str, Any] | None, collections: Collections, timespan: TimespanArg,
                 kwargs: Mapping[str, Any]) -> tuple[DatasetRef, str | None]:
        if isinstance(dataset_type, DatasetRef):
            ref = dataset_type
            component = ref.dataset_type.component
            if component:
                parent = self.registry.get_dataset_type(ref.dataset_type.parent_name)
                ref = ref.parent(parent)
            return ref, component
        found = self.find_dataset(dataset_type, data_id, collections=collections,
                                  timespan=timespan, **kwargs)
        if found is None:
            name = dataset_type if isinstance(dataset_type, str) else dataset_type.name
            raise DatasetNotFoundError(
                f"no {name} with data ID {dict(data_id or {}, **kwargs)!r} in collections "
                f"{[c.name for c in self._search_path(collections)]}"
                + (f" valid at {timespan}" if timespan is not None else ""))
        component = found.dataset_type.component
        if component:
            found = found.parent(self.registry.get_dataset_type(found.dataset_type.parent_name))
        return found, component

    def get(self, dataset_type: DatasetTypeArg | DatasetRef,
            data_id: Mapping[str, Any] | None = None, *,
            collections: Sequence[str] | str | None = None, timespan: TimespanArg = None,
            parameters: Mapping[str, Any] | None = None, python_type: type | None = None,
            assemble: Mapping[str, str] | None = None,
            calib_collections: Sequence[str] | str | None = None, **kwargs: Any) -> Any:
        """Read a dataset (``"calexp.wcs"`` for a component) as ``python_type``.

        ``assemble`` maps components to calibration dataset types (``{"wcs": "fitted_wcs",
        "psf": "psf_model"}``): each is found in ``calib_collections`` (default: the search
        path) valid at the middle of the dataset's exposure/visit, and set on the object.
        """
        ref, component = self._resolve(dataset_type, data_id, collections, timespan, kwargs)
        if not assemble:
            return self.datastore.get(ref, component=component, parameters=parameters,
                                      python_type=python_type)
        obj = self.datastore.get(ref, component=component, parameters=parameters)
        from .composite import assemble_components

        obj = assemble_components(self, ref, obj, assemble,
                                  calib_collections if calib_collections is not None
                                  else collections)
        return STORAGE_CLASSES.convert(obj, ref.dataset_type.storage_class, python_type)

    def exists(self, dataset_type: DatasetTypeArg | DatasetRef,
               data_id: Mapping[str, Any] | None = None, *,
               collections: Sequence[str] | str | None = None, timespan: TimespanArg = None,
               **kwargs: Any) -> bool:
        if isinstance(dataset_type, DatasetRef):
            return self.datastore.exists(dataset_type)
        ref = self.find_dataset(dataset_type, data_id, collections=collections,
                                timespan=timespan, **kwargs)
        return ref is not None and self.datastore.exists(ref)

    def prototype(self, dataset_type: DatasetTypeArg,
                  data_id: Mapping[str, Any] | None = None, **hints: Any) -> Any:
        """An empty, correctly-shaped instance (image shape from the detector record)."""
        dt = self._type(dataset_type)
        sc = STORAGE_CLASSES[dt.storage_class]
        if data_id is not None and "detector" in data_id and "shape" not in hints:
            rec = self.get_dimension_record("detector", data_id)
            if rec is not None and rec.nx and rec.ny:
                hints["shape"] = (rec.ny, rec.nx)
        if sc.prototype is None:
            raise DatasetNotFoundError(f"storage class {sc.name} has no prototype")
        return sc.prototype(hints)

    def query_datasets(self, dataset_type: DatasetTypeArg,
                       collections: Sequence[str] | str | None = None, *,
                       where: Mapping[str, Any] | None = None, timespan: TimespanArg = None,
                       region: Circle | None = None, find_first: bool = True
                       ) -> list[DatasetRef]:
        dt = self._type(dataset_type)
        if timespan is not None and not isinstance(timespan, Timespan):
            timespan = Timespan.at(timespan)
        return reg.query_datasets(self.registry, dt, self._search_path(collections),
                                  where=where, timespan=timespan, region=region,
                                  find_first=find_first)

    # -- calibrations and tags -------------------------------------------------------------
    def certify(self, collection: str, refs: Sequence[DatasetRef], timespan: Timespan) -> None:
        self.registry.register_collection(collection, CollectionType.CALIBRATION)
        reg.certify(self.registry, collection, refs, timespan)

    def decertify(self, collection: str, dataset_type: DatasetTypeArg, timespan: Timespan,
                  data_ids: Iterable[Mapping[str, Any]] | None = None) -> int:
        dt = self._type(dataset_type)
        dids = None if data_ids is None else [DataCoordinate.standardize(d, dt.dimensions)
                                              for d in data_ids]
        return reg.decertify(self.registry, collection, dt, timespan, dids)

    def certifications(self, collection: str,
                       dataset_type: str | None = None) -> list[reg.Certification]:
        return reg.certifications(self.registry, collection, dataset_type)

    def associate(self, collection: str, refs: Sequence[DatasetRef]) -> None:
        self.registry.register_collection(collection, CollectionType.TAGGED)
        self.registry.associate(collection, refs)

    # -- removal ---------------------------------------------------------------------------
    def prune_datasets(self, refs: Sequence[DatasetRef]) -> None:
        """Delete datasets: artifacts first, then registry rows."""
        self.datastore.remove_many(refs)
        self.registry.remove_datasets(refs)

    def remove_runs(self, names: Iterable[str], *, unstore: bool = True) -> int:
        """Delete RUN collections and every dataset in them; returns datasets removed."""
        total = 0
        for name in names:
            rec = self.registry.get_collection(name)
            if rec.type is not CollectionType.RUN:
                raise CollectionTypeError(f"{name!r} is a {rec.type.name} collection, not a RUN")
            refs = self.registry.refs_in_run(name)
            if unstore:
                self.datastore.remove_many(refs)
            self.registry.remove_datasets(refs)
            self.registry.remove_collection(name)
            self._runs.discard(name)
            total += len(refs)
        return total

    # -- ingest, transfer, export/import (thin wrappers) ------------------------------------
    def ingest(self, files: Iterable[str | Path], *, run: str | None = None,
               dataset_type: str | DatasetType = RAW, transfer: str = "copy",
               template: str | None = None,
               translator: Callable[[Mapping[str, Any], Path], RawMetadata] | None = None,
               id_mode: IdGenerationMode = IdGenerationMode.DETERMINISTIC,
               format: str | None = None) -> IngestResult:
        """See :func:`alertbutler.butler.ingest.ingest_files`."""
        return ingest_files(self, files, run=run, dataset_type=dataset_type, transfer=transfer,
                            template=template, translator=translator, id_mode=id_mode,
                            format=format)

    def transfer_from(self, source: Butler, refs: Sequence[DatasetRef], *,
                      transfer: str = "copy",
                      calibration_collections: Iterable[str] = ()) -> list[DatasetRef]:
        """See :func:`alertbutler.butler.transfer.transfer`."""
        from .transfer import transfer as transfer_datasets

        return transfer_datasets(source, self, refs, transfer=transfer,
                                 calibration_collections=calibration_collections)

    def export(self, directory: str | Path, refs: Sequence[DatasetRef], *,
               calibration_collections: Iterable[str] = ()) -> Path:
        from .transfer import export_datasets

        return export_datasets(self, directory, refs,
                               calibration_collections=calibration_collections)

    def import_(self, directory: str | Path, **kwargs: Any) -> list[DatasetRef]:
        from .transfer import import_datasets

        return import_datasets(self, directory, **kwargs)


def exposure_midpoint(butler: Butler, data_id: DataCoordinate) -> int | None:
    """The middle of the exposure/visit of a data ID, in ns (for calibration lookups)."""
    for element in ("exposure", "visit"):
        if element in data_id.dimensions.required:
            rec = butler.get_dimension_record(element, data_id)
            if rec is not None and rec.timespan is not None and rec.timespan.begin is not None:
                end = rec.timespan.end if rec.timespan.end is not None else rec.timespan.begin
                return (rec.timespan.begin + end) // 2
    return None


__all__ = ["Butler", "ChainedDatastore", "exposure_midpoint", "to_ns"]

"""The datastore contract: where persisted forms of datasets live.

A datastore stores and retrieves the *artifacts* of datasets (files, in-memory objects, Kafka
messages); the registry knows *which* datasets exist. The butler owns the order of events:

1. ``Butler.put`` resolves a :class:`~alertbutler.butler.DatasetRef` (type, data ID, run, id),
   opens a registry transaction, inserts the dataset row, then calls
   :meth:`Datastore.put_many` inside that transaction.
2. The datastore writes its artifacts, then records where they went through its
   :class:`DatastoreBridge` (``bridge.insert``). Those rows join the butler's transaction:
   a dataset row and its location records commit together or not at all.
3. If the transaction fails after the datastore wrote, the butler calls
   :meth:`Datastore.discard` so the datastore can delete orphaned artifacts (a file datastore
   deletes files; a Kafka datastore cannot unsend and does nothing).

Records are JSON-able dicts, one or more per (dataset id, datastore name), stored in the
registry's generic ``datastore_record`` table, so a new kind of datastore (the publish
datastore keeps ``{"topic", "partition", "offset"}``) needs no schema change. A datastore
reads its records back with ``bridge.fetch`` (usually once per get) and drops them with
``bridge.delete``.

Reads: ``get(ref, component=..., parameters=..., python_type=...)``. ``ref.dataset_type`` is
always the *parent* type (its ``storage_class`` names the persisted form); ``component``
selects a part (``"wcs"``) and ``parameters`` a subset (``{"bbox": ...}``); ``python_type``
is the type the caller wants back, converted through the storage-class converter table
(:func:`alertbutler.butler.storage_classes.finish_read` does all three for datastores that
hold whole objects). A datastore that can read a component or a subset more cheaply than
the whole (a FITS header for a WCS) should do so.

Chaining: :class:`~alertbutler.butler.datastores.chained.ChainedDatastore` puts to every
child and gets from the first child whose ``exists`` is true.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..dataset_ref import DatasetRef


@dataclass(frozen=True, slots=True)
class DatastoreRecord:
    """One location record of one dataset in one datastore.

    ``key`` distinguishes several records of one dataset in one datastore (e.g. one per
    component of a disassembled composite); most datastores use the default ``""``.
    """

    dataset_id: uuid.UUID
    payload: Mapping[str, Any]
    key: str = ""


class DatastoreBridge(Protocol):
    """The registry-side storage of a datastore's records, bound to one datastore name.

    Calls made while the butler holds a registry transaction join that transaction.
    """

    datastore_name: str

    def insert(self, records: Sequence[DatastoreRecord]) -> None:
        """Store records; a (dataset_id, key) already present is an error."""

    def fetch(self, dataset_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[DatastoreRecord]]:
        """Records of the given datasets (datasets without records are absent)."""

    def delete(self, dataset_ids: Iterable[uuid.UUID]) -> None:
        """Forget every record of the given datasets in this datastore."""


#: what a butler hands to :meth:`Datastore.attach`: a bridge for a datastore name
BridgeFactory = Callable[[str], DatastoreBridge]


@dataclass
class NullBridge:
    """A bridge that keeps records in memory (datastores used without a registry, tests)."""

    datastore_name: str
    _records: dict[uuid.UUID, list[DatastoreRecord]] = field(default_factory=dict)

    def insert(self, records: Sequence[DatastoreRecord]) -> None:
        for r in records:
            self._records.setdefault(r.dataset_id, []).append(r)

    def fetch(self, dataset_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[DatastoreRecord]]:
        return {i: list(self._records[i]) for i in dataset_ids if i in self._records}

    def delete(self, dataset_ids: Iterable[uuid.UUID]) -> None:
        for i in dataset_ids:
            self._records.pop(i, None)


class Datastore(ABC):
    """Abstract base of every datastore (file, in-memory, chained, publish).

    Subclasses implement :meth:`put_many`, :meth:`get`, :meth:`exists` and
    :meth:`remove_many`; everything else has a default. ``name`` must be unique within a
    butler (it keys the datastore's records in the registry) and stable across sessions.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.bridge: DatastoreBridge = NullBridge(name)

    # -- wiring ---------------------------------------------------------------------------
    def attach(self, bridge_factory: BridgeFactory) -> None:
        """Called once by the butler: bind this datastore to its records in the registry."""
        self.bridge = bridge_factory(self.name)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients (Kafka producers, open files). Called by ``Butler.close``."""

    # -- writing --------------------------------------------------------------------------
    def put(self, obj: Any, ref: DatasetRef) -> None:
        """Store one object; the same as ``put_many([(obj, ref)])``."""
        self.put_many([(obj, ref)])

    @abstractmethod
    def put_many(self, items: Sequence[tuple[Any, DatasetRef]]) -> None:
        """Store several objects (one flush / one round trip for the batch where possible).

        Must either store every item and ``bridge.insert`` their records, or raise; on a
        raise, artifacts already written by this call should be removed (best effort).
        """

    def discard(self, refs: Sequence[DatasetRef]) -> None:  # noqa: B027 - optional hook
        """Delete artifacts written for ``refs`` whose registry transaction rolled back."""

    # -- reading --------------------------------------------------------------------------
    @abstractmethod
    def get(self, ref: DatasetRef, *, component: str | None = None,
            parameters: Mapping[str, Any] | None = None,
            python_type: type | None = None) -> Any:
        """Read a dataset (or one component of it), optionally a subset, as ``python_type``.

        Raises :class:`~alertbutler.butler.DatasetNotFoundError` when this datastore does not
        hold it, :class:`~alertbutler.butler.ChecksumError` when the artifact changed since it
        was written, :class:`~alertbutler.butler.StorageClassError` for an unknown component,
        parameter or python type.
        """

    @abstractmethod
    def exists(self, ref: DatasetRef) -> bool:
        """Whether this datastore holds an artifact for ``ref``."""

    def exists_many(self, refs: Sequence[DatasetRef]) -> dict[uuid.UUID, bool]:
        return {ref.id: self.exists(ref) for ref in refs}

    # -- removing ---------------------------------------------------------------------------
    def remove(self, ref: DatasetRef) -> None:
        self.remove_many([ref])

    @abstractmethod
    def remove_many(self, refs: Sequence[DatasetRef]) -> None:
        """Delete artifacts and ``bridge.delete`` their records; absent ones are ignored."""

    # -- artifacts, for transfer and export ------------------------------------------------
    def artifact_path(self, ref: DatasetRef) -> Path | None:
        """A local file holding the whole dataset, when there is one (file datastores).

        Transfer and export copy this file as-is; without one they fall back to
        ``get`` in the source and ``put`` in the destination.
        """
        return None

    def children(self) -> Sequence[Datastore]:
        """Child datastores (chained datastores); leaves return an empty sequence."""
        return ()

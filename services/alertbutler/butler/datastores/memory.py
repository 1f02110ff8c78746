"""The in-memory datastore: objects kept in a dict for the life of the process.

Useful in front of a file datastore in a chain (a worker's intermediate products) and in
tests. Objects are stored by reference: mutate one after ``put`` and the stored one changes.
Nothing is recorded in the registry (the store does not outlive the process).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from .._errors import DatasetNotFoundError
from ..dataset_ref import DatasetRef
from ..storage_classes import STORAGE_CLASSES, StorageClassRegistry
from .base import Datastore


class InMemoryDatastore(Datastore):
    def __init__(self, name: str = "memory",
                 storage_classes: StorageClassRegistry = STORAGE_CLASSES) -> None:
        super().__init__(name)
        self.storage_classes = storage_classes
        self._objects: dict[uuid.UUID, Any] = {}

    def put_many(self, items: Sequence[tuple[Any, DatasetRef]]) -> None:
        for obj, ref in items:
            self.storage_classes.check_put(obj, ref.dataset_type.storage_class)
        for obj, ref in items:
            self._objects[ref.id] = obj

    def discard(self, refs: Sequence[DatasetRef]) -> None:
        for ref in refs:
            self._objects.pop(ref.id, None)

    def get(self, ref: DatasetRef, *, component: str | None = None,
            parameters: Mapping[str, Any] | None = None,
            python_type: type | None = None) -> Any:
        try:
            obj = self._objects[ref.id]
        except KeyError:
            raise DatasetNotFoundError(f"datastore {self.name!r} holds no {ref}") from None
        return self.storage_classes.finish_read(obj, ref.dataset_type.storage_class,
                                                component=component, parameters=parameters,
                                                python_type=python_type)

    def exists(self, ref: DatasetRef) -> bool:
        return ref.id in self._objects

    def remove_many(self, refs: Sequence[DatasetRef]) -> None:
        self.discard(refs)

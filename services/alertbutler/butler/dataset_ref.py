"""Dataset refs: one persisted dataset (type + data ID + run) with its UUID."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, replace
from typing import Any

from .dataset_type import DatasetType
from .dimensions import DataCoordinate

#: namespace of deterministic ids; changing it would change every replayed id.
ID_NAMESPACE = uuid.UUID("5c0f3a9e-7d1b-4e0a-9a4f-6b2f3c1d8e70")


class IdGenerationMode(enum.Enum):
    """How a new dataset's id is made."""

    #: a random uuid4: every put is a new dataset
    UNIQUE = "unique"
    #: uuid5 of (run, dataset type, data ID): a replay of the same inputs gives the same id
    DETERMINISTIC = "deterministic"


def make_dataset_id(dataset_type: DatasetType, data_id: DataCoordinate, run: str,
                    mode: IdGenerationMode = IdGenerationMode.UNIQUE) -> uuid.UUID:
    if mode is IdGenerationMode.UNIQUE:
        return uuid.uuid4()
    return uuid.uuid5(ID_NAMESPACE, f"{run}\x1f{dataset_type.parent_name}\x1f{data_id.key}")


@dataclass(frozen=True, slots=True)
class DatasetRef:
    """A pointer to one dataset: resolved (it has an id and a run) from creation."""

    dataset_type: DatasetType
    data_id: DataCoordinate
    run: str
    id: uuid.UUID

    @classmethod
    def make(cls, dataset_type: DatasetType, data_id: DataCoordinate, run: str,
             mode: IdGenerationMode = IdGenerationMode.UNIQUE) -> DatasetRef:
        return cls(dataset_type, data_id, run, make_dataset_id(dataset_type, data_id, run, mode))

    @property
    def component(self) -> str | None:
        return self.dataset_type.component

    def make_component(self, component: str, storage_class: str) -> DatasetRef:
        return replace(self, dataset_type=self.dataset_type.make_component(component,
                                                                           storage_class))

    def parent(self, parent_type: DatasetType) -> DatasetRef:
        return replace(self, dataset_type=parent_type)

    def to_json(self) -> dict[str, Any]:
        return {"id": str(self.id), "dataset_type": self.dataset_type.name, "run": self.run,
                "data_id": self.data_id.to_dict()}

    def __str__(self) -> str:
        return f"{self.dataset_type.name}@{self.data_id!r} [{self.run}] ({self.id})"

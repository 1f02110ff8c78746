"""A chain of datastores: put to every child, get from the first that holds the dataset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._errors import DatasetNotFoundError
from ..dataset_ref import DatasetRef
from .base import BridgeFactory, Datastore


class ChainedDatastore(Datastore):
    def __init__(self, children: Sequence[Datastore], name: str = "chained") -> None:
        super().__init__(name)
        names = [c.name for c in children]
        if len(set(names)) != len(names):
            raise ValueError(f"datastore names in a chain must differ: {names}")
        self._children = list(children)

    def attach(self, bridge_factory: BridgeFactory) -> None:
        super().attach(bridge_factory)
        for child in self._children:
            child.attach(bridge_factory)

    def children(self) -> Sequence[Datastore]:
        return tuple(self._children)

    def close(self) -> None:
        for child in self._children:
            child.close()

    def put_many(self, items: Sequence[tuple[Any, DatasetRef]]) -> None:
        done: list[Datastore] = []
        try:
            for child in self._children:
                child.put_many(items)
                done.append(child)
        except BaseException:
            refs = [ref for _, ref in items]
            for child in done:
                child.discard(refs)
            raise

    def discard(self, refs: Sequence[DatasetRef]) -> None:
        for child in self._children:
            child.discard(refs)

    def get(self, ref: DatasetRef, *, component: str | None = None,
            parameters: Mapping[str, Any] | None = None,
            python_type: type | None = None) -> Any:
        for child in self._children:
            if child.exists(ref):
                return child.get(ref, component=component, parameters=parameters,
                                 python_type=python_type)
        raise DatasetNotFoundError(f"no datastore in chain {self.name!r} holds {ref}")

    def exists(self, ref: DatasetRef) -> bool:
        return any(child.exists(ref) for child in self._children)

    def remove_many(self, refs: Sequence[DatasetRef]) -> None:
        for child in self._children:
            child.remove_many(refs)

    def artifact_path(self, ref: DatasetRef) -> Path | None:
        for child in self._children:
            path = child.artifact_path(ref)
            if path is not None:
                return path
        return None

"""Dataset types: a name, its dimensions, its storage class, whether it is a calibration."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ._errors import ConflictingDefinitionError
from .dimensions import UNIVERSE, DimensionGroup, DimensionUniverse

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True, slots=True, init=False)
class DatasetType:
    """What a dataset is. ``calexp.wcs`` names the ``wcs`` component of ``calexp``.

    Two dataset types are equal when name, dimensions, storage class and calibration flag
    all agree; the registry refuses to register a name again with a different definition.
    """

    name: str
    dimensions: DimensionGroup
    storage_class: str
    is_calibration: bool = False
    universe: DimensionUniverse = field(default=UNIVERSE, repr=False, compare=False, hash=False)

    def __init__(self, name: str, dimensions: Iterable[str] | DimensionGroup, storage_class: str,
                 *, is_calibration: bool = False, universe: DimensionUniverse = UNIVERSE) -> None:
        parent, _, component = name.partition(".")
        if not _NAME.fullmatch(parent) or (component and not _NAME.fullmatch(component)):
            raise ValueError(f"invalid dataset type name {name!r}: letters, digits and _, "
                             "starting with a letter (and '.component')")
        if not isinstance(dimensions, DimensionGroup):
            dimensions = universe.group(dimensions)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dimensions", dimensions)
        object.__setattr__(self, "storage_class", storage_class)
        object.__setattr__(self, "is_calibration", bool(is_calibration))
        object.__setattr__(self, "universe", universe)

    @property
    def parent_name(self) -> str:
        return self.name.partition(".")[0]

    @property
    def component(self) -> str | None:
        return self.name.partition(".")[2] or None

    def make_component(self, component: str, storage_class: str) -> DatasetType:
        return DatasetType(f"{self.name}.{component}", self.dimensions, storage_class,
                           is_calibration=self.is_calibration, universe=self.universe)

    def check_same(self, other: DatasetType) -> None:
        """Raise :class:`ConflictingDefinitionError` naming every differing attribute."""
        diffs = [f"{attr}: {getattr(other, attr)} != registered {getattr(self, attr)}"
                 for attr in ("dimensions", "storage_class", "is_calibration")
                 if getattr(self, attr) != getattr(other, attr)]
        if diffs:
            raise ConflictingDefinitionError(
                f"dataset type {self.name!r} is already registered differently: "
                + "; ".join(diffs))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dimensions": list(self.dimensions.required),
                "storage_class": self.storage_class, "is_calibration": self.is_calibration}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatasetType:
        return cls(data["name"], data["dimensions"], data["storage_class"],
                   is_calibration=data.get("is_calibration", False))

    def __str__(self) -> str:
        cal = ", calibration" if self.is_calibration else ""
        return f"DatasetType({self.name!r}, {self.dimensions}, {self.storage_class}{cal})"

"""The dimension universe, dimension groups, validated data IDs and dimension records.

The universe is declared once in code (not in a configuration file) so that a typo in a data
ID key is caught against one table. Each dimension names the dimensions it *requires* (part
of its primary key: a detector needs an instrument) and those it *implies* (stored in its
record: a visit implies its physical_filter, which implies its band).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ._errors import DataIdError
from .regions import Circle
from .timespan import Timespan

#: a str data ID value must match this: no path separators, no NUL, no leading dot.
SAFE_VALUE = re.compile(r"[A-Za-z0-9_+~@-][A-Za-z0-9_.+~@-]{0,127}")


@dataclass(frozen=True, slots=True)
class Dimension:
    """One dimension: its key type, parents, implied dimensions and record metadata."""

    name: str
    key_type: type
    requires: tuple[str, ...] = ()
    implies: tuple[str, ...] = ()
    metadata: tuple[tuple[str, type], ...] = ()
    has_timespan: bool = False
    has_region: bool = False
    has_table: bool = True
    doc: str = ""


class DimensionUniverse:
    """All dimensions, in a fixed order used for data-ID keys, file names and tables."""

    version = 1

    def __init__(self, dimensions: Iterable[Dimension]) -> None:
        self._dims = {d.name: d for d in dimensions}
        self.names = tuple(self._dims)

    def __getitem__(self, name: str) -> Dimension:
        try:
            return self._dims[name]
        except KeyError:
            raise DataIdError(f"unknown dimension {name!r}; known: {', '.join(self.names)}") \
                from None

    def __contains__(self, name: object) -> bool:
        return name in self._dims

    def __iter__(self) -> Iterator[Dimension]:
        return iter(self._dims.values())

    def group(self, names: Iterable[str]) -> DimensionGroup:
        return _group(self, frozenset(names))

    def parse_value(self, name: str, text: str) -> Any:
        """Convert command-line text to the dimension's key type (CLI and file templates)."""
        kt = self[name].key_type
        if kt is int:
            try:
                return int(text)
            except ValueError:
                raise DataIdError(f"data ID key {name!r} needs an integer, got {text!r}") \
                    from None
        return text


UNIVERSE = DimensionUniverse([
    Dimension("instrument", str, metadata=(("n_detectors", int),),
              doc="a camera"),
    Dimension("band", str, has_table=False, doc="an abstract filter (u, g, r, i, z, y)"),
    Dimension("physical_filter", str, requires=("instrument",), implies=("band",),
              doc="a filter in one instrument"),
    Dimension("detector", int, requires=("instrument",),
              metadata=(("full_name", str), ("nx", int), ("ny", int)),
              doc="one CCD, with its pixel size"),
    Dimension("day_obs", int, requires=("instrument",), has_timespan=True,
              doc="an observing day as YYYYMMDD"),
    Dimension("exposure", int, requires=("instrument",), implies=("physical_filter", "day_obs"),
              metadata=(("obs_type", str), ("exposure_time", float)),
              has_timespan=True, has_region=True, doc="one shutter opening"),
    Dimension("visit", int, requires=("instrument",), implies=("physical_filter", "day_obs"),
              metadata=(("exposure_time", float),),
              has_timespan=True, has_region=True, doc="one pointing processed as a unit"),
    Dimension("healpix", int, has_table=False,
              doc="a nested HEALPix pixel (nside 64): the sky tiling of templates"),
])


@dataclass(frozen=True, slots=True)
class DimensionGroup:
    """A set of dimensions closed over ``requires``: the dimensions of a dataset type."""

    universe: DimensionUniverse = field(repr=False, compare=False, hash=False)
    required: tuple[str, ...]
    implied: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return self.required

    def __iter__(self) -> Iterator[str]:
        return iter(self.required)

    def __contains__(self, name: object) -> bool:
        return name in self.required

    def __str__(self) -> str:
        return "{" + ", ".join(self.required) + "}"


@lru_cache(maxsize=256)
def _group(universe: DimensionUniverse, names: frozenset[str]) -> DimensionGroup:
    todo, required = list(names), set()
    while todo:
        name = todo.pop()
        if name not in required:
            required.add(name)
            todo.extend(universe[name].requires)
    implied: set[str] = set()
    todo = [i for n in required for i in universe[n].implies]
    while todo:
        name = todo.pop()
        if name not in implied and name not in required:
            implied.add(name)
            todo.extend(universe[name].implies)
    order = universe.names
    return DimensionGroup(universe,
                          tuple(n for n in order if n in required),
                          tuple(n for n in order if n in implied))


def check_value(name: str, value: Any, key_type: type) -> Any:
    """The value, normalised, or a :class:`DataIdError` naming the key and the problem."""
    if key_type is int:
        if isinstance(value, bool) or not hasattr(value, "__index__"):
            raise DataIdError(f"data ID key {name!r} needs an integer, "
                              f"got {type(value).__name__} {value!r}")
        value = int(value)
        if not -(2**63) <= value < 2**63:  # every integer key is a 64-bit column
            raise DataIdError(f"data ID key {name!r} value {value} does not fit in 64 bits")
        return value
    if not isinstance(value, str):
        raise DataIdError(f"data ID key {name!r} needs a string, "
                          f"got {type(value).__name__} {value!r}")
    if not SAFE_VALUE.fullmatch(value):
        raise DataIdError(
            f"data ID key {name!r} has unsafe value {value!r}: values may hold only letters, "
            "digits and _.+~@- (no path separators, no leading dot, no NUL), at most 128 chars; "
            "a value must never be able to place a file outside the repository root")
    return value


class DataCoordinate(Mapping[str, Any]):
    """An immutable, validated data ID: required values plus (optionally) implied ones.

    Equality and hashing use the dimension group and the required values only, so an
    expanded data ID (with implied ``band`` etc.) still equals the minimal one.
    """

    __slots__ = ("_hash", "_implied", "_key", "dimensions", "required_values")

    def __init__(self, dimensions: DimensionGroup, required_values: tuple[Any, ...],
                 implied: Mapping[str, Any] | None = None) -> None:
        self.dimensions = dimensions
        self.required_values = required_values
        self._implied = dict(implied or {})
        self._key: str | None = None
        self._hash = hash((dimensions.required, required_values))

    @classmethod
    def standardize(cls, data_id: Mapping[str, Any] | None, dimensions: DimensionGroup,
                    **kwargs: Any) -> DataCoordinate:
        """Validate ``data_id`` (and keyword values) against ``dimensions``.

        Missing required keys, keys outside the group's required and implied dimensions, and
        wrongly-typed or unsafe values are each a :class:`DataIdError` naming the keys.
        """
        if isinstance(data_id, DataCoordinate) and not kwargs \
                and data_id.dimensions.required == dimensions.required:
            return data_id
        values = dict(data_id or {})
        values.update(kwargs)
        universe = dimensions.universe
        missing = [n for n in dimensions.required if n not in values]
        extra = [k for k in values if k not in dimensions.required and k not in dimensions.implied]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {missing}")
            if extra:
                parts.append(f"unexpected {extra}")
            raise DataIdError(f"data ID {values!r} does not match dimensions {dimensions}: "
                              + "; ".join(parts))
        required = tuple(check_value(n, values[n], universe[n].key_type)
                         for n in dimensions.required)
        implied = {n: check_value(n, values[n], universe[n].key_type)
                   for n in dimensions.implied if n in values}
        return cls(dimensions, required, implied)

    @classmethod
    def from_key(cls, dimensions: DimensionGroup, key: str) -> DataCoordinate:
        """Inverse of :attr:`key` (registry rows carry the key string)."""
        universe = dimensions.universe
        values: dict[str, Any] = {}
        if key:
            for part in key.split(","):
                name, _, text = part.partition("=")
                values[name] = universe.parse_value(name, text)
        return cls(dimensions, tuple(values[n] for n in dimensions.required))

    @property
    def key(self) -> str:
        """Canonical ``name=value,...`` string: unique per group, used as a registry key."""
        if self._key is None:
            self._key = ",".join(f"{n}={v}" for n, v in
                                 zip(self.dimensions.required, self.required_values, strict=True))
        return self._key

    @property
    def has_implied(self) -> bool:
        return all(n in self._implied for n in self.dimensions.implied)

    def with_implied(self, implied: Mapping[str, Any]) -> DataCoordinate:
        merged = {**self._implied, **{k: v for k, v in implied.items()
                                      if k in self.dimensions.implied}}
        return DataCoordinate(self.dimensions, self.required_values, merged)

    def __getitem__(self, name: str) -> Any:
        try:
            return self.required_values[self.dimensions.required.index(name)]
        except ValueError:
            return self._implied[name]

    def __iter__(self) -> Iterator[str]:
        yield from self.dimensions.required
        yield from (n for n in self.dimensions.implied if n in self._implied)

    def __len__(self) -> int:
        return len(self.dimensions.required) + len(self._implied)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DataCoordinate):
            return (self.dimensions.required == other.dimensions.required
                    and self.required_values == other.required_values)
        if isinstance(other, Mapping):
            return dict(self.required_items()) == {k: other[k] for k in other
                                                    if k in self.dimensions.required} \
                and all(k in other for k in self.dimensions.required)
        return NotImplemented

    def __hash__(self) -> int:
        return self._hash

    def required_items(self) -> Iterator[tuple[str, Any]]:
        return zip(self.dimensions.required, self.required_values, strict=True)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.items())

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k}: {v!r}" for k, v in self.items()) + "}"


@dataclass(frozen=True)
class DimensionRecord:
    """Metadata about one dimension value: a detector's size, a visit's time and footprint."""

    element: str
    values: Mapping[str, Any]
    timespan: Timespan | None = None
    region: Circle | None = None

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(f"{self.element} record has no field {name!r}") from None

    @property
    def data_id(self) -> dict[str, Any]:
        dim = UNIVERSE[self.element]
        return {n: self.values[n] for n in (*dim.requires, self.element)}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"element": self.element, "values": dict(self.values)}
        if self.timespan is not None:
            out["timespan"] = self.timespan.to_json()
        if self.region is not None:
            out["region"] = self.region.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DimensionRecord:
        ts = data.get("timespan")
        region = data.get("region")
        return cls(data["element"], dict(data["values"]),
                   Timespan(*ts) if ts is not None else None,
                   Circle(*region) if region is not None else None)

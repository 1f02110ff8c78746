"""The checked form of a filter: a small typed tree, evaluated over columns, never as Python.

Column keys are field paths; ``"*"`` marks where an array is flattened (``prvDiaSources.*.band``
is the band of every history entry of every alert in a batch, one flat column).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Type = Literal["number", "string", "boolean", "bytes"]
ColumnKey = tuple[str, ...]


@dataclass(frozen=True)
class ColumnSpec:
    """A column a filter needs: its path and how to build its array."""

    key: ColumnKey
    kind: str          # number, string, boolean, bytes, or "array" (segment ids of an array)
    integer: bool = False


@dataclass(frozen=True)
class Node:
    type: Type
    nullable: bool


@dataclass(frozen=True)
class Const(Node):
    value: object


@dataclass(frozen=True)
class Col(Node):
    key: ColumnKey


@dataclass(frozen=True)
class Neg(Node):
    operand: Node


@dataclass(frozen=True)
class Arith(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Compare(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class BoolOp(Node):
    op: Literal["and", "or"]
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class InList(Node):
    operand: Node
    values: tuple[object, ...]
    negate: bool


@dataclass(frozen=True)
class IsNull(Node):
    operand: Node
    negate: bool


@dataclass(frozen=True)
class Aggregate(Node):
    """``func`` over the entries of the array at ``array`` (item-scope ``value``/``where``)."""

    func: Literal["count", "min", "max", "mean", "sum"]
    array: ColumnKey
    value: Node | None
    where: Node | None


@dataclass(frozen=True)
class Func(Node):
    name: Literal["abs", "sqrt", "log10", "mag"]
    arg: Node


@dataclass(frozen=True)
class Within(Node):
    """Angular distance of (``ra``, ``dec`` columns) from a fixed point below a radius."""

    ra: ColumnKey
    dec: ColumnKey
    center_ra: float
    center_dec: float
    radius_deg: float


@dataclass(frozen=True)
class SinceFirst(Node):
    """Days from the earliest detection (history or this one) to this detection."""

    now: ColumnKey
    history: ColumnKey    # the flattened history times
    array: ColumnKey

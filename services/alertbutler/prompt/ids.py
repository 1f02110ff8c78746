"""Deterministic ids: a DiaSource id packs its visit, detector and index within the visit-detector.

Re-processing a visit-detector must give the same alerts, so no id may come from a counter,
a database sequence or the clock. Every id is a positive signed 64-bit integer (Avro ``long``):

====== ======= ============================================================
bits   width   meaning
====== ======= ============================================================
62..22   41    visit (0 .. 2**41-1, room for YYYYMMDDnnnnn-style visit ids)
21..14    8    detector (0 .. 255)
13        1    kind: 0 = DiaSource, 1 = DiaForcedSource
12..0    13    index within the visit-detector (0 .. 8191)
====== ======= ============================================================

A new DiaObject takes the id of its first DiaSource, so DiaObject ids are DiaSource ids too and
``unpack_id`` says where an object was first seen.
"""

from __future__ import annotations

from typing import NamedTuple

INDEX_BITS = 13
KIND_BITS = 1
DETECTOR_BITS = 8
VISIT_BITS = 41

_KIND_SHIFT = INDEX_BITS
_DETECTOR_SHIFT = INDEX_BITS + KIND_BITS
_VISIT_SHIFT = INDEX_BITS + KIND_BITS + DETECTOR_BITS

MAX_INDEX = (1 << INDEX_BITS) - 1
MAX_DETECTOR = (1 << DETECTOR_BITS) - 1
MAX_VISIT = (1 << VISIT_BITS) - 1

KIND_SOURCE = 0
KIND_FORCED = 1


class PackedId(NamedTuple):
    """The parts of a packed id."""

    visit: int
    detector: int
    kind: int
    # shadows tuple.index (a method) by design: the part is called index
    index: int  # type: ignore[assignment]


def pack_id(visit: int, detector: int, index: int, *, kind: int = KIND_SOURCE) -> int:
    """Pack the parts into one id; out-of-range parts raise ``ValueError`` naming the part."""
    for name, value, top in (("visit", visit, MAX_VISIT), ("detector", detector, MAX_DETECTOR),
                             ("index", index, MAX_INDEX), ("kind", kind, 1)):
        if not 0 <= value <= top:
            raise ValueError(f"{name} {value} does not fit the id layout (0..{top})")
    return (visit << _VISIT_SHIFT) | (detector << _DETECTOR_SHIFT) | (kind << _KIND_SHIFT) | index


def dia_source_id(visit: int, detector: int, index: int) -> int:
    """The id of the ``index``-th DiaSource of a visit-detector (also a new DiaObject's id)."""
    return pack_id(visit, detector, index, kind=KIND_SOURCE)


def dia_forced_source_id(visit: int, detector: int, index: int) -> int:
    """The id of the ``index``-th forced measurement of a visit-detector."""
    return pack_id(visit, detector, index, kind=KIND_FORCED)


def unpack_id(packed: int) -> PackedId:
    """The visit, detector, kind and index an id was made of."""
    if not 0 <= packed < (1 << 63):
        raise ValueError(f"id {packed} is not a positive 64-bit id")
    return PackedId(
        visit=packed >> _VISIT_SHIFT,
        detector=(packed >> _DETECTOR_SHIFT) & MAX_DETECTOR,
        kind=(packed >> _KIND_SHIFT) & 1,
        index=packed & MAX_INDEX,
    )

"""Collection types and records."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class CollectionType(enum.IntEnum):
    """What a collection is; stored as its integer in the registry."""

    #: where datasets are written; every dataset belongs to exactly one run
    RUN = 1
    #: a hand-picked set of datasets (at most one per dataset type and data ID)
    TAGGED = 2
    #: an ordered search path of other collections
    CHAINED = 3
    #: datasets certified for validity time ranges (no overlaps per type and data ID)
    CALIBRATION = 4


@dataclass(frozen=True, slots=True)
class CollectionRecord:
    name: str
    type: CollectionType
    id: int
    doc: str = ""

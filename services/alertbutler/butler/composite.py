"""Composite assembly on read: a raw's pixels plus the WCS and PSF certified for the time
of its exposure. The in-memory object is assembled from several persisted datasets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._errors import DatasetNotFoundError, StorageClassError
from .dataset_ref import DatasetRef
from .dimensions import DataCoordinate
from .storage_classes import STORAGE_CLASSES
from .timespan import Timespan

if TYPE_CHECKING:
    from .butler import Butler


def assemble_components(butler: Butler, ref: DatasetRef, obj: Any,
                        components: Mapping[str, str],
                        collections: Sequence[str] | str | None) -> Any:
    from .butler import exposure_midpoint

    sc = STORAGE_CLASSES[ref.dataset_type.storage_class]
    if sc.assemble is None:
        raise StorageClassError(f"storage class {sc.name} cannot be assembled")
    for comp in components:
        sc.check_component(comp)
    when = exposure_midpoint(butler, ref.data_id)
    if when is None:
        raise DatasetNotFoundError(f"{ref} has no exposure or visit record with a time span: "
                                   "cannot pick calibrations by time")
    values = {}
    expanded = dict(butler.expand_data_id(ref.data_id).items())
    for comp, type_name in components.items():
        calib_type = butler.get_dataset_type(type_name)
        did = DataCoordinate.standardize(
            {k: expanded[k] for k in calib_type.dimensions.required if k in expanded},
            calib_type.dimensions)
        calib_ref = butler.find_dataset(calib_type, did, collections=collections,
                                        timespan=Timespan.at(when))
        if calib_ref is None:
            raise DatasetNotFoundError(f"no {type_name} for {did!r} valid at {Timespan.at(when)} "
                                       f"to assemble {ref.dataset_type.name}.{comp}")
        values[comp] = butler.datastore.get(calib_ref)
    return sc.assemble(obj, values)

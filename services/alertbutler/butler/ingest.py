"""Ingest of files written outside the butler (raws from the camera or the simulator).

Each file's data ID comes from its own FITS header (or from a file-name template known in
advance). The exposure's dimension record (time span, pointing, filter) is made from the
same header. Every file is checked and ingested on its own: a file with missing or
inconsistent metadata is reported in :attr:`IngestResult.failures` with its name and the
reason, and the others go on.

Header convention (see docs/butler.md): ``INSTRUME``, ``DETECTOR`` (int), ``EXPID`` (int),
``FILTER`` (physical filter), optional ``BAND``, ``DATE-OBS`` (ISO, start of exposure; UTC
unless ``TIMESYS`` names another astropy scale such as TAI),
``EXPTIME`` (s), optional ``RA``/``DEC`` (deg, boresight), ``FOVRAD`` (deg), ``IMAGETYP``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import ButlerError, IngestError, MissingDatasetTypeError
from .dataset_ref import DatasetRef, IdGenerationMode
from .dataset_type import DatasetType
from .dimensions import DataCoordinate
from .regions import Circle
from .timespan import Timespan, to_ns

if TYPE_CHECKING:
    from .butler import Butler

RAW = DatasetType("raw", ["instrument", "exposure", "detector"], "RawExposure")
DEFAULT_FOV_RADIUS_DEG = 1.75


@dataclass
class IngestResult:
    refs: list[DatasetRef] = field(default_factory=list)
    #: (file, reason) for every rejected file
    failures: list[tuple[Path, str]] = field(default_factory=list)


@dataclass(frozen=True)
class RawMetadata:
    """What one raw's header says: its data ID and its exposure record."""

    data_id: dict[str, Any]
    exposure: dict[str, Any] | None = None
    band: str | None = None


def _need(header: Mapping[str, Any], key: str, kind: type, path: Path) -> Any:
    if key not in header or header[key] in (None, ""):
        raise IngestError(f"{path}: header keyword {key} is missing")
    value = header[key]
    try:
        if kind is int and (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise IngestError(f"{path}: header keyword {key}={value!r} is not a valid "
                          f"{kind.__name__}") from None


def day_obs_of(start_ns: int) -> int:
    """The observing day (YYYYMMDD) in the Rubin convention: UTC minus 12 hours."""
    t = dt.datetime.fromtimestamp(start_ns / 1e9, dt.UTC) - dt.timedelta(hours=12)
    return int(t.strftime("%Y%m%d"))


def metadata_from_header(header: Mapping[str, Any], path: Path) -> RawMetadata:
    """The raw's data ID and exposure record from the header convention above."""
    instrument = _need(header, "INSTRUME", str, path)
    detector = _need(header, "DETECTOR", int, path)
    exposure = _need(header, "EXPID", int, path)
    physical_filter = _need(header, "FILTER", str, path)
    date = _need(header, "DATE-OBS", str, path)
    exptime = _need(header, "EXPTIME", float, path)
    timesys = str(header.get("TIMESYS", "UTC")).strip().upper()
    try:
        iso = date if "T" in date or " " in date else date + "T00:00:00"
        if timesys == "UTC":
            begin = to_ns(iso)
        else:  # e.g. TAI: registry times are UTC
            from astropy.time import Time

            begin = to_ns(Time(iso, format="isot", scale=timesys.lower()))
    except (TypeError, ValueError):
        raise IngestError(f"{path}: DATE-OBS={date!r} is not an ISO date-time") from None
    assert begin is not None
    if exptime < 0:
        raise IngestError(f"{path}: EXPTIME={exptime} is negative")
    record: dict[str, Any] = {
        "instrument": instrument, "exposure": exposure, "physical_filter": physical_filter,
        "day_obs": day_obs_of(begin), "exposure_time": exptime,
        "obs_type": str(header.get("IMAGETYP", "science")).lower(),
        "timespan": Timespan(begin, begin + round(exptime * 1e9))}
    if "RA" in header and "DEC" in header:
        record["region"] = Circle(float(header["RA"]), float(header["DEC"]),
                                  float(header.get("FOVRAD", DEFAULT_FOV_RADIUS_DEG)))
    band = str(header["BAND"]) if header.get("BAND") else None
    return RawMetadata({"instrument": instrument, "exposure": exposure, "detector": detector},
                       record, band)


def template_parser(template: str, butler: Butler) -> Callable[[Path], RawMetadata]:
    """A data ID from a file name: ``"{instrument}_{exposure}_{detector}.fits"``."""
    pattern = ""
    for literal, name, _, _ in __import__("string").Formatter().parse(template):
        pattern += re.escape(literal)
        if name:
            kt = butler.registry.universe[name].key_type
            pattern += f"(?P<{name}>-?[0-9]+)" if kt is int else f"(?P<{name}>[A-Za-z0-9_+~@-]+)"
    regex = re.compile(pattern)

    def parse(path: Path) -> RawMetadata:
        m = regex.fullmatch(path.name)
        if m is None:
            raise IngestError(f"{path}: file name does not match template {template!r}")
        universe = butler.registry.universe
        return RawMetadata({k: universe.parse_value(k, v) for k, v in m.groupdict().items()})

    return parse


def ingest_files(butler: Butler, files: Iterable[str | Path], *, run: str | None = None,
                 dataset_type: str | DatasetType = RAW, transfer: str = "copy",
                 template: str | None = None,
                 translator: Callable[[Mapping[str, Any], Path], RawMetadata] | None = None,
                 id_mode: IdGenerationMode = IdGenerationMode.DETERMINISTIC,
                 format: str | None = None) -> IngestResult:
    """Register external files as datasets in ``run``; see the module docstring.

    ``id_mode`` defaults to deterministic ids, so re-ingesting the same raw into the same
    run (a replay) reproduces its id, and ingesting it twice is refused as a duplicate.
    """
    from .formatters import read_raw_header

    run = run or butler.run
    if not run:
        raise IngestError("no run to ingest into: pass run=")
    if isinstance(dataset_type, DatasetType):
        butler.register_dataset_type(dataset_type)
        dt = butler.get_dataset_type(dataset_type.name)
    else:
        try:
            dt = butler.get_dataset_type(dataset_type)
        except MissingDatasetTypeError:
            if dataset_type != "raw":
                raise
            dt = butler.register_dataset_type(RAW)
    store = butler.file_datastore
    if store is None:
        raise IngestError("this butler has no file datastore to ingest into")
    butler.register_run(run)
    parse = template_parser(template, butler) if template else None
    translate = translator or metadata_from_header
    result = IngestResult()
    for raw_path in files:
        path = Path(raw_path)
        try:
            if not path.is_file():
                raise IngestError(f"{path}: no such file")
            if parse is not None:
                meta = parse(path)
            else:
                try:
                    header = read_raw_header(path)
                except Exception as exc:  # astropy raises many types for a non-FITS file
                    raise IngestError(f"{path}: not a readable FITS file ({exc})") from None
                meta = translate(header, path)
            _check_consistent(butler, meta, path)
            if meta.exposure is not None:
                _define_records(butler, meta)
            data_id = DataCoordinate.standardize(
                {k: v for k, v in meta.data_id.items() if k in dt.dimensions.required},
                dt.dimensions)
            ref = DatasetRef.make(dt, data_id, run, id_mode)

            def once(ref: DatasetRef = ref, path: Path = path) -> None:
                with butler.registry.transaction():
                    butler.registry.insert_datasets([ref])
                    store.ingest_many([(ref, path, format)], transfer)

            butler.registry.db.retry(once)
            result.refs.append(ref)
        except (ButlerError, OSError, ValueError) as exc:
            msg = str(exc)
            result.failures.append((path, msg if str(path) in msg else f"{path}: {msg}"))
    return result


def _check_consistent(butler: Butler, meta: RawMetadata, path: Path) -> None:
    """Refuse a file whose header contradicts records already in the registry."""
    did = meta.data_id
    if "detector" in did:
        inst = butler.get_dimension_record("instrument", did)
        n = getattr(inst, "n_detectors", None) if inst is not None else None
        known = butler.get_dimension_record("detector", did)
        if known is None and n is not None and not (0 <= did["detector"] < n):
            raise IngestError(f"{path}: DETECTOR={did['detector']} is not a detector of "
                              f"{did['instrument']} (it has {n})")
    if meta.exposure is not None:
        existing = butler.get_dimension_record("exposure", did)
        if existing is not None:
            for key in ("physical_filter", "day_obs"):
                if existing.values.get(key) != meta.exposure[key]:
                    raise IngestError(
                        f"{path}: {key}={meta.exposure[key]!r} contradicts exposure "
                        f"{did['exposure']} already recorded with {existing.values.get(key)!r}")


def _define_records(butler: Butler, meta: RawMetadata) -> None:
    exp = dict(meta.exposure or {})
    inst = exp["instrument"]
    if butler.get_dimension_record("instrument", {"instrument": inst}) is None:
        butler.insert_dimension_records("instrument", [{"instrument": inst}])
    pf = {"instrument": inst, "physical_filter": exp["physical_filter"]}
    if butler.get_dimension_record("physical_filter", pf) is None:
        butler.insert_dimension_records("physical_filter", [{
            **pf, "band": meta.band or exp["physical_filter"]}])
    day = {"instrument": inst, "day_obs": exp["day_obs"]}
    if butler.get_dimension_record("day_obs", day) is None:
        butler.insert_dimension_records("day_obs", [day])
    if butler.get_dimension_record("exposure", exp) is None:
        butler.insert_dimension_records("exposure", [exp])

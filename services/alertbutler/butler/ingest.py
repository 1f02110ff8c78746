"""Ingest of files written outside the butler (raws from the camera or the simulator).

Each file's data ID comes from its own FITS header (or from a file-name template known in
advance). The exposure's dimension record (time span, pointing, filter) is made from the
same header. Every file is checked and ingested on its own, in its own registry transaction
(its dimension records, dataset row and datastore record commit together or not at all): a
file with missing, unparsable, out-of-range or inconsistent metadata is reported in
:attr:`IngestResult.failures` with its name, the keyword and the value, nothing of it stays
in the registry, and the others go on.

Every card of the header is parsed before anything is written (a card astropy cannot parse,
such as one holding a NUL, refuses the file). Values must be usable: integers fit in 64 bits,
``DATE-OBS`` lies within the years 1823-2116 (what the registry's times hold), ``EXPTIME``
is finite and not negative, ``TIMESYS`` is an astropy time scale, ``RA``/``DEC``/``FOVRAD``
are finite angles in range.

Header convention (see docs/butler.md): ``INSTRUME``, ``DETECTOR`` (int), ``EXPID`` (int),
``FILTER`` (physical filter), optional ``BAND``, ``DATE-OBS`` (ISO, start of exposure; UTC
unless ``TIMESYS`` names another astropy scale such as TAI),
``EXPTIME`` (s), optional ``RA``/``DEC`` (deg, boresight), ``FOVRAD`` (deg), ``IMAGETYP``.
"""

from __future__ import annotations

import datetime as dt
import math
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
from .timespan import MAX_NS, MIN_NS, Timespan, to_ns

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


def _raw_card(path: Path, keyword: str) -> str | None:
    """The 80-character card of ``keyword`` as it is in the file (for error messages about a
    card astropy cannot parse, whose value it cannot show)."""
    key = keyword.upper().ljust(8).encode("ascii", "replace")[:8]
    try:
        data = path.read_bytes()
    except OSError:
        return None
    pos = data.find(key)
    while pos != -1 and pos % 80:
        pos = data.find(key, pos + 1)
    return None if pos == -1 else data[pos:pos + 80].decode("latin-1").rstrip()


def read_checked_header(path: Path) -> Any:
    """The raw's header (see :func:`~.formatters.read_raw_header`) after proving that every
    card parses: an error names the keyword and the card as written."""
    from astropy.io import fits

    try:
        hdul = fits.open(path, lazy_load_hdus=True)
    except Exception as exc:  # astropy raises many types for a non-FITS file
        raise IngestError(f"{path}: not a readable FITS file ({exc})") from None
    with hdul:
        headers: list[fits.Header] = []
        for index in (0, 1):
            if index == 1 and (len(hdul) < 2 or headers[0].get("NAXIS", 0) != 0):
                break
            try:
                header = hdul[index].header
            except Exception as exc:
                raise IngestError(f"{path}: HDU {index} is not readable FITS ({exc})") from None
            for card in header.cards:
                try:
                    card.value  # noqa: B018 - parsing it is the check
                except Exception as exc:
                    raw = _raw_card(path, card.keyword)
                    why = str(exc).split(", fix it first")[0]  # astropy's advice is for code
                    raise IngestError(f"{path}: header keyword {card.keyword} is not valid FITS"
                                      f" ({raw!r}): {why}") from None
            headers.append(header)
        header = headers[0].copy()
        if len(headers) > 1:
            header.update({k: v for k, v in headers[1].items() if k not in header})
        return header


def _need(header: Mapping[str, Any], key: str, kind: type, path: Path) -> Any:
    if key not in header or header[key] in (None, ""):
        raise IngestError(f"{path}: header keyword {key} is missing")
    value = header[key]
    try:
        if kind is int and (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        out = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise IngestError(f"{path}: header keyword {key}={value!r} is not a valid "
                          f"{kind.__name__}") from None
    if kind is int and not -(2**63) <= out < 2**63:
        raise IngestError(f"{path}: header keyword {key}={value!r} does not fit in 64 bits")
    if kind is float and not math.isfinite(out):
        raise IngestError(f"{path}: header keyword {key}={value!r} is not a finite number")
    return out


def _angle(header: Mapping[str, Any], key: str, path: Path, low: float, high: float,
           default: float | None = None) -> float:
    value = header.get(key, default)
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise IngestError(f"{path}: header keyword {key}={value!r} is not a number") from None
    if not (math.isfinite(out) and low <= out <= high):
        raise IngestError(f"{path}: header keyword {key}={value!r} is outside [{low}, {high}]"
                          " degrees")
    return out


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
    from astropy.time import Time

    if timesys.lower() not in Time.SCALES:
        raise IngestError(f"{path}: header keyword TIMESYS={header.get('TIMESYS')!r} is not a "
                          f"time scale (use one of {', '.join(s.upper() for s in Time.SCALES)})")
    try:
        iso = date if "T" in date or " " in date else date + "T00:00:00"
        if timesys == "UTC":
            begin = to_ns(iso)
        else:  # e.g. TAI: registry times are UTC
            begin = to_ns(Time(iso, format="isot", scale=timesys.lower()))
    except (TypeError, ValueError, OverflowError):
        raise IngestError(f"{path}: header keyword DATE-OBS={date!r} is not an ISO date-time"
                          ) from None
    assert begin is not None
    if not 0 <= exptime < 1e9:
        raise IngestError(f"{path}: header keyword EXPTIME={exptime} is "
                          + ("negative" if exptime < 0 else "longer than 30 years"))
    end = begin + round(exptime * 1e9)
    if not (begin > MIN_NS and end < MAX_NS):
        raise IngestError(f"{path}: header keyword DATE-OBS={date!r} (with EXPTIME={exptime})"
                          " is outside the years 1823-2116 the registry's times can hold")
    record: dict[str, Any] = {
        "instrument": instrument, "exposure": exposure, "physical_filter": physical_filter,
        "day_obs": day_obs_of(begin), "exposure_time": exptime,
        "obs_type": str(header.get("IMAGETYP", "science")).lower(),
        "timespan": Timespan(begin, end)}
    if "RA" in header and "DEC" in header:
        record["region"] = Circle(_angle(header, "RA", path, 0.0, 360.0),
                                  _angle(header, "DEC", path, -90.0, 90.0),
                                  _angle(header, "FOVRAD", path, 0.0, 180.0,
                                         DEFAULT_FOV_RADIUS_DEG))
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
            meta = parse(path) if parse is not None else translate(read_checked_header(path),
                                                                   path)
            data_id = DataCoordinate.standardize(
                {k: v for k, v in meta.data_id.items() if k in dt.dimensions.required},
                dt.dimensions)
            ref = DatasetRef.make(dt, data_id, run, id_mode)

            def once(ref: DatasetRef = ref, path: Path = path, meta: RawMetadata = meta
                     ) -> None:
                made: list[tuple[Path, Path | None]] = []
                try:  # records, dataset and file together: a failure leaves nothing behind
                    with butler.registry.transaction():
                        _check_consistent(butler, meta, path)
                        if meta.exposure is not None:
                            _define_records(butler, meta)
                        butler.registry.insert_datasets([ref])
                        made = store.ingest_many([(ref, path, format)], transfer)
                except BaseException:
                    store.revert_ingest(made)
                    raise

            butler.registry.db.retry_race(once)
            result.refs.append(ref)
        except (ButlerError, OSError, ValueError, ArithmeticError) as exc:
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

"""Watchlists: sky positions with radii whose objects and alerts a user wants to see.

A watchlist is uploaded as CSV with a header naming ``ra``, ``dec`` (degrees) and
``radius`` (arcsec), and optionally ``name``: at most :data:`MAX_ROWS` rows. The text is
read by the standard ``csv`` module and each value by ``float``; nothing in it is evaluated.
Every problem is reported with its line number (the header is line 1), the first
:data:`MAX_ERRORS` of them, and nothing is stored unless every row is valid.

Matching uses astropy: the watchlist is a ``SkyCoord`` whose KD-tree astropy builds once and
caches, and :func:`astropy.coordinates.search_around_sky` pairs it with positions at the
largest radius, after which each pair is kept only within its own row's radius.

* History: the L1 database is searched through its HEALPix index (``pixelId``) over a cover
  of the watchlist: each position's pixel and its eight neighbours at an order whose pixels
  are larger than the largest radius, turned into ranges of the stored fine pixels, queried
  a few hundred ranges at a time, then matched exactly.
* Live: each batch of arriving alerts is matched the same way (the portal's
  ``/api/watchlists/{name}/live`` feed).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alertbutler.errors import AlertbutlerError

MAX_ROWS = 100_000
MAX_BYTES = 16 * 1024 * 1024
MAX_ERRORS = 20
MAX_RADIUS_ARCSEC = 3600.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_RANGES_PER_QUERY = 200


class WatchlistError(AlertbutlerError, ValueError):
    """A watchlist that cannot be accepted; ``problems`` are (line, message) pairs."""

    def __init__(self, problems: Sequence[tuple[int, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"line {n}: {m}" if n else m for n, m in self.problems))


@dataclass(frozen=True, eq=False)
class Watchlist:
    """Positions (degrees) and radii (arcsec), with an optional name per row."""

    name: str
    ra: np.ndarray
    dec: np.ndarray
    radius: np.ndarray
    labels: np.ndarray  # str; "" where the CSV gave none

    def __len__(self) -> int:
        return int(self.ra.size)

    @property
    def coords(self) -> Any:
        """The positions as one SkyCoord, made once (astropy caches its KD-tree on it)."""
        cached = self.__dict__.get("_coords")
        if cached is None:
            import astropy.units as u
            from astropy.coordinates import SkyCoord

            cached = SkyCoord(ra=self.ra * u.deg, dec=self.dec * u.deg, frame="icrs")
            object.__setattr__(self, "_coords", cached)
        return cached

    def match(self, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                               np.ndarray]:
        """Pairs (index into ra/dec, watchlist row, separation in arcsec), each within its
        row's radius."""
        import astropy.units as u
        from astropy.coordinates import SkyCoord, search_around_sky

        ra = np.asarray(ra, dtype=float)
        if ra.size == 0 or len(self) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0)
        points = SkyCoord(ra=ra * u.deg, dec=np.asarray(dec, dtype=float) * u.deg,
                          frame="icrs")
        if points.isscalar:
            points = points.reshape((1,))
        i, j, sep, _ = search_around_sky(points, self.coords,
                                         float(self.radius.max()) * u.arcsec)
        arcsec = sep.to_value(u.arcsec)
        keep = arcsec <= self.radius[j]
        return i[keep], j[keep], arcsec[keep]

    def row(self, j: int) -> dict[str, Any]:
        return {"row": int(j) + 1, "name": str(self.labels[j]) or None,
                "ra": float(self.ra[j]), "dec": float(self.dec[j]),
                "radius_arcsec": float(self.radius[j])}

    # ---- the L1 database's spatial index --------------------------------------------------

    def pixel_ranges(self) -> list[tuple[int, int]]:
        """Inclusive ranges of L1 ``pixelId`` covering every cone (a superset)."""
        import warnings

        import astropy.units as u
        from astropy_healpix import HEALPix

        from alertbutler.l1db import PIXEL_ORDER

        # pixels at least ~3x the largest radius across, so a cone lies inside its pixel and
        # the eight around it (a parent pixel covers its children: coarser stays a cover)
        widest = max(float(self.radius.max()) / 3600.0, 1e-6)
        order = int(np.clip(math.floor(math.log2(58.6 / (3.0 * widest))), 0, PIXEL_ORDER))
        hp = HEALPix(nside=1 << order, order="nested")
        centre = np.unique(np.asarray(hp.lonlat_to_healpix(self.ra * u.deg,
                                                           self.dec * u.deg)))
        # coarser while the positions' pixels alone make too many ranges (the neighbours
        # add about as many again): one sort of 100,000 pixels, then of fewer and fewer
        while order > 0 and np.count_nonzero(np.diff(centre, prepend=-2) != 1) > \
                10 * _RANGES_PER_QUERY:
            centre, order = np.unique(centre >> 2), order - 1
        hp = HEALPix(nside=1 << order, order="nested")
        with warnings.catch_warnings():  # -1 marks the missing neighbour at 8 base corners
            warnings.simplefilter("ignore", RuntimeWarning)
            around = np.asarray(hp.neighbours(centre)).ravel()
        pixels = np.unique(np.concatenate([centre, around[around >= 0]]))
        starts = np.flatnonzero(np.diff(pixels, prepend=-2) != 1)
        ends = np.append(starts[1:], pixels.size) - 1
        shift = 2 * (PIXEL_ORDER - order)
        lo = pixels[starts] << shift
        hi = ((pixels[ends] + 1) << shift) - 1
        return list(zip(lo.tolist(), hi.tolist(), strict=True))

    def contains(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """Mask of the positions within some row's radius (the L1 region protocol)."""
        mask = np.zeros(np.asarray(ra).size, dtype=bool)
        i, _, _ = self.match(ra, dec)
        mask[i] = True
        return mask

    def history(self, db: Any) -> list[dict[str, Any]]:
        """Objects of the L1 database within a row's radius: one entry per (object, row)."""
        columns = ["diaObjectId", "ra", "dec", "nDiaSources", "lastDiaSourceMjdTai"]
        out: list[dict[str, Any]] = []
        for chunk in _chunks(self.pixel_ranges(), _RANGES_PER_QUERY):
            table = db.objects_in_region(_Cover(chunk, self), columns=columns)
            if not table.num_rows:
                continue
            rows = table.to_pylist()
            i, j, sep = self.match(np.array([r["ra"] for r in rows]),
                                   np.array([r["dec"] for r in rows]))
            for a, b, s in zip(i, j, sep, strict=True):
                out.append({**rows[a], "watch": self.row(b), "separation_arcsec": float(s)})
        return sorted(out, key=lambda r: (r["watch"]["row"], r["separation_arcsec"]))


@dataclass(frozen=True)
class _Cover:
    """Part of a watchlist's cover, as the region ``L1db.objects_in_region`` takes."""

    ranges: list[tuple[int, int]]
    watchlist: Watchlist

    def pixel_ranges(self) -> list[tuple[int, int]]:
        return self.ranges

    def contains(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        return self.watchlist.contains(ra, dec)


def _chunks(items: list[tuple[int, int]], n: int) -> Iterator[list[tuple[int, int]]]:
    for k in range(0, len(items), n):
        yield items[k:k + n]


# ---- CSV -------------------------------------------------------------------------------------

def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise WatchlistError([(0, f"watchlist name {name!r}: 1-64 letters, digits, '_', "
                                  "'.', '-', starting with a letter or digit")])
    return name


def parse_csv(name: str, data: bytes | str) -> Watchlist:
    """A watchlist from CSV text; :class:`WatchlistError` naming each bad line."""
    check_name(name)
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise WatchlistError([(0, f"the file is {len(data):,} bytes; at most "
                                      f"{MAX_BYTES:,}")])
        raw = data
        try:
            data = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise WatchlistError([(line, "not UTF-8 text")]) from None
    reader = csv.reader(io.StringIO(data, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise WatchlistError([(1, "empty: expected a header line 'ra,dec,radius[,name]'")]
                             ) from None
    except csv.Error as exc:
        raise WatchlistError([(1, f"not CSV: {exc}")]) from None
    columns = [h.strip().lower() for h in header]
    problems: list[tuple[int, str]] = []
    where = {c: columns.index(c) for c in ("ra", "dec", "radius", "name") if c in columns}
    missing = [c for c in ("ra", "dec", "radius") if c not in where]
    if missing:
        raise WatchlistError([(1, f"the header {header!r} lacks {', '.join(missing)} (expected "
                                  "ra,dec,radius[,name]: degrees, degrees, arcsec)")])
    ra: list[float] = []
    dec: list[float] = []
    radius: list[float] = []
    labels: list[str] = []
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue  # blank lines are allowed
            if len(ra) >= MAX_ROWS:
                problems.append((line, f"more than {MAX_ROWS:,} positions"))
                break
            if len(row) != len(columns):
                problems.append((line, f"{len(row)} fields, the header has {len(columns)}"))
            else:
                values = [_number(row[where[c]], c) for c in ("ra", "dec", "radius")]
                bad = [v for v in values if isinstance(v, str)]
                if bad:
                    problems.append((line, bad[0]))
                else:
                    r, d, rad = (float(v) for v in values)
                    why = _range_problem(r, d, rad)
                    if why:
                        problems.append((line, why))
                    else:
                        label = row[where["name"]].strip() if "name" in where else ""
                        if len(label) > 64:
                            problems.append((line, "name longer than 64 characters"))
                        ra.append(r)
                        dec.append(d)
                        radius.append(rad)
                        labels.append(label[:64])
            if len(problems) >= MAX_ERRORS:
                break
    except csv.Error as exc:
        problems.append((reader.line_num, f"not CSV: {exc}"))
    if problems:
        raise WatchlistError(problems)
    if not ra:
        raise WatchlistError([(2, "no positions after the header")])
    return Watchlist(name, np.array(ra), np.array(dec), np.array(radius),
                     np.array(labels, dtype=str))


def _number(text: str, column: str) -> float | str:
    """The value, or a message naming the column (never evaluated: ``float`` only)."""
    t = text.strip()
    try:
        value = float(t)
    except ValueError:
        return f"{column} {t[:40]!r} is not a number"
    if not math.isfinite(value):
        return f"{column} {t[:40]!r} is not a finite number"
    return value


def _range_problem(ra: float, dec: float, radius: float) -> str | None:
    if not 0.0 <= ra < 360.0:
        return f"ra {ra:g} is outside [0, 360) degrees"
    if not -90.0 <= dec <= 90.0:
        return f"dec {dec:g} is outside [-90, 90] degrees"
    if not 0.0 < radius <= MAX_RADIUS_ARCSEC:
        return f"radius {radius:g} is outside (0, {MAX_RADIUS_ARCSEC:g}] arcsec"
    return None


# ---- storage ---------------------------------------------------------------------------------

class WatchlistStore:
    """Watchlists kept as ``<dir>/<name>.npz`` (plain arrays, read without pickle)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, tuple[float, Watchlist]] = {}

    def _path(self, name: str) -> Path:
        return self.root / f"{check_name(name)}.npz"

    def save(self, wl: Watchlist) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(wl.name)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, ra=wl.ra, dec=wl.dec, radius=wl.radius, labels=wl.labels)
        tmp.replace(path)

    def load(self, name: str) -> Watchlist | None:
        path = self._path(name)
        if path.is_symlink() or not path.is_file():
            return None
        mtime = path.stat().st_mtime_ns
        hit = self._cache.get(name)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        with np.load(path, allow_pickle=False) as z:
            wl = Watchlist(name, z["ra"], z["dec"], z["radius"], z["labels"])
        self._cache[name] = (mtime, wl)
        return wl

    def delete(self, name: str) -> bool:
        path = self._path(name)
        if not path.is_file():
            return False
        path.unlink()
        self._cache.pop(name, None)
        return True

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.npz") if not p.is_symlink()
                      and _NAME.match(p.stem))


def live_matches(wl: Watchlist, alerts: Sequence[Mapping[str, Any]]
                 ) -> list[tuple[Mapping[str, Any], dict[str, Any], float]]:
    """(alert, watchlist row, separation in arcsec) for the alerts within a row's radius."""
    placed = [a for a in alerts if (a.get("diaSource") or {}).get("ra") is not None]
    if not placed:
        return []
    i, j, sep = wl.match(np.array([a["diaSource"]["ra"] for a in placed]),
                         np.array([a["diaSource"]["dec"] for a in placed]))
    return [(placed[a], wl.row(b), float(s)) for a, b, s in zip(i, j, sep, strict=True)]

"""Compare two alert sets (recorded vs replayed): new, missing and changed alerts.

Alerts are matched by ``diaSourceId`` (deterministic in the pipeline: visit, detector and
source index). A matched pair is compared field by field on flattened paths
(``diaSource.psfFlux``, ``prvDiaSources[].psfFlux``, ``cutoutDifference``), array elements by
position. For each field the result counts the alerts whose value changed and, for numeric
fields, the largest and mean absolute difference, so "the threshold change moved psfFlux by
at most 3 nJy in 12 alerts" reads straight off the table.

Two identical sets compare to zero differences; that is what a deterministic replay must show.
"""

from __future__ import annotations

import fnmatch
import html
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

#: Values that make a numeric difference (bool is an int in Python, but not a number here).
_NUMBER = (int, float)


@dataclass
class FieldDiff:
    """How one field changed across the matched alerts."""

    path: str
    changed: int = 0  # alerts in which this field changed
    numeric: int = 0  # of which both values were numbers
    max_abs: float = 0.0
    sum_abs: float = 0.0

    @property
    def mean_abs(self) -> float | None:
        return self.sum_abs / self.numeric if self.numeric else None

    def add(self, old: Any, new: Any) -> None:
        self.changed += 1
        if _is_number(old) and _is_number(new):
            diff = abs(float(new) - float(old))
            if math.isnan(diff):
                diff = math.inf
            self.numeric += 1
            self.max_abs = max(self.max_abs, diff)
            self.sum_abs += diff


@dataclass
class Comparison:
    """The outcome of :func:`compare_alerts`."""

    n_recorded: int
    n_replayed: int
    new: list[int] = field(default_factory=list)  # in the replay only
    missing: list[int] = field(default_factory=list)  # in the recording only
    changed: dict[int, list[str]] = field(default_factory=dict)  # id -> changed paths
    fields: dict[str, FieldDiff] = field(default_factory=dict)
    duplicates: list[int] = field(default_factory=list)  # ids seen twice in one set
    match: str = "id"  # how alerts were paired: "id" or "position"

    @property
    def matched(self) -> int:
        return self.n_recorded - len(self.missing)

    @property
    def unchanged(self) -> int:
        return self.matched - len(self.changed)

    @property
    def differences(self) -> int:
        """New + missing + changed alerts: zero for a deterministic replay."""
        return len(self.new) + len(self.missing) + len(self.changed)

    def as_dict(self, *, limit: int = 50) -> dict[str, Any]:
        return {
            "match": self.match, "recorded": self.n_recorded, "replayed": self.n_replayed,
            "matched": self.matched, "unchanged": self.unchanged,
            "new": len(self.new), "missing": len(self.missing), "changed": len(self.changed),
            "differences": self.differences, "duplicates": len(self.duplicates),
            "new_ids": self.new[:limit], "missing_ids": self.missing[:limit],
            "changed_ids": sorted(self.changed)[:limit],
            "fields": {p: {"changed": f.changed, "max_abs": _finite(f.max_abs) if f.numeric
                           else None, "mean_abs": _finite(f.mean_abs)}
                       for p, f in sorted(self.fields.items())},
        }


def _finite(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return "inf"


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool)


def _pairs(old: Any, new: Any, prefix: str) -> Iterator[tuple[str, Any, Any]]:
    """Leaves of two records side by side, by path (lists element by element)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in dict.fromkeys([*old, *new]):
            path = f"{prefix}.{key}" if prefix else str(key)
            yield from _pairs(old.get(key), new.get(key), path)
    elif isinstance(old, list | tuple) and isinstance(new, list | tuple):
        if len(old) != len(new):
            yield f"{prefix}[].length", len(old), len(new)
        for a, b in zip(old, new, strict=False):
            yield from _pairs(a, b, f"{prefix}[]")
    else:
        yield prefix, old, new


#: Paths left out when alerts are matched by position: the alert's own id, which encodes the
#: source's index and so shifts when detection changes.
POSITION_MATCH_IGNORES = ("diaSourceId", "diaSource.diaSourceId")


def compare_alerts(recorded: Iterable[Mapping[str, Any]], replayed: Iterable[Mapping[str, Any]],
                   *, ignore: Sequence[str] = (), rel_tol: float = 0.0, match: str = "id",
                   radius_arcsec: float = 0.5) -> Comparison:
    """Compare two alert sets matched by diaSourceId (``match="id"``).

    ``ignore`` holds glob patterns of paths left out (``"*.timeProcessedMjdTai"``);
    ``rel_tol`` lets numbers within a relative tolerance count as equal (default: exact).

    diaSourceIds number a visit-detector's sources in order, so a change that adds or drops
    detections (a detection threshold) shifts the ids of the sources after it, and matching by
    id then pairs different sources. ``match="position"`` pairs alerts of the same visit and
    detector whose diaSources lie within ``radius_arcsec`` (closest pairs first), reports
    changes keyed by the recorded id, and leaves the alert's own id out of the fields.
    """
    old = _by_id(recorded)
    new = _by_id(replayed)
    result = Comparison(len(old[0]), len(new[0]), duplicates=old[1] + new[1], match=match)
    if match == "id":
        result.new = sorted(set(new[0]) - set(old[0]))
        result.missing = sorted(set(old[0]) - set(new[0]))
        pairs = [(i, i) for i in sorted(set(old[0]) & set(new[0]))]
    elif match == "position":
        pairs, result.missing, result.new = _pairs_by_position(old[0], new[0], radius_arcsec)
        ignore = (*ignore, *POSITION_MATCH_IGNORES)
    else:
        raise ValueError(f"match must be 'id' or 'position', not {match!r}")
    for ident, other in pairs:
        a, b = old[0][ident], new[0][other]
        if a == b:
            continue
        paths = []
        for path, x, y in _pairs(a, b, ""):
            if x == y or (rel_tol and _is_number(x) and _is_number(y)
                          and math.isclose(float(x), float(y), rel_tol=rel_tol)):
                continue
            if ignore and any(fnmatch.fnmatchcase(path, pat) for pat in ignore):
                continue
            result.fields.setdefault(path, FieldDiff(path)).add(x, y)
            if path not in paths:
                paths.append(path)
        if paths:
            result.changed[ident] = paths
    return result


def _pairs_by_position(old: Mapping[int, Mapping[str, Any]], new: Mapping[int, Mapping[str, Any]],
                       radius_arcsec: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """(recorded id, replayed id) pairs within the radius, then unmatched ids of each side."""
    def groups(alerts: Mapping[int, Mapping[str, Any]]) -> dict[tuple[Any, Any], list[int]]:
        out: dict[tuple[Any, Any], list[int]] = {}
        for ident, alert in alerts.items():
            src = alert.get("diaSource") or {}
            out.setdefault((src.get("visit"), src.get("detector")), []).append(ident)
        return out

    def position(alert: Mapping[str, Any]) -> tuple[float, float]:
        src = alert.get("diaSource") or {}
        return float(src.get("ra", math.nan)), float(src.get("dec", math.nan))

    limit = radius_arcsec / 3600.0
    pairs: list[tuple[int, int]] = []
    old_groups, new_groups = groups(old), groups(new)
    for key, old_ids in old_groups.items():
        candidates = []
        for a in old_ids:
            ra1, dec1 = position(old[a])
            for b in new_groups.get(key, ()):
                ra2, dec2 = position(new[b])
                dra = (ra2 - ra1) * math.cos(math.radians(dec1))
                dist = math.hypot(dra, dec2 - dec1)
                if dist <= limit:
                    candidates.append((dist, a, b))
        used_a: set[int] = set()
        used_b: set[int] = set()
        for _, a, b in sorted(candidates):
            if a not in used_a and b not in used_b:
                used_a.add(a)
                used_b.add(b)
                pairs.append((a, b))
    matched_old = {a for a, _ in pairs}
    matched_new = {b for _, b in pairs}
    return (sorted(pairs), sorted(set(old) - matched_old), sorted(set(new) - matched_new))


def _by_id(alerts: Iterable[Mapping[str, Any]]) -> tuple[dict[int, Mapping[str, Any]], list[int]]:
    out: dict[int, Mapping[str, Any]] = {}
    dupes = []
    for alert in alerts:
        ident = int(alert["diaSourceId"])
        if ident in out:
            if out[ident] != alert:
                dupes.append(ident)
            continue
        out[ident] = alert
    return out, dupes


# ----------------------------------------------------------------------------- rendering
def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return "inf/nan"
    return f"{value:.4g}"


def summary_rows(result: Comparison) -> list[tuple[str, str]]:
    return [("recorded alerts", str(result.n_recorded)),
            ("replayed alerts", str(result.n_replayed)),
            ("unchanged", str(result.unchanged)),
            ("changed", str(len(result.changed))),
            ("new (replay only)", str(len(result.new))),
            ("missing (recording only)", str(len(result.missing))),
            ("differences", str(result.differences))]


def field_rows(result: Comparison, limit: int = 40) -> list[tuple[str, str, str, str]]:
    ranked = sorted(result.fields.values(), key=lambda f: (-f.changed, f.path))
    return [(f.path, str(f.changed), _fmt(f.max_abs) if f.numeric else "-", _fmt(f.mean_abs))
            for f in ranked[:limit]]


def print_comparison(result: Comparison, console: Console | None = None, *,
                     title: str = "recorded vs replayed alerts") -> None:
    """The comparison as rich tables on the terminal."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=title, show_header=False)
    for name, value in summary_rows(result):
        style = "bold red" if name == "differences" and result.differences else None
        table.add_row(name, value, style=style)
    console.print(table)
    if result.fields:
        fields = Table(title="changed fields")
        for col in ("field", "alerts changed", "max |diff|", "mean |diff|"):
            fields.add_column(col, justify="left" if col == "field" else "right")
        for row in field_rows(result):
            fields.add_row(*row)
        console.print(fields)
    if result.new or result.missing:
        ids = Table(title="new and missing alerts (first 10)", show_header=True)
        ids.add_column("new diaSourceId")
        ids.add_column("missing diaSourceId")
        for i in range(min(10, max(len(result.new), len(result.missing)))):
            ids.add_row(str(result.new[i]) if i < len(result.new) else "",
                        str(result.missing[i]) if i < len(result.missing) else "")
        console.print(ids)


def html_section(result: Comparison, *, title: str = "Replay: recorded vs replayed alerts"
                 ) -> str:
    """The comparison as an HTML fragment (a ``<section>``) for a report page."""
    esc = html.escape
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>"
                   for k, v in summary_rows(result))
    parts = [f'<section class="replay-comparison"><h2>{esc(title)}</h2>',
             f"<table class='summary'>{rows}</table>"]
    verdict = ("identical: 0 differences" if result.differences == 0
               else f"{result.differences} alerts differ")
    parts.append(f"<p><strong>{esc(verdict)}</strong></p>")
    if result.fields:
        parts.append("<h3>Changed fields</h3><table class='fields'><tr><th>field</th>"
                     "<th>alerts changed</th><th>max |diff|</th><th>mean |diff|</th></tr>")
        for row in field_rows(result, limit=200):
            parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
        parts.append("</table>")
    for name, ids in (("New alerts (replay only)", result.new),
                      ("Missing alerts (recording only)", result.missing),
                      ("Changed alerts", sorted(result.changed))):
        if ids:
            shown = ", ".join(str(i) for i in ids[:100]) + (" ..." if len(ids) > 100 else "")
            parts.append(f"<h3>{esc(name)}: {len(ids)}</h3><p class='ids'>{esc(shown)}</p>")
    parts.append("</section>")
    return "\n".join(parts)


def html_page(sections: Sequence[str], *, title: str = "alertbutler replay") -> str:
    """A stand-alone page around report sections."""
    style = ("body{font-family:sans-serif;margin:2em;max-width:70em}"
             "table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}"
             ".ids{font-family:monospace;font-size:.85em;word-break:break-all}")
    body = "\n".join(sections)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body><h1>{html.escape(title)}</h1>\n"
            f"{body}\n</body></html>\n")

"""Filter checking for the portal's editor: errors with their position, yield on the night.

Checking is read-only (nothing is activated), so it needs no token. The yield streams the
night's alert archive in batches through the compiled filter, so a large archive costs time,
not memory.
"""

from __future__ import annotations

from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Any

from alertbutler.subscribe.filters import FilterError, compile_filter

BATCH = 5_000
MAX_TEXT = 4_000  # characters; the compiler refuses longer filters with a position anyway


def check(text: str, archive: Path | None) -> dict[str, Any]:
    """``{"ok": True, "yield": ...}`` or ``{"ok": False, "error": {...}}`` for ``text``."""
    if len(text) > MAX_TEXT:
        return {"ok": False, "error": {"message": f"a filter is at most {MAX_TEXT} characters",
                                       "line": 1, "column": MAX_TEXT + 1,
                                       "position": MAX_TEXT, "suggestion": None,
                                       "source_line": ""}}
    try:
        flt = compile_filter(text)
    except FilterError as exc:
        lines = text.splitlines() or [""]
        source_line = lines[exc.line - 1] if 0 < exc.line <= len(lines) else ""
        return {"ok": False, "error": {"message": exc.reason, "line": exc.line,
                                       "column": exc.column, "position": exc.position,
                                       "suggestion": exc.suggestion,
                                       "source_line": source_line}}
    out: dict[str, Any] = {"ok": True, "yield": None}
    if archive is not None and archive.is_file() and not archive.is_symlink():
        from alertbutler.alerts.archive import read_alert_file

        total = kept = 0
        per_visit: Counter[int] = Counter()
        records = read_alert_file(archive)
        while batch := list(islice(records, BATCH)):
            mask = flt.keep(batch)
            total += len(batch)
            kept += int(mask.sum())
            per_visit.update(int(a["diaSource"]["visit"])
                             for a, k in zip(batch, mask, strict=True) if k)
        out["yield"] = {"alerts": total, "kept": kept,
                        "fraction": round(kept / total, 4) if total else None,
                        "per_visit": {str(v): n for v, n in sorted(per_visit.items())}}
    return out

"""Filters in the portal: checking (errors with their position, yield on the night) and
activation (saving into the running filter service's file, reading back its live yield).

Checking is read-only (nothing is activated), so it needs no token; saving needs one. The
yield streams the night's alert archive in batches through the compiled filter, so a large
archive costs time, not memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Any

from alertbutler.errors import AlertbutlerError
from alertbutler.subscribe.filters import FilterError, compile_filter

BATCH = 5_000
MAX_TEXT = 4_000  # characters; the compiler refuses longer filters with a position anyway
_lock = threading.Lock()  # one writer of the filters file at a time in this process


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


# ---- activation: the filter service's file ---------------------------------------------------

_FILTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class FilterSaveError(AlertbutlerError, ValueError):
    """A filter that cannot be saved; ``detail`` is the API's answer."""

    def __init__(self, detail: dict[str, Any]) -> None:
        self.detail = detail
        super().__init__(str(detail))


def saved_filters(path: Path) -> dict[str, Any]:
    """The filters file (``alertbutler filter serve FILE``) and, beside it, what the running
    service says is active (its ``.status.json``): the live yield of each filter."""
    from alertbutler.subscribe.service import load_service_spec, status_path

    spec = load_service_spec(path)
    status: dict[str, Any] | None = None
    sp = status_path(path)
    if sp.is_file() and not sp.is_symlink():
        try:
            status = json.loads(sp.read_text())
        except ValueError:
            status = None
    fingerprint = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"file": str(path), "fingerprint": fingerprint, "source": spec.source,
            "filters": {n: {"filter": f.text, "topic": f.topic, "file": f.file}
                        for n, f in spec.filters.items()},
            "service": status,
            "applied": status is not None and status.get("fingerprint") == fingerprint}


def save_filter(path: Path, name: str, text: str, topic: str | None) -> dict[str, Any]:
    """Check ``text`` and write it into the filters file as ``name`` (atomically); the
    running filter service applies it to the next batch it reads. Nothing is evaluated:
    the text is compiled by the filter language's own parser, and YAML is written by
    ``yaml.safe_dump``."""
    import yaml

    if not _FILTER_NAME.match(name):
        raise FilterSaveError({"message": f"filter name {name!r}: 1-64 letters, digits, '_', "
                               "'.', '-', starting with a letter or digit"})
    if topic is not None and not _TOPIC.match(topic):
        raise FilterSaveError({"message": f"topic {topic!r}: 1-249 letters, digits, '.', "
                               "'_', '-'"})
    checked = check(text, None)
    if not checked["ok"]:
        raise FilterSaveError(checked["error"])
    with _lock:
        data = yaml.safe_load(path.read_text()) or {}
        table = data.setdefault("filters", {}) or {}
        data["filters"] = table
        old = table.get(name)
        entry = dict(old) if isinstance(old, dict) else {}
        entry["filter"] = text
        if topic is not None:
            entry["topic"] = topic
        elif not entry.get("topic") and not entry.get("file"):
            source_topic = str(data.get("source", "")).rsplit("/", 1)[-1].split(",")[0]
            entry["topic"] = f"{source_topic or 'alerts'}-{name}"
        table[name] = entry
        _write_yaml(path, data)
    return saved_filters(path)


def delete_filter(path: Path, name: str) -> bool:
    import yaml

    with _lock:
        data = yaml.safe_load(path.read_text()) or {}
        table = data.get("filters") or {}
        if name not in table:
            return False
        del table[name]
        _write_yaml(path, data)
    return True


def _write_yaml(path: Path, data: dict[str, Any]) -> None:
    import yaml

    if path.is_symlink():
        raise FilterSaveError({"message": f"{path} is a symbolic link: refused"})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    os.replace(tmp, path)

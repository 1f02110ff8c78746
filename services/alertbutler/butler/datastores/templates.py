"""File-name templates built from data IDs, and the guard that keeps every file inside the
repository root.

Data ID string values are already restricted by :data:`~alertbutler.butler.dimensions.SAFE_VALUE`
(no separators, no leading dot, no NUL); run names may contain ``/`` (``u/alice/night1``) but
no empty, ``.`` or ``..`` component, no backslash or NUL, and no leading ``/``. The final
path is normalised and checked to lie under the root as a second line of defence.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from pathlib import Path

from .._errors import UnsafePathError
from ..dataset_ref import DatasetRef

#: run/dataset_type, then the data ID's leading values as directories, then a flat file name
DEFAULT_TEMPLATE = "{run}/{dataset_type}/{data_id_dirs}/{dataset_type}_{data_id_flat}"

_SEGMENT = re.compile(r"[A-Za-z0-9_+~@=,:-][A-Za-z0-9_.+~@=,:-]*")


def check_relative_path(rel: str, what: str) -> str:
    """``rel`` if every component is a plain name; otherwise :class:`UnsafePathError`."""
    if not rel or rel.startswith("/") or "\\" in rel or "\x00" in rel:
        raise UnsafePathError(f"{what} {rel!r} is not a safe relative path")
    for part in rel.split("/"):
        if part in ("", ".", "..") or not _SEGMENT.fullmatch(part):
            raise UnsafePathError(f"{what} {rel!r} has unsafe component {part!r} "
                                  "(allowed: letters, digits, _.+~@=,:- and no leading dot)")
    return rel


def inside(root: Path, rel: str) -> Path:
    """``root / rel`` after proving (lexically) that it stays under ``root``."""
    full = os.path.normpath(os.path.join(root, rel))
    if os.path.commonpath([full, str(root)]) != str(root):
        raise UnsafePathError(f"path {rel!r} would land outside the repository root {root}")
    return Path(full)


class FileTemplates:
    """Templates keyed by dataset type name (``"default"`` for the rest)."""

    def __init__(self, templates: Mapping[str, str] | None = None) -> None:
        self.templates = {"default": DEFAULT_TEMPLATE, **(templates or {})}
        fields: set[str] = set()
        for t in self.templates.values():
            fields.update(f for _, f, _, _ in string.Formatter().parse(t) if f)
        self._fields = fields

    def render(self, ref: DatasetRef, component: str | None = None) -> str:
        dt = ref.dataset_type
        template = self.templates.get(dt.parent_name, self.templates["default"])
        check_relative_path(ref.run, "run name")
        values = [str(v) for v in ref.data_id.required_values]
        fields: dict[str, object] = {
            "run": ref.run, "dataset_type": dt.parent_name, "id": str(ref.id),
            "component": component or "",
            "data_id_dirs": "/".join(values[:-1]) or "_",
            "data_id_flat": "_".join(values) or "_",
        }
        fields.update(ref.data_id.items())
        try:
            rel = template.format_map(fields)
        except KeyError as exc:
            raise UnsafePathError(f"file template {template!r} for {dt.name} needs "
                                  f"{exc.args[0]!r}, which data ID {ref.data_id!r} lacks") from None
        rel = re.sub(r"/+", "/", rel).strip("/")
        if component:
            rel = f"{rel}_{component}"
        return check_relative_path(rel, f"file name for {dt.name} {ref.data_id!r}")

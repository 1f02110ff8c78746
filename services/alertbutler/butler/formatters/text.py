"""YAML and JSON formatters for metrics, configs and alert packets (small, in memory)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .base import Formatter

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _plain(obj: Any) -> Any:
    """numpy scalars and arrays become plain Python so metrics can come straight from numpy."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


class _TextFormatter(Formatter):
    in_memory = True

    def write(self, obj: Any, path: Path, storage_class: str) -> None:
        path.write_bytes(self.to_bytes(obj, storage_class))

    def read(self, path: Path, storage_class: str, *, component: str | None = None,
             parameters: Mapping[str, Any] | None = None) -> Any:
        return self.from_bytes(path.read_bytes(), storage_class)


class YamlFormatter(_TextFormatter):
    format = "yaml"
    extension = ".yaml"

    def to_bytes(self, obj: Any, storage_class: str) -> bytes:
        return yaml.dump(_plain(obj), Dumper=_Dumper, sort_keys=False).encode()

    def from_bytes(self, data: bytes, storage_class: str) -> Any:
        return yaml.load(data, Loader=_Loader)


class JsonFormatter(_TextFormatter):
    format = "json"
    extension = ".json"

    def to_bytes(self, obj: Any, storage_class: str) -> bytes:
        try:
            return json.dumps(obj, separators=(",", ":")).encode()
        except TypeError:
            return json.dumps(_plain(obj), separators=(",", ":")).encode()

    def from_bytes(self, data: bytes, storage_class: str) -> Any:
        return json.loads(data)

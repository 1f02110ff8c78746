"""Repository layout on disk: ``butler.yaml`` in the root says where the registry is and how
the file datastore names and formats files. Read once when a butler opens."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ._errors import RepositoryError

CONFIG_NAME = "butler.yaml"
SQLITE_NAME = "registry.sqlite3"


@dataclass(frozen=True, kw_only=True)
class RepoConfig:
    """What ``butler.yaml`` holds. An empty ``registry_url`` means SQLite in the root."""

    registry_url: str = ""
    templates: dict[str, str] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)
    verify_checksums: bool = True

    def resolved_registry_url(self, root: Path) -> str:
        return self.registry_url or f"sqlite:///{root / SQLITE_NAME}"

    def write(self, root: Path) -> None:
        (root / CONFIG_NAME).write_text(yaml.safe_dump(asdict(self), sort_keys=False))

    @classmethod
    def read(cls, root: Path) -> RepoConfig:
        path = root / CONFIG_NAME
        if not path.is_file():
            raise RepositoryError(f"{root} is not a butler repository (no {CONFIG_NAME}); "
                                  "create one with `alertbutler butler create`")
        data: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise RepositoryError(f"{path}: unknown key(s) {sorted(unknown)}")
        return cls(**data)


def normalize_root(root: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(os.fspath(root)))

"""Formatters: how one storage class is read from and written to one persisted form.

A formatter is a small template: it fills :meth:`Formatter.write` and :meth:`Formatter.read`
(and, for small artifacts, :meth:`to_bytes` / :meth:`from_bytes` so the file datastore hashes
in memory and reads a file once). Formatters are kept in one table keyed by
``(format, storage class)``; registering a second formatter for the same key is refused.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from .._errors import FormatterError
from ..storage_classes import STORAGE_CLASSES, StorageClassRegistry


class Formatter(ABC):
    """Reads and writes one persisted form.

    ``read`` returns an object of the storage class's python type, or of the component's
    storage class when ``component`` is given and the formatter lists it in
    ``direct_components`` (it reads just that part); otherwise the datastore reads the whole
    object and extracts the component in memory. The same goes for ``direct_parameters``.
    """

    format: ClassVar[str]
    extension: ClassVar[str]
    direct_components: ClassVar[frozenset[str]] = frozenset()
    direct_parameters: ClassVar[frozenset[str]] = frozenset()
    #: True when to_bytes/from_bytes are implemented (small artifacts)
    in_memory: ClassVar[bool] = False

    @abstractmethod
    def write(self, obj: Any, path: Path, storage_class: str) -> None: ...

    @abstractmethod
    def read(self, path: Path, storage_class: str, *, component: str | None = None,
             parameters: Mapping[str, Any] | None = None) -> Any: ...

    def to_bytes(self, obj: Any, storage_class: str) -> bytes:
        raise NotImplementedError

    def from_bytes(self, data: bytes, storage_class: str) -> Any:
        raise NotImplementedError


class FormatterRegistry:
    """``(format, storage class) -> formatter``, with clashes refused."""

    def __init__(self, storage_classes: StorageClassRegistry = STORAGE_CLASSES) -> None:
        self._table: dict[tuple[str, str], Formatter] = {}
        self.storage_classes = storage_classes

    def register(self, formatter: Formatter, storage_classes: tuple[str, ...]) -> None:
        for sc in storage_classes:
            key = (formatter.format, sc)
            old = self._table.get(key)
            if old is not None and type(old) is not type(formatter):
                raise FormatterError(f"format {formatter.format!r} for storage class {sc!r} "
                                     f"is already handled by {type(old).__name__}")
            self._table[key] = formatter

    def get(self, format: str, storage_class: str) -> Formatter:
        try:
            return self._table[(format, storage_class)]
        except KeyError:
            raise FormatterError(
                f"no formatter writes storage class {storage_class!r} as {format!r}; formats "
                f"for it: {self.formats_for(storage_class) or 'none'}") from None

    def formats_for(self, storage_class: str) -> list[str]:
        return sorted(f for f, sc in self._table if sc == storage_class)


FORMATTERS = FormatterRegistry()

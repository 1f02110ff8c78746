"""Storage classes: the python types of datasets, their components, read parameters,
prototypes and converters, held in one explicit table.

The caller chooses the returned type at ``get(..., python_type=...)``; the table maps
``(storage class, python type)`` to one converter function, and a request with no entry is a
:class:`StorageClassError` listing what is available. Nothing in configuration changes the
type a caller receives. Python types are named by dotted path and imported lazily so that
opening a butler does not import astropy or matplotlib.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import StorageClassError


def type_path(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"


def import_type(path: str) -> type:
    module, _, name = path.rpartition(".")
    obj: Any = importlib.import_module(module)
    return getattr(obj, name)


@dataclass(frozen=True)
class StorageClass:
    """How a kind of dataset looks in memory.

    ``pytype`` is a dotted path; ``accepts`` lists extra types ``put`` takes (a matplotlib
    Figure for a PNG plot). ``components`` maps a component name to its storage class;
    ``get_component(obj, name)`` extracts one from a whole object; ``apply_parameters``
    subsets; ``prototype(hints)`` builds an empty instance (hints may carry ``shape``).
    """

    name: str
    pytype: str
    default_format: str
    components: Mapping[str, str] = field(default_factory=dict)
    parameters: frozenset[str] = frozenset()
    accepts: tuple[str, ...] = ()
    get_component: Callable[[Any, str], Any] | None = None
    apply_parameters: Callable[[Any, Mapping[str, Any]], Any] | None = None
    prototype: Callable[[Mapping[str, Any]], Any] | None = None
    assemble: Callable[[Any, Mapping[str, Any]], Any] | None = None

    def python_type(self) -> type:
        return import_type(self.pytype)

    def check_parameters(self, parameters: Mapping[str, Any] | None) -> None:
        if parameters:
            unknown = set(parameters) - self.parameters
            if unknown:
                raise StorageClassError(
                    f"storage class {self.name} does not take read parameter(s) "
                    f"{sorted(unknown)}; it takes {sorted(self.parameters) or 'none'}")

    def check_component(self, component: str) -> str:
        try:
            return self.components[component]
        except KeyError:
            raise StorageClassError(
                f"storage class {self.name} has no component {component!r}; it has "
                f"{sorted(self.components) or 'none'}") from None


class StorageClassRegistry:
    """The one table of storage classes and converters; registering a clash is refused."""

    def __init__(self) -> None:
        self._classes: dict[str, StorageClass] = {}
        self._converters: dict[tuple[str, str], Callable[[Any], Any]] = {}

    def register(self, sc: StorageClass) -> StorageClass:
        old = self._classes.get(sc.name)
        if old is not None and old != sc:
            raise StorageClassError(f"storage class {sc.name!r} is already registered "
                                    "with a different definition")
        self._classes[sc.name] = sc
        return sc

    def register_converter(self, storage_class: str, python_type: str | type,
                           func: Callable[[Any], Any]) -> None:
        key = (storage_class, python_type if isinstance(python_type, str)
               else type_path(python_type))
        if key in self._converters and self._converters[key] is not func:
            raise StorageClassError(f"a converter for {key} is already registered")
        self._converters[key] = func

    def __getitem__(self, name: str) -> StorageClass:
        try:
            return self._classes[name]
        except KeyError:
            raise StorageClassError(f"unknown storage class {name!r}; known: "
                                    f"{', '.join(sorted(self._classes))}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def names(self) -> list[str]:
        return sorted(self._classes)

    def converters_for(self, storage_class: str) -> list[str]:
        return sorted(t for sc, t in self._converters if sc == storage_class)

    def convert(self, obj: Any, storage_class: str, python_type: type | None) -> Any:
        """``obj`` (of the storage class's type) as ``python_type``, through the table."""
        if python_type is None:
            return obj
        sc = self[storage_class]
        target = type_path(python_type)
        if target == sc.pytype:
            return obj
        func = self._converters.get((storage_class, target))
        if func is None:
            raise StorageClassError(
                f"storage class {storage_class} cannot be read as {target}; "
                f"available: {[sc.pytype, *self.converters_for(storage_class)]}")
        return func(obj)

    def finish_read(self, obj: Any, storage_class: str, *, component: str | None = None,
                    parameters: Mapping[str, Any] | None = None,
                    python_type: type | None = None) -> Any:
        """Component, then parameters, then conversion, applied to a whole in-memory object.

        For datastores that hold whole objects (memory, Kafka); formatters that can read a
        part directly do so and call only :meth:`convert`.
        """
        sc = self[storage_class]
        if component is not None:
            sc_name = sc.check_component(component)
            if sc.get_component is None:
                raise StorageClassError(f"storage class {sc.name} cannot extract components")
            obj = sc.get_component(obj, component)
            sc = self[sc_name]
        if parameters:
            sc.check_parameters(parameters)
            assert sc.apply_parameters is not None
            obj = sc.apply_parameters(obj, parameters)
        return self.convert(obj, sc.name, python_type)

    def check_put(self, obj: Any, storage_class: str) -> None:
        """Refuse to store an object whose type the storage class does not take."""
        sc = self[storage_class]
        for path in (sc.pytype, *sc.accepts):
            module = path.rpartition(".")[0]
            if module.split(".")[0] in _LAZY_ROOTS and not _is_loaded(module):
                continue  # the module is not even imported: obj cannot be of that type
            if isinstance(obj, import_type(path)):
                return
        raise StorageClassError(
            f"storage class {storage_class} stores {sc.pytype}"
            + (f" (or {', '.join(sc.accepts)})" if sc.accepts else "")
            + f", not {type_path(type(obj))}")


_LAZY_ROOTS = {"matplotlib", "astropy"}


def _is_loaded(module: str) -> bool:
    import sys

    return module in sys.modules


#: the process-wide table used by butlers unless one is passed explicitly
STORAGE_CLASSES = StorageClassRegistry()

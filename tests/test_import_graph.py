"""Dependencies point one way: libraries never import services or the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "services" / "alertbutler"
SERVICES = {"prompt", "ingest", "replay", "subscribe", "deploy", "cli"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_libraries_do_not_import_services() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        top = rel.parts[0].removesuffix(".py")
        is_cli = rel.name == "cli.py" or rel.name.endswith("_cli.py")
        if top in SERVICES or top == "__main__" or is_cli:
            continue  # services and CLI modules may use anything
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "alertbutler" and len(parts) > 1 and parts[1] in SERVICES:
                offenders.append(f"{rel} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_package_found() -> None:
    assert (PACKAGE / "__init__.py").exists()

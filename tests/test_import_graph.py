"""Dependencies point one way, checked on every import the code makes.

Libraries (butler, alerts, l1db, imaging, kafka, broker, sim and the foundation modules) never
import a service or the CLI, in any of their modules (their ``cli.py`` included); services import
each other only along the edges listed here, each with its reason; a service imports the
simulator (``sim``) only in the modules that simulate, listed here too, so production paths
(fan-out, worker, pipeline, ingest, subscribers) never depend on it. Relative imports count as much
as absolute ones. Every top-level module must be classified, so a new package takes a side.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "services" / "alertbutler"

LIBRARIES = {"alerts", "butler", "l1db", "imaging", "kafka", "broker", "sim", "config", "jvm",
             "logs", "metrics", "procs", "faults", "testing", "errors", "visit_detector",
             "__init__"}
SERVICES = {"prompt", "ingest", "replay", "subscribe", "deploy", "cli", "portal", "night",
            "__main__"}

#: service -> service imports allowed, and why. Anything else is a layering error.
ALLOWED_SERVICE_EDGES = {
    ("__main__", "cli"): "the module entry point runs the CLI",
    ("cli", "night"): "the run verb calls the main job",
    ("cli", "prompt"): "the sim verb fills a central repo for the prompt service",
    ("deploy", "cli"): "up registers its verb",
    ("deploy", "night"): "up hands its services the night's configuration and watches its night",
    ("deploy", "prompt"): "up runs the fan-out and worker services and fills the central repo",
    ("night", "ingest"): "a night run in the foreground runs the ingester in-process",
    ("night", "prompt"): "a night runs the fan-out, the workers and the night driver",
    ("ingest", "subscribe"): "the ingester decodes the L1 columns with the filter service's "
    "columnar decoder",
    ("prompt", "subscribe"): "night reconcile --filters counts each filter service's yield",
    ("portal", "prompt"): "the portal shows the main job's night ledger and reconciliation",
    ("portal", "subscribe"): "the portal's filter editor compiles filters",
    ("replay", "cli"): "replay verbs register themselves",
    ("replay", "deploy"): "night replay --into plays into a running up; the scheduler and feed",
    ("replay", "night"): "a replayed night is run by the night runner",
    ("replay", "prompt"): "a replayed night runs the prompt workers",
}


#: service modules that may import the simulator, and why: each one simulates.
SIM_USERS = {
    "cli/sim.py": "alertbutler sim night writes a simulated night",
    "deploy/feed.py": "up's simulated observatory feed",
    "night/plan.py": "alertbutler run and up --night build the simulator of their night",
    "night/summary.py": "the main job scores its alerts against the simulator's truth",
    "prompt/benchmark.py": "the one-detector benchmark renders its visits",
    "prompt/central.py": "fills a central repo from a simulator (a type-only import)",
    "prompt/driver.py": "the main job's simulated camera lands raws",
    "replay/night.py": "night record renders the night it records",
}


def _module_name(path: Path, root: Path) -> list[str]:
    parts = ["alertbutler", *path.relative_to(root).with_suffix("").parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported_modules(path: Path, root: Path) -> set[str]:
    """Every ``alertbutler`` module ``path`` imports, relative imports resolved."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                found.add(".".join([*base, *([node.module] if node.module else [])]))
            elif node.module:
                found.add(node.module)
    return {m for m in found if m.split(".")[0] == "alertbutler"}


def violations(root: Path) -> list[str]:
    """Layering errors of the package at ``root``."""
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        top = rel.parts[0].removesuffix(".py")
        if top not in LIBRARIES | SERVICES:
            out.append(f"{rel}: top-level module {top!r} is neither a library nor a service "
                       "(classify it in tests/test_import_graph.py)")
            continue
        for module in imported_modules(path, root):
            parts = module.split(".")
            target = parts[1] if len(parts) > 1 else "__init__"
            if target == top:
                continue
            if top in LIBRARIES and target in SERVICES:
                out.append(f"{rel} (library {top}) imports service module {module}")
            elif top in SERVICES and target in SERVICES \
                    and (top, target) not in ALLOWED_SERVICE_EDGES:
                out.append(f"{rel} (service {top}) imports {module}: service edge "
                           f"{top} -> {target} is not in ALLOWED_SERVICE_EDGES")
            elif top in SERVICES and target == "sim" and rel.as_posix() not in SIM_USERS:
                out.append(f"{rel} (service {top}) imports the simulator ({module}): only the "
                           "modules in SIM_USERS simulate")
    return out


def test_the_package_keeps_its_layers() -> None:
    problems = violations(PACKAGE)
    assert not problems, "\n".join(problems)


def test_every_allowed_edge_is_used() -> None:
    """An allowed edge nobody uses any more is removed, so the list stays the truth."""
    used = set()
    for path in PACKAGE.rglob("*.py"):
        top = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for module in imported_modules(path, PACKAGE):
            parts = module.split(".")
            used.add((top, parts[1] if len(parts) > 1 else "__init__"))
    assert not set(ALLOWED_SERVICE_EDGES) - used


def test_every_listed_sim_user_imports_the_simulator() -> None:
    users = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")
             if any(m.split(".")[1:2] == ["sim"] for m in imported_modules(path, PACKAGE))}
    assert not set(SIM_USERS) - users


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "alertbutler"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_planted_relative_wrong_way_import_is_caught(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"__init__.py": "", "butler/__init__.py": "",
                            "butler/cli.py": "from ..prompt import worker\n",
                            "butler/x.py": "from . import cli\n",
                            "prompt/__init__.py": "", "prompt/worker.py": ""})
    assert violations(root) == [
        "butler/cli.py (library butler) imports service module alertbutler.prompt"]


def test_a_planted_service_edge_is_caught(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"__init__.py": "", "subscribe/__init__.py": "",
                            "subscribe/stream.py": "from alertbutler.ingest import service\n",
                            "ingest/__init__.py": "", "ingest/service.py": ""})
    assert violations(root) == [
        "subscribe/stream.py (service subscribe) imports alertbutler.ingest: service edge "
        "subscribe -> ingest is not in ALLOWED_SERVICE_EDGES"]


def test_a_planted_simulator_import_in_a_production_path_is_caught(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"__init__.py": "", "sim/__init__.py": "", "sim/camera.py": "",
                            "prompt/__init__.py": "",
                            "prompt/fanout.py": "from ..sim.camera import Camera\n",
                            "night/__init__.py": "",
                            "night/plan.py": "from alertbutler.sim import camera\n"})
    assert violations(root) == [
        "prompt/fanout.py (service prompt) imports the simulator (alertbutler.sim.camera): "
        "only the modules in SIM_USERS simulate"]

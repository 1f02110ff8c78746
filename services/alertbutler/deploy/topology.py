"""The service topology, shared by ``alertbutler up`` and checked against docker-compose.yml.

One list says which services make a deployment and with which CLI arguments, so the local
supervisor and the compose file cannot drift apart silently (tests/deploy/test_compose.py).
"""

from __future__ import annotations

from pathlib import Path

from alertbutler.deploy.supervisor import ServiceSpec


def topology(*, workers: int, filters: Path | None = None) -> list[ServiceSpec]:
    """fan-out, N workers, the L1 ingester and, given a filters file, the filter service."""
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    specs = [
        ServiceSpec(name="fanout", argv=("fanout",)),
        ServiceSpec(name="worker", argv=("worker",), replicas=workers),
        ServiceSpec(name="ingest", argv=("ingest",)),
    ]
    if filters is not None:
        specs.append(ServiceSpec(name="filter", argv=("filter", "serve", str(filters))))
    return specs

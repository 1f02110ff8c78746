"""The service topology, shared by ``alertbutler up`` and checked against docker-compose.yml.

One list says which services make a deployment and with which CLI arguments, so the local
supervisor and the compose file cannot drift apart silently (tests/deploy/test_compose.py).
"""

from __future__ import annotations

from pathlib import Path

from alertbutler.deploy.supervisor import ServiceSpec


def topology(*, workers: int, filters: Path | None = None,
             camera_args: tuple[str, ...] = (),
             worker_args: tuple[str, ...] = ()) -> list[ServiceSpec]:
    """fan-out, N workers, the L1 ingester and, given a filters file, the filter service.

    ``camera_args`` (``--detectors N --detector-size PX``) go to the fan-out and the workers,
    ``worker_args`` to the workers only; the compose file keeps the camera's defaults. The
    order is also the stopping order: inputs first, so what is in flight drains downstream.
    """
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    specs = [
        ServiceSpec(name="fanout", argv=("fanout", *camera_args)),
        ServiceSpec(name="worker", argv=("worker", *camera_args, *worker_args),
                    replicas=workers),
        # one ingester takes every partition without a group join: restarts are immediate
        ServiceSpec(name="ingest", argv=("ingest", "--assign-all")),
    ]
    if filters is not None:
        specs.append(ServiceSpec(name="filter", argv=("filter", "serve", str(filters))))
    return specs

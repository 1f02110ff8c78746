"""Running the topology: the local supervisor behind ``alertbutler up``."""

from alertbutler.deploy.supervisor import Replica, ServiceSpec, Supervisor

__all__ = ["Replica", "ServiceSpec", "Supervisor"]

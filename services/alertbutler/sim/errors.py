"""Errors of the simulator."""

from __future__ import annotations

from alertbutler.errors import AlertbutlerError


class SimError(AlertbutlerError, ValueError):
    """A simulation was asked for something impossible (unknown detector, bad size, ...)."""

"""Errors of the simulator."""

from __future__ import annotations


class SimError(ValueError):
    """A simulation was asked for something impossible (unknown detector, bad size, ...)."""

"""Argument types shared by the verbs: a count given on the command line is range-checked by
argparse (exit 2 naming the flag), and is never read as "not given" when it is 0."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type`` for an integer from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: allowed {low} to {high}")
        return value

    parse.__name__ = "integer"
    return parse


#: partitions of a topic (the same bounds as ``kafka.partitions``)
partitions = int_in(1, 10_000)
#: worker processes (the same bounds as ``prompt.workers``)
workers = int_in(1, 1024)

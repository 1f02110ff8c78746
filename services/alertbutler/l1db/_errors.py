"""Errors of the L1 database package, in one place.

They mix in the stdlib meaning (``ValueError`` for bad rows, ``LookupError`` for a database
that is not there) so callers can catch either the package error or the ordinary one.
"""

from __future__ import annotations

from alertbutler.errors import AlertbutlerError


class L1dbError(AlertbutlerError, RuntimeError):
    """Base class of every L1 database error."""


class L1dbNotFoundError(L1dbError, LookupError):
    """The URL names a database without the L1 tables: run ``alertbutler l1db create``."""


class SchemaVersionError(L1dbError):
    """The database was made by an incompatible version of the L1 schema."""

    def __init__(self, message: str, *, found: str, expected: str) -> None:
        super().__init__(message)
        self.found = found
        self.expected = expected


class RowError(L1dbError, ValueError):
    """Rows that cannot be stored: a missing required column, or an impossible value.

    ``column`` names the offending column when there is one; retrying will not help.
    """

    def __init__(self, message: str, *, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column

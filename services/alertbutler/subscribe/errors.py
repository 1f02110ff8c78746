"""Errors of the subscription package, with the stdlib meaning they extend."""

from __future__ import annotations

from alertbutler.errors import AlertbutlerError


class SubscribeError(AlertbutlerError, RuntimeError):
    """A stream could not be opened, positioned or read."""


class StreamURLError(AlertbutlerError, ValueError):
    """A ``kafka://`` URL that cannot be used; the message says which part is wrong."""


class StartPositionError(AlertbutlerError, ValueError):
    """A start or end position that cannot be understood."""


class FilterError(AlertbutlerError, ValueError):
    """A filter expression was refused.

    Carries where the problem is (1-based ``line`` and ``column``, 0-based ``position`` in
    the text) and, when one is known, a ``suggestion``, so an editor or a web form can point
    at it. ``str()`` gives a one-line message with all of it.
    """

    def __init__(self, message: str, *, text: str = "", position: int = 0,
                 line: int | None = None, column: int | None = None,
                 suggestion: str | None = None) -> None:
        self.reason = message
        self.text = text
        self.position = max(0, position)
        if line is None or column is None:
            line, column = _line_column(text, self.position)
        self.line = line
        self.column = column
        self.suggestion = suggestion
        where = f"line {line}, column {column}"
        hint = f" ({suggestion})" if suggestion else ""
        super().__init__(f"{where}: {message}{hint}")


class FilterConfigError(AlertbutlerError, ValueError):
    """A filters file (YAML) that cannot be used; names the filter and the problem."""


def _line_column(text: str, position: int) -> tuple[int, int]:
    before = text[:position]
    line = before.count("\n") + 1
    column = position - (before.rfind("\n") + 1) + 1
    return line, column

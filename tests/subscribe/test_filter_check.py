"""``alertbutler filter check``: every refusal is the filter's own error, with its caret line."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertbutler.cli import main


def test_empty_expression_is_an_empty_filter(capsys: pytest.CaptureFixture[str]) -> None:
    for text in ("", "   ", "\n\n"):
        assert main(["filter", "check", "--expr", text]) == 1
        err = capsys.readouterr().err
        assert "expr: line" in err and "empty filter" in err, err
        assert "FILTERS.yaml" not in err and "Errno" not in err, err


@pytest.mark.parametrize(("text", "line", "column"), [
    ("diaSource.snr >\n", 2, 1), ("diaSource.snr >\n\n\n", 4, 1),
    ("diaSource.snr > 1 and\r\n", 2, 1), ("band == 'g' and\n  diaSource.snr >> 3\n", 2, 18),
])
def test_error_on_a_trailing_or_later_line_shows_that_line(
        text: str, line: int, column: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["filter", "check", "--expr", text]) == 1
    err = capsys.readouterr().err
    assert f"expr: line {line}, column {column}: " in err, err
    assert "list index" not in err, err
    shown, caret = err.rstrip("\n").split("\n")[-2:]
    assert caret.strip() == "^" and len(caret) == 4 + column, err
    assert shown.startswith("    ")


def test_file_with_a_bad_filter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "f.yaml"
    spec.write_text("source: kafka://127.0.0.1:1/alerts\ngroup: g\nfilters:\n"
                    "  bright:\n    filter: \"diaSource.snr >\\n\"\n    topic: out\n")
    assert main(["filter", "check", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "bright: line 2, column 1" in err and "list index" not in err, err


@pytest.mark.parametrize("extra", ["batch_size: 0\n", "partitions: 0\n", "batch_size: -5\n"])
def test_zero_batch_or_partitions_in_a_filters_file_is_refused(
        extra: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "f.yaml"
    spec.write_text("source: kafka://127.0.0.1:1/alerts\ngroup: g\n" + extra +
                    "filters:\n  bright:\n    filter: diaSource.snr > 5\n    topic: out\n")
    assert main(["filter", "check", str(spec)]) != 0
    assert "must be 1 to" in capsys.readouterr().err

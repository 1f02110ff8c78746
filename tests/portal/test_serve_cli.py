"""``alertbutler serve`` refuses bad options with exit 2 before it listens on anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertbutler.cli import main


@pytest.mark.parametrize("argv, message", [
    (["--port", "0"], "--port must be in 1..65535"),
    (["--port", "70000"], "--port must be in 1..65535"),
    (["--host", "example.org"], "--host must be an IP address"),
])
def test_bad_options_are_usage_errors(argv: list[str], message: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_named_night_without_a_ledger_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "8000", "--night", str(tmp_path)]) == 2
    assert "no night ledger" in capsys.readouterr().err


def test_a_filters_file_that_is_not_one_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "filters.yaml"
    bad.write_text("just: [a, list]\n")
    assert main(["serve", "--port", "8000", "--filters", str(bad)]) == 2
    assert "--filters:" in capsys.readouterr().err

"""The command line: every verb answers --help; the smallest run works end to end."""

from __future__ import annotations

import subprocess
import sys

import pytest

from alertbutler.cli import VERBS, build_parser, main


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_has_help(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0
    assert "usage: alertbutler" in capsys.readouterr().out


def test_every_verb_is_built() -> None:
    for verb in VERBS:
        parser = build_parser(verb)
        sub = next(a for a in parser._actions if a.dest == "verb")
        assert verb in sub.choices  # type: ignore[union-attr]


def test_broker_prints_bootstrap_first() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "alertbutler", "broker"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        first = proc.stdout.readline().strip()  # type: ignore[union-attr]
        host, port = first.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
    finally:
        proc.terminate()
        assert proc.wait(15) == 0

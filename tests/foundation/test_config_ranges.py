"""Configuration values outside their declared range, and unusable configuration files, stop
the command at load with the key (or the file) named: never a spin, a stall or a traceback."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from alertbutler.cli import main
from alertbutler.config import Config, ConfigError, load_config

BAD = [
    ("ingest", "max_batch_messages", ["0", "-5"]),
    ("ingest", "max_batch_ms", ["-1", "100000000"]),
    ("kafka", "partitions", ["0", "-1", "1000000"]),
    ("kafka", "session_timeout_ms", ["0", "-6000"]),
    ("prompt", "raw_timeout_s", ["nan", "inf", "-1", "0", "-inf"]),
    ("prompt", "association_wait_s", ["nan", "inf", "-0.5"]),
    ("prompt", "item_deadline_s", ["NaN", "0", "1e300"]),
    ("prompt", "workers", ["0", "-2"]),
    ("prompt", "max_attempts", ["0"]),
    ("general", "log_level", ["LOUD", ""]),
    ("kafka", "compression", ["brotli"]),
]


@pytest.mark.parametrize(("section", "key", "values"), BAD)
def test_out_of_range_environment_values_are_refused(section: str, key: str,
                                                     values: list[str]) -> None:
    for value in values:
        env = {f"ALERTBUTLER_{section.upper()}__{key.upper()}": value}
        with pytest.raises(ConfigError, match=rf"'{section}\.{key}' is .*: allowed "):
            load_config(env=env)


def test_a_service_refuses_to_start(monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The reported spin: an ingester with 0 messages per batch never starts at all."""
    monkeypatch.setenv("ALERTBUTLER_INGEST__MAX_BATCH_MESSAGES", "0")
    assert main(["ingest", "--db", "sqlite://"]) == 2
    assert "'ingest.max_batch_messages' is 0: allowed 1 to 1000000" in capsys.readouterr().err


def test_file_values_are_checked_too(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[prompt]\nraw_timeout_s = nan\n")
    with pytest.raises(ConfigError, match=r"'prompt.raw_timeout_s' is nan: allowed more than "
                       r"0 to 86400"):
        load_config(path, env={})
    path.write_text("[ingest]\nmax_batch_messages = 0\n")
    with pytest.raises(ConfigError, match=r"'ingest.max_batch_messages' is 0: allowed 1 to "):
        load_config(path, env={})


def test_every_numeric_key_declares_its_range() -> None:
    for section in dataclasses.fields(Config):
        cls = typing.get_type_hints(Config)[section.name]
        hints = typing.get_type_hints(cls, include_extras=True)
        for name, hint in hints.items():
            if typing.get_origin(hint) is typing.Annotated:
                continue
            assert hint not in (int, float), f"{section.name}.{name} has no declared range"


def test_bounds_and_case_are_accepted() -> None:
    config = load_config(env={"ALERTBUTLER_INGEST__MAX_BATCH_MESSAGES": "1",
                              "ALERTBUTLER_INGEST__MAX_BATCH_MS": "0",
                              "ALERTBUTLER_GENERAL__LOG_LEVEL": "debug",
                              "ALERTBUTLER_PROMPT__ASSOCIATION_WAIT_S": "0"})
    assert config.ingest.max_batch_messages == 1 and config.general.log_level == "DEBUG"


def _unusable_files(tmp_path: Path) -> list[tuple[Path, str]]:
    unreadable = tmp_path / "secret.toml"
    unreadable.write_text("[kafka]\n")
    unreadable.chmod(0)
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"[general]\ndata_dir = '\xe9t\xe9'\n")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(256)))
    cases = [(tmp_path, "is a directory"), (latin, "not UTF-8"), (binary, "not UTF-8")]
    if os.geteuid() != 0:  # root reads anything
        cases.append((unreadable, "cannot be read: Permission denied"))
    return cases


def test_unusable_config_files_exit_2_naming_the_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for path, problem in _unusable_files(tmp_path):
        assert main(["--config", str(path), "config", "show"]) == 2, path
        err = capsys.readouterr().err
        assert problem in err and str(path) in err and "Traceback" not in err


def test_the_command_itself_exits_2(tmp_path: Path) -> None:
    """Through the real entry point, as an operator types it: no traceback anywhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTBUTLER_")}
    for args, problem in [(["--config", str(tmp_path), "config", "show"], "is a directory"),
                          (["--log-level", "LOUD", "config", "show"], "unknown log level"),
                          (["config", "show"], "'general.log_level' is 'LOUD'")]:
        run_env = dict(env, ALERTBUTLER_GENERAL__LOG_LEVEL="LOUD") if args == [
            "config", "show"] else env
        done = subprocess.run([sys.executable, "-m", "alertbutler", *args], env=run_env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, (args, done.stderr)
        assert problem in done.stderr and "Traceback" not in done.stderr, done.stderr

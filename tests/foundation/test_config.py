"""Configuration: defaults, TOML, environment overrides and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertbutler.cli import main
from alertbutler.config import ConfigError, load_config
from alertbutler.kafka import aiokafka_settings, confluent_settings, group_id


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alertbutler.toml"
    path.write_text(text)
    return path


def test_defaults_are_embedded() -> None:
    config = load_config(env={})
    assert config.kafka.bootstrap_servers == ""  # embedded broker
    assert config.l1db_url.startswith("sqlite:///")


def test_file_then_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, '[kafka]\nbootstrap_servers = "k:9092"\npartitions = 4\n')
    config = load_config(path, env={"ALERTBUTLER_KAFKA__PARTITIONS": "16"})
    assert config.kafka.bootstrap_servers == "k:9092"
    assert config.kafka.partitions == 16


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "[kafka]\nbootstrap_server = 'x'\n")
    with pytest.raises(ConfigError, match="'kafka.bootstrap_server'"):
        load_config(path, env={})


def test_unknown_section_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'kafak'"):
        load_config(_write(tmp_path, "[kafak]\nx = 1\n"), env={})


def test_wrong_type_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'kafka.partitions' must be int"):
        load_config(_write(tmp_path, "[kafka]\npartitions = 'many'\n"), env={})
    with pytest.raises(ConfigError, match="'kafka.partitions' must be int"):
        load_config(env={"ALERTBUTLER_KAFKA__PARTITIONS": "many"})


def test_bad_toml_names_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[kafka\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, env={})


def test_security_settings_reach_both_clients(tmp_path: Path) -> None:
    path = _write(tmp_path, """
[kafka]
bootstrap_servers = "broker:9096"
[kafka.client]
"security.protocol" = "SASL_PLAINTEXT"
"sasl.mechanism" = "SCRAM-SHA-512"
"sasl.username" = "alice"
"sasl.password" = "s3cret"
""")
    config = load_config(path, env={})
    conf = confluent_settings(config)
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512" and conf["sasl.password"] == "s3cret"
    aio = aiokafka_settings(config)
    assert aio["security_protocol"] == "SASL_PLAINTEXT"
    assert aio["sasl_mechanism"] == "SCRAM-SHA-512"
    assert aio["sasl_plain_username"] == "alice"
    assert group_id(config, "ingest") == "alice-ingest"
    assert "s3cret" not in str(config.as_dict())


def test_nested_env_override() -> None:
    config = load_config(env={"ALERTBUTLER_KAFKA__CLIENT__SASL_MECHANISM": "PLAIN"})
    assert config.kafka.client == {"sasl.mechanism": "PLAIN"}


def test_cli_config_show_and_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALERTBUTLER_CONFIG", raising=False)
    good = _write(tmp_path, "[kafka]\npartitions = 3\n[kafka.client]\n'sasl.password'='pw'\n")
    assert main(["--config", str(good), "config", "show"]) == 0
    out = capsys.readouterr().out
    assert "partitions = 3" in out and "pw" not in out
    bad = tmp_path / "bad.toml"
    bad.write_text("[l1db]\nurll = 'x'\n")
    assert main(["--config", str(bad), "config", "show"]) == 2
    assert "'l1db.urll'" in capsys.readouterr().err

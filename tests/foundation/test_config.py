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


_SECRETS_BY_ENV = {
    "ALERTBUTLER_L1DB__URL": "postgresql://l1user:l1-hunter2@db:5432/l1?sslpassword=l1-ssl-pw",
    "ALERTBUTLER_BUTLER__REGISTRY_URL": "postgresql+psycopg://reg:reg-p%40ss@db/registry",
    "ALERTBUTLER_SCHEMA_REGISTRY__URL": "https://sr:sr-url-pw@a:8081,https://sr:sr-url-pw@b:8081",
    "ALERTBUTLER_SCHEMA_REGISTRY__CLIENT__BASIC_AUTH_USER_INFO": "sr:sr-basic-pw",
    "ALERTBUTLER_KAFKA__CLIENT__SASL_USERNAME": "alice",
    "ALERTBUTLER_KAFKA__CLIENT__SASL_PASSWORD": "kafka-pw",
    "ALERTBUTLER_KAFKA__CLIENT__SASL_OAUTHBEARER_CLIENT_SECRET": "oauth-secret",
    "ALERTBUTLER_KAFKA__CLIENT__SASL_JAAS_CONFIG": 'x required password="jaas-pw";',
}
_PLAIN_SECRETS = ("l1-hunter2", "l1-ssl-pw", "reg-p%40ss", "reg-p@ss", "sr-url-pw",
                  "sr-basic-pw", "kafka-pw", "oauth-secret", "jaas-pw")


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_config_show_hides_every_secret(fmt: str, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 15 defect 3: passwords in URLs and the registry's basic.auth.user.info were
    printed in clear."""
    for name, value in _SECRETS_BY_ENV.items():
        monkeypatch.setenv(name, value)
    assert main(["config", "show", "--format", fmt]) == 0
    out = capsys.readouterr().out
    leaked = [s for s in _PLAIN_SECRETS if s in out]
    assert not leaked, out
    # what is not secret stays readable, so the output still says where things are
    assert "postgresql://l1user:***@db:5432/l1" in out
    assert "https://sr:***@a:8081,https://sr:***@b:8081" in out
    assert "alice" in out


def test_repr_of_the_configuration_hides_every_secret() -> None:
    config = load_config(env=_SECRETS_BY_ENV)
    for text in (repr(config), repr(config.kafka), str(config.l1db), repr(config.as_dict())):
        assert not [s for s in _PLAIN_SECRETS if s in text], text
    # the effective configuration handed to services keeps them
    assert config.kafka.client["sasl.password"] == "kafka-pw"
    assert "kafka-pw" in str(config.as_dict(redact=False))

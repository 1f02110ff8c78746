"""One configuration story: a TOML file, then ``ALERTBUTLER_SECTION__KEY`` environment overrides.

Every section is a frozen dataclass, so the set of keys and their types is declared once in
code; loading validates against it and names the offending key on any error. Nothing is read
at import time: ``load_config()`` is called once by each entry point.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import stat
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from alertbutler.errors import AlertbutlerError

ENV_PREFIX = "ALERTBUTLER_"
CONFIG_ENV = "ALERTBUTLER_CONFIG"
#: Set by the supervisor for each replica it runs; not a configuration key.
REPLICA_ENV = "ALERTBUTLER_REPLICA"
#: Names a crash point for tests (:mod:`alertbutler.faults`); not a configuration key.

#: librdkafka settings that hold secrets: never printed or logged.
SECRET_KEYS = frozenset({"sasl.password", "ssl.key.password", "ssl.keystore.password",
                         "basic.auth.user.info", "sasl.jaas.config", "ssl.key.pem"})
#: A client key holding one of these words is a secret too (``sasl.oauthbearer.client.secret``,
#: ``bearer.auth.token``, ``ssl.truststore.password``, ...): better hidden once too often.
_SECRET_WORDS = ("password", "passwd", "secret", "token", "user.info", "jaas", "credential",
                 "private", "api.key", "apikey")
REDACTED = "***"


def is_secret_key(key: str) -> bool:
    """True for a client setting whose value must never be printed or logged."""
    low = key.lower().replace("_", ".")
    return low in SECRET_KEYS or any(word in low for word in _SECRET_WORDS)


def redact_url(text: str) -> str:
    """``text`` with the password of every URL in it hidden (``scheme://user:***@host``),
    and secret-like query parameters too (``?password=***``); a comma-separated list of URLs
    (a schema registry's) is handled item by item. Anything that is not a URL is returned
    as it is."""
    if "://" not in text:
        return text
    return ",".join(_redact_one_url(part) for part in text.split(","))


def _redact_one_url(text: str) -> str:
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(text)
    except ValueError:  # not parseable: hide everything between // and the last @
        return re.sub(r"(//[^/:@]*:)[^/]*@", rf"\g<1>{REDACTED}@", text)
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:{REDACTED}@{host}"
    elif at and userinfo and not parts.scheme.startswith(("postgres", "mysql", "sqlite")):
        netloc = f"{REDACTED}@{host}"  # a bare token as user (https://TOKEN@host)
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_key(k) for k, _ in pairs):
            query = urlencode([(k, REDACTED if is_secret_key(k) else v) for k, v in pairs],
                              safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def redact_value(key: str, value: Any) -> Any:
    """A configuration value as it may be shown: secrets hidden, URL passwords hidden."""
    if isinstance(value, Mapping):
        return {k: redact_value(k, v) for k, v in value.items()}
    if isinstance(value, str):
        if value and is_secret_key(key):
            return REDACTED
        return redact_url(value)
    return value


class _Section:
    """Base of the configuration sections: a ``repr`` that never shows a secret (a
    configuration ends up in tracebacks and debug logs)."""

    def __repr__(self) -> str:
        values = ", ".join(f"{f.name}={redact_value(f.name, getattr(self, f.name))!r}"
                           for f in dataclasses.fields(self))  # type: ignore[arg-type]
        return f"{type(self).__name__}({values})"


class ConfigError(AlertbutlerError, ValueError):
    """A configuration file or override is invalid; the message names the key."""


@dataclass(frozen=True)
class Range:
    """The allowed values of a numeric key, declared beside it (``Annotated[int, Range(..)]``).

    Checked when the configuration loads, so a value that would make a service spin, stall or
    never time out (0 messages per batch, 0 partitions, a NaN timeout) stops the command at
    once with the key's name; also printed in the reference. Floats must be finite.
    """

    low: float
    high: float
    #: the low bound itself is not allowed (a timeout of 0 s is no timeout)
    low_open: bool = False

    def check(self, value: float, key: str) -> None:
        ok = math.isfinite(value) and (value > self.low if self.low_open else
                                       value >= self.low) and value <= self.high
        if not ok:
            raise ConfigError(f"configuration key '{key}' is {value!r}: allowed {self.describe()}")

    def describe(self) -> str:
        low, high = _number(self.low), _number(self.high)
        return f"more than {low} to {high}" if self.low_open else f"{low} to {high}"


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


@dataclass(frozen=True)
class OneOf:
    """The allowed values of a text key (compared without case; stored as declared)."""

    choices: tuple[str, ...]

    def check(self, value: str, key: str) -> str:
        for choice in self.choices:
            if value.lower() == choice.lower():
                return choice
        raise ConfigError(f"configuration key '{key}' is {value!r}: allowed "
                          f"{self.describe()}")

    def describe(self) -> str:
        return "one of " + ", ".join(self.choices)


#: the levels of :mod:`logging` (``--log-level`` takes the same)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, kw_only=True, repr=False)
class GeneralConfig(_Section):
    """Where things live and how much is logged."""

    #: root of every default file: SQLite databases, repos, landing area, reports
    data_dir: str = "./alertbutler-data"
    #: log level; logs are JSON lines (with visit and detector fields) off a terminal
    log_level: Annotated[str, OneOf(LOG_LEVELS)] = "INFO"


@dataclass(frozen=True, kw_only=True, repr=False)
class KafkaConfig(_Section):
    """Kafka connection. An empty ``bootstrap_servers`` starts a broker of ``engine``."""

    #: Kafka to use (``host:port,...``); empty starts a broker of ``engine`` for the command
    bootstrap_servers: str = ""
    #: the broker started when ``bootstrap_servers`` is empty: ``embedded`` (Tansu, memory
    #: only) or ``kafka`` (Apache Kafka, jars from Maven Central)
    engine: Annotated[str, OneOf(("embedded", "kafka"))] = "embedded"
    #: librdkafka-style client settings (``security.protocol``, ``sasl.mechanism``,
    #: ``sasl.username``, ``sasl.password``, ``ssl.ca.location``, ...) passed to both clients.
    client: dict[str, str] = field(default_factory=dict)
    #: producer compression
    compression: Annotated[str, OneOf(("zstd", "lz4", "snappy", "gzip", "none"))] = "zstd"
    #: the alert stream
    alert_topic: str = "alerts"
    #: nextVisit events (one partition: one global order)
    next_visit_topic: str = "next-visit"
    #: one work item per visit-detector, keyed by detector; workers share it as one group
    work_topic: str = "prompt-work"
    #: malformed messages and work items that failed repeatedly, with a ``dlt.reason`` header
    #: (scheme in docs/ingest.md)
    dead_letter_topic: str = "dead-letter"
    #: partitions of the topics alertbutler creates (bounds the useful number of workers)
    partitions: Annotated[int, Range(1, 10_000)] = 8
    #: consumer-group session timeout: how soon a dead member's partitions move on
    session_timeout_ms: Annotated[int, Range(1000, 3_600_000)] = 6000


@dataclass(frozen=True, kw_only=True, repr=False)
class SchemaRegistryConfig(_Section):
    """Confluent-compatible Schema Registry; empty ``url`` resolves ids from ``schemas/``."""

    #: registry URL; empty resolves schema ids from ``schemas/``
    url: str = ""
    #: client settings of the registry (``basic.auth.user.info``, ...)
    client: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, repr=False)
class ButlerConfig(_Section):
    """Butler repositories: the central one and each worker's local one."""

    #: the central repo workers preload from and export to; empty: ``<data_dir>/central``
    central_repo: str = ""
    #: registry database URL; empty: SQLite in the repo root
    registry_url: str = ""
    #: where workers keep their local repos; empty: ``<data_dir>/local``
    local_repo_root: str = ""


@dataclass(frozen=True, kw_only=True, repr=False)
class L1dbConfig(_Section):
    """The L1 (alert production) database; empty ``url`` means SQLite under data_dir."""

    #: SQLAlchemy URL (SQLite or PostgreSQL); empty: ``sqlite:///<data_dir>/l1db.sqlite3``
    url: str = ""


@dataclass(frozen=True, kw_only=True, repr=False)
class IngestConfig(_Section):
    """The L1 database ingester: its consumer group and how it batches."""

    #: consumer group (also names the offsets kept in the L1 database)
    group: str = "alertbutler-ingest"
    #: most messages written in one transaction
    max_batch_messages: Annotated[int, Range(1, 1_000_000)] = 6000
    #: most bytes of message values in one transaction (a batch ends at either limit)
    max_batch_bytes: Annotated[int, Range(1, 1 << 31)] = 32 * 1024 * 1024
    #: longest wait to fill a batch after its first message
    max_batch_ms: Annotated[int, Range(0, 600_000)] = 200


@dataclass(frozen=True, kw_only=True, repr=False)
class PromptConfig(_Section):
    """Prompt processing: where raws land, how long workers wait, how many the main job runs."""

    #: one JSON status record per attempt at a visit-detector
    status_topic: str = "prompt-status"
    #: where raws arrive as ``<instrument>/<groupId>/<detector>.fits``; empty:
    #: ``<data_dir>/landing``
    landing_dir: str = ""
    #: how long a worker waits for a raw before recording an error
    raw_timeout_s: Annotated[float, Range(0, 86_400, low_open=True)] = 60.0
    #: bound on waiting for earlier overlapping visit-detectors in the L1 database
    association_wait_s: Annotated[float, Range(0, 86_400)] = 30.0
    #: worker processes of the main job and of ``alertbutler up``
    workers: Annotated[int, Range(1, 1024)] = 2
    #: a work item running longer ends its worker (exit 70) so that the group redelivers it;
    #: also the worker consumer's max.poll.interval.ms
    item_deadline_s: Annotated[float, Range(0, 86_400, low_open=True)] = 300.0
    #: starts of one work item without a result (errors, crashes, deadlines; counted in the
    #: L1 database, so across workers) before it goes to the dead-letter topic
    max_attempts: Annotated[int, Range(1, 1000)] = 3


@dataclass(frozen=True, kw_only=True, repr=False)
class Config(_Section):
    """The effective configuration of every alertbutler command."""

    general: GeneralConfig = field(default_factory=GeneralConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    schema_registry: SchemaRegistryConfig = field(default_factory=SchemaRegistryConfig)
    butler: ButlerConfig = field(default_factory=ButlerConfig)
    l1db: L1dbConfig = field(default_factory=L1dbConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)

    @property
    def data_dir(self) -> Path:
        return Path(self.general.data_dir).expanduser()

    @property
    def l1db_url(self) -> str:
        return self.l1db.url or f"sqlite:///{(self.data_dir / 'l1db.sqlite3').resolve()}"

    @property
    def central_repo(self) -> Path:
        return Path(self.butler.central_repo or self.data_dir / "central").expanduser()

    def as_dict(self, *, redact: bool = True) -> dict[str, Any]:
        """A plain dict of the configuration; with ``redact``, secret client settings are
        ``***`` and so is the password of every URL (database URLs, registry URLs)."""
        data = dataclasses.asdict(self)
        if redact:
            data = {section: {k: redact_value(k, v) for k, v in values.items()}
                    for section, values in data.items()}
        return data


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Build the effective configuration: defaults < TOML file < environment < ``overrides``.

    ``path`` defaults to ``$ALERTBUTLER_CONFIG``; no file at all means pure defaults.
    """
    env = os.environ if env is None else env
    raw: dict[str, dict[str, Any]] = {}
    path = path or env.get(CONFIG_ENV)
    if path:
        loaded = _read_toml(path)
        for section, values in loaded.items():
            if not isinstance(values, dict):
                raise ConfigError(f"{path}: '{section}' must be a table like [{section}]")
            raw.setdefault(section, {}).update(values)
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in (CONFIG_ENV, REPLICA_ENV):
            continue
        section, sep, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if not sep or not key:
            raise ConfigError(
                f"environment variable {name}: expected {ENV_PREFIX}<SECTION>__<KEY>"
            )
        if "__" in key:  # a nested client setting: ALERTBUTLER_KAFKA__CLIENT__SASL_MECHANISM
            sub, _, inner = key.partition("__")
            raw.setdefault(section, {}).setdefault(sub, {})[inner.replace("_", ".")] = value
        else:
            raw.setdefault(section, {})[key] = value
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    return _build(Config, raw, where="")


def without_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (this process's) without its ``ALERTBUTLER_*`` settings: the environment
    to hand a child process along with a configuration file, so that variables the parent
    already read into that file (or derived away from) cannot override it."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if not k.startswith(ENV_PREFIX)}


def _read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The file's TOML, or a :class:`ConfigError` saying why it cannot be used."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):  # a directory, or a FIFO/device that would never end
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise ConfigError(f"configuration file {path} is {kind}")
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}") from None
    except OSError as exc:  # permission denied, I/O error, ...
        raise ConfigError(f"configuration file {path} cannot be read: "
                          f"{exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not UTF-8 text (byte "
                          f"0x{data[exc.start]:02x} at offset {exc.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _build(cls: type, values: Mapping[str, Any], *, where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls, include_extras=True)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        qualified = f"{where}{key}"
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown configuration key '{qualified}' (known here: {known})")
        hint, allowed = _unwrap(hints[key])
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            if not isinstance(value, Mapping):
                raise ConfigError(f"configuration key '{qualified}' must be a table")
            kwargs[key] = _build(hint, value, where=f"{qualified}.")
        else:
            kwargs[key] = _coerce(value, hint, qualified)
            if isinstance(allowed, OneOf):
                kwargs[key] = allowed.check(kwargs[key], qualified)
            elif isinstance(allowed, Range):
                allowed.check(kwargs[key], qualified)
    return cls(**kwargs)


def _unwrap(hint: Any) -> tuple[Any, Range | OneOf | None]:
    """``Annotated[int, Range(..)]`` -> (int, the Range); a plain hint -> (hint, None)."""
    if typing.get_origin(hint) is Annotated:
        base, *extras = typing.get_args(hint)
        allowed = next((e for e in extras if isinstance(e, Range | OneOf)), None)
        return base, allowed
    return hint, None


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"configuration key '{key}' must be a table of settings")
        return {str(k): _scalar_text(v, f"{key}.{k}") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "1", "yes", "false", "0", "no"}:
            return value.lower() in {"true", "1", "yes"}
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        return value
    raise ConfigError(
        f"configuration key '{key}' must be {hint.__name__}, got {type(value).__name__} {value!r}"
    )


def _scalar_text(value: Any, key: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ConfigError(f"configuration key '{key}' must be a string, number or boolean")


def dump_toml(config: Config, *, redact: bool = True) -> str:
    """The configuration as TOML text (``alertbutler config show``)."""
    lines: list[str] = []
    for section, values in config.as_dict(redact=redact).items():
        nested = {k: v for k, v in values.items() if isinstance(v, dict)}
        lines.append(f"[{section}]")
        for key, value in values.items():
            if key not in nested:
                lines.append(f"{key} = {_toml_value(value)}")
        for sub, table in nested.items():
            lines.append("")
            lines.append(f"[{section}.{sub}]")
            for key, value in table.items():
                lines.append(f'"{key}" = {_toml_value(value)}')
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def config_reference() -> str:
    """Markdown tables of every key, its environment variable, default and meaning.

    Generated from the section classes and the ``#:`` comment above each field, so the
    reference in docs/configuration.md is checked against the code by a test.
    """
    import inspect

    out: list[str] = []
    for section in dataclasses.fields(Config):
        cls = typing.get_type_hints(Config)[section.name]
        hints = typing.get_type_hints(cls, include_extras=True)
        docs = _field_docs(inspect.getsource(cls))
        intro = (inspect.getdoc(cls) or "").replace("``", "`")
        out += [f"### [{section.name}]", "", intro, "",
                "| key | environment | default | meaning |", "|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            factory = f.default_factory
            if f.default is not dataclasses.MISSING:
                default = f"`{f.default}`" if f.default != "" else "empty"
            elif factory is not dataclasses.MISSING:
                default = f"`{factory()}`"
            else:
                default = "required"
            env = f"`{ENV_PREFIX}{section.name.upper()}__{f.name.upper()}`"
            if typing.get_origin(typing.get_type_hints(cls)[f.name]) is dict:
                env = env[:-1] + "__<KEY>`"
            meaning = docs.get(f.name, "")
            allowed = _unwrap(hints[f.name])[1]
            if allowed is not None:
                meaning += f" (allowed: {allowed.describe()})"
            out.append(f"| `{section.name}.{f.name}` | {env} | {default} | {meaning} |")
        out.append("")
    return "\n".join(out)


def _field_docs(source: str) -> dict[str, str]:
    """``#:`` comment lines, joined, attached to the field declared right below them."""
    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in source.splitlines():
        text = line.strip()
        if text.startswith("#:"):
            pending.append(text[2:].strip())
            continue
        name, colon, _ = text.partition(":")
        if colon and name.isidentifier() and pending:
            docs[name] = " ".join(pending).replace("``", "`").replace("|", "\\|")
        if text:
            pending = []
    return docs

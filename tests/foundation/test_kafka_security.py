"""Apache Kafka secured as Rubin deploys it: SCRAM-SHA-512 users and StandardAuthorizer ACLs.

One secured broker for the module: a pipeline user that writes the alert topics and a
read-only consumer (``reader``) allowed ``alerts*`` topics and groups ``reader-*`` only.
``alertbutler subscribe`` runs as a subprocess with the consumer's credentials from the
environment, as a downstream user would run it. Refusals must name their cause; no
password may appear in any output.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from alertbutler.alerts import encode_alerts
from alertbutler.alerts.producer import AlertPublisher, Message
from alertbutler.broker import BrokerError, KafkaBroker, KafkaSecurity, make_broker
from alertbutler.config import load_config
from alertbutler.kafka import KafkaAccessError, create_topics
from alertbutler.subscribe import open_stream
from alertbutler.subscribe.testing import varied_alerts
from alertbutler.testing import kafka_unavailable_reason

PIPELINE_PW = "pipeline-Secret-1"
READER_PW = "reader-Secret-2"
N_ALERTS = 60


def _security(reader_pw: str = READER_PW, **more: str) -> KafkaSecurity:
    return KafkaSecurity.rubin(pipeline={"pipeline": PIPELINE_PW},
                               consumers={"reader": reader_pw, **more})


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    reason = kafka_unavailable_reason()
    if reason:
        pytest.skip(reason)
    data_dir = tmp_path_factory.mktemp("secured") / "kafka"
    broker = KafkaBroker(data_dir=data_dir, security=_security())
    with broker:
        yield broker


@pytest.fixture(scope="module")
def alerts_topic(secured: KafkaBroker) -> tuple[str, list[int]]:
    """An ``alerts-...`` topic the pipeline user created and filled."""
    topic = f"alerts-{uuid.uuid4().hex[:8]}"
    pipeline = secured.security.client_settings("pipeline")  # type: ignore[union-attr]
    create_topics(secured.bootstrap, {topic: 2}, settings=pipeline)
    alerts = varied_alerts(N_ALERTS, seed=7)
    with AlertPublisher(secured.bootstrap, settings=pipeline) as publisher:
        publisher.publish(topic, [Message(None, v, a["diaSourceId"])
                                  for a, v in zip(alerts, encode_alerts(alerts), strict=True)])
    return topic, [a["diaSourceId"] for a in alerts]


def _env(user: str = "reader", password: str = READER_PW) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTBUTLER_")}
    env.update({"ALERTBUTLER_KAFKA__CLIENT__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "ALERTBUTLER_KAFKA__CLIENT__SASL_MECHANISM": "SCRAM-SHA-512",
                "ALERTBUTLER_KAFKA__CLIENT__SASL_USERNAME": user,
                "ALERTBUTLER_KAFKA__CLIENT__SASL_PASSWORD": password})
    return env


def _alertbutler(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI; the timeout only guards against a hang (a refusal must end it)."""
    return subprocess.run([sys.executable, "-m", "alertbutler", "--log-level", "DEBUG", *args],
                          env=env, capture_output=True, text=True, timeout=240)


def _no_password(*texts: str) -> None:
    for text in texts:
        for secret in (PIPELINE_PW, READER_PW):
            assert secret not in text


def test_consumer_subscribes_with_its_credentials(secured: KafkaBroker,
                                                  alerts_topic: tuple[str, list[int]],
                                                  tmp_path: Path) -> None:
    topic, ids = alerts_topic
    out = tmp_path / "read.jsonl"
    args = ["subscribe", f"kafka://{secured.bootstrap}/{topic}", "--group", "night",
            "--until-end", "--quiet", "--output", f"jsonl:{out}"]
    first = _alertbutler(*args, env=_env())
    assert first.returncode == 0, first.stderr
    got = [json.loads(line)["diaSourceId"] for line in out.read_text().splitlines()]
    assert sorted(got) == sorted(ids)
    assert '"group": "reader-night"' in first.stderr  # the group under the user's prefix
    again = _alertbutler(*args, env=_env())  # resumes from what the group committed
    assert again.returncode == 0, again.stderr
    assert len(out.read_text().splitlines()) == N_ALERTS
    _no_password(first.stdout, first.stderr, again.stdout, again.stderr)


def test_reading_another_topic_is_refused_naming_topic_authorization(
        secured: KafkaBroker) -> None:
    other = f"work-{uuid.uuid4().hex[:8]}"
    create_topics(secured.bootstrap, {other: 1}, settings=secured.admin_settings())
    run = _alertbutler("subscribe", f"kafka://{secured.bootstrap}/{other}", "--until-end",
                       "--quiet", env=_env())
    assert run.returncode == 1
    assert f"reading topic {other!r}: topic authorization failed for user 'reader'" \
        in run.stderr
    _no_password(run.stdout, run.stderr)


def test_writing_is_refused_naming_the_authorization(
        secured: KafkaBroker, alerts_topic: tuple[str, list[int]]) -> None:
    topic, _ = alerts_topic
    url = f"kafka://{secured.bootstrap}/{topic}"
    new = _alertbutler("subscribe", url, "--until-end", "--quiet", "--output",
                       f"topic:alerts-copy-{uuid.uuid4().hex[:6]}", env=_env())
    assert new.returncode == 1
    assert "creating topic 'alerts-copy-" in new.stderr
    assert "topic authorization failed for user 'reader'" in new.stderr
    existing = _alertbutler("subscribe", url, "--until-end", "--quiet", "--output",
                            f"topic:{topic}", env=_env())
    assert existing.returncode == 1
    assert f"writing to topic {topic!r}: cluster authorization failed for user 'reader': " \
        "the user may not write" in existing.stderr
    _no_password(new.stdout, new.stderr, existing.stdout, existing.stderr)
    reader = secured.security.client_settings("reader")  # type: ignore[union-attr]
    with AlertPublisher(secured.bootstrap, settings=reader) as publisher, \
            pytest.raises(KafkaAccessError, match=f"publishing to topic {topic!r}: cluster "
                          "authorization failed for user 'reader'"):
        publisher.publish(topic, [Message(None, b"not an alert", 1)])


def test_a_group_outside_the_prefix_is_refused_naming_group_authorization(
        secured: KafkaBroker, alerts_topic: tuple[str, list[int]]) -> None:
    topic, _ = alerts_topic
    config = load_config(env=_env())
    for start in ("committed", "earliest"):
        stream = open_stream(f"kafka://{secured.bootstrap}/{topic}", group="night",
                             start=start, settings={"group.id": "other-night"},
                             config=config, end="end")
        with pytest.raises(KafkaAccessError, match="using consumer group 'other-night': "
                           "group authorization failed for user 'reader'"):
            stream.open()


def test_a_wrong_password_is_refused_naming_authentication(
        secured: KafkaBroker, alerts_topic: tuple[str, list[int]]) -> None:
    topic, _ = alerts_topic
    run = _alertbutler("subscribe", f"kafka://{secured.bootstrap}/{topic}", "--until-end",
                       "--quiet", env=_env(password="not-" + READER_PW[::-1]))
    assert run.returncode == 1
    assert "authentication failed for user 'reader': wrong user name or password" \
        in run.stderr
    _no_password(run.stdout, run.stderr)
    mechanism = _alertbutler("subscribe", f"kafka://{secured.bootstrap}/{topic}",
                             "--until-end", "--quiet",
                             env={**_env(), "ALERTBUTLER_KAFKA__CLIENT__SASL_MECHANISM":
                                  "SCRAM-SHA-256"})
    assert mechanism.returncode == 1
    assert "the broker does not offer SCRAM-SHA-256" in mechanism.stderr
    bare = {k: v for k, v in _env().items() if not k.startswith("ALERTBUTLER_")}
    plain = _alertbutler("subscribe", f"kafka://{secured.bootstrap}/{topic}", "--until-end",
                         "--quiet", env=bare)
    assert plain.returncode == 1
    assert "without kafka.client security.protocol and sasl.* settings" in plain.stderr


def test_aiokafka_clients_log_in_with_the_translated_settings(
        secured: KafkaBroker, alerts_topic: tuple[str, list[int]]) -> None:
    """The services' aiokafka clients (ingester) get the same librdkafka-style settings."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    from alertbutler.kafka import aiokafka_settings

    topic, ids = alerts_topic
    kwargs = aiokafka_settings(load_config(env=_env()), secured.bootstrap)
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"

    async def read_all() -> int:
        consumer = AIOKafkaConsumer(**kwargs, enable_auto_commit=False)
        await consumer.start()
        try:
            parts = [TopicPartition(topic, p) for p in sorted(
                consumer.partitions_for_topic(topic) or await _partitions(consumer, topic))]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ends = await consumer.end_offsets(parts)
            n = 0
            while [p for p in parts if await consumer.position(p) < ends[p]]:
                batch = await consumer.getmany(timeout_ms=1000)
                n += sum(len(msgs) for msgs in batch.values())
            return n
        finally:
            await consumer.stop()

    assert asyncio.run(read_all()) == len(ids)


async def _partitions(consumer: object, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # type: ignore[attr-defined]
    return consumer.partitions_for_topic(topic) or set()  # type: ignore[attr-defined]


def test_no_password_in_help_config_repr_or_broker_files(
        secured: KafkaBroker) -> None:
    env = _env()
    for args in (["broker", "--help"], ["subscribe", "--help"], ["config", "show"],
                 ["config", "show", "--format", "json"]):
        run = _alertbutler(*args, env=env)
        assert run.returncode == 0, run.stderr
        _no_password(run.stdout, run.stderr)
    config = load_config(env=env)
    _no_password(repr(config), repr(secured), repr(secured.security))
    assert secured.data_dir is not None
    for path in secured.data_dir.iterdir():
        if path.is_file() and path.name not in ("admin.secret", "server.properties"):
            _no_password(path.read_text(errors="replace"))
    admin_pw = (secured.data_dir / "admin.secret").read_text().strip()
    for name in ("admin.secret", "server.properties"):  # the super user's password
        assert stat.S_IMODE((secured.data_dir / name).stat().st_mode) == 0o600
    for name in ("server.log", "server.out", "broker.json"):
        assert admin_pw not in (secured.data_dir / name).read_text(errors="replace")


def test_users_file_is_private_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    path.write_text('[users.pipeline]\nrole = "pipeline"\npassword_env = "PIPE_PW"\n'
                    '[users.rubin-reader]\nrole = "consumer"\npassword = "pw-in-file"\n')
    path.chmod(0o644)
    with pytest.raises(BrokerError, match="readable by others"):
        KafkaSecurity.from_file(path, env={"PIPE_PW": "x"})
    path.chmod(0o600)
    with pytest.raises(BrokerError, match="PIPE_PW is not set"):
        KafkaSecurity.from_file(path, env={})
    security = KafkaSecurity.from_file(path, env={"PIPE_PW": "pw-from-env"})
    assert dict(security.users) == {"pipeline": "pw-from-env", "rubin-reader": "pw-in-file"}
    groups = [a for a in security.acls if a.user == "rubin-reader" and a.resource == "group"]
    assert {(a.name, a.pattern) for a in groups} == {("rubin-reader-", "prefixed")}
    assert "pw-" not in repr(security)
    link = tmp_path / "link.toml"
    link.symlink_to(path)
    with pytest.raises(BrokerError, match="symbolic link"):
        KafkaSecurity.from_file(link, env={"PIPE_PW": "x"})
    path.write_text('[users.x]\nrole = "admin"\npassword = "p"\n')
    with pytest.raises(BrokerError, match="role must be one of pipeline, consumer"):
        KafkaSecurity.from_file(path)
    with pytest.raises(BrokerError, match="no authentication"):
        make_broker("embedded", security=security)


def test_restart_applies_changed_users_and_refuses_an_open_start(
        secured: KafkaBroker, alerts_topic: tuple[str, list[int]], tmp_path: Path) -> None:
    """Users and ACLs are applied at every start: a changed password, a new consumer and a
    removed one take effect on the same data directory. Runs last: it restarts the
    module's broker."""
    topic, ids = alerts_topic
    data_dir = secured.data_dir
    port = secured.port
    secured.stop()
    with pytest.raises(BrokerError, match="start it with its users"):
        KafkaBroker(data_dir=data_dir).start()
    changed = KafkaSecurity.rubin(pipeline={"pipeline": PIPELINE_PW},
                                  consumers={"reader": "changed-" + READER_PW,
                                             "late": "late-Secret-3"})
    with KafkaBroker(data_dir=data_dir, security=changed) as again:
        assert again.port == port
        url = f"kafka://{again.bootstrap}/{topic}"
        old = _alertbutler("subscribe", url, "--until-end", "--quiet", env=_env())
        assert old.returncode == 1 and "authentication failed" in old.stderr
        for user, pw in (("reader", "changed-" + READER_PW), ("late", "late-Secret-3")):
            out = tmp_path / f"{user}.jsonl"
            run = _alertbutler("subscribe", url, "--until-end", "--quiet", "--output",
                               f"jsonl:{out}", env=_env(user, pw))
            assert run.returncode == 0, run.stderr
            assert len(out.read_text().splitlines()) == len(ids)
    # the same directory through the CLI, with a users file that no longer has 'late'
    users = tmp_path / "users.toml"
    users.write_text('[users.pipeline]\nrole = "pipeline"\npassword_env = "PIPE_PW"\n'
                     f'[users.reader]\nrole = "consumer"\npassword = "{READER_PW}"\n')
    users.chmod(0o600)
    env = {**_env(), "PIPE_PW": PIPELINE_PW}
    broker = subprocess.Popen([sys.executable, "-m", "alertbutler", "broker", "--engine",
                               "kafka", "--data-dir", str(data_dir), "--users", str(users)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        assert broker.stdout is not None
        bootstrap = broker.stdout.readline().strip()
        assert bootstrap, broker.stderr.read() if broker.stderr else ""
        url = f"kafka://{bootstrap}/{topic}"
        late = _alertbutler("subscribe", url, "--until-end", "--quiet",
                            env=_env("late", "late-Secret-3"))
        assert late.returncode == 1 and "authentication failed for user 'late'" in late.stderr
        ok = _alertbutler("subscribe", url, "--until-end", "--quiet", env=_env())
        assert ok.returncode == 0, ok.stderr
        assert len(ok.stdout.splitlines()) == len(ids)
    finally:
        broker.terminate()
        out, err = broker.communicate(timeout=120)
    assert broker.returncode == 0, err
    assert "SASL_PLAINTEXT with SCRAM-SHA-512 and ACLs; users pipeline, reader" in err
    _no_password(out, err)


def test_an_open_directory_is_not_started_secured(tmp_path: Path) -> None:
    """A data directory formatted without security has no super user: refused at once."""
    reason = kafka_unavailable_reason()
    if reason:
        pytest.skip(reason)
    root = tmp_path / "open"
    (root / "logs").mkdir(parents=True)
    (root / "broker.json").write_text(json.dumps({"cluster_id": "c1", "node_id": 1}))
    (root / "logs" / "meta.properties").write_text("cluster.id=c1\nnode.id=1\n")
    with pytest.raises(BrokerError, match="formatted without security"):
        KafkaBroker(data_dir=root, security=_security()).start()

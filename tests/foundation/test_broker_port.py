"""The embedded broker is ready only when it answers itself, not another broker on its port.

A port found free can be taken before Tansu binds it (several suites on one machine start
brokers all the time). Tansu then exits, while the other broker answered the readiness check:
``alertbutler broker`` printed its address and "Ctrl-C to stop", and exited 0 a moment later
(a supervised replica vanished between its start and a test's ``kill``).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from alertbutler.broker import BrokerError, EmbeddedBroker, make_broker
from alertbutler.broker import embedded as embedded_module


def test_a_port_another_broker_holds_is_refused_by_the_cli() -> None:
    with make_broker("embedded") as other:
        port = other.bootstrap.rsplit(":", 1)[1]
        done = subprocess.run([sys.executable, "-m", "alertbutler", "broker", "--port", port],
                              capture_output=True, text=True, timeout=120)
        assert other.is_running()
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"port {port}" in done.stderr and "another Kafka broker" in done.stderr
    assert "Ctrl-C" not in done.stderr


def test_a_chosen_port_taken_meanwhile_is_given_up_for_another(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with make_broker("embedded") as other:
        taken = int(other.bootstrap.rsplit(":", 1)[1])
        real = embedded_module.free_port
        offered = iter([taken])  # the race, made certain: the first port found is taken
        monkeypatch.setattr(embedded_module, "free_port",
                            lambda host="127.0.0.1": next(offered, None) or real(host))
        broker = EmbeddedBroker().start()
        try:
            assert broker.port != taken and broker.is_running()
            from confluent_kafka.admin import AdminClient

            meta = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
            assert meta.cluster_id == broker.cluster_id != other.cluster_id  # type: ignore[attr-defined]
        finally:
            broker.stop()


def test_a_port_given_and_taken_is_a_clear_error() -> None:
    with make_broker("embedded") as other:
        port = int(other.bootstrap.rsplit(":", 1)[1])
        with pytest.raises(BrokerError, match=f"port {port} .* another Kafka broker"):
            EmbeddedBroker(port=port).start()

"""A broker that stops answering during a put: the put names exactly what was not delivered.

Each test runs its own broker of the engine (embedded and Apache Kafka), so the session broker
is never disturbed. Pausing the broker process (SIGSTOP) keeps its log, so after SIGCONT the
test can check the topic; killing it outright (SIGKILL, a crash) is checked by the report.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import Iterator

import pytest

from alertbutler.alerts import DeliveryError, control_topic, decode_message
from alertbutler.alerts.fake import fake_alerts
from alertbutler.alerts.publish_datastore import PublishDatastore
from alertbutler.broker import Broker, make_broker
from alertbutler.kafka import create_topics
from alertbutler.kafka.read import iter_topic

from .conftest import make_ref

N = 6000
#: Small produce batches: a fault at the 100th or 200th acknowledgement then always leaves most
#: of the put in flight or queued. With the default batch size Apache Kafka may acknowledge
#: all 6,000 small alerts in a handful of responses, and the fault would land after the put.
SMALL_BATCHES = {"batch.size": 16384, "linger.ms": 0}


@pytest.fixture
def own_broker(broker_engine: str) -> Iterator[Broker]:
    broker = make_broker(broker_engine).start()
    try:
        yield broker
    finally:
        if broker.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(broker.pid, signal.SIGCONT)
        broker.stop()


@pytest.fixture(scope="module")
def alerts() -> list[dict]:
    return fake_alerts(N, seed=21, n_history=0, cutout_size=None)


def _topic(broker: Broker) -> str:
    name = f"alerts-fail-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, {name: 3, control_topic(name): 1})
    return name


def _ids_in_topic(bootstrap: str, topic: str) -> list[int]:
    return [decode_message(m.value).record["diaSourceId"]
            for m in iter_topic(bootstrap, topic)]


def test_paused_broker_put_names_exactly_the_undelivered(own_broker, alerts) -> None:
    topic = _topic(own_broker)
    pid = own_broker.pid
    paused = []

    def pause_midway(acked: int) -> None:
        if acked >= 100 and not paused:
            os.kill(pid, signal.SIGSTOP)
            paused.append(acked)

    store = PublishDatastore(bootstrap=own_broker.bootstrap, topic_template=topic,
                             delivery_timeout_s=3.0, progress=pause_midway,
                             settings={"request.timeout.ms": 2000, **SMALL_BATCHES})
    ref = make_ref(visit=1, detector=1)
    with pytest.raises(DeliveryError) as info:
        store.put(alerts, ref)
    err = info.value
    assert paused, "the broker was never paused"
    all_ids = [a["diaSourceId"] for a in alerts]
    assert err.undelivered, "a put interrupted midway must leave some alerts undelivered"
    assert set(err.undelivered) <= set(all_ids)
    assert len(set(err.undelivered)) == len(err.undelivered)
    assert err.delivered == N - len(err.undelivered) >= 100
    assert str(err.undelivered[0]) in str(err)
    assert not store.exists(ref)  # no records for a failed put

    os.kill(pid, signal.SIGCONT)
    in_topic = _ids_in_topic(own_broker.bootstrap, topic)
    delivered = set(all_ids) - set(err.undelivered)
    # every alert reported as delivered is in the topic (undelivered ones may or may not be)
    assert delivered <= set(in_topic)

    # a retry of the failed put, once the broker is back, succeeds and reads back whole
    store.progress = None
    store.publisher.progress = None
    retry = make_ref(visit=1, detector=1)
    store.put(alerts, retry)
    assert store.get(retry) == alerts


def test_pause_shorter_than_the_delivery_timeout_retries_and_succeeds(own_broker,
                                                                      alerts) -> None:
    topic = _topic(own_broker)
    pid = own_broker.pid
    import threading

    def pause_briefly(acked: int) -> None:
        if acked == 300:
            os.kill(pid, signal.SIGSTOP)
            threading.Timer(2.0, os.kill, (pid, signal.SIGCONT)).start()

    store = PublishDatastore(bootstrap=own_broker.bootstrap, topic_template=topic,
                             delivery_timeout_s=60.0, progress=pause_briefly,
                             end_markers=False)
    ref = make_ref()
    store.put(alerts[:2000], ref)
    ids = _ids_in_topic(own_broker.bootstrap, topic)
    # idempotent producer: retried batches are not written twice
    assert sorted(ids) == sorted(a["diaSourceId"] for a in alerts[:2000])
    assert store.get(ref) == alerts[:2000]


def test_stopped_broker_put_raises_and_accounts_for_every_alert(own_broker, alerts) -> None:
    topic = _topic(own_broker)
    stopped = []

    def stop_midway(acked: int) -> None:
        if acked >= 200 and not stopped:
            stopped.append(acked)
            os.killpg(own_broker.pid, signal.SIGKILL)  # no grace: a crash

    store = PublishDatastore(bootstrap=own_broker.bootstrap, topic_template=topic,
                             delivery_timeout_s=3.0, progress=stop_midway,
                             settings=SMALL_BATCHES)
    with pytest.raises(DeliveryError) as info:
        store.put(alerts, make_ref())
    err = info.value
    assert stopped and err.undelivered
    assert stopped[0] < N // 2, "the crash must land while most of the put is in flight"
    assert err.delivered + len(err.undelivered) == N
    assert err.delivered >= stopped[0]
    assert set(err.undelivered) <= {a["diaSourceId"] for a in alerts}

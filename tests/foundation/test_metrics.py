"""The service endpoint: Prometheus text, liveness and readiness."""

from __future__ import annotations

import urllib.error
import urllib.request

from alertbutler.metrics import Health, MetricsServer, ServiceMetrics


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_health_and_readiness() -> None:
    metrics = ServiceMetrics("worker")
    health = Health(stale_after=60)
    server = MetricsServer(metrics, health, host="127.0.0.1").start()
    try:
        metrics.alerts_published.labels("worker").inc(42)
        with metrics.stage("isr"):
            pass
        code, text = _get(server.port, "/metrics")
        assert code == 200
        assert 'alertbutler_alerts_published_total{service="worker"} 42.0' in text
        assert 'alertbutler_stage_seconds_count{service="worker",stage="isr"} 1.0' in text
        assert _get(server.port, "/healthz")[0] == 200
        assert _get(server.port, "/readyz")[0] == 503  # not ready until the loop says so
        health.set_ready(True, "partitions assigned")
        assert _get(server.port, "/readyz") == (200, "partitions assigned\n")
        health.stale_after = 0.0  # a hung loop: liveness fails
        assert _get(server.port, "/healthz")[0] == 503
        assert _get(server.port, "/nope")[0] == 404
    finally:
        server.stop()

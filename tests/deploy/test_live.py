"""The live view reads each replica's real /metrics endpoint."""

from __future__ import annotations

from rich.console import Console

from alertbutler.deploy import Replica, ServiceSpec
from alertbutler.deploy.live import LiveView, scrape
from alertbutler.metrics import Health, MetricsServer, ServiceMetrics


def test_live_view_shows_what_the_endpoints_say() -> None:
    metrics, health = ServiceMetrics("worker"), Health()
    metrics.alerts_published.labels("worker").inc(42)
    metrics.errors.labels("worker", "RuntimeError").inc(3)
    metrics.consumer_lag.labels("worker", "prompt-work", "0").set(7)
    for seconds in (1.5, 3.0, 4.0):
        metrics.alert_latency_seconds.labels("worker").observe(seconds)
    server = MetricsServer(metrics, health, host="127.0.0.1", port=0).start()
    try:
        data = scrape(server.port)
        assert data.ok
        assert data.values["alertbutler_alerts_published_total"] == 42
        assert data.quantile(0.5) == 5.0  # bucket upper bound: 1.5 s -> 2, 3 and 4 s -> 5
        spec = ServiceSpec(name="worker", argv=("worker",))
        up = Replica(spec=spec, index=0, metrics_port=server.port)
        down = Replica(spec=ServiceSpec(name="ingest", argv=("ingest",)), index=0,
                       metrics_port=1)  # nothing listens on port 1
        view = LiveView([up, down])
        console = Console(width=200, record=True)
        console.print(view.render())
        text = console.export_text()
        row = next(line for line in text.splitlines() if line.strip("│ ").startswith("worker"))
        assert "42" in row and "7" in row and "3" in row
        assert "published 42" in text and "errors 3" in text
        assert view.line()["published"] == 42
    finally:
        server.stop()

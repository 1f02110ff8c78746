"""The live terminal view of ``alertbutler up``: each service, alert rate, latency and lag.

Figures come from scraping each replica's own ``/metrics`` endpoint, exactly what Prometheus
sees in a deployment, so the view and the dashboards cannot disagree.
"""

from __future__ import annotations

import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table

from alertbutler.deploy.supervisor import Replica


@dataclass
class Scrape:
    """Selected sample sums from one ``/metrics`` page."""

    ok: bool = False
    values: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    buckets: dict[float, float] = field(default_factory=dict)

    def quantile(self, q: float) -> float | None:
        """A histogram quantile from cumulative bucket counts (upper bound of its bucket)."""
        if not self.buckets:
            return None
        total = max(self.buckets.values())
        if total <= 0:
            return None
        for bound in sorted(self.buckets):
            if self.buckets[bound] >= q * total:
                return bound
        return None


def scrape(port: int, timeout: float = 1.0) -> Scrape:
    """Read one replica's metrics; a replica that does not answer yields ``ok=False``."""
    result = Scrape()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
            text = r.read().decode()
    except OSError:
        return result
    result.ok = True
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if name == "alertbutler_alert_latency_seconds_bucket":
                bound = float(sample.labels["le"])
                result.buckets[bound] = result.buckets.get(bound, 0.0) + sample.value
            elif name.endswith("_total") or name == "alertbutler_consumer_lag":
                result.values[name] += sample.value
    return result


class LiveView:
    """Builds the table shown under ``rich.live.Live``; keeps the previous scrape for rates."""

    def __init__(self, replicas: list[Replica], *, progress: Any = None) -> None:
        self.replicas = replicas
        self.progress = progress  # a NightProgress while a simulated night plays
        self._last: dict[str, tuple[float, float]] = {}
        self._totals: dict[str, float] = {}

    def caption(self) -> str:
        t = self._totals
        text = (f"published {t.get('published', 0):.0f}  ingested {t.get('ingested', 0):.0f}  "
                f"lag {t.get('lag', 0):.0f}  errors {t.get('errors', 0):.0f}  "
                f"dead-lettered {t.get('dead', 0):.0f}")
        p = self.progress
        if p is not None:
            text += (f"  |  night: {p.n_done}/{len(p.expected)} visit-detectors processed, "
                     f"{len(p.ingested_at)} in the L1 DB, {p.n_failed} failed")
        return text

    def line(self) -> dict[str, Any]:
        """The totals of the last render, for a log line when there is no terminal."""
        self.render()
        line: dict[str, Any] = {k: round(v, 3) for k, v in self._totals.items()}
        line["restarts"] = sum(r.restarts for r in self.replicas)
        if self.progress is not None:
            line["processed"] = self.progress.n_done
            line["in_l1db"] = len(self.progress.ingested_at)
        return line

    def render(self) -> Table:
        table = Table(title="alertbutler up", expand=True)
        totals: dict[str, float] = defaultdict(float)
        for column in ("service", "pid", "restarts", "state", "published", "ingested",
                       "alerts/s", "p50 s", "p98 s", "lag", "errors"):
            table.add_column(column, justify="left" if column in ("service", "state")
                             else "right")
        now = time.monotonic()
        for replica in self.replicas:
            data = scrape(replica.metrics_port) if replica.metrics_port else Scrape()
            published = data.values.get("alertbutler_alerts_published_total", 0.0)
            ingested = data.values.get("alertbutler_alerts_ingested_total", 0.0)
            count = published or ingested
            last_t, last_n = self._last.get(replica.label, (now, count))
            rate = (count - last_n) / (now - last_t) if now > last_t else 0.0
            self._last[replica.label] = (now, count)
            totals["published"] += published
            totals["ingested"] += ingested
            totals["lag"] += data.values.get("alertbutler_consumer_lag", 0.0)
            totals["errors"] += data.values.get("alertbutler_errors_total", 0.0)
            totals["dead"] += data.values.get("alertbutler_dead_lettered_total", 0.0)
            p50, p98 = data.quantile(0.5), data.quantile(0.98)
            state = "up" if replica.pid and data.ok else ("starting" if replica.pid else
                                                          "restarting")
            table.add_row(
                replica.label, str(replica.pid or "-"), str(replica.restarts), state,
                f"{published:.0f}", f"{ingested:.0f}", f"{rate:.0f}",
                "-" if p50 is None else f"{p50:g}", "-" if p98 is None else f"{p98:g}",
                f"{data.values.get('alertbutler_consumer_lag', 0.0):.0f}",
                f"{data.values.get('alertbutler_errors_total', 0.0):.0f}")
        self._totals = dict(totals)
        table.caption = self.caption()
        return table

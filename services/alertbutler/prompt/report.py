"""The main job's report: ``summary.json`` and a self-contained HTML page of plots.

Plots are drawn with matplotlib's non-interactive Agg backend and embedded as base64 PNGs, so
the report is one file that opens anywhere (no server); it links the night's files kept next
to it (the alerts' Avro archive in the ledger's directory).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REQUIRED_KEYS = ("visits", "alerts_published", "alerts_in_l1db", "completeness", "purity",
                 "latency_p50_s", "latency_p98_s")


@dataclass
class ReportData:
    """Everything the report shows, gathered by the main job."""

    summary: dict[str, Any]
    alerts_per_visit: dict[int, int] = field(default_factory=dict)
    latency_kafka_s: list[float] = field(default_factory=list)
    latency_l1db_s: list[float] = field(default_factory=list)
    positions: list[tuple[float, float, int]] = field(default_factory=list)  # ra, dec, visit
    cutout_alerts: Sequence[Mapping[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: files to link: (what it is, path relative to the report's directory)
    files: list[tuple[str, str]] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, float), q)) if len(values) else None


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _plots(data: ReportData) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: list[tuple[str, str]] = []
    fig, ax = plt.subplots(figsize=(7, 3))
    visits = sorted(data.alerts_per_visit)
    ax.bar(range(len(visits)), [data.alerts_per_visit[v] for v in visits], color="tab:blue")
    ax.set_xticks(range(len(visits)), [str(v)[-4:] for v in visits], rotation=60, fontsize=7)
    ax.set_xlabel("visit (last digits)")
    ax.set_ylabel("alerts")
    ax.set_title("Alerts per visit")
    out.append(("Alerts per visit", _png(fig)))

    fig, ax = plt.subplots(figsize=(7, 3))
    both = data.latency_kafka_s + data.latency_l1db_s
    bins = np.linspace(0, max(both) * 1.05, 40).tolist() if both else 10
    if data.latency_kafka_s:
        ax.hist(data.latency_kafka_s, bins=bins, alpha=0.7, label="raw -> acked by Kafka")
    if data.latency_l1db_s:
        ax.hist(data.latency_l1db_s, bins=bins, alpha=0.7, label="raw -> committed in L1 DB")
    ax.set_xlabel("seconds (per alert)")
    ax.set_ylabel("alerts")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("Alert latency from raw arrival")
    out.append(("Latency", _png(fig)))

    fig, ax = plt.subplots(figsize=(6, 5))
    if data.positions:
        ra, dec, visit = (np.array(c) for c in zip(*data.positions, strict=True))
        sc = ax.scatter(ra, dec, c=visit - visit.min(), s=4, cmap="viridis")
        fig.colorbar(sc, ax=ax, label="visit index")
        ax.invert_xaxis()
    ax.set_xlabel("RA (deg)")
    ax.set_ylabel("Dec (deg)")
    ax.set_title("Sky map of alerts")
    out.append(("Sky map", _png(fig)))

    if data.cutout_alerts:
        from alertbutler.alerts.cutouts import read_cutout

        rows = len(data.cutout_alerts)
        fig, axes = plt.subplots(rows, 3, figsize=(6, 2.1 * rows), squeeze=False)
        for r, alert in enumerate(data.cutout_alerts):
            for c, name in enumerate(("cutoutScience", "cutoutTemplate", "cutoutDifference")):
                ax = axes[r][c]
                ax.set_xticks([])
                ax.set_yticks([])
                if alert.get(name):
                    img = read_cutout(alert[name]).flux
                    lo, hi = np.nanpercentile(img, [1, 99.5]) if np.isfinite(img).any() \
                        else (0, 1)
                    ax.imshow(img, origin="lower", cmap="gray", vmin=lo, vmax=hi)
                if r == 0:
                    ax.set_title(name.removeprefix("cutout"), fontsize=9)
            src = alert["diaSource"]
            axes[r][0].set_ylabel(f"{src['diaSourceId']}\nS/N {src.get('snr') or 0:.0f}",
                                  fontsize=7)
        out.append(("Cutouts (science, template, difference)", _png(fig)))
    return out


def write_report(out_dir: Path, data: ReportData) -> Path:
    """Write ``summary.json`` and ``report.html`` under ``out_dir``; return the HTML path."""
    missing = [k for k in REQUIRED_KEYS if k not in data.summary]
    if missing:
        raise ValueError(f"summary lacks required keys: {', '.join(missing)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(data.summary, indent=2, sort_keys=True)
                                          + "\n")
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
                   for k, v in data.summary.items() if not isinstance(v, dict | list))
    figures = "".join(f"<h2>{html.escape(title)}</h2><img src='data:image/png;base64,{png}'>"
                      for title, png in _plots(data))
    errors = "".join(f"<li>{html.escape(e)}</li>" for e in data.errors) or "<li>none</li>"
    files = "".join(f"<li><a href='{html.escape(name, quote=True)}'>{html.escape(name)}</a>: "
                    f"{html.escape(what)}</li>" for what, name in data.files)
    files = f"<h2>Files</h2><ul>{files}</ul>" if files else ""
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>alertbutler run</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "th{text-align:left;padding-right:2em}img{max-width:100%}</style></head><body>"
        f"<h1>alertbutler run</h1><table>{rows}</table>{files}{figures}"
        f"<h2>Errors per visit-detector</h2><ul>{errors}</ul></body></html>\n")
    path = out_dir / "report.html"
    path.write_text(page)
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "n/a" if value is None else str(value)

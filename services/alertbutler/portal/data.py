"""What the portal serves: the L1 database, the night's ledger and alert archive, the live topic.

Reads only. The L1 database is opened by URL for every request (SQLAlchemy pools the
connections), so the portal sees what the ingester commits while it runs. The alert archive
is indexed once, on first use, by diaSourceId: only the cutouts are kept, since every other
field of an alert is also in the L1 database.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from alertbutler.l1db import Cone, L1db
from alertbutler.prompt.ledger import LedgerError, NightLedger, read_ledger

CUTOUTS = ("science", "template", "difference")


@dataclass(frozen=True, kw_only=True)
class PortalSettings:
    """Where the portal's data lives; built once by ``alertbutler serve``."""

    l1db_url: str
    night_root: Path | None = None  # a main-job night directory (with night/ledger.json)
    bootstrap: str = ""  # the live alert topic's brokers; empty: no live page
    alert_topic: str = ""
    #: aiokafka keyword arguments (bootstrap and security), from alertbutler.kafka
    aiokafka: dict[str, Any] = field(default_factory=dict)
    confluent: dict[str, Any] = field(default_factory=dict)  # client settings (security)
    #: the portal's own state: tokens.json (hashed API tokens), watchlists/; None: no writes
    state_dir: Path | None = None
    #: the filter service's file (``alertbutler filter serve FILE``): filters saved here
    #: take effect in the running service; None: filters can be checked, not activated
    filters_file: Path | None = None
    #: reads without a token (on loopback); off loopback every request needs one
    open_reads: bool = True
    #: the deployment's configuration (alertbutler.config.Config): schemas and client
    #: settings to read the filter service's topics back for the night's per-filter counts
    config: Any = None


def rows(table: pa.Table) -> list[dict[str, Any]]:
    """Arrow rows as JSON-ready dicts (NaN becomes null: JSON has no NaN)."""
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in r.items()} for r in table.to_pylist()]


class PortalData:
    """The portal's read model; thread-safe (uvicorn runs sync endpoints in a pool)."""

    def __init__(self, settings: PortalSettings) -> None:
        self.settings = settings
        self.db = L1db(settings.l1db_url)
        self._cutouts: dict[int, dict[str, bytes]] | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.db.close()

    # ---- L1 database ---------------------------------------------------------------------

    def latest_objects(self, limit: int) -> list[dict[str, Any]]:
        return rows(self.db.latest_objects(limit))

    def cone(self, ra: float, dec: float, radius_arcsec: float) -> list[dict[str, Any]]:
        found = rows(self.db.objects_in_region(Cone(ra=ra, dec=dec, radius=radius_arcsec / 3600.0)))
        for r in found:
            r["separation_arcsec"] = _separation_arcsec(ra, dec, r["ra"], r["dec"])
        return sorted(found, key=lambda r: r["separation_arcsec"])

    def object(self, object_id: int) -> dict[str, Any] | None:
        found = rows(self.db.objects([object_id]))
        if not found:
            return None
        obj = found[0]
        sources = sorted(rows(self.db.source_history([object_id])),
                         key=lambda r: r["midpointMjdTai"])
        forced = sorted(rows(self.db.forced_source_history([object_id])),
                        key=lambda r: r["midpointMjdTai"])
        cutouts = self.cutouts()
        for s in sources:
            s["hasCutouts"] = int(s["diaSourceId"]) in cutouts
        return {**obj, "diaSources": sources, "diaForcedSources": forced}

    # ---- night ---------------------------------------------------------------------------

    def ledger(self) -> NightLedger | None:
        if self.settings.night_root is None:
            return None
        try:
            return read_ledger(self.settings.night_root)
        except LedgerError:
            return None

    def reconciliation(self, yields: list[Any] | None = None) -> list[Any]:
        """Per visit-detector counts; ``yields``: the filter counts if already made."""
        from alertbutler.prompt.reconcile import reconcile

        ledger = self.ledger()
        if ledger is None:
            return []
        yields = self.filter_yields() if yields is None else yields
        return reconcile(ledger, self.db,
                         {y.name: y.forwarded_by_visit_detector for y in yields})

    def filter_yields(self) -> list[Any]:
        """The filter service's active filters, each accounting for the night's alerts (as
        ``night reconcile --filters``); none without a night, a filters file or its status
        (a service that never ran)."""
        from alertbutler.subscribe.night_yield import night_filter_yield
        from alertbutler.subscribe.service import status_path

        ledger = self.ledger()
        f = self.settings.filters_file
        if ledger is None or f is None or not status_path(f).is_file():
            return []
        from alertbutler.config import load_config

        ids = {(e.visit, e.detector): e.alert_ids for e in ledger.entries}
        return night_filter_yield(f, ids, config=self.settings.config or load_config(env={}))

    def cutouts(self) -> dict[int, dict[str, bytes]]:
        """diaSourceId -> the three cutouts, from the night's archive and the live topic."""
        with self._lock:
            if self._cutouts is None:
                self._cutouts = {}
                ledger = self.ledger()
                if ledger is not None and ledger.alerts_path.is_file():
                    from alertbutler.alerts.archive import read_alert_file

                    self._add(read_alert_file(ledger.alerts_path))
            return self._cutouts

    def add_alerts(self, alerts: Iterable[dict[str, Any]]) -> None:
        """Keep the cutouts of alerts that arrived live."""
        self.cutouts()
        with self._lock:
            self._add(alerts)

    def _add(self, alerts: Iterable[dict[str, Any]]) -> None:
        assert self._cutouts is not None
        for a in alerts:
            stamps = {k: a.get(f"cutout{k.title()}") for k in CUTOUTS}
            self._cutouts[int(a["diaSourceId"])] = {k: v for k, v in stamps.items() if v}

    def cutout(self, source_id: int, kind: str) -> bytes | None:
        return self.cutouts().get(source_id, {}).get(kind)


def _separation_arcsec(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    h = (math.sin((d2 - d1) / 2) ** 2
         + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2)
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h)))) * 3600.0

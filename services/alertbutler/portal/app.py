"""The portal's ASGI application: REST API (with its OpenAPI description) and HTML pages.

Endpoints are plain functions over :class:`PortalData`; FastAPI runs them in its thread pool,
so a slow database query never blocks the live feed's event loop. Nothing here writes.
"""

from __future__ import annotations

import html
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Query
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from alertbutler.portal import pages
from alertbutler.portal.data import CUTOUTS, PortalData, PortalSettings

MAX_OBJECTS = 10_000
MAX_RADIUS_ARCSEC = 3600.0


def create_app(settings: PortalSettings) -> FastAPI:
    """The portal over ``settings``' L1 database, night and live topic."""
    data = PortalData(settings)
    app = FastAPI(title="alertbutler portal", version="1",
                  description="Read-only access to the L1 database, a night's alerts and "
                  "reconciliation, and the live alert topic.")
    app.state.data = data

    @app.get("/api/health", tags=["api"])
    def health() -> dict[str, Any]:
        """Whether the L1 database answers; what night and live topic are served."""
        info = data.db.info()
        return {"status": "ok", "l1db": data.db.backend, "l1db_schema": info.schema_version,
                "night": None if settings.night_root is None else str(settings.night_root),
                "live_topic": settings.alert_topic if settings.bootstrap else None}

    @app.get("/api/objects", tags=["api"])
    def objects(limit: Annotated[int, Query(ge=1, le=MAX_OBJECTS)] = 100
                ) -> list[dict[str, Any]]:
        """The most recently detected DiaObjects, newest first."""
        return [_brief(o) for o in data.latest_objects(limit)]

    @app.get("/api/objects/{object_id}", tags=["api"])
    def get_object(object_id: Annotated[int, Path(ge=0)]) -> dict[str, Any]:
        """A DiaObject with its DiaSources and forced sources (its light curve)."""
        return _object_or_404(data, object_id)

    @app.get("/api/cone", tags=["api"])
    def cone(ra: Annotated[float, Query(ge=0.0, lt=360.0, description="degrees")],
             dec: Annotated[float, Query(ge=-90.0, le=90.0, description="degrees")],
             radius: Annotated[float, Query(gt=0.0, le=MAX_RADIUS_ARCSEC,
                                            description="arcsec")] = 5.0
             ) -> list[dict[str, Any]]:
        """DiaObjects within ``radius`` arcsec of (ra, dec), nearest first."""
        return [{**_brief(o), "separation_arcsec": o["separation_arcsec"]}
                for o in data.cone(ra, dec, radius)]

    @app.get("/api/night", tags=["api"])
    def night() -> dict[str, Any]:
        """The night's reconciliation: per visit-detector, alerts at each hand-over."""
        rows = data.reconciliation()
        if settings.night_root is None or data.ledger() is None:
            raise HTTPException(404, "this portal serves no night (no ledger)")
        return {"night": str(settings.night_root), "matches": all(r.matches for r in rows),
                "visit_detectors": [asdict(r) for r in rows]}

    @app.get("/api/filters/check", tags=["api"])
    def check_filter(text: Annotated[str, Query(description="a filter expression")]
                     ) -> dict[str, Any]:
        """Compile a filter (nothing is activated): its error with line, column and position,
        or its yield on the night's alerts."""
        from alertbutler.portal.filters import check

        ledger = data.ledger()
        return check(text, None if ledger is None else ledger.alerts_path)

    @app.get("/api/live", tags=["api"], response_class=StreamingResponse)
    def live() -> StreamingResponse:
        """Server-sent events: ``ready``, then an ``alert`` event per alert published."""
        if not settings.bootstrap:
            raise HTTPException(503, "no live topic configured (kafka.bootstrap_servers)")
        from alertbutler.portal.live import alert_events

        return StreamingResponse(alert_events(settings, data.add_alerts),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @app.get("/objects/{object_id}/lightcurve.svg", tags=["images"],
             response_class=Response)
    def light_curve(object_id: Annotated[int, Path(ge=0)]) -> Response:
        from alertbutler.portal.render import light_curve_svg

        obj = _object_or_404(data, object_id)
        svg = light_curve_svg(obj["diaSources"], obj["diaForcedSources"],
                              title=f"DiaObject {object_id}")
        return Response(svg, media_type="image/svg+xml")

    @app.get("/cutouts/{source_id}/{kind}.png", tags=["images"], response_class=Response)
    def cutout(source_id: Annotated[int, Path(ge=0)], kind: str) -> Response:
        from alertbutler.portal.render import cutout_png

        if kind not in CUTOUTS:
            raise HTTPException(404, f"unknown cutout {kind!r} (one of {', '.join(CUTOUTS)})")
        stamp = data.cutout(source_id, kind)
        if stamp is None:
            raise HTTPException(404, f"no {kind} cutout of DiaSource {source_id}")
        return Response(cutout_png(stamp), media_type="image/png")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home() -> str:
        body = (pages.cone_form()
                + pages.objects_table("Most recently detected objects",
                                      data.latest_objects(50)))
        return pages.page("Objects", body)

    @app.get("/cone", response_class=HTMLResponse, include_in_schema=False)
    def cone_page(ra: str = "", dec: str = "", radius: str = "5") -> HTMLResponse:
        try:
            r, d, rad = float(ra), float(dec), float(radius)
            if not (0 <= r < 360 and -90 <= d <= 90 and 0 < rad <= MAX_RADIUS_ARCSEC):
                raise ValueError("out of range")
        except ValueError:
            body = (pages.cone_form(ra, dec, radius)
                    + f'<p role="alert">Not a cone: RA must be in [0, 360), Dec in [-90, 90] '
                    f"degrees and the radius in (0, {MAX_RADIUS_ARCSEC:g}] arcsec; got "
                    f"{html.escape(repr((ra, dec, radius)))}.</p>")
            return HTMLResponse(pages.page("Cone search", body), status_code=400)
        found = data.cone(r, d, rad)
        body = pages.cone_form(ra, dec, radius) + pages.objects_table(
            f"{len(found)} object(s) within {rad:g} arcsec", found, separation=True)
        return HTMLResponse(pages.page("Cone search", body))

    @app.get("/objects/{object_id}", response_class=HTMLResponse, include_in_schema=False)
    def object_page(object_id: Annotated[int, Path(ge=0)]) -> str:
        obj = _object_or_404(data, object_id)
        return pages.page(f"DiaObject {object_id}", pages.object_page(obj))

    @app.get("/night", response_class=HTMLResponse, include_in_schema=False)
    def night_page() -> str:
        ledger = data.ledger()
        stages = {} if ledger is None else {(e.visit, e.detector): e.stages
                                            for e in ledger.entries}
        root = None if ledger is None else str(ledger.root)
        return pages.page("Night", pages.night_page(root, data.reconciliation(), stages))

    @app.get("/filters", response_class=HTMLResponse, include_in_schema=False)
    def filters_page() -> str:
        body, script = pages.filter_page()
        return pages.page("Filter check", body, script=script)

    @app.get("/live", response_class=HTMLResponse, include_in_schema=False)
    def live_page() -> str:
        body, script = pages.live_page(settings.alert_topic if settings.bootstrap else None)
        return pages.page("Live alerts", body, script=script)

    return app


def _brief(o: dict[str, Any]) -> dict[str, Any]:
    return {"diaObjectId": o["diaObjectId"], "ra": o["ra"], "dec": o["dec"],
            "nDiaSources": o["nDiaSources"],
            "lastDiaSourceMjdTai": o.get("lastDiaSourceMjdTai")}


def _object_or_404(data: PortalData, object_id: int) -> dict[str, Any]:
    obj = data.object(object_id)
    if obj is None:
        raise HTTPException(404, f"no DiaObject {object_id} in the L1 database")
    return obj

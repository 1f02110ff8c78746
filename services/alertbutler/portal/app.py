"""The portal's ASGI application: REST API (with its OpenAPI description) and HTML pages.

Endpoints are plain functions over :class:`PortalData`; FastAPI runs them in its thread pool,
so a slow database query never blocks the live feed's event loop. The only writes are saved
filters (into the filter service's file) and watchlists, and they need an API token
(:mod:`alertbutler.portal.tokens`): 401 without one, 403 with one that is not known.
"""

from __future__ import annotations

import html
import pathlib
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from alertbutler.portal import pages
from alertbutler.portal.data import CUTOUTS, PortalData, PortalSettings

MAX_OBJECTS = 10_000
MAX_RADIUS_ARCSEC = 3600.0
MAX_SUBSCRIBE = 100_000


class FilterIn(BaseModel):
    """A filter to save (activate) under a name."""

    filter: str = Field(max_length=4000, description="a filter expression")
    topic: str | None = Field(default=None, description="where the service forwards what "
                              "it keeps (default: kept, or <source topic>-<name>)")


def create_app(settings: PortalSettings) -> FastAPI:
    """The portal over ``settings``' L1 database, night and live topic."""
    data = PortalData(settings)
    store = None
    if settings.state_dir is not None:
        from alertbutler.portal.tokens import TokenStore

        store = TokenStore(settings.state_dir / "tokens.json")

    def token(authorization: Annotated[str | None, Header()] = None) -> str:
        """The name of the request's API token: 401 without one, 403 if not known."""
        if store is None:
            raise HTTPException(403, "this portal has no token store: writes are off")
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise HTTPException(401, "an API token is needed (Authorization: Bearer TOKEN; "
                                "create one with `alertbutler token create NAME`)",
                                headers={"WWW-Authenticate": "Bearer"})
        name = store.check(value.strip())
        if name is None:
            raise HTTPException(403, "this API token is not known (revoked or mistyped)")
        return name

    def read_access(authorization: Annotated[str | None, Header()] = None) -> None:
        if not settings.open_reads:
            token(authorization)

    app = FastAPI(title="alertbutler portal", version="1",
                  description="The L1 database, a night's alerts and reconciliation, the live "
                  "alert topic, backfill-then-live subscriptions, filters and watchlists. "
                  "Writes need an API token (Authorization: Bearer).",
                  dependencies=[Depends(read_access)])
    app.state.data = data
    write = [Depends(token)]

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
        if settings.night_root is None or data.ledger() is None:
            raise HTTPException(404, "this portal serves no night (no ledger)")
        yields = data.filter_yields()
        rows = data.reconciliation(yields)
        return {"night": str(settings.night_root),
                "matches": all(r.matches for r in rows) and all(y.matches for y in yields),
                "visit_detectors": [asdict(r) for r in rows],
                "filters": [{**asdict(y), "matches": y.matches} for y in yields]}

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

    @app.get("/api/subscribe", tags=["api"], response_class=StreamingResponse)
    def subscribe(start: Annotated[str, Query(description="earliest, last:N, an ISO time or "
                                              "mjd:...")],
                  filter: Annotated[str, Query(max_length=4000)] = "",
                  limit: Annotated[int | None, Query(ge=1, le=MAX_SUBSCRIBE)] = None,
                  idle_timeout: Annotated[float, Query(gt=0, le=3600)] = 300.0,
                  archive: Annotated[bool, Query(description="serve the past from the "
                                                 "night's archive first")] = False,
                  ) -> StreamingResponse:
        """Backfill, then live: server-sent ``alert`` events from ``start`` (phase
        ``history``), one ``seam`` event with the offsets where the history ended, then
        live alerts (phase ``live``) with no gap and no duplicate; ``end`` after ``limit``
        alerts or ``idle_timeout`` seconds without one. With ``archive``, the served
        night's archive first, an ``archive_seam`` event, then the topic from its end."""
        from alertbutler.portal.filters import check
        from alertbutler.portal.live import backfill_events
        from alertbutler.subscribe import StartPositionError, parse_start
        from alertbutler.subscribe.filters import compile_filter

        if not settings.bootstrap:
            raise HTTPException(503, "no live topic configured (kafka.bootstrap_servers)")
        try:
            position = parse_start(start)
        except StartPositionError as exc:
            raise HTTPException(422, str(exc)) from None
        flt = None
        if filter.strip():
            checked = check(filter, None)
            if not checked["ok"]:
                raise HTTPException(422, checked["error"])
            flt = compile_filter(filter)
        archives: list[pathlib.Path] = []
        if archive:
            from alertbutler.subscribe.night_archive import ArchiveError, open_archives

            if settings.night_root is None:
                raise HTTPException(409, "no night is served: there is no archive to read")
            try:  # checked before the stream starts, so the answer can be an HTTP error
                open_archives([settings.night_root], [settings.alert_topic])
            except ArchiveError as exc:
                raise HTTPException(409, str(exc)) from None
            archives = [settings.night_root]
        return StreamingResponse(backfill_events(settings, position, flt, limit=limit,
                                                 idle_timeout=idle_timeout,
                                                 archives=archives),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @app.get("/api/filters", tags=["filters"])
    def list_filters() -> dict[str, Any]:
        """The filter service's filters and, from its status file, what is active and each
        filter's yield since it was activated."""
        from alertbutler.portal.filters import saved_filters

        return saved_filters(_filters_file())

    @app.put("/api/filters/{name}", tags=["filters"], dependencies=write)
    def put_filter(name: str, body: FilterIn) -> dict[str, Any]:
        """Check and save a filter; the running filter service applies it to the next batch
        it reads (no restart). 422 with the error's position if it does not compile."""
        from alertbutler.portal.filters import FilterSaveError, save_filter

        try:
            return save_filter(_filters_file(), name, body.filter, body.topic)
        except FilterSaveError as exc:
            raise HTTPException(422, exc.detail) from None

    @app.delete("/api/filters/{name}", tags=["filters"], dependencies=write)
    def remove_filter(name: str) -> dict[str, Any]:
        from alertbutler.portal.filters import delete_filter

        if not delete_filter(_filters_file(), name):
            raise HTTPException(404, f"no filter {name!r}")
        return {"deleted": name}

    def _filters_file() -> Any:
        if settings.filters_file is None:
            raise HTTPException(404, "no filter service file (alertbutler serve --filters "
                                "FILE)")
        return settings.filters_file

    def _watchlists() -> Any:
        from alertbutler.portal.watchlists import WatchlistStore

        if settings.state_dir is None:
            raise HTTPException(404, "this portal keeps no watchlists (no state directory)")
        cached = getattr(app.state, "watchlists", None)
        if cached is None:
            cached = app.state.watchlists = WatchlistStore(settings.state_dir / "watchlists")
        return cached

    def _watchlist(name: str) -> Any:
        from alertbutler.portal.watchlists import WatchlistError

        try:
            wl = _watchlists().load(name)
        except WatchlistError as exc:
            raise HTTPException(422, str(exc)) from None
        if wl is None:
            raise HTTPException(404, f"no watchlist {name!r}")
        return wl

    @app.get("/api/watchlists", tags=["watchlists"])
    def list_watchlists() -> list[dict[str, Any]]:
        store_ = _watchlists()
        out = []
        for n in store_.names():
            wl = store_.load(n)
            if wl is not None:
                out.append({"name": n, "positions": len(wl)})
        return out

    @app.put("/api/watchlists/{name}", tags=["watchlists"], dependencies=write,
             openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {
                 "schema": {"type": "string"}}}}})
    async def put_watchlist(name: str, request: Request) -> JSONResponse:
        """Upload a watchlist as CSV (header ``ra,dec,radius[,name]``: degrees, degrees,
        arcsec; at most 100,000 rows). 422 names each bad line; nothing is kept then."""
        import anyio

        from alertbutler.portal.watchlists import MAX_BYTES, WatchlistError, parse_csv

        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_BYTES:
                raise HTTPException(413, f"a watchlist is at most {MAX_BYTES:,} bytes")
        try:
            wl = await anyio.to_thread.run_sync(parse_csv, name, bytes(body))
        except WatchlistError as exc:
            return JSONResponse({"detail": "the watchlist was not accepted", "problems": [
                {"line": n, "message": m} for n, m in exc.problems]}, status_code=422)
        await anyio.to_thread.run_sync(_watchlists().save, wl)
        return JSONResponse({"name": name, "positions": len(wl)})

    @app.delete("/api/watchlists/{name}", tags=["watchlists"], dependencies=write)
    def delete_watchlist(name: str) -> dict[str, Any]:
        _watchlist(name)
        _watchlists().delete(name)
        return {"deleted": name}

    @app.get("/api/watchlists/{name}/matches", tags=["watchlists"])
    def watchlist_matches(name: str) -> dict[str, Any]:
        """Objects of the L1 database within a watchlist row's radius (through the
        database's HEALPix index), one entry per (object, row)."""
        wl = _watchlist(name)
        found = wl.history(data.db)
        return {"name": name, "positions": len(wl), "matches": [
            {**_brief(o), "watch": o["watch"], "separation_arcsec": o["separation_arcsec"]}
            for o in found]}

    @app.get("/api/watchlists/{name}/live", tags=["watchlists"],
             response_class=StreamingResponse)
    def watchlist_live(name: str) -> StreamingResponse:
        """Server-sent events: ``ready``, then a ``match`` for each arriving alert within a
        watchlist row's radius (with the row and the separation)."""
        if not settings.bootstrap:
            raise HTTPException(503, "no live topic configured (kafka.bootstrap_servers)")
        from alertbutler.portal.live import alert_events

        wl = _watchlist(name)
        return StreamingResponse(alert_events(settings, data.add_alerts, watchlist=wl),
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
        yields = data.filter_yields()
        return pages.page("Night", pages.night_page(root, data.reconciliation(yields), stages,
                                                    yields))

    @app.get("/filters", response_class=HTMLResponse, include_in_schema=False)
    def filters_page() -> str:
        from alertbutler.portal import forms

        body, script = pages.filter_page()
        more, active = forms.active_filters(settings.filters_file is not None)
        return pages.page("Filters", body + more, script=script + active)

    @app.get("/watchlists", response_class=HTMLResponse, include_in_schema=False)
    def watchlists_page() -> str:
        from alertbutler.portal import forms

        lists = list_watchlists() if settings.state_dir is not None else []
        body, script = forms.watchlists_page(lists, settings.state_dir is not None)
        return pages.page("Watchlists", body, script=script)

    @app.get("/watchlists/{name}", response_class=HTMLResponse, include_in_schema=False)
    def watchlist_page(name: str) -> str:
        from alertbutler.portal import forms

        found = watchlist_matches(name)
        body, script = forms.watchlist_page(name, found["positions"], found["matches"],
                                            bool(settings.bootstrap))
        return pages.page(f"Watchlist {name}", body, script=script)

    @app.get("/live", response_class=HTMLResponse, include_in_schema=False)
    def live_page(start: str = "") -> str:
        body, script = pages.live_page(settings.alert_topic if settings.bootstrap else None,
                                       start[:100])
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

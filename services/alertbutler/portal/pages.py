"""The portal's HTML: small server-rendered pages, escaped, with no third-party scripts.

Accessibility basics are part of the markup: a language, a skip link, landmarks, one ``h1``
per page, captions and header scopes on tables, labels on every input, alt text on every
image, and colours of at least 4.5:1 contrast (dark text on white, links #0b4f9c).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

STYLE = """
body{font-family:system-ui,sans-serif;color:#1a1a1a;background:#fff;margin:0;line-height:1.4}
a{color:#0b4f9c} header,main,footer{padding:0.5rem 1.5rem}
header{background:#102a43;color:#fff} header a{color:#fff;margin-right:1.2rem}
.skip{position:absolute;left:-999px} .skip:focus{left:0.5rem;top:0.5rem;background:#fff;color:#000}
table{border-collapse:collapse;margin:0.5rem 0 1rem} caption{text-align:left;font-weight:600}
th,td{border:1px solid #8a8a8a;padding:0.2rem 0.5rem;text-align:right}
th[scope=row],td.text{text-align:left} .bad{background:#fde2e1} .ok{background:#e3f5e1}
.cutouts img{image-rendering:pixelated;width:150px;height:150px;border:1px solid #555}
figure{display:inline-block;margin:0.3rem} figcaption{font-size:0.9rem}
label{margin-right:0.3rem} input{margin-right:1rem} form.write{margin:0.5rem 0 1rem}
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value: Any, digits: int = 6) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return esc(value)


def page(title: str, body: str, *, script: str = "") -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} · alertbutler</title><style>{STYLE}</style></head>
<body><a class="skip" href="#main">Skip to content</a>
<header><nav aria-label="Main"><a href="/">Objects</a><a href="/night">Night</a>
<a href="/live">Live alerts</a><a href="/filters">Filters</a>
<a href="/watchlists">Watchlists</a><a href="/docs">API</a>
</nav></header>
<main id="main"><h1>{esc(title)}</h1>
{body}</main>
<footer><p>alertbutler portal · writes need an API token ·
<a href="/openapi.json">OpenAPI description</a></p>
</footer>{script}</body></html>"""


def table(caption: str, columns: Sequence[str], body_rows: Iterable[Sequence[str]], *,
          row_classes: Iterable[str] | None = None, table_id: str = "") -> str:
    """A table; cells are already-escaped HTML."""
    head = "".join(f'<th scope="col">{esc(c)}</th>' for c in columns)
    classes = list(row_classes) if row_classes is not None else None
    out = []
    for i, cells in enumerate(body_rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return (f"<table{ident}><caption>{esc(caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(out)}</tbody></table>")


def object_link(object_id: Any) -> str:
    return f'<a href="/objects/{int(object_id)}">{int(object_id)}</a>'


def cone_form(ra: str = "", dec: str = "", radius: str = "5") -> str:
    return f"""<form action="/cone" method="get" role="search" aria-label="Cone search">
<label for="ra">RA (deg)</label><input id="ra" name="ra" required value="{esc(ra)}" size="10">
<label for="dec">Dec (deg)</label><input id="dec" name="dec" required value="{esc(dec)}"
 size="10">
<label for="radius">Radius (arcsec)</label><input id="radius" name="radius" value="{esc(radius)}"
 size="6"><button type="submit">Search</button></form>"""


def objects_table(caption: str, objects: Sequence[Mapping[str, Any]], *,
                  separation: bool = False) -> str:
    columns = ["diaObjectId", "RA (deg)", "Dec (deg)", "nDiaSources", "last detection (MJD)"]
    if separation:
        columns.append("separation (arcsec)")
    body = []
    for o in objects:
        cells = [object_link(o["diaObjectId"]), fmt(o["ra"], 9), fmt(o["dec"], 9),
                 fmt(o["nDiaSources"]), fmt(o.get("lastDiaSourceMjdTai"), 11)]
        if separation:
            cells.append(fmt(o["separation_arcsec"], 3))
        body.append(cells)
    if not body:
        return f"<p>{esc(caption)}: none.</p>"
    return table(caption, columns, body, table_id="objects")


def object_page(obj: Mapping[str, Any]) -> str:
    oid = int(obj["diaObjectId"])
    sources = obj["diaSources"]
    forced = obj["diaForcedSources"]
    bands = sorted({str(s.get("band")) for s in sources if s.get("band")})
    parts = [
        f"<p>Position: RA <span id=\"ra\">{fmt(obj['ra'], 10)}</span>°, Dec "
        f"<span id=\"dec\">{fmt(obj['dec'], 10)}</span>°; {len(sources)} detections, "
        f"{len(forced)} forced measurements. "
        f'<a href="/api/objects/{oid}">This object as JSON</a>.</p>',
        "<h2>Light curve</h2>",
        f'<img id="lightcurve" src="/objects/{oid}/lightcurve.svg" width="700" height="360" '
        f'alt="Light curve of DiaObject {oid}: difference-image PSF flux against time for '
        f"{len(sources)} detections and {len(forced)} forced measurements in band(s) "
        f'{esc(", ".join(bands) or "none")}">',
        "<h2>Detections</h2>",
    ]
    body = []
    for s in sources:
        sid = int(s["diaSourceId"])
        body.append([esc(sid), fmt(s["midpointMjdTai"], 11), esc(s.get("band")),
                     fmt(s["visit"]), fmt(s["detector"]), fmt(s.get("psfFlux")),
                     fmt(s.get("psfFluxErr")), fmt(s.get("snr"), 4),
                     " ".join(f'<a href="/cutouts/{sid}/{k}.png">{k[0]}</a>'
                              for k in ("science", "template", "difference"))
                     if s.get("hasCutouts") else "—"])
    parts.append(table("Detections (DiaSources)", [
        "diaSourceId", "MJD (TAI)", "band", "visit", "detector", "PSF flux (nJy)",
        "error (nJy)", "S/N", "cutouts"], body, table_id="history"))
    parts.append("<h2>Cutouts</h2>")
    for s in sources:
        sid = int(s["diaSourceId"])
        if not s.get("hasCutouts"):
            parts.append(f"<p>Detection {sid}: no cutouts in this portal's alert archive.</p>")
            continue
        figs = "".join(
            f'<figure><img src="/cutouts/{sid}/{kind}.png" '
            f'alt="{kind} cutout of detection {sid} (visit {int(s["visit"])}, band '
            f'{esc(s.get("band"))}), z-scaled with an asinh stretch">'
            f"<figcaption>{kind}</figcaption></figure>"
            for kind in ("science", "template", "difference"))
        parts.append(f'<section class="cutouts" aria-label="Cutouts of detection {sid}">'
                     f"<h3>Detection {sid}, MJD {fmt(s['midpointMjdTai'], 11)}</h3>{figs}"
                     "</section>")
    parts.append("<h2>Forced photometry</h2>")
    parts.append(table("Forced measurements (DiaForcedSources)", [
        "MJD (TAI)", "band", "visit", "detector", "PSF flux (nJy)", "error (nJy)"],
        [[fmt(f["midpointMjdTai"], 11), esc(f.get("band")), fmt(f["visit"]),
          fmt(f["detector"]), fmt(f.get("psfFlux")), fmt(f.get("psfFluxErr"))]
         for f in forced]))
    return "".join(parts)


def night_page(root: str | None, reconciliation: Sequence[Any],
               stages: Mapping[tuple[int, int], Mapping[str, float]],
               yields: Sequence[Any] = ()) -> str:
    if root is None:
        return "<p>No night: this portal was started without a night directory.</p>"
    bad = [r for r in reconciliation if not r.matches]
    verdict = ("<p id=\"verdict\" class=\"ok\">Every visit-detector's counts match.</p>"
               if not bad else
               f"<p id=\"verdict\" class=\"bad\">{len(bad)} visit-detector(s) do not match: "
               + "; ".join(esc(f"{r.label}: {', '.join(r.problems)}") for r in bad) + "</p>")
    names = sorted({k for s in stages.values() for k in s})
    body = []
    for r in reconciliation:
        st = stages.get((r.visit, r.detector), {})
        body.append([fmt(r.visit), fmt(r.detector), esc(r.reason), fmt(r.produced),
                     fmt(r.acknowledged), fmt(r.on_topic), fmt(r.in_l1db),
                     "ok" if r.matches else "MISMATCH",
                     *[_seconds(st.get(n)) for n in names]])
    return (f"<p>Night directory: <code>{esc(root)}</code></p>{verdict}"
            + table("Visit-detectors: alerts at each hand-over, and seconds per stage",
                    ["visit", "detector", "status", "produced", "acknowledged", "on topic",
                     "in L1 DB", "check", *[f"{n} (s)" for n in names]], body,
                    row_classes=["" if r.matches else "bad" for r in reconciliation],
                    table_id="reconciliation")
            + _filter_yields(yields))


def _filter_yields(yields: Sequence[Any]) -> str:
    """Each active filter of the filter service: the night's alerts it saw, kept, forwarded."""
    if not yields:
        return ""
    body = [[esc(y.name), esc(y.topic or "—"), fmt(y.before_activation), fmt(y.seen),
             fmt(y.kept), fmt(y.forwarded), fmt(y.not_read_yet),
             "ok" if y.matches else esc("MISMATCH: " + "; ".join(y.problems))]
            for y in yields]
    return table("Filters: the night's alerts each active filter saw, kept and forwarded",
                 ["filter", "topic", "before activation", "seen", "kept", "forwarded",
                  "not read yet", "check"], body,
                 row_classes=["" if y.matches else "bad" for y in yields],
                 table_id="filter-yields")


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


LIVE_SCRIPT = """<script>
const body = document.querySelector('#live tbody');
const state = document.querySelector('#live-state');
const start = document.querySelector('#start').value.trim();
const source = new EventSource(start ? '/api/subscribe?start=' + encodeURIComponent(start)
                                     : '/api/live');
source.addEventListener('ready', (e) => {
  state.textContent = 'Connected to ' + JSON.parse(e.data).topic + '; waiting for alerts.';
  document.body.dataset.live = 'ready';
});
source.addEventListener('seam', (e) => {
  const s = JSON.parse(e.data);
  state.textContent = 'History served (' + s.history_alerts + ' alerts); live from here.';
  document.body.dataset.seam = 'yes';
});
source.addEventListener('end', () => { source.close(); });
source.addEventListener('alert', (e) => {
  const a = JSON.parse(e.data);
  const row = document.createElement('tr');
  const cells = [a.diaSourceId, a.visit, a.detector, a.band, a.ra, a.dec, a.psfFlux, a.snr,
                 a.phase || 'live'];
  const link = document.createElement('td');
  if (a.diaObjectId) {
    const anchor = document.createElement('a');
    anchor.href = '/objects/' + a.diaObjectId; anchor.textContent = a.diaObjectId;
    link.appendChild(anchor);
  }
  row.appendChild(link);
  for (const c of cells) { const td = document.createElement('td');
    td.textContent = (c === null || c === undefined) ? '—' : String(c); row.appendChild(td); }
  body.prepend(row);
  while (body.rows.length > 200) body.deleteRow(-1);
  if (document.body.dataset.seam || !start) state.textContent = 'Latest alert: ' + a.diaSourceId;
});
source.addEventListener('problem', (e) => {
  state.textContent = 'Live stream problem: ' + JSON.parse(e.data).message;
});
source.onerror = () => { state.textContent = 'Disconnected from the alert stream; retrying.'; };
</script>"""


def live_page(topic: str | None, start: str = "") -> tuple[str, str]:
    if not topic:
        return ("<p>No live topic: set <code>kafka.bootstrap_servers</code> (and "
                "<code>kafka.alert_topic</code>) to the deployment's to watch its alerts.</p>",
                "")
    body = ('<form action="/live" method="get" aria-label="Start from the past">'
            '<label for="start">Start from (empty: only new alerts; earliest, last:N, an ISO '
            f'time or mjd:…)</label><input id="start" name="start" value="{esc(start)}" '
            'size="28"><button type="submit">Watch</button></form>'
            f'<p id="live-state" role="status" aria-live="polite">Connecting to '
            f"{esc(topic)}…</p>"
            + table("Latest alerts (newest first)", [
                "diaObjectId", "diaSourceId", "visit", "detector", "band", "RA (deg)",
                "Dec (deg)", "PSF flux (nJy)", "S/N", "from"], [], table_id="live"))
    return body, LIVE_SCRIPT


FILTER_SCRIPT = """<script>
const box = document.querySelector('#filter');
const result = document.querySelector('#filter-result');
let pending = null, asked = 0;
function show(text, r) {
  result.replaceChildren();
  if (!text.trim()) { result.textContent = 'Type a filter.'; return; }
  if (!r.ok) {
    const e = r.error;
    const p = document.createElement('p'); p.className = 'bad'; p.id = 'filter-error';
    p.textContent = 'Line ' + e.line + ', column ' + e.column + ': ' + e.message
      + (e.suggestion ? ' (' + e.suggestion + ')' : '');
    const pre = document.createElement('pre'); pre.id = 'filter-caret';
    pre.textContent = e.source_line + '\\n' + ' '.repeat(Math.max(0, e.column - 1)) + '^';
    result.append(p, pre); return;
  }
  const p = document.createElement('p'); p.className = 'ok'; p.id = 'filter-yield';
  const y = r.yield;
  p.textContent = y === null ? 'The filter compiles (no night to measure its yield on).'
    : 'The filter compiles and keeps ' + y.kept + ' of the night\\'s ' + y.alerts + ' alerts.';
  result.append(p);
}
async function ask() {
  const text = box.value, mine = ++asked;
  const r = await fetch('/api/filters/check?text=' + encodeURIComponent(text));
  const body = await r.json();
  if (mine === asked) show(text, body);  // only the latest answer is shown
}
box.addEventListener('input', () => { clearTimeout(pending); pending = setTimeout(ask, 250); });
</script>"""


def filter_page() -> tuple[str, str]:
    body = ("<p>Type a filter (see docs/subscribe.md for the language): it is checked as you "
            "type and, if it compiles, its yield on this night's alerts is shown. Nothing is "
            "activated until you save it below.</p>"
            '<label for="filter">Filter expression</label><br>'
            '<textarea id="filter" name="filter" rows="4" cols="80" spellcheck="false" '
            'aria-describedby="filter-result"></textarea>'
            '<div id="filter-result" role="status" aria-live="polite">Type a filter.</div>')
    return body, FILTER_SCRIPT

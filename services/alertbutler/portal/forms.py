"""The portal's pages that write: activating filters and uploading watchlists.

Both send the API token the user types (kept in the page only, never stored by it) as
``Authorization: Bearer``; the server's answer (saved, or the error with its line or
column) is shown in a live region. Every value from the server is put in the page as text
(``textContent``), never as HTML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from alertbutler.portal.pages import esc, fmt, object_link, table

ACTIVE_SCRIPT = """<script>
const activeBody = document.querySelector('#active tbody');
const saveState = document.querySelector('#save-state');
async function refresh() {
  const r = await fetch('/api/filters'); if (!r.ok) return;
  const s = await r.json(); const st = (s.service || {}).filters || {};
  activeBody.replaceChildren();
  for (const [name, f] of Object.entries(s.filters)) {
    const a = st[name] || {}; const row = document.createElement('tr');
    const running = a.filter === f.filter;
    const cells = [name, f.filter, running ? 'active' : 'waiting for the service',
      a.seen ?? '—', a.kept ?? '—',
      (a.fraction === null || a.fraction === undefined) ? '—' : (100 * a.fraction).toFixed(2) + '%',
      a.activated_at ? new Date(1000 * a.activated_at).toISOString() : '—'];
    for (const c of cells) { const td = document.createElement('td');
      td.textContent = String(c); row.appendChild(td); }
    activeBody.appendChild(row);
  }
  document.body.dataset.applied = s.applied ? 'yes' : 'no';
}
document.querySelector('#save').addEventListener('submit', async (e) => {
  e.preventDefault();
  const name = document.querySelector('#filter-name').value.trim();
  const r = await fetch('/api/filters/' + encodeURIComponent(name), {method: 'PUT',
    headers: {'Content-Type': 'application/json',
              'Authorization': 'Bearer ' + document.querySelector('#filter-token').value},
    body: JSON.stringify({filter: document.querySelector('#filter').value})});
  const b = await r.json();
  saveState.className = r.ok ? 'ok' : 'bad';
  saveState.textContent = r.ok ? 'Saved: the filter service applies it to its next batch.'
    : 'Not saved (' + r.status + '): ' + (typeof b.detail === 'string' ? b.detail
      : 'line ' + b.detail.line + ', column ' + b.detail.column + ': ' + b.detail.message);
  refresh();
});
refresh(); setInterval(refresh, 2000);
</script>"""


def active_filters(enabled: bool) -> tuple[str, str]:
    """The save form and the table of the filter service's filters with their live yield."""
    if not enabled:
        return ("<h2>Activate</h2><p>No filter service: start the portal with "
                "<code>--filters FILE</code> (the file <code>alertbutler filter serve</code> "
                "runs) to activate filters from here.</p>", "")
    body = ("<h2>Activate</h2>"
            '<form id="save" class="write" aria-label="Save and activate the filter">'
            '<label for="filter-name">Filter name</label>'
            '<input id="filter-name" name="name" required pattern="[A-Za-z0-9][A-Za-z0-9_.\\-]*"'
            ' size="20">'
            '<label for="filter-token">API token</label>'
            '<input id="filter-token" name="token" type="password" required size="30" '
            'autocomplete="off">'
            '<button type="submit">Save and activate</button></form>'
            '<p id="save-state" role="status" aria-live="polite"></p>'
            + table("The filter service's filters: yield since each was activated (live)",
                    ["name", "filter", "state", "alerts seen", "kept", "kept (%)",
                     "active since (UTC)"], [], table_id="active"))
    return body, ACTIVE_SCRIPT


UPLOAD_SCRIPT = """<script>
document.querySelector('#upload').addEventListener('submit', async (e) => {
  e.preventDefault();
  const state = document.querySelector('#upload-state');
  const file = document.querySelector('#csv').files[0];
  const name = document.querySelector('#wl-name').value.trim();
  const r = await fetch('/api/watchlists/' + encodeURIComponent(name), {method: 'PUT',
    headers: {'Content-Type': 'text/csv',
              'Authorization': 'Bearer ' + document.querySelector('#wl-token').value},
    body: file});
  const b = await r.json();
  state.replaceChildren();
  if (r.ok) { state.className = 'ok';
    state.textContent = 'Saved ' + b.positions + ' positions. ';
    const a = document.createElement('a');
    a.href = '/watchlists/' + encodeURIComponent(b.name); a.textContent = 'Its matches';
    state.appendChild(a); return; }
  state.className = 'bad';
  const p = document.createElement('p'); p.textContent = 'Not saved (' + r.status + '): '
    + (typeof b.detail === 'string' ? b.detail : 'the watchlist was not accepted');
  state.appendChild(p);
  const ul = document.createElement('ul');
  for (const x of (b.problems || [])) { const li = document.createElement('li');
    li.textContent = 'line ' + x.line + ': ' + x.message; ul.appendChild(li); }
  state.appendChild(ul);
});
</script>"""


def watchlists_page(lists: Sequence[Mapping[str, Any]], writable: bool) -> tuple[str, str]:
    rows = [[f'<a href="/watchlists/{esc(w["name"])}">{esc(w["name"])}</a>',
             fmt(w["positions"])] for w in lists]
    body = ("<p>A watchlist is a CSV file with the header <code>ra,dec,radius</code> "
            "(degrees, degrees, arcsec) and optionally <code>name</code>: up to 100,000 "
            "positions. Its matches are the L1 database's objects within a position's "
            "radius, and the alerts that arrive there.</p>"
            + (table("Watchlists", ["name", "positions"], rows, table_id="watchlists")
               if rows else "<p>No watchlists yet.</p>"))
    if not writable:
        return body, ""
    body += ("<h2>Upload</h2>"
             '<form id="upload" class="write" aria-label="Upload a watchlist">'
             '<label for="wl-name">Name</label><input id="wl-name" name="name" required '
             'size="20"><label for="csv">CSV file</label><input id="csv" name="csv" '
             'type="file" accept=".csv,text/csv" required>'
             '<label for="wl-token">API token</label><input id="wl-token" name="token" '
             'type="password" required size="30" autocomplete="off">'
             '<button type="submit">Upload</button></form>'
             '<div id="upload-state" role="status" aria-live="polite"></div>')
    return body, UPLOAD_SCRIPT


LIVE_MATCH_SCRIPT = """<script>
const body = document.querySelector('#live-matches tbody');
const state = document.querySelector('#live-state');
const source = new EventSource('/api/watchlists/'
  + encodeURIComponent(state.dataset.watchlist) + '/live');
source.addEventListener('ready', () => { state.textContent = 'Watching the alert stream.';
  document.body.dataset.live = 'ready'; });
source.addEventListener('match', (e) => {
  const m = JSON.parse(e.data); const row = document.createElement('tr');
  for (const c of [m.watch.row, m.watch.name, m.diaObjectId, m.diaSourceId,
                   m.separation_arcsec.toFixed(3)]) {
    const td = document.createElement('td'); td.textContent = c ?? '—'; row.appendChild(td); }
  body.prepend(row); state.textContent = 'Latest match: alert ' + m.diaSourceId;
});
source.addEventListener('problem', (e) => {
  state.textContent = 'Live stream problem: ' + JSON.parse(e.data).message; });
</script>"""


def watchlist_page(name: str, n: int, matches: Sequence[Mapping[str, Any]],
                   live: bool) -> tuple[str, str]:
    rows = [[fmt(m["watch"]["row"]), esc(m["watch"]["name"] or "—"),
             object_link(m["diaObjectId"]), fmt(m["ra"], 9), fmt(m["dec"], 9),
             fmt(m["separation_arcsec"], 3), fmt(m["watch"]["radius_arcsec"], 3),
             fmt(m["nDiaSources"])] for m in matches]
    body = (f"<p>{n:,} positions. <a href=\"/api/watchlists/{esc(name)}/matches\">These "
            "matches as JSON</a>.</p>"
            + (table(f"{len(rows)} match(es) in the L1 database", [
                "row", "name", "diaObjectId", "RA (deg)", "Dec (deg)", "separation (arcsec)",
                "radius (arcsec)", "nDiaSources"], rows, table_id="matches")
               if rows else "<p>No object of the L1 database lies within a position's "
               "radius.</p>"))
    if not live:
        return body + "<p>No live topic: matches of arriving alerts are not shown.</p>", ""
    body += ("<h2>Arriving alerts</h2>"
             f'<p id="live-state" role="status" aria-live="polite" '
             f'data-watchlist="{esc(name)}">Connecting…</p>'
             + table("Alerts matching this watchlist as they arrive (newest first)",
                     ["row", "name", "diaObjectId", "diaSourceId", "separation (arcsec)"], [],
                     table_id="live-matches"))
    return body, LIVE_MATCH_SCRIPT

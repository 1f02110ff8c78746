"""The portal as a person uses it: headless Chromium (Debian's) driven by Playwright.

Screenshots of each page are kept under the test's tmp directory. Skips, saying why, only
when chromium or Playwright is not installed (``make test`` installs both: .ci/chromium.sh).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alertbutler.night.main_job import MainJobResult
from tests.portal.conftest import Server, night_dir

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 120_000  # a generous bound on a busy machine; correctness never waits on it

#: WCAG 2 contrast of every text element against its first opaque ancestor background,
#: images with empty alt text, and form controls without a label.
A11Y_CHECK = """() => {
  const lum = (c) => { const v = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map((x) => {
      x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
  const opaque = (c) => { const m = c.match(/[\\d.]+/g); return m && (m.length < 4 || +m[3] > 0); };
  const problems = [];
  if (!document.documentElement.lang) problems.push('no lang');
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.offsetParent === null) continue;
    let bg = null; for (let p = el; p; p = p.parentElement) {
      const c = getComputedStyle(p).backgroundColor; if (opaque(c)) { bg = c; break; } }
    const a = lum(getComputedStyle(el).color), b = lum(bg || 'rgb(255,255,255)');
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5)
      problems.push('contrast ' + ratio.toFixed(2) + ': ' + el.textContent.trim().slice(0, 40));
  }
  for (const img of document.images) if (!img.alt.trim()) problems.push('no alt: ' + img.src);
  for (const input of document.querySelectorAll('input, select, textarea'))
    if (!input.labels || !input.labels.length) problems.push('no label: ' + input.name);
  return problems;
}"""


def _browser_missing() -> str | None:
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        return f"Debian's chromium is not installed ({CHROMIUM}); run .ci/chromium.sh"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _browser_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    try:
        yield pg
    finally:
        context.close()


def _shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "screenshots"


def _screenshot(pg: Any, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    out = _shots(tmp_path_factory)
    out.mkdir(exist_ok=True)
    path = out / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    return path


def _accessible(pg: Any) -> None:
    assert pg.evaluate(A11Y_CHECK) == []


def _loaded(pg: Any, selector: str) -> int:
    """How many images matching ``selector`` have decoded (naturalWidth > 0)."""
    pg.wait_for_function(f"""() => [...document.querySelectorAll({selector!r})]
        .every((i) => i.complete)""")
    return int(pg.evaluate(f"""() => [...document.querySelectorAll({selector!r})]
        .filter((i) => i.naturalWidth > 0).length"""))


def test_object_page_shows_the_light_curve_and_cutouts(
        page: Any, portal: Server, portal_night: MainJobResult,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    alert = max(portal_night.alerts, key=lambda a: len(a["prvDiaSources"] or []))
    oid = alert["diaSource"]["diaObjectId"]
    page.goto(f"{portal.url}/objects/{oid}")
    assert page.locator("h1").inner_text() == f"DiaObject {oid}"
    assert _loaded(page, "#lightcurve") == 1
    n_detections = page.locator("#history tbody tr").count()
    assert n_detections >= 2
    assert _loaded(page, ".cutouts img") == 3 * n_detections
    assert page.get_by_alt_text(f"difference cutout of detection {alert['diaSourceId']}",
                                exact=False).count() == 1
    _accessible(page)
    _screenshot(page, tmp_path_factory, "object")


def test_cone_search_finds_an_injected_transient(
        page: Any, portal: Server, portal_night: MainJobResult,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    from astropy.table import Table

    truth = Table.read(night_dir(portal_night) / "truth.ecsv")
    transients = truth[truth["kind"] == "transient"]
    # An injected transient that was alerted: the alert nearest to its true position.
    pairs = [(_sep(float(t["ra"]), float(t["dec"]), a["diaSource"]["ra"],
                   a["diaSource"]["dec"]), t, a) for t in transients
             for a in portal_night.alerts]
    sep, row, alert = min(pairs, key=lambda p: p[0])
    assert sep < 0.5
    page.goto(portal.url + "/")
    _accessible(page)
    _screenshot(page, tmp_path_factory, "home")
    page.get_by_label("RA (deg)").fill(repr(float(row["ra"])))
    page.get_by_label("Dec (deg)").fill(repr(float(row["dec"])))
    page.get_by_label("Radius (arcsec)").fill("1")
    page.get_by_role("button", name="Search").click()
    page.wait_for_selector("#objects")
    links = page.locator("#objects a").all_inner_texts()
    assert str(alert["diaSource"]["diaObjectId"]) in links
    _accessible(page)
    _screenshot(page, tmp_path_factory, "cone")


def _sep(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Separation in arcsec (small angles)."""
    import math

    dra = (ra1 - ra2) * math.cos(math.radians(dec1))
    return math.hypot(dra, dec1 - dec2) * 3600.0


def test_night_page_shows_the_reconciliation(
        page: Any, portal: Server, tmp_path_factory: pytest.TempPathFactory) -> None:
    page.goto(portal.url + "/night")
    assert "counts match" in page.locator("#verdict").inner_text()
    assert page.locator("#reconciliation tbody tr").count() == 6
    _accessible(page)
    _screenshot(page, tmp_path_factory, "night")


def test_filter_check_shows_the_caret_then_the_yield(
        page: Any, portal: Server, portal_night: MainJobResult,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    from alertbutler.subscribe.filters import compile_filter

    page.goto(portal.url + "/filters")
    box = page.get_by_label("Filter expression")
    box.fill("diaSource.snr >> 5")
    caret = page.wait_for_selector("#filter-caret")
    source, marker = caret.inner_text().split("\n")[:2]
    assert source == "diaSource.snr >> 5" and marker == " " * 15 + "^"  # column 16
    assert "column 16" in page.locator("#filter-error").inner_text()
    _accessible(page)
    _screenshot(page, tmp_path_factory, "filter-error")

    text = "diaSource.snr > 20 and diaSource.band == 'g'"
    box.fill(text)
    expected = int(compile_filter(text).keep(portal_night.alerts).sum())
    shown = page.wait_for_selector("#filter-yield").inner_text()
    assert f"keeps {expected} of the night's {len(portal_night.alerts)} alerts" in shown
    _accessible(page)
    _screenshot(page, tmp_path_factory, "filter-yield")


def test_live_page_shows_alerts_as_they_arrive(
        page: Any, portal_night: MainJobResult, kafka_bootstrap: str, tmp_path: Path,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    from confluent_kafka import Producer

    from alertbutler.alerts import encode_alert
    from alertbutler.alerts.fake import fake_alerts
    from alertbutler.kafka import create_topics

    topic = f"portal-live-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {topic: 2})
    server = Server(night_dir(portal_night).parent, tmp_path / "serve.log", env={
        "ALERTBUTLER_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ALERTBUTLER_KAFKA__ALERT_TOPIC": topic})
    try:
        page.goto(server.url + "/live")
        page.wait_for_selector("body[data-live=ready]")
        alerts = fake_alerts(3, seed=7, cutout_size=32)
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        for a in alerts:
            producer.produce(topic, encode_alert(a))
        assert producer.flush(60) == 0
        page.wait_for_function("document.querySelectorAll('#live tbody tr').length >= 3")
        shown = page.locator("#live tbody tr td:nth-child(2)").all_inner_texts()
        assert sorted(shown) == sorted(str(a["diaSourceId"]) for a in alerts)
        _accessible(page)
        _screenshot(page, tmp_path_factory, "live")
    finally:
        server.stop()


def test_live_page_serves_the_past_then_live(
        page: Any, portal_night: MainJobResult, kafka_bootstrap: str, tmp_path: Path,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """``/live?start=earliest``: the alerts already on the topic (history), the seam, then
    alerts published after it (live), each once."""
    from confluent_kafka import Producer

    from alertbutler.alerts import encode_alert
    from alertbutler.alerts.fake import fake_alerts
    from alertbutler.kafka import create_topics

    topic = f"portal-backfill-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {topic: 2})
    alerts = fake_alerts(5, seed=8, cutout_size=32)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for a in alerts[:3]:
        producer.produce(topic, encode_alert(a))
    assert producer.flush(60) == 0
    server = Server(night_dir(portal_night).parent, tmp_path / "serve.log", env={
        "ALERTBUTLER_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ALERTBUTLER_KAFKA__ALERT_TOPIC": topic})
    try:
        page.goto(server.url + "/live")
        page.get_by_role("textbox", name="Start from", exact=False).fill("earliest")
        page.get_by_role("button", name="Watch").click()
        page.wait_for_selector("body[data-seam=yes]")
        for a in alerts[3:]:
            producer.produce(topic, encode_alert(a))
        assert producer.flush(60) == 0
        page.wait_for_function("document.querySelectorAll('#live tbody tr').length >= 5")
        rows = [r.split("\t") for r in page.locator("#live tbody tr").all_inner_texts()]
        got = {(cells[1], cells[-1]) for cells in rows}
        assert len(rows) == 5 and got == (
            {(str(a["diaSourceId"]), "history") for a in alerts[:3]}
            | {(str(a["diaSourceId"]), "live") for a in alerts[3:]})
        _accessible(page)
        _screenshot(page, tmp_path_factory, "live-backfill")
    finally:
        server.stop()

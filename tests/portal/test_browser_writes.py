"""The writing pages in headless Chromium: a filter saved and activated with a token (a
wrong token refused), a watchlist with a bad line refused naming it, a good one uploaded
and its matches in the night's L1 database shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from alertbutler.night.main_job import MainJobResult
from alertbutler.portal import PortalSettings
from alertbutler.portal.tokens import TokenStore
from alertbutler.prompt.ledger import read_ledger
from tests.portal.conftest import night_dir
from tests.portal.served import Served
from tests.portal.test_browser import _accessible, _screenshot, browser, page  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture
def writable(portal_night: MainJobResult, tmp_path: Path) -> Any:
    root = night_dir(portal_night)
    filters = tmp_path / "filters.yaml"
    filters.write_text(yaml.safe_dump({"source": "kafka://127.0.0.1:9/alerts",
                                       "group": "portal-test", "filters": {}}))
    state = tmp_path / "portal"
    token = TokenStore(state / "tokens.json").create("browser")
    settings = PortalSettings(l1db_url=read_ledger(root).l1db_url, night_root=root,
                              state_dir=state, filters_file=filters)
    with Served(settings) as served:
        yield served, token, filters


def test_filter_saved_with_a_token(page: Any, writable: Any,  # noqa: F811
                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    served, token, filters = writable
    page.goto(served.url + "/filters")
    page.get_by_label("Filter expression").fill("diaSource.snr > 20")
    page.wait_for_selector("#filter-yield")
    page.get_by_label("Filter name").fill("bright")
    page.get_by_label("API token").fill(token + "x")
    page.get_by_role("button", name="Save and activate").click()
    page.wait_for_function("document.querySelector('#save-state').textContent"
                           ".includes('Not saved (403)')")
    assert "bright" not in (yaml.safe_load(filters.read_text())["filters"] or {})
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Save and activate").click()
    page.wait_for_function("document.querySelector('#save-state').textContent"
                           ".startsWith('Saved')")
    page.wait_for_function("document.querySelectorAll('#active tbody tr').length == 1")
    row = page.locator("#active tbody tr td").all_inner_texts()
    assert row[:3] == ["bright", "diaSource.snr > 20", "waiting for the service"]
    saved = yaml.safe_load(filters.read_text())["filters"]["bright"]
    assert saved == {"filter": "diaSource.snr > 20", "topic": "alerts-bright"}
    _accessible(page)
    _screenshot(page, tmp_path_factory, "filter-activate")


def test_watchlist_upload_and_matches(page: Any, writable: Any,  # noqa: F811
                                      portal_night: MainJobResult, tmp_path: Path,
                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    served, token, _ = writable
    page.goto(served.url + "/watchlists")
    page.get_by_label("Name").fill("night")
    page.get_by_label("API token").fill(token)
    bad = b"ra,dec,radius\n10,20,1\n10,95,1\n"
    page.get_by_label("CSV file").set_input_files(
        files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": bad}])
    page.get_by_role("button", name="Upload").click()
    page.wait_for_selector("#upload-state li")
    assert page.locator("#upload-state li").all_inner_texts() == [
        "line 3: dec 95 is outside [-90, 90] degrees"]
    _accessible(page)
    _screenshot(page, tmp_path_factory, "watchlist-error")

    alerts = sorted(portal_night.alerts, key=lambda a: a["diaSourceId"])[:5]
    good = "name,ra,dec,radius\n" + "".join(
        f"src{i},{float(a['diaSource']['ra'])!r},{float(a['diaSource']['dec'])!r},1.5\n"
        for i, a in enumerate(alerts))
    page.get_by_label("CSV file").set_input_files(
        files=[{"name": "good.csv", "mimeType": "text/csv", "buffer": good.encode()}])
    page.get_by_role("button", name="Upload").click()
    page.get_by_role("link", name="Its matches").click()
    page.wait_for_selector("#matches")
    shown = set(page.locator("#matches tbody tr td:nth-child(3)").all_inner_texts())
    assert {str(a["diaSource"]["diaObjectId"]) for a in alerts} <= shown
    _accessible(page)
    _screenshot(page, tmp_path_factory, "watchlist")

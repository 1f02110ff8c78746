"""API tokens: writes need one (401 without, 403 with an unknown or revoked one); reads stay
open on loopback and need one off it; only the token's hash is stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alertbutler.cli import main
from alertbutler.l1db import L1db
from alertbutler.portal import PortalSettings
from alertbutler.portal.tokens import TokenStore
from tests.portal.served import Served

CSV = b"ra,dec,radius\n10.0,-5.0,2.0\n"


def test_writes_need_a_known_token(tmp_path: Path, sqlite_url: str,
                                   capsys: pytest.CaptureFixture) -> None:
    L1db.create(sqlite_url).close()
    data_dir = tmp_path / "data"
    env_args = ["--config", str(_config(tmp_path, data_dir))]
    assert main([*env_args, "token", "create", "alice"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("abt_") and len(token) > 40
    stored = (data_dir / "portal" / "tokens.json").read_text()
    assert token not in stored and json.loads(stored)["alice"]["sha256"]
    assert (data_dir / "portal" / "tokens.json").stat().st_mode & 0o077 == 0
    assert main([*env_args, "token", "create", "bad name!"]) == 2

    settings = PortalSettings(l1db_url=sqlite_url, state_dir=data_dir / "portal")
    with Served(settings) as portal:
        assert portal.request("GET", "/api/watchlists") == (200, [])  # reads are open
        status, body = portal.request("PUT", "/api/watchlists/w1", body=CSV,
                                      content_type="text/csv")
        assert status == 401 and "Bearer" in body["detail"]
        status, _ = portal.request("PUT", "/api/watchlists/w1", body=CSV,
                                   content_type="text/csv", token=token[:-1] + "x")
        assert status == 403
        assert portal.request("PUT", "/api/watchlists/w1", body=CSV, content_type="text/csv",
                              token=token) == (200, {"name": "w1", "positions": 1})
        assert portal.request("DELETE", "/api/watchlists/w1")[0] == 401
        assert main([*env_args, "token", "revoke", "alice"]) == 0
        assert portal.request("DELETE", "/api/watchlists/w1", token=token)[0] == 403
        # writes of filters need it too, before anything else is looked at
        assert portal.request("PUT", "/api/filters/f", body={"filter": "snr > 5"})[0] == 401

    # off loopback (open_reads False) a read needs a token as well
    other = TokenStore(data_dir / "portal" / "tokens.json").create("bob")
    closed = PortalSettings(l1db_url=sqlite_url, state_dir=data_dir / "portal",
                            open_reads=False)
    with Served(closed) as portal:
        assert portal.request("GET", "/api/watchlists")[0] == 401
        assert portal.request("GET", "/api/watchlists", token="abt_nope")[0] == 403
        assert portal.request("GET", "/api/watchlists", token=other)[0] == 200


def _config(tmp_path: Path, data_dir: Path) -> Path:
    path = tmp_path / "alertbutler.toml"
    path.write_text(f'[general]\ndata_dir = "{data_dir}"\n')
    return path

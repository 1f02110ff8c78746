"""One bad header value among good raws (issue 15, defect 6): the bad file is named with its
keyword and value, the good files are ingested, nothing of the bad one stays registered, and
the CLI exits non-zero."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from alertbutler.butler import Butler
from alertbutler.butler.testing import write_raw

DATE = "2026-11-20T04:00:00"


def _patch(path: Path, old: bytes, new: bytes) -> Path:
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new.ljust(len(old)) if len(new) < len(old) else new))
    return path


def _exptime_inf(path: Path) -> Path:
    write_raw(path, exposure=3003, detector=0, date=DATE)
    data = path.read_bytes()
    i = data.index(b"EXPTIME =")
    path.write_bytes(data[:i] + b"EXPTIME =                  inf".ljust(80) + data[i + 80:])
    return path


BAD: dict[str, tuple[Callable[[Path], Path], str]] = {
    "expid-1e25": (lambda p: write_raw(p, exposure=3001, detector=0, date=DATE,
                                       extra={"EXPID": 1e25}),
                   "EXPID=1e+25 does not fit in 64 bits"),
    "year-9999": (lambda p: write_raw(p, exposure=3002, detector=0,
                                      date="9999-12-31T23:00:00"),
                  "DATE-OBS='9999-12-31T23:00:00'"),
    "exptime-inf": (_exptime_inf, "EXPTIME is not valid FITS ('EXPTIME =                  inf')"),
    "nul-in-card": (lambda p: _patch(write_raw(p, exposure=3004, detector=0, date=DATE,
                                               physical_filter="rxsim"), b"'rxsim", b"'r\x00sim"),
                    "FILTER is not valid FITS"),
    "unknown-timesys": (lambda p: write_raw(p, exposure=3005, detector=0, date=DATE,
                                            extra={"TIMESYS": "MARS"}),
                        "TIMESYS='MARS' is not a time scale"),
    "ra-text": (lambda p: write_raw(p, exposure=3006, detector=0, date=DATE,
                                   extra={"RA": "nowhere"}),
               "RA='nowhere' is not a number"),
}


def _records(butler: Butler) -> dict[str, list[object]]:
    return {e: sorted(str(r.values) for r in butler.query_dimension_records(e))
            for e in ("instrument", "physical_filter", "day_obs", "exposure")}


def _goods(tmp_path: Path) -> list[Path]:
    src = tmp_path / "incoming"
    src.mkdir(exist_ok=True)
    return [write_raw(src / f"good_{det}.fits", exposure=3000, detector=det, date=DATE)
            for det in range(2)]


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_value_rejects_its_file_only(registry_url: str, tmp_path: Path, case: str
                                           ) -> None:
    make, why = BAD[case]
    with Butler.create(tmp_path / "repo", registry_url=registry_url) as butler:
        _check_one(butler, tmp_path, make, why)


def _check_one(butler: Butler, tmp_path: Path, make: Callable[[Path], Path], why: str) -> None:
    good = _goods(tmp_path)
    bad = make(tmp_path / "incoming" / "bad.fits")
    result = butler.ingest([good[0], bad, good[1]], run="raw/night1")
    assert [str(p) for p, _ in result.failures] == [str(bad)]
    message = result.failures[0][1]
    assert str(bad) in message and why in message
    assert sorted(r.data_id["detector"] for r in result.refs) == [0, 1]
    # nothing of the bad file stays: the registry holds exactly what the good files need
    clean = Butler.create(tmp_path / "clean")
    try:
        clean.ingest(good, run="raw/night1")
        assert _records(butler) == _records(clean)
    finally:
        clean.close()
    assert len(butler.query_datasets("raw", "raw/night1")) == 2


def test_the_cli_names_every_bad_file_and_exits_non_zero(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from alertbutler.cli import main

    good = _goods(tmp_path)
    bads = [BAD[c][0](tmp_path / "incoming" / f"{c}.fits") for c in sorted(BAD)]
    Butler.create(tmp_path / "repo").close()
    rc = main(["butler", "ingest", "--run", "raw/night1", str(tmp_path / "repo"),
               *map(str, [good[0], *bads, good[1]])])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "ingested 2 file(s)" in out
    for case in sorted(BAD):
        assert f"{case}.fits: header keyword {BAD[case][1]}" in err
    assert f"{len(bads)} of {len(bads) + 2} file(s) rejected" in err

"""Comparison of alert sets on constructed sets: fake alerts with known perturbations."""

from __future__ import annotations

import copy
import io

import pytest
from rich.console import Console

from alertbutler.alerts.fake import fake_alerts
from alertbutler.replay.compare import compare_alerts, html_section, print_comparison


@pytest.fixture(scope="module")
def recorded() -> list[dict]:
    return fake_alerts(40, seed=11, n_objects=15, cutout_size=30, n_history=4, cutout_pool=2)


def test_identical_sets_have_zero_differences(recorded: list[dict]) -> None:
    result = compare_alerts(recorded, copy.deepcopy(list(reversed(recorded))))
    assert result.differences == 0 and result.unchanged == 40 and not result.fields
    assert "0 differences" in html_section(result)


def test_new_missing_and_changed_with_amounts(recorded: list[dict]) -> None:
    replayed = copy.deepcopy(recorded)
    missing = [replayed.pop(3)["diaSourceId"], replayed.pop(10)["diaSourceId"]]
    extra = fake_alerts(2, seed=12, cutout_size=None, n_history=1)
    replayed.extend(extra)
    deltas = {0: 1.5, 5: -4.0, 7: 0.25}  # indices into replayed
    for i, d in deltas.items():
        replayed[i]["diaSource"]["psfFlux"] += d
    replayed[8]["diaObject"]["ra"] += 1e-6
    replayed[9]["cutoutDifference"] = b"not the same cutout"
    replayed[11]["prvDiaSources"] = replayed[11]["prvDiaSources"][:-1]
    replayed[12]["diaSource"]["band"] = "y" if replayed[12]["diaSource"]["band"] != "y" \
        else "u"

    result = compare_alerts(recorded, replayed)
    assert sorted(result.missing) == sorted(missing)
    assert result.new == sorted(a["diaSourceId"] for a in extra)
    changed_ids = {replayed[i]["diaSourceId"] for i in (0, 5, 7, 8, 9, 11, 12)}
    assert set(result.changed) == changed_ids
    assert result.differences == 2 + 2 + 7

    flux = result.fields["diaSource.psfFlux"]
    assert flux.changed == 3
    assert flux.max_abs == pytest.approx(4.0)
    assert flux.mean_abs == pytest.approx((1.5 + 4.0 + 0.25) / 3)
    assert result.fields["diaObject.ra"].max_abs == pytest.approx(1e-6, rel=1e-3)
    assert result.fields["cutoutDifference"].changed == 1
    assert result.fields["cutoutDifference"].mean_abs is None  # not a number
    assert result.fields["prvDiaSources[].length"].max_abs == 1
    assert result.fields["diaSource.band"].changed == 1
    assert result.changed[replayed[0]["diaSourceId"]] == ["diaSource.psfFlux"]

    out = io.StringIO()
    print_comparison(result, Console(file=out, width=120))
    text = out.getvalue()
    assert "diaSource.psfFlux" in text and "differences" in text and "11" in text
    section = html_section(result)
    assert "<section" in section and "diaSource.psfFlux" in section
    assert str(missing[0]) in section and "11 alerts differ" in section


def test_ignore_patterns_and_tolerance(recorded: list[dict]) -> None:
    replayed = copy.deepcopy(recorded)
    for alert in replayed:
        alert["diaSource"]["timeProcessedMjdTai"] += 0.01
    replayed[1]["diaSource"]["psfFlux"] *= 1 + 1e-9
    assert compare_alerts(recorded, replayed).differences == 40
    result = compare_alerts(recorded, replayed, ignore=["*.timeProcessedMjdTai"],
                            rel_tol=1e-6)
    assert result.differences == 0


def test_position_matching_sees_through_shifted_ids() -> None:
    """A new detection renumbers the sources after it: by id everything after it "changed",
    by position exactly one alert is new."""
    recorded = fake_alerts(8, seed=13, visit=7, detector=3, cutout_size=None, n_history=1)
    extra = copy.deepcopy(recorded[2])
    extra["diaSource"]["ra"] += 0.01  # elsewhere on the detector
    replayed = copy.deepcopy(recorded)
    replayed.insert(3, extra)
    ids = [a["diaSourceId"] for a in recorded] + [recorded[-1]["diaSourceId"] + 1]
    for alert, ident in zip(replayed, ids, strict=True):  # sources numbered in order again
        alert["diaSourceId"] = alert["diaSource"]["diaSourceId"] = ident
    by_id = compare_alerts(recorded, replayed)
    assert len(by_id.changed) == 5 and len(by_id.new) == 1 and not by_id.missing
    assert by_id.fields["diaSource.ra"].max_abs > 1e-3

    by_pos = compare_alerts(recorded, replayed, match="position", radius_arcsec=0.5)
    assert by_pos.match == "position"
    assert by_pos.new == [ids[3]] and not by_pos.missing and not by_pos.changed
    assert by_pos.differences == 1
    with pytest.raises(ValueError, match="match"):
        compare_alerts(recorded, replayed, match="name")

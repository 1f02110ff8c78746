"""The filter language: grammar table, refusals with positions, results vs brute force."""

from __future__ import annotations

import numpy as np
import pytest

from alertbutler.subscribe.filters import (
    MAX_DEPTH,
    MAX_LENGTH,
    FilterError,
    FilterSet,
    compile_filter,
)
from alertbutler.subscribe.testing import sample_filters, varied_alerts
from tests.subscribe.reference import reference_keep


@pytest.fixture(scope="module")
def alerts() -> list[dict]:
    return varied_alerts(600, seed=3)


# (text, None when accepted, or (fragment of the message, column of the problem))
GRAMMAR_TABLE: list[tuple[str, tuple[str, int] | None]] = [
    ("diaSource.snr > 5", None),
    ("diaSource.snr >= 5.5e0 and diaSource.snr <= 1e3", None),
    ("band == 'g'", None),
    ('band != "g"', None),
    ("band in ['g', 'r', 'i']", None),
    ("band not in ['u']", None),
    ("diaSource.diaSourceId in [1, 2, 3]", None),
    ("diaObject.nDiaSources - 1 > -3 * 2 / 4 + 1", None),
    ("-diaSource.psfFlux < 0", None),
    ("not diaSource.snr > 5", None),
    ("not (diaSource.snr > 5 or band == 'r') and true", None),
    ("diaObject is null or diaObject.nDiaSources is not null", None),
    ("diaSource.isDipole == false", None),
    ("diaSource.isDipole", None),
    ("cutoutDifference is not null", None),
    ("count(prvDiaSources) >= 3", None),
    ("count(prvDiaSources where band == 'g' and snr > 5) >= 2", None),
    ("min(prvDiaSources.psfFlux) > 0 and max(prvDiaSources.snr where band == 'r') < 50", None),
    ("mean(prvDiaSources.psfFlux where band in ['g', 'r']) > sum(prvDiaSources.snr)", None),
    ("count(prvDiaForcedSources where psfFlux > 0) > 1", None),
    ("within(150.0, -30.0, 3600)", None),
    ("days_since_first_detection() < 30", None),
    ("abs(diaSource.psfFlux) > sqrt(diaSource.psfFluxErr) and log10(diaSource.snr) > 0.5", None),
    ("mag(diaSource.psfFlux) < 22.5", None),
    ("((diaSource.snr > 5))", None),
    ("diaSource.snr\n  > 5\nand band == 'g'", None),
    # refused: message fragment, column
    ("diaSource.snrr > 5", ("did you mean 'diaSource.snr'", 11)),
    ("snr > 5", ("did you mean 'diaSource.snr'", 1)),
    ("diaSorce.snr > 5", ("did you mean 'diaSource'", 1)),
    ("diaSource.band > 5", ("cannot compare a string with a number", 16)),
    ("band < 'g'", ("does not apply to strings", 6)),
    ("diaSource.snr", ("must be a condition", 1)),
    ("diaSource.snr > 5 and", ("ends too early", 22)),
    ("diaSource.snr = 5", ("use == to test equality", 15)),
    ("diaSource.snr > 5 && band == 'g'", ("use 'and' / 'or'", 19)),
    ("diaSource.snr > 5 AND band == 'g'", ("keywords are lower case", 19)),
    ("1 < diaSource.snr < 3", ("do not chain", 19)),
    ("diaSource.snr > 'five'", ("cannot compare a number with a string", 15)),
    ("band in ['g', 1]", ("list value is a number", 15)),
    ("diaSource.snr and true", ("and needs a boolean", 1)),
    ("not diaSource.snr", ("not needs a boolean", 5)),
    ("diaSource.snr + band > 1", ("+ needs a number", 17)),
    ("prvDiaSources.snr > 1", ("aggregate", 1)),
    ("diaObject > 1", ("is a record", 1)),
    ("count(diaSource) > 1", ("is not a list", 7)),
    ("mean(prvDiaSources) > 1", ("needs a field", 6)),
    ("count(prvDiaSources where count(prvDiaSources) > 1) > 1", ("do not nest", 27)),
    ("cont(prvDiaSources) > 1", ("did you mean count()", 1)),
    ("within(400, 0, 1)", ("not a position on the sky", 8)),
    ("within(diaSource.ra, 0, 1)", ("constant numbers", 8)),
    ("abs(diaSource.snr) where band == 'g' > 1", ("unexpected 'where'", 20)),
    ("abs(diaSource.snr where band == 'g') > 1", ("belongs to aggregates", 19)),
    ("diaSource.snr > 1e999", ("out of range", 17)),
    ("diaSource.snr > " + "9" * 60, ("number literal of 60 characters", 17)),
    ("band == '" + "x" * 300 + "'", ("string literal of 300 characters", 9)),
    ("diaSource.__class__ == 1", ("unknown field 'diaSource.__class__'", 11)),
    ("__import__('os').system('ls')", ("unexpected '.'", 17)),
    ("lambda x: x", ("unexpected", 8)),
    ("band == \"g\\\"\"", ("unexpected character", 9)),
    ("", ("empty filter", 1)),
]


@pytest.mark.parametrize(("text", "outcome"), GRAMMAR_TABLE)
def test_grammar_table(text: str, outcome: tuple[str, int] | None, alerts: list[dict]) -> None:
    if outcome is None:
        f = compile_filter(text)
        kept = f.keep(alerts)
        assert kept.dtype == bool and kept.shape == (len(alerts),)
        return
    fragment, column = outcome
    with pytest.raises(FilterError) as info:
        compile_filter(text)
    err = info.value
    assert fragment in str(err)
    assert (err.line, err.column) == (1, column), str(err)
    assert 0 <= err.position <= len(text)


def test_positions_on_later_lines() -> None:
    with pytest.raises(FilterError) as info:
        compile_filter("diaSource.snr > 5\nand diaSource.bnd == 'g'")
    assert (info.value.line, info.value.column) == (2, 15)
    assert "did you mean 'diaSource.band'" in str(info.value)


def test_limits() -> None:
    with pytest.raises(FilterError, match="limit is"):
        compile_filter("diaSource.snr > 1 or " * 300 + "true")
    deep = "(" * (MAX_DEPTH + 1) + "diaSource.snr > 1" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(FilterError, match="nests deeper"):
        compile_filter(deep)
    with pytest.raises(FilterError, match="nests deeper"):
        compile_filter("not " * 200 + "true")
    ok = "(" * 10 + "diaSource.snr > 1" + ")" * 10
    compile_filter(ok)
    with pytest.raises(FilterError, match="list of 1001 values"):
        compile_filter("diaSource.visit in [" + ",".join(["1"] * 1001) + "]")
    assert MAX_LENGTH == 4000


def test_sample_filters_match_brute_force(alerts: list[dict]) -> None:
    samples = sample_filters(44, seed=5)
    fs = FilterSet({s.name: compile_filter(s.text) for s in samples})
    kept = fs.keep(alerts)
    for s in samples:
        expected = np.array([reference_keep(s, a) for a in alerts])
        assert np.array_equal(kept[s.name], expected), s.text
        assert 0 < expected.sum() < len(alerts) or s.template in (4, 5, 8), s.text


def test_three_valued_logic(alerts: list[dict]) -> None:
    snr_null = np.array([a["diaSource"]["snr"] is None for a in alerts])
    assert snr_null.any()
    gt = compile_filter("diaSource.snr > 5").keep(alerts)
    not_gt = compile_filter("not diaSource.snr > 5").keep(alerts)
    # an unknown comparison is neither kept nor kept by its negation
    assert not (gt[snr_null] | not_gt[snr_null]).any()
    assert np.array_equal(gt | not_gt, ~snr_null)
    either = compile_filter("diaSource.snr > 5 or true").keep(alerts)
    assert either.all()
    both = compile_filter("diaSource.snr > 5 and false").keep(alerts)
    assert not both.any()
    is_null = compile_filter("diaSource.snr is null").keep(alerts)
    assert np.array_equal(is_null, snr_null)


def test_64_bit_ids_compare_exactly(alerts: list[dict]) -> None:
    target = alerts[17]["diaSource"]["diaSourceId"]
    kept = compile_filter(f"diaSource.diaSourceId == {target}").keep(alerts)
    assert kept.sum() == 1 and kept[17]
    assert compile_filter(f"diaSourceId in [{target}, {target + 1}]").matches(alerts[17])


def test_filter_against_another_schema() -> None:
    schema = {"type": "record", "name": "alert", "fields": [
        {"name": "diaSource", "type": {"type": "record", "name": "diaSource", "fields": [
            {"name": "flux", "type": ["null", "double"]}]}}]}
    f = compile_filter("diaSource.flux > 1", schema=schema)
    assert list(f.keep([{"diaSource": {"flux": 2.0}}, {"diaSource": {"flux": None}}])) == \
        [True, False]
    with pytest.raises(FilterError, match="unknown field"):
        compile_filter("diaSource.snr > 1", schema=schema)


def test_null_tests_on_lists_and_records() -> None:
    alerts = varied_alerts(3, seed=1, n_history=1)
    for a in alerts:  # lists of one entry in a batch of one: nothing for numpy to reshape
        a["prvDiaSources"] = [a["diaSource"]]
    alerts[2]["prvDiaSources"] = None
    assert list(compile_filter("prvDiaSources is null").keep(alerts[:1])) == [False]
    assert list(compile_filter("prvDiaSources is null").keep(alerts)) == [False, False, True]

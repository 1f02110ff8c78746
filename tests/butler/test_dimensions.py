"""Data IDs are validated against dataset-type dimensions with clear errors."""

from __future__ import annotations

import pytest

from alertbutler.butler import UNIVERSE, DataCoordinate, DataIdError, DatasetType


@pytest.fixture
def calexp() -> DatasetType:
    return DatasetType("calexp", ["visit", "detector"], "Exposure")


def test_group_closes_over_requires_and_lists_implied(calexp: DatasetType) -> None:
    assert calexp.dimensions.required == ("instrument", "detector", "visit")
    assert set(calexp.dimensions.implied) == {"physical_filter", "band", "day_obs"}


def test_standardize_accepts_keywords_and_normalises(calexp: DatasetType) -> None:
    import numpy as np

    a = DataCoordinate.standardize({"instrument": "Cam"}, calexp.dimensions, visit=np.int64(3),
                                   detector=4)
    b = DataCoordinate.standardize({"instrument": "Cam", "visit": 3, "detector": 4},
                                   calexp.dimensions)
    assert a == b and hash(a) == hash(b)
    assert a.key == "instrument=Cam,detector=4,visit=3"
    assert type(a["visit"]) is int
    assert DataCoordinate.from_key(calexp.dimensions, a.key) == a


def test_missing_and_extra_keys_are_named(calexp: DatasetType) -> None:
    with pytest.raises(DataIdError, match=r"missing \['detector'\].*unexpected \['tract'\]"):
        DataCoordinate.standardize({"instrument": "Cam", "visit": 1, "tract": 9},
                                   calexp.dimensions)


def test_wrong_type_is_named(calexp: DatasetType) -> None:
    with pytest.raises(DataIdError, match="'visit' needs an integer, got str '12'"):
        DataCoordinate.standardize({"instrument": "Cam", "visit": "12", "detector": 1},
                                   calexp.dimensions)
    with pytest.raises(DataIdError, match="'instrument' needs a string"):
        DataCoordinate.standardize({"instrument": 5, "visit": 12, "detector": 1},
                                   calexp.dimensions)
    with pytest.raises(DataIdError, match="needs an integer"):
        DataCoordinate.standardize({"instrument": "Cam", "visit": True, "detector": 1},
                                   calexp.dimensions)


@pytest.mark.parametrize("value", ["../../etc", "/abs", "a/b", "..", ".hidden", "nul\x00x",
                                   "back\\slash", "", "x" * 200])
def test_values_that_could_escape_the_root_are_refused(calexp: DatasetType, value: str) -> None:
    with pytest.raises(DataIdError, match="unsafe value"):
        DataCoordinate.standardize({"instrument": value, "visit": 1, "detector": 1},
                                   calexp.dimensions)


def test_implied_values_are_accepted_but_not_part_of_identity(calexp: DatasetType) -> None:
    a = DataCoordinate.standardize({"instrument": "Cam", "visit": 1, "detector": 1,
                                    "band": "r"}, calexp.dimensions)
    assert a["band"] == "r"
    assert a == DataCoordinate.standardize({"instrument": "Cam", "visit": 1, "detector": 1},
                                           calexp.dimensions)


def test_unknown_dimension() -> None:
    with pytest.raises(DataIdError, match="unknown dimension 'tract'"):
        UNIVERSE.group(["tract"])

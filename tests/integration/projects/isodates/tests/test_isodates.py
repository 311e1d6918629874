import ciso8601
import isodates
import pytest


def test_the_c_extension_is_the_one_in_use() -> None:
    assert ciso8601.__file__.endswith(".so")


def test_offsets_are_applied() -> None:
    assert isodates.epoch_ms("1970-01-01T01:00:00+01:00") == 0
    assert isodates.epoch_ms("2024-02-29T12:34:56.789Z") == 1709210096789


def test_a_timestamp_without_offset_is_refused() -> None:
    with pytest.raises(ValueError, match="no UTC offset"):
        isodates.epoch_ms("2024-02-29T12:34:56")


def test_garbage_is_refused_by_ciso8601() -> None:
    with pytest.raises(ValueError, match="Invalid character"):
        isodates.epoch_ms("yesterday")

from numcast.text import parse_seconds, to_millis


def test_parse_units() -> None:
    assert parse_seconds("12.5 ms") == 0.0125
    assert parse_seconds("2") == 2.0


def test_to_millis_rounds_half_to_even() -> None:
    assert to_millis(0.0025) == 2
    assert to_millis(0.0035) == 4

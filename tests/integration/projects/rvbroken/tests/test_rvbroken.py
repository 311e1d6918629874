import rvbroken


def test_it_imports() -> None:
    assert rvbroken.__name__ == "rvbroken"

import time

import pytest


@pytest.mark.parametrize("i", range(6))
def test_slow(i):
    time.sleep(2)

"""A CPU loop whose time scales with the target's speed.

Stdlib only.  ``test_reference_work`` passes everywhere: a run's slowdown is
measured on it.  ``test_cpu_loop`` takes about 1 s natively and about 11 s
under qemu-user: past a fixed 2 s case timeout there, and past the auto
timeout's 10 s floor too, so a pass under ``--case-timeout auto`` is the
computed timeout's doing, not the floor's.
"""


def spin(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def test_reference_work():
    assert spin(1_000_000) > 0


def test_cpu_loop():
    assert spin(25_000_000) > 0

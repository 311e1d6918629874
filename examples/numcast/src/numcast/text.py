"""Pure Python: parse "12.5 ms"-style readings."""

from __future__ import annotations

UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def parse_seconds(text: str) -> float:
    """'12.5 ms' -> 0.0125."""
    number, _, unit = text.strip().partition(" ")
    return float(number) * UNITS[unit or "s"]


def to_millis(seconds: float) -> int:
    """Round half to even, like Python's round()."""
    return round(seconds * 1000)

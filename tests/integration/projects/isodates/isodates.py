"""ISO 8601 timestamps to epoch milliseconds, parsed by ciso8601's C extension."""

from __future__ import annotations

import ciso8601


def epoch_ms(text: str) -> int:
    """Milliseconds since 1970-01-01T00:00:00Z of an ISO 8601 timestamp with an offset."""
    parsed = ciso8601.parse_datetime(text)
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return round(parsed.timestamp() * 1000)

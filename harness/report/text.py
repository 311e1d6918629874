"""Display text: target text cleaned and bounded, durations, ratios, numbers and metrics formatted.

Escaping is NOT done here: the templates autoescape, so values stay plain ``str``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import re
from collections.abc import Mapping
from typing import Final

from harness.model import Metric, finite

#: Characters of one message or output shown in the report (head and tail are kept).
MAX_TEXT: Final = 12_000

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_ISSUE = re.compile(r"^(?P<reason>.*?)\s*<(?P<link>https?://[^\s<>\"']+)>\s*$", re.DOTALL)
_PERCENTILE = re.compile(r"^(?P<prefix>.*?)(?P<p>p50|p90|p95|p99|p999)_ms$")
_SLUG = re.compile(r"[^A-Za-z0-9]+")


def clean(text: str, limit: int = MAX_TEXT) -> str:
    """Target text made safe to show: no ANSI colours, visible control characters, bounded."""
    if not text:
        return ""
    if len(text) <= limit and text.isprintable():  # the common case, checked in C
        return text
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    if len(text) > limit:
        half = limit // 2
        cut = len(text) - 2 * half
        text = f"{text[:half]}\n… {cut:,} characters cut …\n{text[-half:]}"
    return text


def seconds(s: float) -> str:
    if not math.isfinite(s):  # results.json is read back from disk: never trust it to be finite
        return "?"
    if s <= 0:
        return "0 s"
    if s < 0.001:
        return f"{s * 1e6:.0f} µs"
    if s < 0.01:
        return f"{s * 1000:.2f} ms"
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


def ratio(r: float | None) -> str:
    if r is None:
        return ""
    return f"×{r:.1f}" if r >= 10 else f"×{r:.2f}"


def number(v: Metric) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:,.4g}" if abs(v) >= 1000 else f"{v:.4g}"
    return clean(str(v), 500)


def metric_pairs(metrics: Mapping[str, Metric]) -> list[tuple[str, str]]:
    """(label, value) pairs; ``x_p50_ms``, ``x_p90_ms``, ``x_p99_ms`` become one "x p50/p90/p99" pair."""
    if not metrics:
        return []
    groups: dict[str, dict[str, Metric]] = {}
    rest: list[tuple[str, str]] = []
    for key, value in metrics.items():
        m = _PERCENTILE.match(key)
        if m and isinstance(value, (int, float)) and not isinstance(value, bool):
            groups.setdefault(m["prefix"], {})[m["p"]] = value
        else:
            rest.append((clean(str(key), 200), number(value)))
    out: list[tuple[str, str]] = []
    for prefix, ps in groups.items():
        order = [p for p in ("p50", "p90", "p95", "p99", "p999") if p in ps]
        label = f"{clean(prefix.rstrip('_'), 200)} {'/'.join(order)}".strip()
        out.append((label, " / ".join(number(ps[p]) for p in order) + " ms"))
    return out + rest


def percentile_groups(metrics: Mapping[str, Metric]) -> dict[str, dict[str, float]]:
    """``{prefix: {"p50": v, ...}}`` for metric keys ending in ``p50_ms``/``p90_ms``/``p99_ms``."""
    out: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        m = _PERCENTILE.match(key)
        number = finite(value)
        if m and m["p"] in ("p50", "p90", "p99") and number is not None:
            out.setdefault(m["prefix"].rstrip("_"), {})[m["p"]] = float(number)
    return out


def split_issue(label: str) -> tuple[str, str]:
    """``"reason <https://…>"`` → (reason, link); only http(s) links become links."""
    m = _ISSUE.match(label)
    if m:
        return clean(m["reason"], 2000), m["link"]
    return clean(label, 2000), ""


def slug(target: str, suite: str) -> str:
    """A file-name-safe, unique id for a cell (readable part plus a short hash)."""
    readable = _SLUG.sub("-", f"{target}--{suite}").strip("-")[:60] or "cell"
    digest = hashlib.blake2b(f"{target}\x00{suite}".encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()
    return f"{readable}-{digest}"


def parse_time(text: str) -> _dt.datetime | None:
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def short_time(text: str) -> str:
    t = parse_time(text)
    return t.strftime("%Y-%m-%d %H:%M") if t else clean(text, 40)

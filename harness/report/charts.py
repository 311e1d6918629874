"""Charts of the report, drawn server-side by pygal as inline SVG.

pygal builds its SVG with ``xml.etree`` (text and attributes escaped), which is
why its output may be inserted as markup.  What pygal adds for its optional
JavaScript tooltips is removed: the config ``<script>`` block, the comments
(they carry URLs and the render date), the namespace URLs (an HTML parser
does not need them) and the random chart id (replaced by a stable one).  The
report runs no script at all, so values that matter are printed on the bars.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import pygal  # type: ignore[import-untyped]
from markupsafe import Markup
from pygal.style import Style  # type: ignore[import-untyped]

from harness.model import Run, Status
from harness.records import RunSummary
from harness.report.view import PALETTE, clean, number, percentile_groups, short_time, target_colors

#: Latency charts on one page; more groups are listed, not drawn.
MAX_LATENCY_CHARTS: Final = 12
#: Suites drawn in the slowdown chart (the slowest first when there are more).
MAX_SLOWDOWN_SUITES: Final = 30
#: Runs drawn in the trend charts (the newest).
MAX_TREND_RUNS: Final = 60

FONT: Final = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'
OUTCOME_COLORS: Final = {
    "passed": "#2da44e",
    "skipped / xfailed": "#afb8c1",
    "known issue": "#d4a72c",
    "flaky": "#bf8700",
    "new failure": "#cf222e",
}

# pygal appends a ``sys.meta_path`` finder for its map plugins (which the report does
# not use) that has no ``find_spec``: on Python 3.11 every later failed import then
# warns (ImportWarning), an error under ``-W error``.  Take it out again.
sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("pygal")]

_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_XMLNS = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')


@dataclasses.dataclass
class Chart:
    """One figure: a caption printed (escaped) by the template and the SVG, drawn twice.

    ``svg`` is for screens wider than a phone; ``svg_narrow`` is drawn for a
    ~400 px wide box so that its text stays readable on a phone (CSS shows one).
    """

    key: str
    caption: str
    svg: Markup
    svg_narrow: Markup
    note: str = ""


Draw = Callable[[bool], Any]  # narrow -> a pygal chart with its data added


def _figure(key: str, caption: str, draw: Draw, note: str = "") -> Chart:
    return Chart(key, caption, svg_markup(draw(False), key), svg_markup(draw(True), f"{key}-narrow"), note)


def _style(colors: Sequence[str]) -> Style:
    return Style(
        background="transparent",
        plot_background="transparent",
        foreground="#424a53",
        foreground_strong="#1f2328",
        foreground_subtle="#8c959f",
        guide_stroke_color="#d0d7de",
        major_guide_stroke_color="#d0d7de",
        opacity=".9",
        opacity_hover="1",
        colors=tuple(colors) or tuple(PALETTE),
        font_family=FONT,
        label_font_family=FONT,
        major_label_font_family=FONT,
        value_font_family=FONT,
        value_label_font_family=FONT,
        tooltip_font_family=FONT,
        title_font_family=FONT,
        legend_font_family=FONT,
        no_data_font_family=FONT,
        label_font_size=13,
        major_label_font_size=13,
        legend_font_size=13,
        value_font_size=12,
        value_label_font_size=12,
        tooltip_font_size=13,
        title_font_size=15,
        no_data_font_size=20,
    )


def _config(colors: Sequence[str], narrow: bool, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "style": _style(colors),
        "js": [],  # no CDN script for tooltips
        "disable_xml_declaration": True,
        "width": 400 if narrow else 640,
        "height": 360,
        "legend_at_bottom": True,
        "legend_at_bottom_columns": 1 if narrow else None,
        "legend_box_size": 13,
        "margin": 8 if narrow else 12,
        "spacing": 8,
        "truncate_legend": 22 if narrow else 40,
        "truncate_label": 14 if narrow else 28,
        "print_values": False,
        "show_y_guides": True,
        "no_data_text": "no data",
    }
    base.update(kw)
    if narrow:  # one legend row per series below the plot, and fewer value ticks
        base["height"] += 20 * len(colors)
        base.setdefault("max_scale", 6)
    return base


def svg_markup(chart: Any, key: str) -> Markup:
    """pygal's SVG with its script, comments, random id and namespace URLs taken out."""
    svg: str = chart.render(is_unicode=True)
    svg = _SCRIPT.sub("", svg)
    svg = _COMMENT.sub("", svg)
    m = re.search(r'id="(chart-[0-9a-f-]+)"', svg)
    if m:
        svg = svg.replace(m.group(1), f"chart-{key}")
    svg = _XMLNS.sub("", svg, count=2)
    svg = svg.replace("<svg ", '<svg role="img" preserveAspectRatio="xMidYMid meet" ', 1)
    return Markup(svg)  # noqa: S704 - pygal escapes through xml.etree; see module docstring


def _value_axis(values: Sequence[float], narrow: bool = False) -> dict[str, Any]:
    """A log axis (1-2-5 ticks, the smallest bar still visible) when values span more than 40×."""
    positive = [v for v in values if v > 0]
    if len(positive) < 2 or max(positive) / min(positive) <= 40:
        return {}
    lo = 10 ** math.floor(math.log10(min(positive) / 1.5))
    hi = max(positive) * 1.15
    decades = range(round(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    steps = (1,) if narrow and len(decades) > 3 else (1, 2, 5)
    ticks = [m * 10**k for k in decades for m in steps]
    return {
        "logarithmic": True,
        "range": (lo, hi),
        "zero": lo,
        "y_labels": [t for t in ticks if lo <= t <= hi],
        "show_minor_y_labels": True,
    }


def _percent(v: float) -> str:
    return f"{v:.1f} %"


def _fmt_ratio(v: float | None) -> str:
    return "" if v is None else f"×{v:.3g}"


# --------------------------------------------------------------------------- charts


def slowdown_chart(run: Run, slowdowns: Mapping[tuple[str, str], float]) -> Chart | None:
    """Slowdown of each non-baseline target per suite (horizontal bars).

    ``slowdowns`` maps (target, suite) to the cell's slowdown against the baseline.
    """
    if not run.baseline:
        return None
    colors = target_colors(run)
    targets = [t.name for t in run.targets if t.name != run.baseline]
    data: dict[str, dict[str, float]] = {}
    for (target, suite), r in slowdowns.items():
        if target in targets:
            data.setdefault(suite, {})[target] = r
    if not data:
        return None
    suites = [s for s in run.suites if s in data]
    note = ""
    if len(suites) > MAX_SLOWDOWN_SUITES:
        suites = sorted(suites, key=lambda s: -max(data[s].values()))[:MAX_SLOWDOWN_SUITES]
        note = f"The {MAX_SLOWDOWN_SUITES} slowest of {len(data)} suites."
    drawn = [t for t in targets if any(t in data[s] for s in suites)]
    values = [v for s in suites for v in data[s].values()]

    def draw(narrow: bool) -> Any:
        chart = pygal.HorizontalBar(
            **_config(
                [colors[t] for t in drawn],
                narrow,
                height=max(220, 90 + (22 if narrow else 26) * len(suites) * max(1, len(drawn))),
                **_value_axis(values, narrow),
                print_values=True,
                print_values_position="top",
                value_formatter=_fmt_ratio,
                margin_right=40,  # room for the value printed past the longest bar
                show_legend=len(drawn) > 1,
            )
        )
        # pygal draws the first label at the bottom: reverse so the run's first suite is on top.
        chart.x_labels = [clean(s, 60) for s in reversed(suites)]
        for t in drawn:
            chart.add(clean(t, 60), [data[s].get(t) for s in reversed(suites)])
        return chart

    caption = f"Slowdown against {clean(run.baseline, 100)} (× time of the cases that passed on both)"
    return _figure("slowdown", caption, draw, note)


def outcome_chart(run: Run) -> Chart | None:
    """Cases of each target by outcome, stacked."""
    targets = [t.name for t in run.targets]
    if not any(c.cases for c in run.cells):
        return None
    counts = {t: dict.fromkeys(OUTCOME_COLORS, 0) for t in targets}
    for cell in run.cells:
        row = counts.setdefault(cell.target, dict.fromkeys(OUTCOME_COLORS, 0))
        for k in cell.cases:
            if k.flaky:
                row["flaky"] += 1
            elif k.status is Status.PASSED:
                row["passed"] += 1
            elif k.status.is_good:
                row["skipped / xfailed"] += 1
            elif k.known_issue:
                row["known issue"] += 1
            else:
                row["new failure"] += 1
    names = list(counts)

    def draw(narrow: bool) -> Any:
        chart = pygal.HorizontalStackedBar(
            **_config(
                list(OUTCOME_COLORS.values()),
                narrow,
                height=max(200, 110 + 40 * len(names)),
                value_formatter=lambda v: number(int(v)) if v else "",
            )
        )
        chart.x_labels = [clean(t, 40) for t in reversed(names)]
        for outcome in OUTCOME_COLORS:
            chart.add(outcome, [counts[t][outcome] or None for t in reversed(names)])
        return chart

    return _figure("outcomes", "Cases per target by outcome", draw)


def latency_charts(run: Run) -> tuple[list[Chart], int]:
    """p50/p90/p99 bars per (suite, case, metric prefix), targets side by side.

    Picks up every metric whose key ends in ``p50_ms``, ``p90_ms`` or ``p99_ms``.
    Returns the charts drawn and how many groups there were in all.
    """
    colors = target_colors(run)
    groups: dict[tuple[str, str, str], dict[str, dict[str, float]]] = {}
    for cell in run.cells:
        for case in cell.cases:
            if not case.metrics:
                continue
            for prefix, ps in percentile_groups(case.metrics).items():
                groups.setdefault((cell.suite, case.name, prefix), {})[cell.target] = ps
    out: list[Chart] = []
    order = {t.name: i for i, t in enumerate(run.targets)}
    for n, ((suite, case_name, prefix), per_target) in enumerate(groups.items()):
        if n >= MAX_LATENCY_CHARTS:
            break
        targets = sorted(per_target, key=lambda t: order.get(t, len(order)))
        labels = [p for p in ("p50", "p90", "p99") if any(p in per_target[t] for t in targets)]
        axis = _value_axis([v for t in targets for v in per_target[t].values()])

        def draw(
            narrow: bool,
            targets: list[str] = targets,
            labels: list[str] = labels,
            axis: dict[str, Any] = axis,
            per_target: dict[str, dict[str, float]] = per_target,
        ) -> Any:
            chart = pygal.Bar(
                **_config(
                    [colors.get(t, PALETTE[0]) for t in targets],
                    narrow,
                    width=400 if narrow else 520,
                    height=340,
                    truncate_legend=22,
                    **axis,
                    print_values=len(targets) * len(labels) <= 9,
                    print_values_position="top",
                    value_formatter=lambda x: f"{x:.3g}",
                    y_title="ms",
                )
            )
            chart.x_labels = labels
            for t in targets:
                chart.add(clean(t, 40), [per_target[t].get(p) for p in labels])
            return chart

        caption = f"{clean(suite, 100)} · {clean(case_name, 300)} · {clean(prefix or 'latency', 100)} (ms)"
        if axis:
            caption += ", log scale"
        out.append(_figure(f"latency-{n}", caption, draw))
    return out, len(groups)


def trend_charts(history: Sequence[RunSummary], colors: Mapping[str, str]) -> list[Chart]:
    """Pass rate and summed case time per target across runs (oldest first).

    ``colors`` keeps each target's colour from the other charts; targets only
    in the history get the next colours of the palette.
    """
    runs = list(history)[-MAX_TREND_RUNS:]
    if len(runs) < 2:
        return []
    targets: list[str] = []
    for r in runs:
        targets.extend(t for t in r.per_target if t not in targets)
    extra = [t for t in targets if t not in colors]
    color = {**colors, **{t: PALETTE[(len(colors) + i) % len(PALETTE)] for i, t in enumerate(extra)}}
    labels = [short_time(r.started) for r in runs]
    rates = [100.0 * p / n for r in runs for p, n, _ in r.per_target.values() if n]
    floor = min(90.0, 10.0 * (min(rates, default=0.0) // 10)) if rates else 0.0

    def common(narrow: bool) -> dict[str, Any]:
        return {
            "x_label_rotation": 30 if len(runs) > (2 if narrow else 4) else 0,
            "show_minor_x_labels": len(runs) <= (4 if narrow else 12),
            "x_labels_major_count": 4 if narrow else 8,
            "truncate_label": 16,
            "show_dots": len(runs) <= 30,
            "dots_size": 3,
            "stroke_style": {"width": 2.5},
            "height": 340,
        }

    def line(value: Callable[[tuple[int, int, float]], float | None], **kw: Any) -> Draw:
        """A line per target of ``value(passed, total, seconds)`` over the runs."""

        def draw(narrow: bool) -> Any:
            chart = pygal.Line(**_config([color[t] for t in targets], narrow, **kw, **common(narrow)))
            chart.x_labels = labels
            for t in targets:
                pts = [r.per_target.get(t) for r in runs]
                chart.add(clean(t, 40), [value(p) if p else None for p in pts], allow_interruptions=True)
            return chart

        return draw

    draw_rate = line(lambda p: 100.0 * p[0] / p[1] if p[1] else None, range=(floor, 100), value_formatter=_percent)
    draw_time = line(lambda p: p[2], value_formatter=lambda v: f"{v:.1f} s", y_title="s")
    return [
        _figure("trend-pass", f"Pass rate over the last {len(runs)} runs (%)", draw_rate),
        _figure("trend-time", "Summed case time over the same runs (seconds)", draw_time),
    ]

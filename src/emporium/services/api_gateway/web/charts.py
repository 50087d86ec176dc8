"""Chart geometry for the console's reports, drawn by `_charts.html` as inline SVG.

No script and no `style` attributes (the CSP allows neither inline): only SVG geometry
here, colours come from `shop.css` classes. Every chart carries its numbers as text too
(`<title>`, `<desc>` and a data table), so it is readable without seeing it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

WIDTH = 640
ROW_HEIGHT = 28
COLUMN_HEIGHT = 240
LEFT = 88  # room for the value axis of a column chart
TOP = 12  # room above a column chart's highest tick label
LABEL_WIDTH = 200  # room for the row labels of a bar chart
VALUE_WIDTH = 140  # room after a row's bar for its value
MAX_X_LABELS = 6


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    text: str
    mark: float | None = None  # x of a threshold line across a row, if any


@dataclass
class Chart:
    width: int
    height: int
    bars: list[Bar]
    ticks: list[tuple[float, str]] = field(default_factory=list)  # (y, text) value axis
    labels: list[tuple[float, str]] = field(default_factory=list)  # (x, text) under columns
    axis_x: float = LEFT  # where the value axis of a column chart is


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (at least 1)."""
    if value <= 1:
        return 1
    power = 10.0 ** math.floor(math.log10(value))
    return next(float(step * power) for step in (1, 2, 5, 10) if step * power >= value)


def columns(
    points: list[tuple[str, int]],
    text: Callable[[int], str] = str,
    tick: Callable[[int], str] | None = None,
    height: int = COLUMN_HEIGHT,
) -> Chart:
    """Vertical bars over time: one per point, the value axis from 0 to a round maximum
    (`text` is a bar's value as words, `tick` the axis's shorter one)."""
    top = nice_ceiling(max((v for _, v in points), default=0))
    plot_width = WIDTH - LEFT
    slot = plot_width / max(len(points), 1)
    gap = min(slot * 0.2, 4)
    bars = []
    for i, (label, value) in enumerate(points):
        h = height * value / top
        x = LEFT + i * slot + gap / 2
        bars.append(Bar(x, TOP + height - h, slot - gap, h, label, text(value)))
    ticks = [(TOP + height - height * f, (tick or text)(round(top * f))) for f in (0, 0.5, 1)]
    every = max(1, math.ceil(len(points) / MAX_X_LABELS))
    labels = [(b.x + b.width / 2, b.label) for b in bars[::every]]
    return Chart(WIDTH, TOP + height + 24, bars, ticks, labels)


def rows(points: list[tuple[str, int, str]], marks: list[int] | None = None) -> Chart:
    """Horizontal bars, one row per (label, value, text); `marks` draws a line per row at
    that value (the low-stock threshold)."""
    top = nice_ceiling(max([v for _, v, _ in points] + (marks or []), default=0))
    plot_width = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    bars = []
    for i, (label, value, text) in enumerate(points):
        mark = None
        if marks is not None:
            mark = LABEL_WIDTH + plot_width * marks[i] / top
        width = plot_width * value / top
        bars.append(Bar(LABEL_WIDTH, i * ROW_HEIGHT + 4, width, ROW_HEIGHT - 8, label, text, mark))
    return Chart(WIDTH, max(len(points), 1) * ROW_HEIGHT, bars)

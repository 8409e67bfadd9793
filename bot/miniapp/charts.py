"""Bar charts as geometry for an inline SVG (templates/_chart.html draws them; no library).

Only the bars' pixel sizes are computed here; the amounts shown as text stay Decimal and
are formatted by the page, so a chart never rounds money.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

WIDTH = 340  # fits a 360 px phone screen with the page's padding
HEIGHT = 120
LABEL_SPACE = 16


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    label: str  # under the bar (may be empty: long series label every few bars)
    title: str  # the exact value, shown on hover / long press


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    baseline: int
    bars: tuple[Bar, ...]
    caption: str


def bar_chart(
    points: Sequence[tuple[str, Decimal | int]],
    *,
    fmt: Callable[[Decimal | int], str],
    caption: str,
    label_every: int = 1,
) -> Chart:
    """One bar per point, scaled to the largest; negative values are drawn as zero."""
    baseline = HEIGHT - LABEL_SPACE
    top = max((Decimal(v) for _, v in points), default=Decimal(0))
    slot = WIDTH // max(1, len(points))
    gap = max(1, slot // 5)
    bars = []
    for i, (label, value) in enumerate(points):
        ratio = max(Decimal(value), Decimal(0)) / top if top > 0 else Decimal(0)
        height = int(ratio * (baseline - 4))
        shown = label if i % max(1, label_every) == 0 else ""
        bars.append(
            Bar(
                x=i * slot + gap // 2,
                y=baseline - height,
                width=max(1, slot - gap),
                height=height,
                label=shown,
                title=f"{label}: {fmt(value)}",
            )
        )
    return Chart(WIDTH, HEIGHT, baseline, tuple(bars), caption)

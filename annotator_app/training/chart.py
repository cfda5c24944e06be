"""The loss curve of a run as an SVG drawn on the server.

No script and no style attribute or element (the CSP allows neither): colours and
strokes are SVG presentation attributes, which the policy does not govern.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT = 560, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 36  # margins for the axis labels


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def loss_chart_svg(history: Sequence[Sequence[float]]) -> SafeString:
    """Loss against step from `[[step, loss], ...]`; a short note when there is none."""
    points = [(float(s), float(v)) for s, v in history if v == v]  # drop NaN losses
    if not points:
        return format_html('<p class="muted">{}</p>', "No loss reported yet.")
    steps = [s for s, _ in points]
    losses = [v for _, v in points]
    s_lo, s_hi = min(steps), max(steps)
    v_lo, v_hi = min(losses), max(losses)
    s_span = (s_hi - s_lo) or 1.0
    v_span = (v_hi - v_lo) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def xy(step: float, loss: float) -> str:
        x = LEFT + (step - s_lo) / s_span * plot_w
        y = TOP + (v_hi - loss) / v_span * plot_h
        return f"{x:.1f},{y:.1f}"

    line = " ".join(xy(s, v) for s, v in points)
    label = (
        f"Training loss from {_fmt(losses[0])} at step {int(steps[0])} "
        f"to {_fmt(losses[-1])} at step {int(steps[-1])}"
    )
    axis_bottom, axis_right = TOP + plot_h, LEFT + plot_w
    texts = [
        (LEFT - 6, TOP + 4, "end", _fmt(v_hi)),
        (LEFT - 6, axis_bottom, "end", _fmt(v_lo)),
        (LEFT, axis_bottom + 16, "start", f"step {int(s_lo)}"),
        (axis_right, axis_bottom + 16, "end", f"step {int(s_hi)}"),
    ]
    return format_html(
        '<svg class="loss-chart" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        'viewBox="0 0 {w} {h}" role="img" aria-label="{label}"><title>{label}</title>'
        '<path d="M{l} {t} V{b} H{r}" fill="none" stroke="#777" stroke-width="1"/>'
        '<polyline points="{line}" fill="none" stroke="#1f77b4" stroke-width="2"/>'
        "{texts}</svg>",
        w=WIDTH,
        h=HEIGHT,
        label=label,
        l=LEFT,
        t=TOP,
        b=axis_bottom,
        r=axis_right,
        line=line,
        texts=format_html_join(
            "",
            '<text x="{}" y="{}" text-anchor="{}" font-size="11" fill="#333">{}</text>',
            texts,
        ),
    )

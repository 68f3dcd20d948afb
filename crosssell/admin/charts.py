"""Server-side SVG charts for the admin (no JavaScript library, no CDN: the admin may be
offline)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe


def _fmt(value: float) -> str:
    if value != 0 and (abs(value) >= 1000 or abs(value) < 0.01):
        return f"{value:.3g}"
    return f"{value:.3f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


def _svg_open(cls: str, width: int, height: int, label: str, *, fluid: bool = False) -> str:
    """The ``<svg>`` start tag every chart shares: its class, viewBox, size and accessible name.

    ``fluid`` charts take the width of their container (their viewBox keeps the proportions).
    """
    size = f'width="100%" height="{height}"' if fluid else f'width="{width}" height="{height}"'
    return (
        f'<svg class="{cls}" viewBox="0 0 {width} {height}" {size} '
        f'role="img" aria-label="{escape(label)}">'
    )


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least ``value``: an axis
    maximum whose tick labels read well."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return step * power
    return 10 * power


def sparkline(
    name: str, points: Sequence[tuple[int, float]], *, width: int = 280, height: int = 84
) -> SafeString:
    """A small line chart of one metric over builds: area, line, dots, first/last labels.

    ``points`` are (build id, value), oldest first. Each chart has its own scale, so metrics
    of very different sizes (a hit rate, seconds) can sit side by side.
    """
    pad_x, top, bottom = 8, 22, 18
    values = [v for _, v in points]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 1, hi + 1
    inner_w, inner_h = width - 2 * pad_x, height - top - bottom

    def xy(i: int, v: float) -> tuple[float, float]:
        x = pad_x + (inner_w * i / (len(points) - 1) if len(points) > 1 else inner_w / 2)
        y = top + inner_h * (1 - (v - lo) / (hi - lo))
        return round(x, 1), round(y, 1)

    coords = [xy(i, v) for i, (_, v) in enumerate(points)]
    line = " ".join(f"{x},{y}" for x, y in coords)
    parts = [
        _svg_open("cs-spark", width, height, f"{name} over the last {len(points)} builds"),
        f'<text x="{pad_x}" y="14" class="cs-spark-name">{escape(name)}</text>',
    ]
    if coords:
        last_build, last_value = points[-1]
        parts.append(
            f'<text x="{width - pad_x}" y="14" text-anchor="end" class="cs-spark-value">'
            f"{escape(_fmt(last_value))}</text>"
        )
        base = top + inner_h
        if len(coords) > 1:
            area = f"{coords[0][0]},{base} {line} {coords[-1][0]},{base}"
            parts.append(f'<polygon class="cs-spark-area" points="{area}"/>')
            parts.append(f'<polyline class="cs-spark-line" points="{line}"/>')
        for (x, y), (build_id, value) in zip(coords, points, strict=True):
            parts.append(
                f'<circle class="cs-spark-dot" cx="{x}" cy="{y}" r="2.6">'
                f"<title>build #{build_id}: {escape(_fmt(value))}</title></circle>"
            )
        parts.append(
            f'<text x="{pad_x}" y="{height - 4}" class="cs-spark-axis">#{points[0][0]}</text>'
            f'<text x="{width - pad_x}" y="{height - 4}" text-anchor="end" '
            f'class="cs-spark-axis">#{last_build}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def bars(rows: Sequence[tuple[str, float, str]], *, width: int = 360) -> SafeString:
    """Horizontal bars: (label, share 0..1, value text) per row."""
    row_h, label_w = 24, 130
    height = row_h * len(rows) + 4
    parts = [_svg_open("cs-bars", width, height, "shares", fluid=True)]
    for i, (label, share, text) in enumerate(rows):
        y = i * row_h + 2
        w = max(0.0, min(1.0, share)) * (width - label_w - 70)
        parts.append(
            f'<text x="0" y="{y + 15}" class="cs-bars-label">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{width - label_w - 70}" height="14" rx="3" '
            f'class="cs-bars-track"/>'
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="14" rx="3" '
            f'class="cs-bars-fill cs-bars-{i % 5}"/>'
            f'<text x="{width}" y="{y + 15}" text-anchor="end" class="cs-bars-value">'
            f"{escape(text)}</text>"
        )
    parts.append("</svg>")
    return format_html("{}", mark_safe("".join(parts)))


def interval_bars(
    name: str,
    rows: Sequence[tuple[str, float, float, float]],
    *,
    fmt: Callable[[float], str] = _fmt,
    highlight: int | None = None,
    width: int = 420,
    height: int = 220,
) -> SafeString:
    """Vertical bars with an interval on each: (label, value, low, high) per bar, e.g. each
    variant's conversion with its 95% confidence interval as a whisker.

    One scale for every bar from zero (bars of rates compare by their length, so the axis does
    not start at the smallest value), four gridlines labelled with ``fmt``. ``highlight`` is the
    index of a bar to mark (the winner). A label too long for its bar is shortened; each bar is
    one ``<g class="cs-ibar">`` with a ``<title>`` stating its value and interval for a hover and
    for screen readers. Colours come from the admin's stylesheet classes, with presentation
    attributes so the chart still reads without it.
    """
    pad_left, pad_right, top, bottom = 46, 8, 16, 34
    inner_w, inner_h = width - pad_left - pad_right, height - top - bottom
    hi = _nice_ceiling(max([max(v, h) for _, v, _, h in rows] or [0.0]))

    def y(v: float) -> float:
        return round(top + inner_h * (1 - max(0.0, min(v, hi)) / hi), 1)

    parts = [_svg_open("cs-ibars", width, height, name, fluid=True)]
    for k in range(5):  # gridlines and their labels
        value = hi * k / 4
        parts.append(
            f'<line class="cs-ibar-grid" x1="{pad_left}" x2="{width - pad_right}" y1="{y(value)}" '
            f'y2="{y(value)}" stroke="currentColor" stroke-opacity="{0.35 if k == 0 else 0.12}"/>'
            f'<text x="{pad_left - 6}" y="{y(value) + 3}" text-anchor="end" '
            f'class="cs-spark-axis" font-size="9">{escape(fmt(value))}</text>'
        )
    slot = inner_w / max(len(rows), 1)
    bar_w = round(min(64.0, slot * 0.55), 1)
    fits = max(3, int(slot / 7.5))  # characters of a 12px label under its bar
    for i, (label, value, low, high) in enumerate(rows):
        cx = round(pad_left + slot * (i + 0.5), 1)
        x0, cap = round(cx - bar_w / 2, 1), round(min(10.0, bar_w / 3), 1)
        y_value, y_low, y_high = y(value), y(low), y(high)
        marked = " is-highlighted" if i == highlight else ""
        parts.append(
            f'<g class="cs-ibar{marked}" data-label="{escape(label)}">'
            f"<title>{escape(label)}: {escape(fmt(value))} "
            f"(95% CI {escape(fmt(low))} to {escape(fmt(high))})</title>"
            f'<rect class="cs-ibar-fill cs-bars-{i % 5}" x="{x0}" y="{y_value}" width="{bar_w}" '
            f'height="{round(top + inner_h - y_value, 1)}" rx="3" fill="currentColor" '
            'fill-opacity=".85"/>'
            f'<path class="cs-ibar-ci" d="M{cx},{y_low}V{y_high}M{cx - cap},{y_low}H{cx + cap}'
            f'M{cx - cap},{y_high}H{cx + cap}" stroke="currentColor" stroke-width="1.5" '
            f'fill="none"/>'
            f'<text x="{cx}" y="{max(y_high - 5, 9)}" text-anchor="middle" '
            f'class="cs-ibar-value" font-size="11">{escape(fmt(value))}</text>'
            f'<text x="{cx}" y="{height - bottom + 16}" text-anchor="middle" '
            f'class="cs-bars-label" font-size="12">'
            f"{'★ ' if marked else ''}"
            f"{escape(label if len(label) <= fits else label[: fits - 1] + '…')}</text>"
            "</g>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))

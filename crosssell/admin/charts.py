"""Server-side SVG charts for the admin (no JavaScript library, no CDN: the admin may be
offline)."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe


def _fmt(value: float) -> str:
    if value != 0 and (abs(value) >= 1000 or abs(value) < 0.01):
        return f"{value:.3g}"
    return f"{value:.3f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


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
        f'<svg class="cs-spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(name)} over the last {len(points)} builds">',
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
    parts = [
        f'<svg class="cs-bars" viewBox="0 0 {width} {height}" width="100%" '
        f'height="{height}" role="img" aria-label="shares">'
    ]
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

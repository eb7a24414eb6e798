"""Tiny SVG charts (no plotting dependency): grouped bar charts with axis and legend."""
from __future__ import annotations

from html import escape
from typing import Mapping, Sequence

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    import math

    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * e:
            return m * e
    return 10 * e


def bar_chart(title: str, categories: Sequence[str], series: Mapping[str, Sequence[float | None]], *,
              unit: str = "", width: int = 720, height: int = 360) -> str:
    """Grouped bars: one group per category, one bar per series. ``None`` values draw no bar."""
    left, right, top, bottom = 60, 20, 40, 70
    pw, ph = width - left - right, height - top - bottom
    vals = [v for s in series.values() for v in s if v is not None]
    vmax = _nice_max(max(vals) if vals else 0)
    n_cat, n_ser = max(len(categories), 1), max(len(series), 1)
    group_w = pw / n_cat
    bar_w = group_w * 0.8 / n_ser
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<title>{escape(title)}</title>',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>']
    for k in range(5):
        v = vmax * k / 4
        y = top + ph - ph * k / 4
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end">{v:g}{escape(unit)}</text>')
    for ci, cat in enumerate(categories):
        gx = left + ci * group_w + group_w * 0.1
        for si, (name, values) in enumerate(series.items()):
            val = values[ci] if ci < len(values) else None
            if val is None:
                continue
            v = val
            h = ph * v / vmax
            x = gx + si * bar_w
            out.append(f'<rect x="{x:.1f}" y="{top + ph - h:.1f}" width="{max(bar_w - 1, 1):.1f}" height="{h:.1f}" '
                       f'fill="{PALETTE[si % len(PALETTE)]}"><title>{escape(name)} {escape(cat)}: {v:g}</title></rect>')
        out.append(f'<text x="{left + ci * group_w + group_w / 2:.1f}" y="{top + ph + 14}" text-anchor="middle">'
                   f'{escape(cat)}</text>')
    out.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#333"/>')
    for si, name in enumerate(series):
        x = left + si * 150
        out.append(f'<rect x="{x}" y="{height - 25}" width="10" height="10" fill="{PALETTE[si % len(PALETTE)]}"/>')
        out.append(f'<text x="{x + 14}" y="{height - 16}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"

"""Bench report: JSON summary + a readable HTML page with latency histograms."""
from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100.0 * len(s)) - 1))
    return s[k]


def histogram_svg(values: list[float], bins: int = 20, width: int = 520, height: int = 160) -> str:
    if not values:
        return "<p>no samples</p>"
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / span * bins))] += 1
    top = max(counts)
    bw = (width - 40) / bins
    bars = []
    for i, c in enumerate(counts):
        h = 0 if not top else (height - 30) * c / top
        x = 30 + i * bw
        bars.append(f'<rect x="{x:.1f}" y="{height - 20 - h:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" fill="#3b7dd8">'
                    f"<title>{lo + i * span / bins:.1f}–{lo + (i + 1) * span / bins:.1f} ms: {c}</title></rect>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
            f'<line x1="30" y1="{height - 20}" x2="{width - 10}" y2="{height - 20}" stroke="#333"/>'
            + "".join(bars)
            + f'<text x="30" y="{height - 5}" font-size="11">{lo:.1f} ms</text>'
            f'<text x="{width - 80}" y="{height - 5}" font-size="11">{hi:.1f} ms</text>'
            f'<text x="0" y="12" font-size="11">n={len(values)}</text></svg>')


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    lat = [v for r in results for v in r.get("latencies_ms", {}).get("press_to_platform", [])]
    p99 = percentile(lat, 99)
    return {
        "scenarios": len(results),
        "passed": sum(1 for r in results if r["outcome"] == "passed"),
        "failed": sum(1 for r in results if r["outcome"] == "failed"),
        "skipped": sum(1 for r in results if r["outcome"] == "skipped"),
        "press_to_platform_p99_ms": None if p99 is None else round(p99, 2),
        "press_to_platform_p50_ms": None if not lat else round(percentile(lat, 50), 2),
        "press_samples": len(lat),
    }


def write_report(directory: Path, bench_name: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    summary = summarise(results)
    (directory / "report.json").write_text(json.dumps({"bench": bench_name, "summary": summary,
                                                       "scenarios": results}, indent=2))
    rows = []
    for r in results:
        colour = {"passed": "#1a7f37", "failed": "#cf222e"}.get(r["outcome"], "#9a6700")
        figs = ", ".join(f"{html.escape(k)}={html.escape(str(v))}" for k, v in sorted(r.get("figures", {}).items()))
        lats = r.get("latencies_ms", {})
        lat_txt = "; ".join(f"{k}: p50 {percentile(v, 50):.1f} / p99 {percentile(v, 99):.1f} ms (n={len(v)})"
                            for k, v in sorted(lats.items()) if v)
        rows.append(f"<tr><td>{html.escape(r['name'])}</td><td style='color:{colour};font-weight:bold'>"
                    f"{r['outcome']}</td><td>{r['duration_s']:.2f}s</td><td>{html.escape(lat_txt)}</td>"
                    f"<td>{figs}</td></tr>")
        if r.get("longrepr"):
            rows.append(f"<tr><td colspan=5><pre>{html.escape(r['longrepr'][-3000:])}</pre></td></tr>")
    all_lat = [v for r in results for v in r.get("latencies_ms", {}).get("press_to_platform", [])]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Bench report: {html.escape(bench_name)}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}}
pre{{white-space:pre-wrap;font-size:11px}}</style></head><body>
<h1>Bench report — {html.escape(bench_name)}</h1>
<p><b>{summary['passed']}/{summary['scenarios']}</b> scenarios passed, {summary['failed']} failed, {summary['skipped']} skipped.
Press → platform latency p50 {summary['press_to_platform_p50_ms']} ms, p99 {summary['press_to_platform_p99_ms']} ms
over {summary['press_samples']} presses (release target: p99 ≤ 250 ms on the emulated bench).</p>
<h2>Press → platform latency</h2>{histogram_svg(all_lat)}
<h2>Scenarios</h2><table><tr><th>scenario</th><th>outcome</th><th>time</th><th>latency</th><th>figures</th></tr>
{''.join(rows)}</table></body></html>"""
    (directory / "report.html").write_text(page)
    return summary

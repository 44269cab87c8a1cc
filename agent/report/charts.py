"""Inline SVG charts for report.html, generated as strings (no JS, no external assets).

Colours come from CSS classes defined in the page (see html.py): `.v-<verdict>` for fills and strokes, and
dot classes `k?`/`d?` (kept/dropped + verdict initial) for the timeline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from agent.report.series import Point
from agent.report.summary import VERDICTS

VERDICT_COLOURS = {"helpful": "#1f9d55", "useless": "#8792a2", "harmful": "#e3342f"}
OTHER_COLOUR = "#9561e2"


def verdict_class(verdict: str) -> str:
    return verdict if verdict in VERDICT_COLOURS else "other"


def _dot_class(point: Point) -> str:
    initial = {"helpful": "h", "useless": "u", "harmful": "x"}.get(point.verdict, "o")
    return ("k" if point.kept else "d") + initial


def _nice_step(span: float, target_ticks: int) -> float:
    """A 1/2/5 x 10^n step giving about target_ticks ticks over span."""
    if span <= 0:
        return 1.0
    raw = span / max(1, target_ticks)
    power = 10.0 ** math.floor(math.log10(raw))
    for mult in (1.0, 2.0, 5.0, 10.0):
        if raw <= mult * power:
            return mult * power
    return 10.0 * power


def _fmt_tick(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{value:.{decimals}f}"


def _svg_open(width: int, height: int, label: str, css_class: str) -> str:
    return (
        f'<svg class="{css_class}" viewBox="0 0 {width} {height}" width="100%" '
        f'preserveAspectRatio="xMidYMid meet" role="img" aria-label="{escape(label)}">'
    )


def _time_unit(span_s: float) -> tuple[str, float]:
    if span_s >= 3 * 3600:
        return "h", 3600.0
    if span_s >= 10 * 60:
        return "min", 60.0
    return "s", 1.0


def _time_axis(span_s: float, left: float, y0: float, plot_w: float, height: int) -> list[str]:
    """Ticks and label of the time axis, in s, min or h depending on the drive's length."""
    unit, per = _time_unit(span_s)
    span = span_s / per
    step = _nice_step(span, 10)
    parts = []
    for k in range(int(span / step + 1e-6) + 1):
        x = left + plot_w * k * step / span
        parts.append(f'<line class="axis" x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + 4}"/>')
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{y0 + 16}" text-anchor="middle">{_fmt_tick(k * step, step)}</text>'
        )
    parts.append(
        f'<text class="axis-label" x="{left + plot_w / 2:.0f}" y="{height - 3}" text-anchor="middle">'
        f"time since start of drive ({unit})</text>"
    )
    return parts


def timeline_svg(
    points: Sequence[Point], t0_ns: int, t1_ns: int, label: str, width: int = 1120, height: int = 200
) -> str:
    """Score over time for one sensor: one dot per frame, filled if kept, hollow if dropped, coloured by verdict."""
    left, right, top, bottom = 44, 14, 10, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    span_s = (t1_ns - t0_ns) / 1e9 if t1_ns > t0_ns else 1.0

    def x_of(t_ns: int) -> float:
        return left + plot_w * min(1.0, max(0.0, (t_ns - t0_ns) / 1e9 / span_s))

    def y_of(score: float) -> float:
        return top + plot_h * (1.0 - score)

    parts = [_svg_open(width, height, label, "chart timeline")]
    parts.append(f'<rect class="plot-bg" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}"/>')
    for score in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = y_of(score)
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{score:g}</text>')
    parts.extend(_time_axis(span_s, left, top + plot_h, plot_w, height))
    parts.append(
        f'<text class="axis-label" x="12" y="{top + plot_h / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {top + plot_h / 2:.0f})">score</text>'
    )
    for p in points:
        tip = f"seq {p.seq} · {(p.t_ns - t0_ns) / 1e9:.2f} s · score {p.score:.2f} · {p.verdict} · {p.rule}"
        parts.append(
            f'<circle class="{_dot_class(p)}" cx="{x_of(p.t_ns):.1f}" cy="{y_of(p.score):.1f}" r="3">'
            f"<title>{escape(tip)}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def histogram_svg(hist: dict[str, list[int]], label: str, width: int = 540, height: int = 220) -> str:
    """Score histogram over [0, 1], bars stacked by verdict."""
    left, right, top, bottom = 44, 10, 12, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    bins = max((len(v) for v in hist.values()), default=0)
    if bins == 0:
        return ""
    order = [v for v in VERDICTS if v in hist] + sorted(v for v in hist if v not in VERDICTS)
    totals = [sum(hist[v][i] for v in order) for i in range(bins)]
    peak = max(max(totals), 1)
    bar_w = plot_w / bins
    parts = [_svg_open(width, height, label, "chart histogram")]
    parts.append(f'<rect class="plot-bg" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}"/>')
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{round(peak * frac):,}</text>'
        )
    for i in range(bins):
        x = left + i * bar_w
        base = top + plot_h
        tip = [f"score {i / bins:.2f}–{(i + 1) / bins:.2f}"]
        for verdict in order:
            n = hist[verdict][i]
            if n == 0:
                continue
            h = plot_h * n / peak
            base -= h
            tip.append(f"{verdict} {n:,}")
            parts.append(
                f'<rect class="v-{verdict_class(verdict)}" x="{x + 1:.1f}" y="{base:.1f}" '
                f'width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}"/>'
            )
        if totals[i]:
            parts.append(
                f'<rect class="hit" x="{x:.1f}" y="{top}" width="{bar_w:.1f}" height="{plot_h}">'
                f"<title>{escape(' · '.join(tip))}</title></rect>"
            )
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = left + plot_w * tick
        parts.append(f'<text class="tick" x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{tick:g}</text>')
    parts.append(
        f'<text class="axis-label" x="{left + plot_w / 2:.0f}" y="{height - 3}" text-anchor="middle">score</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def legend_html() -> str:
    """The timeline legend: verdict colours, and filled = kept vs hollow = dropped."""
    items = [f'<span class="swatch v-{v}"></span>{escape(v)}' for v in VERDICTS]
    items.append(
        '<svg class="key" viewBox="0 0 10 10" width="12" height="12"><circle class="kh" cx="5" cy="5" '
        'r="3.5"/></svg>kept (filled)'
    )
    items.append(
        '<svg class="key" viewBox="0 0 10 10" width="12" height="12"><circle class="dh" cx="5" cy="5" '
        'r="3.5"/></svg>dropped (hollow)'
    )
    return '<div class="legend">' + "".join(f'<span class="item">{i}</span>' for i in items) + "</div>"


def css() -> str:
    """Chart styles, to be embedded in the page's <style>."""
    rules = [
        ".chart{display:block;max-width:100%;height:auto}",
        ".chart .plot-bg{fill:#fbfcfd;stroke:#d8dde3}",
        ".chart .grid{stroke:#e6e9ee;stroke-width:1}",
        ".chart .axis{stroke:#9aa3ad}",
        ".chart .tick{font-size:11px;fill:#5f6b7a}",
        ".chart .axis-label{font-size:11px;fill:#5f6b7a}",
        ".chart .hit{fill:transparent}",
        ".chart .hit:hover{fill:rgba(0,0,0,.06)}",
    ]
    for verdict, colour in (*VERDICT_COLOURS.items(), ("other", OTHER_COLOUR)):
        initial = {"helpful": "h", "useless": "u", "harmful": "x"}.get(verdict, "o")
        rules.append(f".v-{verdict}{{fill:{colour};background:{colour}}}")
        rules.append(f".k{initial}{{fill:{colour};stroke:#1d2530;stroke-width:.6}}")
        rules.append(f".d{initial}{{fill:#fff;fill-opacity:.6;stroke:{colour};stroke-width:1.3}}")
    return "\n".join(rules)

"""sweep.html: the sweep's curves and tables in one self-contained page (inline CSS and SVG only)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from agent.report import charts
from agent.report.html import _card, _table
from agent.report.style import PAGE_CSS

W, H, LEFT, RIGHT, TOP, BOTTOM = 520, 260, 48, 12, 12, 36
EXTRA_CSS = """
.pt{fill:#3b82f6;fill-opacity:.45}
.pt-now{fill:none;stroke:#111;stroke-width:2}
.pt-best{fill:#f59e0b;stroke:#111;stroke-width:1.2}
.front{fill:none;stroke:#3b82f6;stroke-width:1.5}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:12px}
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return escape(str(value))


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}%"


def scatter_svg(points: Sequence[tuple[float, float]], now: tuple[float, float] | None,
                best: tuple[float, float] | None, x_label: str, y_label: str) -> str:
    """Settings as dots (x, y in [0, 1]), the upper-left frontier as a line, the current and chosen marked."""
    xs = [p[0] for p in points] + [v[0] for v in (now, best) if v]
    step = charts._nice_step(max(xs, default=1.0) or 1.0, 5)
    x_max = step * (int(max(xs, default=1.0) / step) + 1)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM

    def at(p: tuple[float, float]) -> tuple[float, float]:
        return LEFT + plot_w * p[0] / x_max, TOP + plot_h * (1.0 - max(0.0, min(1.0, p[1])))

    parts = [f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(y_label)}">',
             f'<rect class="plot-bg" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>']
    for k in range(6):
        y = TOP + plot_h * k / 5
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{1 - k / 5:.1f}</text>')
    for k in range(round(x_max / step) + 1):
        x = LEFT + plot_w * k * step / x_max
        parts.append(f'<text class="tick" x="{x:.1f}" y="{TOP + plot_h + 14}" text-anchor="middle">'
                     f"{k * step:,.{0 if step >= 1 else 2}f}</text>")
    front, best_y = [], -1.0
    for p in sorted(points):
        if p[1] > best_y:
            front.append(at(p))
            best_y = p[1]
    if len(front) > 1:
        parts.append('<polyline class="front" points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in front) + '"/>')
    parts += [f'<circle class="pt" cx="{x:.1f}" cy="{y:.1f}" r="3"/>' for x, y in map(at, points)]
    for point, cls, r in ((now, "pt-now", 6), (best, "pt-best", 5)):
        if point is not None:
            x, y = at(point)
            parts.append(f'<circle class="{cls}" cx="{x:.1f}" cy="{y:.1f}" r="{r}"/>')
    parts.append(f'<text class="axis-label" x="{LEFT + plot_w / 2}" y="{H - 4}" text-anchor="middle">'
                 f"{escape(x_label)}</text>")
    parts.append(f'<text class="axis-label" x="12" y="{TOP + plot_h / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 12 {TOP + plot_h / 2})">{escape(y_label)}</text></svg>')
    return "".join(parts)


def _curves(result: Mapping[str, Any]) -> str:
    labelled = result["labels"].get("path") is not None
    metrics = (("helpful_kept", "helpful kept"), ("harmful_caught", "harmful caught")) if labelled else \
        (("keep_rate", "keep rate"),)
    blocks = []
    for modality in ("camera", "lidar"):
        rows = [r for r in result["settings"] if r["modality"] == modality]
        if not rows:
            continue
        now_knobs = result["current"].get(modality)
        best_knobs = (result.get("suggested") or {}).get(modality)
        for key, name in metrics:
            pts = [(r["mb_per_hour"], r.get(key) or 0.0) for r in rows]
            now = next(((r["mb_per_hour"], r.get(key) or 0.0) for r in rows if r["knobs"] == now_knobs), None)
            best = next(((r["mb_per_hour"], r.get(key) or 0.0) for r in rows if r["knobs"] == best_knobs), None)
            blocks.append(f"<figure><figcaption>{modality}: {name} vs MB per hour kept</figcaption>"
                          + scatter_svg(pts, now, best, "MB per hour kept", name) + "</figure>")
    legend = ("<p>Each dot is one setting; the line joins the settings no other beats at fewer MB per hour; "
              "the ringed dot is the current config, the orange one the suggestion.</p>")
    return "<h2>Curves</h2>" + legend + '<div class="charts">' + "".join(blocks) + "</div>"


def _cards(result: Mapping[str, Any]) -> str:
    cards = []
    for title, row in (("current config", result["current"]), ("suggested", result.get("suggested"))):
        if not row:
            continue
        sub = f"keep {_pct(row['keep_rate'])} · dropped {_pct(row['bytes_dropped'])} of bytes"
        if row.get("helpful_kept") is not None or row.get("harmful_caught") is not None:
            sub += f" · helpful kept {_pct(row.get('helpful_kept'))} · harmful caught {_pct(row.get('harmful_caught'))}"
        cards.append(_card(title, f"{row['mb_per_hour']:,.1f} MB/h stored", sub))
    pseudo = result["labels"].get("pseudo")
    note = f'<p class="note">Helpful/harmful rates are {escape(pseudo)}.</p>' if pseudo else ""
    return '<section class="cards">' + "".join(cards) + "</section>" + note


def _baselines(result: Mapping[str, Any]) -> str:
    table = result.get("baselines")
    if not table:
        return ""
    keys = ("kept", "keep_rate", "mb_per_hour", "bytes_dropped", "helpful_kept", "harmful_caught", "useless_dropped")
    rows = [[escape(r["method"]), *(_pct(r.get(k)) if k not in ("kept", "mb_per_hour") else _fmt(r.get(k))
                                     for k in keys)] for r in table]
    return ("<h2>Baselines at equal budget</h2><p>Each method keeps the same number of frames per modality as "
            "edgesift (keep-all is the reference).</p>"
            + _table(["method", "kept", "keep rate", "MB/h", "bytes dropped", "helpful kept", "harmful caught",
                      "useless dropped"], rows, set(range(1, 8))))


def _groups(result: Mapping[str, Any]) -> str:
    """A corpus tune's figures per vehicle and per condition (agent.corpus.tune), current and suggested."""
    rows = []
    for key, kind in (("per_vehicle", "vehicle"), ("per_condition", "condition")):
        for name, pair in result.get(key, {}).items():
            for which, r in pair.items():
                rows.append([escape(kind), escape(name), escape(which), _fmt(r["frames"]), _fmt(r["kept"]),
                             _pct(r["keep_rate"]), _fmt(r["mb_per_hour"]), _pct(r.get("helpful_kept")),
                             _pct(r.get("harmful_caught"))])
    if not rows:
        return ""
    return "<h2>Per vehicle and per condition</h2>" + _table(
        ["by", "name", "config", "frames", "kept", "keep rate", "MB/h", "helpful kept", "harmful caught"], rows,
        set(range(3, 9)))


def _settings(result: Mapping[str, Any]) -> str:
    rows = []
    for r in result["settings"]:
        k = r["knobs"]
        verdicts = r.get("by_verdict_kept", {})
        kept = " / ".join(str(verdicts.get(v, 0)) for v in ("helpful", "useless", "harmful"))
        rows.append([escape(r["modality"]), _fmt(k["redundant_max_distance"]), _fmt(k["keep_min_score"]),
                     _fmt(k["coverage_every_s"]), _fmt(k["mb_per_min"]), _fmt(r["kept"]), kept, _pct(r["keep_rate"]),
                     _fmt(r["mb_per_hour"]), _pct(r.get("helpful_kept")), _pct(r.get("harmful_caught"))])
    return "<h2>Every setting</h2>" + _table(
        ["modality", "redundant ≤", "min score", "coverage s", "MB/min/sensor", "kept", "kept by verdict (h/u/x)",
         "keep rate", "MB/h", "helpful kept", "harmful caught"], rows, set(range(1, 11)))


def render(result: Mapping[str, Any]) -> str:
    t = result["timing"]
    head = (f"<h1>edgesift tune</h1><p>{escape(', '.join(result['inputs']))} · scorer {escape(result['scorer'])}"
            f" · {result['frames']} frames over {result['duration_s']:.0f} s · scored in {t['score_s']:.1f} s, "
            f"{t['settings']} settings swept in {t['sweep_s']:.1f} s</p>")
    body = [head, _cards(result), _curves(result), _groups(result), _baselines(result), _settings(result)]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>edgesift tune</title>'
            f"<style>{PAGE_CSS}\n{charts.css()}\n{EXTRA_CSS}</style></head>\n<body><main>\n"
            + "\n".join(body) + "\n<footer>edgesift tune · self-contained, no external resources</footer>"
            "</main></body></html>\n")


def write_sweep_html(path: Path, result: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(result), encoding="utf-8")
    os.replace(tmp, path)

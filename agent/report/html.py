"""report.html: one self-contained page (inline CSS, inline SVG, base64 images; nothing fetched from anywhere)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from itertools import groupby
from pathlib import Path
from typing import Any

from agent.report import charts
from agent.report.series import DEFAULT_MAX_POINTS, Series, collect
from agent.report.style import PAGE_CSS
from agent.report.summary import VERDICTS
from agent.report.thumbs import GroupKey, Thumb


def write_report(
    path: Path,
    summary: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]] | Iterable[Mapping[str, Any]],
    thumbs: Mapping[GroupKey, Sequence[Thumb]],
    max_points: int = DEFAULT_MAX_POINTS,
) -> None:
    """Write report.html; `records` is read once (it may be a generator over decisions.jsonl).

    Timelines show at most `max_points` ordinary dots per sensor plus all kept and harmful frames (those too
    are thinned evenly beyond `max_points`).
    """
    series = collect(records, max_points=max_points)
    page = render_report(summary, series, thumbs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8", errors="replace")  # a non-UTF-8 file name must not lose the report
    os.replace(tmp, path)


def render_report(summary: Mapping[str, Any], series: Series, thumbs: Mapping[GroupKey, Sequence[Thumb]]) -> str:
    """The page as a string."""
    t0 = summary.get("t_first_ns") if isinstance(summary.get("t_first_ns"), int) else series.t_min
    t0 = t0 if t0 is not None else 0
    body = [
        _header(summary),
        _cards(summary),
        _sensor_table(summary),
        _counts(summary),
        _skipped(summary),
        _timelines(series, t0),
        _histograms(series),
        _thumbnails(thumbs, series, t0),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>edgesift replay report</title>"
        f"<style>{PAGE_CSS}\n{charts.css()}</style></head>\n<body><main>\n"
        + "\n".join(part for part in body if part)
        + "\n<footer>edgesift replay report · self-contained, no external resources</footer>"
        + "\n</main></body></html>\n"
    )


# --- formatting ------------------------------------------------------------------------------------------------


def fmt_bytes(n: float) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    return f"{value:,.1f} TB"


def fmt_pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "–"


def _int(mapping: Mapping[str, Any], key: str) -> int:
    value = mapping.get(key, 0)
    return int(value) if isinstance(value, int | float) else 0


def _esc(value: Any) -> str:
    return escape(str(value), quote=True)


def _cell(tag: str, content: str, i: int, numeric: set[int], bar_col: int | None) -> str:
    cls = "num" if i in numeric else "barcell" if i == bar_col else ""
    return f'<{tag} class="{cls}">{content}</{tag}>' if cls else f"<{tag}>{content}</{tag}>"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[int], bar_col: int | None = None) -> str:
    """A table; `rows` cells are already escaped HTML, headers are plain text."""
    head = "".join(_cell("th", _esc(h), i, numeric, bar_col) for i, h in enumerate(headers))
    body = ["<tr>" + "".join(_cell("td", c, i, numeric, bar_col) for i, c in enumerate(row)) + "</tr>" for row in rows]
    if not body:
        body.append(f'<tr><td class="empty" colspan="{len(headers)}">none</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _verdict_stack(by_verdict: Mapping[str, int]) -> str:
    total = sum(v for v in by_verdict.values() if isinstance(v, int))
    if not total:
        return '<div class="stack"></div>'
    spans = []
    for verdict, n in by_verdict.items():
        if isinstance(n, int) and n > 0:
            cls = charts.verdict_class(str(verdict))
            title = _esc(f"{verdict}: {n:,} ({100 * n / total:.1f}%)")
            spans.append(f'<span class="v-{cls}" style="width:{100 * n / total:.2f}%" title="{title}"></span>')
    return f'<div class="stack">{"".join(spans)}</div>'


# --- sections --------------------------------------------------------------------------------------------------


def _header(summary: Mapping[str, Any]) -> str:
    inputs = [str(p) for p in summary.get("inputs") or ()]
    clocks = {str(c.get("input")): c for c in summary.get("clocks") or () if isinstance(c, Mapping)}
    items = "".join(f"<li>{_esc(p)}{_clock_note(clocks.get(p))}</li>" for p in inputs) \
        or '<li class="empty">none listed</li>'
    version = _esc(summary.get("config_version", "?"))
    return (
        f'<header><h1>edgesift replay report</h1><p class="meta">{len(inputs)} input(s) · config version '
        f'{version}</p><ul class="inputs">{items}</ul></header>'
    )


def _clock_note(clock: Mapping[str, Any] | None) -> str:
    """Which clock an input's times are on: its own wall clock, or where a clock-less input was aligned to."""
    if not clock:
        return ""
    how = f"clock: {clock.get('clock')}"
    if not clock.get("wall_clock"):
        how += f", aligned to {clock.get('aligned_to')}"
    return f' <span class="note">({_esc(how)}; starts {_esc(clock.get("start_utc") or "-")})</span>'


def _card(label: str, value: str, sub: str) -> str:
    return (
        f'<div class="card"><div class="label">{label}</div><div class="value">{value}</div>'
        f'<div class="sub">{sub}</div></div>'
    )


def _cards(summary: Mapping[str, Any]) -> str:
    f_in, f_kept = _int(summary, "frames_in"), _int(summary, "frames_kept")
    b_in, b_kept = _int(summary, "bytes_in"), _int(summary, "bytes_kept")
    b_stored = _int(summary, "bytes_stored")
    skipped = summary.get("skipped") or {}
    n_skipped = _int(skipped, "count") if isinstance(skipped, Mapping) else 0
    elapsed = float(summary.get("elapsed_s") or 0.0)
    fps = float(summary.get("frames_per_s") or 0.0)
    by_verdict = summary.get("by_verdict") or {}
    verdicts = " · ".join(f"{_esc(k)} {int(v):,}" for k, v in by_verdict.items() if isinstance(v, int))
    cards = [
        _card("Frames kept", f'{f_kept:,} <span class="note">of {f_in:,}</span>', f"{fmt_pct(f_kept, f_in)} kept"),
        _card(
            "Data kept",
            f'{fmt_bytes(b_kept)} <span class="note">of {fmt_bytes(b_in)}</span>',
            f"{fmt_pct(b_in - b_kept, b_in)} of input bytes dropped · {fmt_bytes(b_stored)} stored (spool, uplink)",
        ),
        _card("Throughput", f'{fps:,.1f} <span class="note">frames/s</span>', f"{elapsed:,.1f} s elapsed"),
        _card("Verdicts", _verdict_stack(by_verdict) if by_verdict else "–", verdicts or "none"),
        _card("Skipped items", f"{n_skipped:,}", "input items not turned into frames" if n_skipped else "none"),
    ]
    return f'<section class="cards" aria-label="totals">{"".join(cards)}</section>'


def _sensor_table(summary: Mapping[str, Any]) -> str:
    by_sensor = summary.get("by_sensor") or {}
    rows = []
    for sensor, s in by_sensor.items():
        f_in, f_kept = _int(s, "frames_in"), _int(s, "frames_kept")
        b_in, b_kept = _int(s, "bytes_in"), _int(s, "bytes_kept")
        verdicts = s.get("by_verdict") or {}
        rows.append(
            [
                f"<b>{_esc(sensor)}</b>",
                _esc(s.get("modality", "")),
                f"{f_in:,}",
                f"{f_kept:,}",
                fmt_pct(f_kept, f_in),
                fmt_bytes(b_in),
                fmt_bytes(b_kept),
                fmt_pct(b_in - b_kept, b_in),
                *(f"{_int(verdicts, v):,}" for v in VERDICTS),
                _verdict_stack(verdicts),
            ]
        )
    headers = [
        "sensor",
        "modality",
        "frames in",
        "kept",
        "% kept",
        "bytes in",
        "bytes kept",
        "% bytes dropped",
        *VERDICTS,
        "verdict mix",
    ]
    return f"<section><h2>Sensors</h2>{_table(headers, rows, set(range(2, 11)))}</section>"


def _count_rows(counts: Mapping[str, Any], total: int) -> list[list[str]]:
    peak = max((v for v in counts.values() if isinstance(v, int)), default=0) or 1
    return [
        [_esc(k), f"{n:,}", fmt_pct(n, total), f'<div class="bar" style="width:{100 * n / peak:.1f}%"></div>']
        for k, n in counts.items()
        if isinstance(n, int)
    ]


def _reason_label(reason: str, any_reason: Mapping[str, Any]) -> str:
    # Frames without reasons are counted under their verdict as primary reason; say so.
    if reason in VERDICTS and reason not in any_reason:
        return f'{_esc(reason)} <span class="note">(no reason given)</span>'
    return _esc(reason)


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _counts(summary: Mapping[str, Any]) -> str:
    total = _int(summary, "frames_in")
    verdicts = {k: v for k, v in (summary.get("by_verdict") or {}).items() if isinstance(v, int)}
    verdict_rows = _count_rows(verdicts, total)
    for row, verdict in zip(verdict_rows, verdicts, strict=True):
        row[0] = f'<span class="swatch v-{charts.verdict_class(verdict)}"></span>{row[0]}'
    primary = summary.get("by_primary_reason") or {}
    any_reason = summary.get("by_reason") or {}
    reason_rows = [
        [
            _reason_label(r, any_reason),
            f"{_int(primary, r):,}",
            f"{_int(any_reason, r):,}",
            fmt_pct(_int(any_reason, r), total),
        ]
        for r in dict.fromkeys([*primary, *any_reason])
    ]
    cols = [
        "<div><h3>Verdicts</h3>" + _table(["verdict", "frames", "%", ""], verdict_rows, {1, 2}, 3) + "</div>",
        "<div><h3>Reasons</h3>" + _table(["reason", "primary", "any", "% any"], reason_rows, {1, 2, 3}) + "</div>",
        "<div><h3>Policy rules</h3>"
        + _table(["rule", "frames", "%", ""], _count_rows(summary.get("by_rule") or {}, total), {1, 2}, 3)
        + "</div>",
    ]
    return f'<section><h2>Why frames were kept or dropped</h2><div class="cols">{"".join(cols)}</div></section>'


def _skipped(summary: Mapping[str, Any]) -> str:
    skipped = summary.get("skipped") or {}
    count = _int(skipped, "count") if isinstance(skipped, Mapping) else 0
    if not count:
        return ""
    by_reason = _table(["reason", "items", "%", ""], _count_rows(skipped.get("by_reason") or {}, count), {1, 2}, 3)
    items = list(skipped.get("items") or ())
    rows = [
        [
            _esc(i.get("sensor", "")),
            f"{_int(i, 'seq'):,}",
            _esc(i.get("t_ns", "")),
            _esc(i.get("reason", "")),
            _esc(i.get("detail", "")),
            f"<code>{_esc(i.get('source', ''))}</code>",
        ]
        for i in items
        if isinstance(i, Mapping)
    ]
    note = f' <span class="note">(first {len(rows):,} of {count:,})</span>' if len(rows) < count else ""
    table = _table(["sensor", "seq", "t_ns", "reason", "detail", "source"], rows, {1, 2})
    return (
        f'<section><h2>Skipped items <span class="note">{plural(count, "input item")} did not become frames</span></h2>'
        f'<div class="narrow">{by_reason}</div><h3>Items{note}</h3>{table}</section>'
    )


def _timelines(series: Series, t0: int) -> str:
    if not series.sensors:
        return '<section><h2>Timelines</h2><p class="empty">no frames</p></section>'
    t1 = series.t_max if series.t_max is not None else t0
    parts = ['<section><h2>Timelines <span class="note">score per frame over time</span></h2>', charts.legend_html()]
    for sensor, s in series.sensors.items():
        points = s.points()
        shown = f"{len(points):,} of {s.frames:,} frames shown" if len(points) < s.frames else plural(s.frames, "frame")
        label = f"timeline of {sensor}"
        parts.append(
            f'<div class="sensor"><h3>{_esc(sensor)} <span class="note">{_esc(s.modality)} · {shown}</span></h3>'
            f"{charts.timeline_svg(points, t0, t1, label)}</div>"
        )
    parts.append("</section>")
    return "".join(parts)


def _histograms(series: Series) -> str:
    if not series.histograms:
        return ""
    charts_html = []
    for modality, hist in series.histograms.items():
        n = sum(sum(bins) for bins in hist.values())
        charts_html.append(
            f'<div><h3>{_esc(modality)} <span class="note">{plural(n, "frame")}</span></h3>'
            f"{charts.histogram_svg(hist, f'score histogram of {modality}')}</div>"
        )
    legend = "".join(f'<span class="item"><span class="swatch v-{v}"></span>{v}</span>' for v in VERDICTS)
    return (
        f'<section><h2>Score histograms</h2><div class="legend">{legend}</div>'
        f'<div class="cols">{"".join(charts_html)}</div></section>'
    )


def _caption(thumb: Thumb, t0: int) -> str:
    score = f"{thumb.score:.2f}" if thumb.score == thumb.score else "–"
    reasons = ", ".join(thumb.reasons) or "no reasons"
    broken = "<br><i>does not decode</i>" if thumb.placeholder else ""
    file = f"<br>{_esc(thumb.file)}" if thumb.file else ""
    return (
        f"<figcaption><b>{_esc(thumb.sensor)}</b> · seq {thumb.seq:,}{file}<br>"
        f"t = {(thumb.t_ns - t0) / 1e9:,.2f} s · score {score}<br>"
        f'<span title="{_esc(reasons)}">{_esc(thumb.verdict)} · {_esc(thumb.rule)}</span>{broken}</figcaption>'
    )


def _figure(thumb: Thumb, t0: int) -> str:
    uri = thumb.data_uri if thumb.data_uri.startswith("data:") else ""
    alt = f"{thumb.sensor} seq {thumb.seq}"
    cls = charts.verdict_class(thumb.verdict)
    img = f'<img src="{_esc(uri)}" alt="{_esc(alt)}" loading="lazy">' if uri else ""
    return f'<figure class="{cls}" title="t_ns {thumb.t_ns}">{img}{_caption(thumb, t0)}</figure>'


def _thumbnails(thumbs: Mapping[GroupKey, Sequence[Thumb]], series: Series, t0: int) -> str:
    width = max((t.width for items in thumbs.values() for t in items), default=0) or 192
    parts = [
        f'<section style="--tw:{max(32, width) + 2}px"><h2>Thumbnails '
        '<span class="note">a few frames per group, spread over the drive</span></h2>'
    ]
    for kept, title in ((True, "Kept"), (False, "Dropped")):
        groups = [(key, items) for key, items in thumbs.items() if bool(key[0]) == kept and items]
        groups.sort(key=lambda kv: (-series.groups.get(kv[0], 0), kv[0][1]))
        pill = "kept" if kept else "dropped"
        parts.append(f'<h3><span class="pill {pill}">{title}</span></h3>')
        if not groups:
            parts.append('<p class="empty">none</p>')
        for (_, reason), items in groups:
            total = series.groups.get((kept, reason), 0)
            count = f"{plural(total, 'frame')} · {len(items)} shown" if total else f"{len(items)} shown"
            ordered = sorted(items, key=lambda t: (t.sensor, t.t_ns, t.seq))
            figures = '</div><div class="thumbs">'.join(
                "".join(_figure(t, t0) for t in row) for _, row in groupby(ordered, key=lambda t: t.sensor)
            )
            parts.append(
                f'<h4>{_esc(reason)} <span class="note">{count}</span></h4><div class="thumbs">{figures}</div>'
            )
    parts.append("</section>")
    return "".join(parts)

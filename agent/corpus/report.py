"""DIR/report.html for a corpus: totals, per vehicle, per drive (linked to its own report), failures, harmful
streaks and the slowest drives. Self-contained, like the drive reports."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.report import charts
from agent.report.html import _card, _esc, _table, _verdict_stack, fmt_bytes, fmt_pct
from agent.report.style import PAGE_CSS


def _num(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}" if isinstance(value, float) else _esc(value)


def _counts_row(name: str, s: Mapping[str, Any]) -> list[str]:
    return [name, _num(s.get("drives", "")), _num(s["frames_in"]), _num(s["frames_kept"]),
            fmt_pct(s["frames_kept"], s["frames_in"]), fmt_bytes(s["bytes_in"]), fmt_bytes(s["bytes_kept"]),
            _verdict_stack(s.get("by_verdict", {})),
            _esc(", ".join(f"{k} {v}" for k, v in list(s.get("by_primary_reason", {}).items())[:4]))]


HEADERS = ["", "drives", "frames in", "kept", "kept %", "bytes in", "bytes kept", "verdicts", "top reasons"]


def _drives(summary: Mapping[str, Any]) -> str:
    rows = []
    for d in summary["per_drive"]:
        name = f'<a href="drives/{_esc(d["id"])}/report.html">{_esc(d["id"])}</a>' if d["ok"] else _esc(d["id"])
        if not d["ok"]:
            rows.append([name, _esc(d["vehicle"]), "failed", "", "", "", "", "", _esc(d["error"])])
            continue
        rows.append([name, _esc(d["vehicle"]), "reused" if d.get("reused") else "replayed", _num(d["frames_in"]),
                     _num(d["frames_kept"]), fmt_bytes(d["bytes_kept"]), _num(float(d["frames_per_s"])),
                     _verdict_stack(d["by_verdict"]),
                     _esc(", ".join(f"{k} {v}" for k, v in list(d["by_primary_reason"].items())[:3]))])
    headers = ["drive", "vehicle", "status", "frames in", "kept", "bytes kept", "frames/s", "verdicts", "reasons"]
    return f"<section><h2>Drives</h2>{_table(headers, rows, {3, 4, 5, 6})}</section>"


def render(summary: Mapping[str, Any]) -> str:
    d, run = summary["drives"], summary["run"]
    cards = [
        _card("Drives", f"{d['ok']:,} <span class=\"note\">of {d['total']:,}</span>",
              f"{d['failed']} failed · {d['reused']} reused from an earlier run"),
        _card("Frames kept", f"{summary['frames_kept']:,}", f"of {summary['frames_in']:,} "
              f"({fmt_pct(summary['frames_kept'], summary['frames_in'])})"),
        _card("Data kept", fmt_bytes(summary["bytes_kept"]), f"of {fmt_bytes(summary['bytes_in'])}"),
        _card("This run", f"{run['frames_per_s']:,.1f} <span class=\"note\">frames/s</span>",
              f"{run['executor']}, {run['slots']} at once, {run['elapsed_s']:,.1f} s"),
    ]
    vehicles = [_counts_row(_esc(v), s) for v, s in summary["per_vehicle"].items()]
    vehicles.append(_counts_row("<b>all</b>", {**summary, "drives": d["ok"]}))
    failed = [[_esc(f["id"]), _esc(f["vehicle"]), _esc(f["reason"])] for f in summary["failed"]]
    damaged = [[_esc(f["id"]), _esc(f["vehicle"]), _num(f["stretches"]), _esc(f["first"])]
               for f in summary.get("damaged", [])]
    streaks = [[_esc(s["drive"]), _esc(s["vehicle"]), _esc(s["sensor"]), _num(s["frames"])]
               for s in summary["harmful_streaks"]]
    slow = [[_esc(s["id"]), _esc(s["vehicle"]), _num(float(s["elapsed_s"])), _num(float(s["frames_per_s"])),
             _num(s["frames_in"])] for s in summary["slowest"]]
    body = [
        f'<header><h1>edgesift fleet replay</h1><p class="meta">{d["total"]} drives from '
        f'{len(summary["per_vehicle"])} vehicles</p></header>',
        f'<section class="cards">{"".join(cards)}</section>',
        f"<section><h2>Per vehicle</h2>{_table(HEADERS, vehicles, {1, 2, 3, 4, 5, 6})}</section>",
        _drives(summary),
        f"<section><h2>Failed drives</h2>{_table(['drive', 'vehicle', 'reason'], failed, set())}</section>",
        '<section><h2>Damaged recordings <span class="note">(replayed as far as they hold; each damaged stretch a '
        f"counted skip)</span></h2>{_table(['drive', 'vehicle', 'stretches', 'first'], damaged, {2})}</section>",
        f'<section><h2>Sensors with harmful streaks <span class="note">(at least '
        f'{summary["harmful_streak_min_frames"]} harmful frames in a row)</span></h2>'
        f"{_table(['drive', 'vehicle', 'sensor', 'longest streak (frames)'], streaks, {3})}</section>",
        f"<section><h2>Slowest drives</h2>{_table(['drive', 'vehicle', 's', 'frames/s', 'frames'], slow, {2, 3, 4})}"
        "</section>",
    ]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>edgesift fleet replay</title>'
            f"<style>{PAGE_CSS}\n{charts.css()}</style></head>\n<body><main>\n" + "\n".join(body)
            + "\n</main></body></html>\n")


def write_fleet_report(path: Path, summary: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(summary), encoding="utf-8")
    os.replace(tmp, path)

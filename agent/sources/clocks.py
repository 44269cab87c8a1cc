"""Put every input on one timeline.

Inputs with wall-clock time (bags, MCAP, pcaps, KITTI timestamps.txt, stamped file names) keep it. Inputs without
(a video, an image folder, a KITTI drive without timestamps.txt) count from 0, so they are shifted: to `--start`
when given, else to the earliest start of the wall-clock inputs, else to the input file's modification time (the
best guess of when it was recorded). Never to 1970: a merged drive spanning 56 years is no timeline.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.errors import InputError
from agent.frame import Frame
from agent.sources.base import NS_PER_S, Source

_FIRST_ITEMS = 10_000  # how far into a source its first frame is looked for


@dataclass(frozen=True, slots=True)
class Clock:
    input: str
    kind: str
    clock: str  # what the input's times come from
    wall_clock: bool
    offset_ns: int  # added to every time of this input
    aligned_to: str  # "" for wall-clock inputs, else what the offset was taken from

    def as_dict(self) -> dict[str, Any]:
        return {"input": self.input, "kind": self.kind, "clock": self.clock, "wall_clock": self.wall_clock,
                "offset_ns": self.offset_ns, "aligned_to": self.aligned_to,
                "start_utc": None}


def parse_start(text: str) -> int:
    """'2024-05-01T12:00:00Z' (ISO 8601; no zone = UTC) or epoch seconds -> ns since the epoch."""
    try:
        return round(float(text) * NS_PER_S)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"--start {text!r} is neither an ISO 8601 time nor epoch seconds") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return round(when.timestamp() * NS_PER_S)


def utc(t_ns: int) -> str:
    return dt.datetime.fromtimestamp(t_ns / NS_PER_S, tz=dt.timezone.utc).isoformat(timespec="milliseconds")


def first_frame_ns(source: Source) -> int | None:
    """Time of the source's first Frame (Skips of unreadable items do not count), None when it has none early."""
    items = iter(source)
    try:
        for n, item in enumerate(items):
            if isinstance(item, Frame):
                return item.t_ns
            if n >= _FIRST_ITEMS:
                break
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
    return None


def align(sources: Sequence[Source], start_ns: int | None = None) -> list[Clock]:
    """One Clock per source (same order); relative inputs get the offset that puts them on the shared timeline."""
    wall = [s for s in sources if getattr(s, "wall_clock", True)]
    relative = [s for s in sources if not getattr(s, "wall_clock", True)]
    if start_ns is not None:
        shared, how = start_ns, "--start"
    elif starts := [t for t in (first_frame_ns(s) for s in wall) if t is not None] if relative else []:
        shared, how = min(starts), "start of the wall-clock inputs"
    else:
        # Only clock-less inputs: all start together at the earliest modification time among them.
        shared, how = min((_mtime(s.path) for s in relative), default=0), "input file modification time"
    note = f"{how} ({utc(shared)})" + ("; give --start to set it" if how.startswith("input file") else "")
    return [Clock(s.path, s.kind, getattr(s, "clock", "recorded time"), True, 0, "")
            if getattr(s, "wall_clock", True) else
            Clock(s.path, s.kind, getattr(s, "clock", "recorded time"), False, shared, note) for s in sources]


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def clock_report(clocks: Sequence[Clock], first_ns: dict[int, int]) -> list[dict[str, Any]]:
    """Clocks as JSON rows with each input's first frame time in UTC (from the merged run)."""
    rows = []
    for index, clock in enumerate(clocks):
        row = clock.as_dict()
        if index in first_ns:
            row["start_utc"] = utc(first_ns[index])
        rows.append(row)
    return rows

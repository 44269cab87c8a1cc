"""Rows of a rosbag2 SQLite file read past the pages a bad sector damaged.

rosbags reads a bag's messages with one query sorted by time. SQLite may sort by reading every row first, so one
damaged page (a bad sector in one message's data) can fail the query before its first row, and the whole bag is
lost. Here the rows are read in id (recording) order, one query each: where a row does not read, it
is counted and the read goes on after it (after 2, 4, 8 ... ids where the failures go on, so that a damaged
b-tree page over millions of rows costs a few dozen queries, not millions). The reader's reorder window puts the
rows back in time order. Memory stays at one row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Lost:
    """Rows first..last (ids) that do not read."""

    first: int
    last: int
    detail: str


def sqlite_files(reader: Any) -> list[Path]:
    """The SQLite storage files of an opened rosbags AnyReader's rosbag2 bags (none for ROS 1 or MCAP storage)."""
    files: list[Path] = []
    for bag in getattr(reader, "readers", []):
        metadata = getattr(bag, "metadata", None)
        if isinstance(metadata, dict) and metadata.get("storage_identifier") == "sqlite3":
            files.extend(Path(p) for p in getattr(bag, "paths", []))
    return files


def rows(path: Path, topics: set[str], after_ns: int) -> Iterator[tuple[str, int, bytes] | Lost]:
    """(topic, log time, data) of each row of `topics` logged after `after_ns` that reads, in id order, and a Lost
    per stretch of rows that does not. sqlite3.DatabaseError where the file cannot be queried at all."""
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        names = dict(con.execute("SELECT id, name FROM topics").fetchall())
        wanted = {topic_id for topic_id, name in names.items() if name in topics}
        (top,) = con.execute("SELECT max(id) FROM messages").fetchone()
        done, lost, step = 0, None, 1  # the last id read or given up; the stretch being lost; the next jump
        while top is not None and done < top:
            try:  # one row a query: a cursor reads the row after the one it returns, and its error lands there
                row = con.execute("SELECT id, topic_id, timestamp, data FROM messages WHERE id > ? ORDER BY id "
                                  "LIMIT 1", (done,)).fetchone()
            except sqlite3.DatabaseError as exc:  # the row after `done` does not read: count it, go on after it
                why = f"{type(exc).__name__}: {exc}"[:200]
                lost = Lost(lost.first if lost else done + 1, min(top, done + step), why)
                done, step = done + step, step * 2
                continue
            if lost is not None:
                yield lost
                lost, step = None, 1
            if row is None:
                break
            done, topic_id, stamp, data = row
            if topic_id in wanted and stamp > after_ns:
                yield names[topic_id], stamp, bytes(data)
        if lost is not None:
            yield lost
    finally:
        con.close()

"""The spool's SQLite index: one row per stored frame, plus persistent counters. Not locked: Spool holds the lock."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agent.spool.records import COUNTERS

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    frame_id    TEXT PRIMARY KEY,
    sensor      TEXT NOT NULL,
    modality    TEXT NOT NULL,
    t_ns        INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    label       TEXT NOT NULL,
    score       REAL NOT NULL,
    reasons     TEXT NOT NULL,
    rule        TEXT NOT NULL,
    encoding    TEXT NOT NULL,
    input_bytes INTEGER NOT NULL,
    blob_bytes  INTEGER NOT NULL,
    created_ns  INTEGER NOT NULL,
    blob_name   TEXT NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS frames_by_score ON frames (score, t_ns, created_ns);
CREATE INDEX IF NOT EXISTS frames_by_time ON frames (t_ns, created_ns);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

COLUMNS = (
    "frame_id", "sensor", "modality", "t_ns", "seq", "label", "score", "reasons", "rule", "encoding",
    "input_bytes", "blob_bytes", "created_ns", "blob_name",
)  # fmt: skip
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM frames"  # noqa: S608 - constant column names
_ORDER = {
    "oldest": "ORDER BY t_ns ASC, created_ns ASC, frame_id ASC",
    "score": "ORDER BY score DESC, t_ns ASC, created_ns ASC, frame_id ASC",
}


@dataclass(frozen=True, slots=True)
class BlobRef:
    frame_id: str
    blob_name: str
    blob_bytes: int


class Index:
    def __init__(self, path: Path, durable: bool = True) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        try:
            self.journal_mode = str(self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
            self.conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
            self.conn.executescript(_SCHEMA)
            self._check_version()
        except BaseException:
            self.conn.close()
            raise

    def _check_version(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        elif version != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"index schema version {version}, this edgesift reads {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def row(self, frame_id: str) -> tuple[Any, ...] | None:
        return self.conn.execute(f"{_SELECT} WHERE frame_id = ?", (frame_id,)).fetchone()

    def contains(self, frame_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM frames WHERE frame_id = ?", (frame_id,)).fetchone() is not None

    def rows(self, order: Literal["oldest", "score"], limit: int | None) -> list[tuple[Any, ...]]:
        sql = f"{_SELECT} {_ORDER[order]}"
        if limit is None:
            return self.conn.execute(sql).fetchall()
        return self.conn.execute(f"{sql} LIMIT ?", (max(0, int(limit)),)).fetchall()

    def insert(self, values: tuple[Any, ...]) -> None:
        marks = ", ".join("?" * len(COLUMNS))
        self.conn.execute(f"INSERT INTO frames ({', '.join(COLUMNS)}) VALUES ({marks})", values)  # noqa: S608

    def delete(self, frame_id: str) -> None:
        self.conn.execute("DELETE FROM frames WHERE frame_id = ?", (frame_id,))

    def blob_ref(self, frame_id: str) -> BlobRef | None:
        row = self.conn.execute(
            "SELECT frame_id, blob_name, blob_bytes FROM frames WHERE frame_id = ?", (frame_id,)
        ).fetchone()
        return BlobRef(*row) if row else None

    def all_blob_refs(self) -> list[BlobRef]:
        return [BlobRef(*row) for row in self.conn.execute("SELECT frame_id, blob_name, blob_bytes FROM frames")]

    def eviction_candidates(self, below_score: float) -> Iterator[BlobRef]:
        """Frames scoring strictly below `below_score`, lowest score first, oldest first among equals."""
        cursor = self.conn.execute(
            "SELECT frame_id, blob_name, blob_bytes FROM frames WHERE score < ? "
            "ORDER BY score ASC, t_ns ASC, created_ns ASC, frame_id ASC",
            (below_score,),
        )
        for row in cursor:
            yield BlobRef(*row)

    def totals(self) -> tuple[int, int]:
        frames, nbytes = self.conn.execute("SELECT COUNT(*), COALESCE(SUM(blob_bytes), 0) FROM frames").fetchone()
        return int(frames), int(nbytes)

    def counters(self) -> dict[str, int]:
        stored = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        return {name: int(stored.get(name, 0)) for name in COUNTERS}

    def add_counters(self, **deltas: int) -> None:
        for name, delta in deltas.items():
            if name not in COUNTERS:
                raise KeyError(name)
            if delta:
                self.conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = value + ?",
                    (name, delta, delta),
                )

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.close()

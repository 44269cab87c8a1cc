"""The ingest's SQLite file: the index of received frames (the dedup key) and the chunks of partial frames.

One file per output folder, shared by every ingest worker writing there (WAL mode, BEGIN IMMEDIATE), so that a
frame redelivered to another worker, or after a restart, is still recognised, and chunks of one frame that the
shared subscription spread over several workers still meet. Commits are grouped by the caller (see receiver.py);
synchronous=FULL makes each commit durable before the broker gets its acks.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from agent.uplink.wire import FrameHeader

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    vehicle     TEXT NOT NULL,
    frame_id    TEXT NOT NULL,
    sensor      TEXT NOT NULL,
    modality    TEXT NOT NULL,
    t_ns        INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    verdict     TEXT NOT NULL,
    score       REAL NOT NULL,
    reasons     TEXT NOT NULL,
    rule        TEXT NOT NULL,
    encoding    TEXT NOT NULL,
    scorer      TEXT NOT NULL,
    bytes       INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    received_ns INTEGER NOT NULL,
    mcap        TEXT NOT NULL,
    PRIMARY KEY (vehicle, frame_id)
);
CREATE INDEX IF NOT EXISTS frames_by_time ON frames (vehicle, t_ns);
CREATE TABLE IF NOT EXISTS chunks (
    vehicle     TEXT NOT NULL,
    frame_id    TEXT NOT NULL,
    chunk       INTEGER NOT NULL,
    chunks      INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    offset      INTEGER NOT NULL,
    data        BLOB NOT NULL,
    received_ns INTEGER NOT NULL,
    PRIMARY KEY (vehicle, frame_id, chunk)
);
"""
FRAME_COLUMNS = (
    "vehicle", "frame_id", "sensor", "modality", "t_ns", "seq", "verdict", "score", "reasons", "rule", "encoding",
    "scorer", "bytes", "sha256", "received_ns", "mcap",
)  # fmt: skip

# add_chunk outcomes
ADDED, DUPLICATE, MISMATCH = "added", "duplicate", "mismatch"


@dataclass(frozen=True)
class Partial:
    vehicle: str
    frame_id: str
    bytes: int


class IngestIndex:
    def __init__(self, path: Path, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.executescript(_SCHEMA)
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"ingest index schema {version}, this edgesift reads {SCHEMA_VERSION}")
        except BaseException:
            self.conn.close()
            raise

    # ---- transactions (grouped by the caller)

    def begin(self) -> None:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")  # take the write lock now: workers serialise per batch

    def commit(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")

    # ---- frames

    def has_frame(self, vehicle: str, frame_id: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM frames WHERE vehicle = ? AND frame_id = ?", (vehicle, frame_id))
        return row.fetchone() is not None

    def insert_frame(self, header: FrameHeader, received_ns: int, mcap: str) -> bool:
        """Index a frame; False when (vehicle, frame id) is already there (a duplicate, maybe from another worker)."""
        values = (
            header.vehicle, header.frame_id, header.sensor, header.modality, header.t_ns, header.seq,
            header.verdict, header.score, json.dumps(header.reasons), header.rule, header.encoding, header.scorer,
            header.size, header.sha256, received_ns, mcap,
        )  # fmt: skip
        marks = ", ".join("?" * len(FRAME_COLUMNS))
        cursor = self.conn.execute(
            f"INSERT OR IGNORE INTO frames ({', '.join(FRAME_COLUMNS)}) VALUES ({marks})", values  # noqa: S608
        )
        return cursor.rowcount == 1

    def frame_count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM frames").fetchone()[0])

    # ---- chunks of partial frames

    def add_chunk(self, header: FrameHeader, data: bytes | memoryview, received_ns: int) -> str:
        known = self.conn.execute(
            "SELECT chunks, size, sha256 FROM chunks WHERE vehicle = ? AND frame_id = ? LIMIT 1",
            (header.vehicle, header.frame_id),
        ).fetchone()
        if known is not None and tuple(known) != (header.chunks, header.size, header.sha256):
            return MISMATCH
        cursor = self.conn.execute(
            "INSERT OR IGNORE INTO chunks (vehicle, frame_id, chunk, chunks, size, sha256, offset, data, received_ns) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (header.vehicle, header.frame_id, header.chunk, header.chunks, header.size, header.sha256,
             header.offset, bytes(data), received_ns),
        )  # fmt: skip
        return ADDED if cursor.rowcount == 1 else DUPLICATE

    def chunk_count(self, vehicle: str, frame_id: str) -> int:
        row = self.conn.execute("SELECT COUNT(*) FROM chunks WHERE vehicle = ? AND frame_id = ?", (vehicle, frame_id))
        return int(row.fetchone()[0])

    def assemble(self, vehicle: str, frame_id: str) -> bytes | None:
        """The blob from its chunks, or None when they do not tile it exactly (overlaps or holes)."""
        rows = self.conn.execute(
            "SELECT offset, data, size FROM chunks WHERE vehicle = ? AND frame_id = ? ORDER BY chunk",
            (vehicle, frame_id),
        ).fetchall()
        position = 0
        for offset, data, _size in rows:
            if offset != position:
                return None
            position += len(data)
        if not rows or position != rows[0][2]:
            return None
        return b"".join(row[1] for row in rows)

    def drop_partial(self, vehicle: str, frame_id: str) -> int:
        """Forget a partial frame; returns the bytes it held."""
        held = self.conn.execute(
            "SELECT COALESCE(SUM(length(data)), 0) FROM chunks WHERE vehicle = ? AND frame_id = ?", (vehicle, frame_id)
        ).fetchone()[0]
        self.conn.execute("DELETE FROM chunks WHERE vehicle = ? AND frame_id = ?", (vehicle, frame_id))
        return int(held)

    def partial_bytes(self) -> int:
        return int(self.conn.execute("SELECT COALESCE(SUM(length(data)), 0) FROM chunks").fetchone()[0])

    def partials(self, received_before_ns: int | None = None, limit: int = 100) -> list[Partial]:
        """Partial frames, the longest waiting first; only those whose first chunk came before the given time."""
        having = "HAVING MIN(received_ns) < ?" if received_before_ns is not None else ""
        args = (received_before_ns, limit) if received_before_ns is not None else (limit,)
        rows = self.conn.execute(
            "SELECT vehicle, frame_id, SUM(length(data)) FROM chunks GROUP BY vehicle, frame_id "  # noqa: S608
            f"{having} ORDER BY MIN(received_ns) LIMIT ?",
            args,
        ).fetchall()
        return [Partial(v, f, int(b)) for v, f, b in rows]

    def close(self) -> None:
        self.rollback()
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self.conn.close()

"""The ingest index: received frames (the dedup key), chunks of partial frames, and the fleet's state.

One interface, two backends with the same schema (agent/ingest/schema.py):

- SQLite (the default, `<out>/index.sqlite3`): one file shared by the ingest workers of one machine (WAL mode,
  BEGIN IMMEDIATE serialises their batches; synchronous=FULL makes each commit durable before the acks);
- PostgreSQL (`--db postgresql://...`, agent/ingest/pg_store.py): workers on several machines share one index;
  the unique (vehicle, frame_id) key makes a frame stored once whichever worker got it.

Commits are grouped by the caller (receiver.py). SQL here is written with '?' marks; the PostgreSQL backend turns
them into psycopg's. Everything a fleet page needs to read is written here too (vehicles, config_events, alerts).
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.ingest import schema
from agent.uplink.wire import FrameHeader

SQLITE_FILE = "index.sqlite3"
SCHEMA_VERSION = schema.SCHEMA_VERSION
FRAME_COLUMNS = (
    "vehicle", "frame_id", "sensor", "modality", "t_ns", "seq", "verdict", "score", "reasons", "rule", "encoding",
    "scorer", "bytes", "sha256", "received_ns", "mcap",
)  # fmt: skip
ALERT_COLUMNS = ("vehicle", "sensor", "raised_ns", "modality", "reason", "message", "harmful_rate", "cleared_ns",
                 "received_ns")

# add_chunk outcomes
ADDED, DUPLICATE, MISMATCH = "added", "duplicate", "mismatch"


@dataclass(frozen=True)
class Partial:
    vehicle: str
    frame_id: str
    bytes: int


class IngestIndex:
    """The backend-neutral part: every query. Subclasses connect, run transactions and keep the schema version."""

    types: schema.Types = schema.SQLITE_TYPES
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    url: str = ""

    # ---- backend hooks

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> Any:  # returns a DB-API cursor
        raise NotImplementedError

    def begin(self) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    @property
    def in_transaction(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def lock_frame(self, vehicle: str, frame_id: str) -> None:
        """Serialise the chunk bookkeeping of one frame across workers (SQLite's write lock already does)."""

    def _version(self) -> int:
        raise NotImplementedError

    def _set_version(self, version: int) -> None:
        raise NotImplementedError

    def _lock_schema(self) -> None:
        """Make concurrent starters migrate one at a time (inside the migration transaction)."""

    # ---- schema

    def migrate(self) -> tuple[int, int]:
        """Bring the schema to SCHEMA_VERSION in one transaction; returns (found, now)."""
        self.begin()
        try:
            self._lock_schema()
            found = self._version()
            schema.check_version(found)
            for version in range(found + 1, SCHEMA_VERSION + 1):
                for statement in schema.statements(version, self.types):
                    self.execute(statement)
            if found != SCHEMA_VERSION:
                self._set_version(SCHEMA_VERSION)
            self.commit()
        except BaseException:
            self.rollback()
            raise
        return found, SCHEMA_VERSION

    # ---- frames

    def has_frame(self, vehicle: str, frame_id: str) -> bool:
        row = self.execute("SELECT 1 FROM frames WHERE vehicle = ? AND frame_id = ?", (vehicle, frame_id))
        return row.fetchone() is not None

    def insert_frame(self, header: FrameHeader, received_ns: int, mcap: str) -> bool:
        """Index a frame; False when (vehicle, frame id) is already there (a duplicate, maybe from another worker)."""
        marks = ", ".join("?" * len(FRAME_COLUMNS))
        cursor = self.execute(
            f"INSERT INTO frames ({', '.join(FRAME_COLUMNS)}) VALUES ({marks}) ON CONFLICT DO NOTHING",  # noqa: S608
            frame_row(header, received_ns, mcap),
        )
        return cursor.rowcount == 1

    def existing_frames(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (vehicle, frame id) keys are in the index already (one batch's look-up)."""
        return {key for key in keys if self.has_frame(*key)}

    def insert_frames(self, rows: list[tuple[FrameHeader, int, str]]) -> set[tuple[str, str]]:
        """Index (header, received_ns, mcap) rows; returns the keys inserted (the others were there already)."""
        return {(h.vehicle, h.frame_id) for h, received, mcap in rows if self.insert_frame(h, received, mcap)}

    def frame_count(self) -> int:
        return int(self.execute("SELECT COUNT(*) FROM frames").fetchone()[0])

    # ---- chunks of partial frames

    def add_chunk(self, header: FrameHeader, data: bytes | memoryview, received_ns: int) -> str:
        self.lock_frame(header.vehicle, header.frame_id)
        known = self.execute(
            "SELECT chunks, size, sha256 FROM chunks WHERE vehicle = ? AND frame_id = ? LIMIT 1",
            (header.vehicle, header.frame_id),
        ).fetchone()
        if known is not None and tuple(known) != (header.chunks, header.size, header.sha256):
            return MISMATCH
        cursor = self.execute(
            'INSERT INTO chunks (vehicle, frame_id, chunk, chunks, size, sha256, "offset", data, received_ns) '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (header.vehicle, header.frame_id, header.chunk, header.chunks, header.size, header.sha256,
             header.offset, bytes(data), received_ns),
        )  # fmt: skip
        return ADDED if cursor.rowcount == 1 else DUPLICATE

    def chunk_count(self, vehicle: str, frame_id: str) -> int:
        row = self.execute("SELECT COUNT(*) FROM chunks WHERE vehicle = ? AND frame_id = ?", (vehicle, frame_id))
        return int(row.fetchone()[0])

    def assemble(self, vehicle: str, frame_id: str) -> bytes | None:
        """The blob from its chunks, or None when they do not tile it exactly (overlaps or holes)."""
        rows = self.execute(
            'SELECT "offset", data, size FROM chunks WHERE vehicle = ? AND frame_id = ? ORDER BY chunk',
            (vehicle, frame_id),
        ).fetchall()
        position = 0
        for offset, data, _size in rows:
            if offset != position:
                return None
            position += len(data)
        if not rows or position != rows[0][2]:
            return None
        return b"".join(bytes(row[1]) for row in rows)

    def drop_partial(self, vehicle: str, frame_id: str) -> int:
        """Forget a partial frame; returns the bytes it held."""
        held = self.execute(
            "SELECT COALESCE(SUM(length(data)), 0) FROM chunks WHERE vehicle = ? AND frame_id = ?", (vehicle, frame_id)
        ).fetchone()[0]
        self.execute("DELETE FROM chunks WHERE vehicle = ? AND frame_id = ?", (vehicle, frame_id))
        return int(held)

    def partial_bytes(self) -> int:
        return int(self.execute("SELECT COALESCE(SUM(length(data)), 0) FROM chunks").fetchone()[0])

    def partials(self, received_before_ns: int | None = None, limit: int = 100) -> list[Partial]:
        """Partial frames, the longest waiting first; only those whose first chunk came before the given time."""
        having = "HAVING MIN(received_ns) < ?" if received_before_ns is not None else ""
        args = (received_before_ns, limit) if received_before_ns is not None else (limit,)
        rows = self.execute(
            "SELECT vehicle, frame_id, SUM(length(data)) FROM chunks GROUP BY vehicle, frame_id "  # noqa: S608
            f"{having} ORDER BY MIN(received_ns) LIMIT ?",
            args,
        ).fetchall()
        return [Partial(v, f, int(b)) for v, f, b in rows]

    # ---- the fleet's state (status, stats, config acks, alerts): latest wins, history kept once

    def set_status(self, vehicle: str, status: str, now_ns: int) -> None:
        self.execute(
            "INSERT INTO vehicles (vehicle, status, status_ns) VALUES (?, ?, ?) ON CONFLICT (vehicle) DO UPDATE "
            "SET status = excluded.status, status_ns = excluded.status_ns",
            (vehicle, status, now_ns),
        )

    def set_stats(self, vehicle: str, stats: dict[str, Any], now_ns: int) -> None:
        self.execute(
            "INSERT INTO vehicles (vehicle, stats, stats_ns) VALUES (?, ?, ?) ON CONFLICT (vehicle) DO UPDATE "
            "SET stats = excluded.stats, stats_ns = excluded.stats_ns",
            (vehicle, json.dumps(stats, separators=(",", ":")), now_ns),
        )

    def add_config_state(self, vehicle: str, report: Any, now_ns: int) -> None:
        """A vehicle's config/state report (agent.remote.topics.StateReport): latest on vehicles, history kept."""
        t_ns = int(report.t * 1e9)
        self.execute(
            "INSERT INTO vehicles (vehicle, config_version, config_status, config_error, config_ns) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (vehicle) DO UPDATE SET config_version = excluded.config_version, "
            "config_status = excluded.config_status, config_error = excluded.config_error, "
            "config_ns = excluded.config_ns WHERE excluded.config_ns >= vehicles.config_ns",  # redelivered: older
            (vehicle, report.version, report.status, report.error, t_ns),
        )
        self.execute(
            "INSERT INTO config_events (vehicle, t_ns, status, version, requested_version, error, via, request_id, "
            "received_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (vehicle, t_ns, report.status, report.version, report.requested_version, report.error, report.via,
             report.request_id, now_ns),
        )  # fmt: skip

    def upsert_alert(self, vehicle: str, alert: dict[str, Any], now_ns: int) -> None:
        """A sensor alert as published by the vehicle (agent/health.py): raised, then the same one cleared."""
        cleared = alert.get("cleared_ns") if alert.get("state") == "cleared" else None
        self.execute(
            f"INSERT INTO alerts ({', '.join(ALERT_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "  # noqa: S608
            "ON CONFLICT (vehicle, sensor, raised_ns) DO UPDATE SET cleared_ns = excluded.cleared_ns, "
            "reason = excluded.reason, message = excluded.message, harmful_rate = excluded.harmful_rate",
            (vehicle, alert["sensor"], int(alert["raised_ns"]), alert["modality"], alert["reason"],
             alert["message"], float(alert["harmful_rate"]), cleared, now_ns),
        )  # fmt: skip


def frame_row(header: FrameHeader, received_ns: int, mcap: str) -> tuple[Any, ...]:
    """The values of FRAME_COLUMNS for a frame."""
    return (
        header.vehicle, header.frame_id, header.sensor, header.modality, header.t_ns, header.seq,
        header.verdict, header.score, json.dumps(header.reasons), header.rule, header.encoding, header.scorer,
        header.size, header.sha256, received_ns, mcap,
    )  # fmt: skip


class SqliteIndex(IngestIndex):
    def __init__(self, path: Path, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.migrate()
        except BaseException:
            self.conn.close()
            raise

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        return self.conn.execute(sql, args)

    def _version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _set_version(self, version: int) -> None:
        self.conn.execute(f"PRAGMA user_version={int(version)}")

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

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

    def close(self) -> None:
        self.rollback()
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self.conn.close()


_PASSWORD_RE = re.compile(r"(://[^:/@]*:)[^@]*@")


def redact(url: str) -> str:
    """The URL without its password, for logs and errors."""
    return _PASSWORD_RE.sub(r"\1***@", url)


def one_line(exc: BaseException, limit: int = 300) -> str:
    return " ".join(str(exc).split())[:limit]


def is_postgres(db: str | None) -> bool:
    return bool(db) and str(db).startswith(("postgresql://", "postgres://"))


def open_index(db: str | None, out_dir: Path) -> IngestIndex:
    """The index named by `db`: a postgresql:// URL, a SQLite file path, or None for `<out_dir>/index.sqlite3`."""
    if is_postgres(db):
        try:
            from agent.ingest.pg_store import PostgresIndex
        except ImportError as exc:
            from agent.errors import ConfigError

            raise ConfigError(f"a PostgreSQL index needs psycopg 3 ({exc}): pip install 'edgesift[fleet]'") from exc

        return PostgresIndex(str(db))
    if db and db.startswith("sqlite:///"):
        db = db[len("sqlite:///") :]
    return SqliteIndex(Path(db) if db else out_dir / SQLITE_FILE)

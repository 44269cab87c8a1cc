"""The ingest index on PostgreSQL (psycopg 3): ingest workers on several machines share one index.

Same schema and queries as SQLite (store.py). What differs: the schema version lives in a table; a migration
takes an advisory lock so that workers starting together migrate once; the chunks of one frame are serialised
across workers with a transaction-scoped advisory lock on (vehicle, frame id), so that two workers each holding
some chunks of a frame in their open batches cannot both miss the last one. A broken connection (server restart,
network) is reopened on the next rollback: the receiver rolls back, reconnects to the broker and gets the batch
again.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import psycopg
from psycopg import pq

from agent.errors import EdgesiftError
from agent.ingest import schema
from agent.ingest.store import FRAME_COLUMNS, IngestIndex, frame_row, one_line, redact
from agent.uplink.wire import FrameHeader

log = logging.getLogger(__name__)

_MIGRATION_LOCK = 0x65646773  # "edgs": advisory lock key of schema migrations
# A batch of frames in one statement (one round trip), its rows passed as one JSON array of objects read as rows
# of the frames table: one json.dumps instead of psycopg adapting every value in Python (most of the insert's CPU).
_INSERT_FRAMES = (
    f"INSERT INTO frames ({', '.join(FRAME_COLUMNS)}) SELECT {', '.join(f'r.{c}' for c in FRAME_COLUMNS)} "  # noqa: S608
    f"FROM json_populate_recordset(NULL::frames, %s::json) AS r "
    "ON CONFLICT DO NOTHING RETURNING vehicle, frame_id"
)
# The batch's keys as one JSON array of [vehicle, frame id] pairs: half the client CPU of two text[] parameters.
_EXISTING_FRAMES = (
    "SELECT f.vehicle, f.frame_id FROM frames f JOIN (SELECT k->>0 AS vehicle, k->>1 AS frame_id "
    "FROM json_array_elements(%s::json) AS k) AS k ON f.vehicle = k.vehicle AND f.frame_id = k.frame_id"
)


class IndexUnavailable(EdgesiftError):
    """The database cannot be reached at start-up."""


class PostgresIndex(IngestIndex):
    types = schema.POSTGRES_TYPES
    errors = (psycopg.Error,)

    def __init__(self, url: str, connect_timeout_s: float = 10.0) -> None:
        self.url = url
        self._timeout = connect_timeout_s
        self._sql: dict[str, str] = {}
        try:
            self.conn = self._connect()
        except psycopg.Error as exc:
            raise IndexUnavailable(f"cannot connect to the index {redact(url)}: {one_line(exc)}") from exc
        try:
            self.migrate()
        except BaseException:
            self.conn.close()
            raise

    def _connect(self) -> psycopg.Connection[Any]:
        # autocommit: transactions are opened and closed explicitly (BEGIN/COMMIT), as with SQLite
        return psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self._timeout)),
                               application_name="edgesift-ingest")

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        text = self._sql.get(sql)
        if text is None:
            text = self._sql[sql] = sql.replace("%", "%%").replace("?", "%s")
        return self.conn.execute(text, args)  # type: ignore[arg-type]

    @property
    def in_transaction(self) -> bool:
        return self.conn.info.transaction_status != pq.TransactionStatus.IDLE

    def begin(self) -> None:
        if not self.in_transaction:
            self.conn.execute("BEGIN")

    def commit(self) -> None:
        if self.in_transaction:
            self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.closed or self.conn.broken:
            self._reopen()
            return
        if self.in_transaction:
            with contextlib.suppress(psycopg.Error):
                self.conn.execute("ROLLBACK")

    def _reopen(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.conn.close()
        try:
            self.conn = self._connect()
            log.warning("ingest: reconnected to %s", redact(self.url))
        except psycopg.Error as exc:  # still down: the next storage attempt fails again and retries this
            log.error("ingest: cannot reconnect to %s: %s", redact(self.url), exc)

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.rollback()
            self.conn.close()

    def existing_frames(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        if not keys:
            return set()
        rows = self.conn.execute(_EXISTING_FRAMES, (json.dumps(keys),)).fetchall()
        return {(vehicle, frame_id) for vehicle, frame_id in rows}

    def insert_frames(self, rows: list[tuple[FrameHeader, int, str]]) -> set[tuple[str, str]]:
        if not rows:
            return set()
        # one lock order for all workers: two inserting overlapping batches wait for each other, never deadlock
        rows = sorted(rows, key=lambda row: (row[0].vehicle, row[0].frame_id))
        doc = json.dumps([dict(zip(FRAME_COLUMNS, frame_row(*row), strict=True)) for row in rows])
        inserted = self.conn.execute(_INSERT_FRAMES, (doc,)).fetchall()
        return {(vehicle, frame_id) for vehicle, frame_id in inserted}

    def lock_frame(self, vehicle: str, frame_id: str) -> None:
        self.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (f"{vehicle}/{frame_id}",))

    def _lock_schema(self) -> None:
        self.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
        self.execute("CREATE TABLE IF NOT EXISTS edgesift_schema (version INTEGER NOT NULL)")

    def _version(self) -> int:
        row = self.execute("SELECT MAX(version) FROM edgesift_schema").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _set_version(self, version: int) -> None:
        self.execute("DELETE FROM edgesift_schema")
        self.execute("INSERT INTO edgesift_schema (version) VALUES (?)", (version,))

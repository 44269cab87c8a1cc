"""The ingest index schema, as numbered migrations that SQLite and PostgreSQL both run.

Version 1 is what edgesift 0.1 wrote (frames + chunks, SQLite only, PRAGMA user_version = 1). Version 2 adds what
the fleet page reads: the vehicles' last status / stats / config state, the history of config acks, sensor alerts,
and an index by arrival time. A store opened on an older schema migrates it in one transaction; one written by a
newer edgesift is refused rather than guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import EdgesiftError


@dataclass(frozen=True)
class Types:
    big: str  # 64-bit integers (nanosecond stamps)
    real: str
    blob: str


SQLITE_TYPES = Types(big="INTEGER", real="REAL", blob="BLOB")
POSTGRES_TYPES = Types(big="BIGINT", real="DOUBLE PRECISION", blob="BYTEA")

_V1 = """
CREATE TABLE IF NOT EXISTS frames (
    vehicle     TEXT NOT NULL,
    frame_id    TEXT NOT NULL,
    sensor      TEXT NOT NULL,
    modality    TEXT NOT NULL,
    t_ns        {big} NOT NULL,
    seq         {big} NOT NULL,
    verdict     TEXT NOT NULL,
    score       {real} NOT NULL,
    reasons     TEXT NOT NULL,
    rule        TEXT NOT NULL,
    encoding    TEXT NOT NULL,
    scorer      TEXT NOT NULL,
    bytes       {big} NOT NULL,
    sha256      TEXT NOT NULL,
    received_ns {big} NOT NULL,
    mcap        TEXT NOT NULL,
    PRIMARY KEY (vehicle, frame_id)
);
CREATE INDEX IF NOT EXISTS frames_by_time ON frames (vehicle, t_ns);
CREATE TABLE IF NOT EXISTS chunks (
    vehicle     TEXT NOT NULL,
    frame_id    TEXT NOT NULL,
    chunk       {big} NOT NULL,
    chunks      {big} NOT NULL,
    size        {big} NOT NULL,
    sha256      TEXT NOT NULL,
    "offset"    {big} NOT NULL,
    data        {blob} NOT NULL,
    received_ns {big} NOT NULL,
    PRIMARY KEY (vehicle, frame_id, chunk)
);
"""

_V2 = """
CREATE INDEX IF NOT EXISTS frames_by_received ON frames (received_ns);
CREATE TABLE IF NOT EXISTS vehicles (
    vehicle        TEXT PRIMARY KEY,
    status         TEXT NOT NULL DEFAULT '',
    status_ns      {big} NOT NULL DEFAULT 0,
    config_version {big},
    config_status  TEXT,
    config_error   TEXT,
    config_ns      {big} NOT NULL DEFAULT 0,
    stats          TEXT,
    stats_ns       {big} NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS config_events (
    vehicle           TEXT NOT NULL,
    t_ns              {big} NOT NULL,
    status            TEXT NOT NULL,
    version           {big} NOT NULL,
    requested_version {big},
    error             TEXT,
    via               TEXT NOT NULL,
    request_id        TEXT,
    received_ns       {big} NOT NULL,
    PRIMARY KEY (vehicle, t_ns, status, version)
);
CREATE TABLE IF NOT EXISTS alerts (
    vehicle      TEXT NOT NULL,
    sensor       TEXT NOT NULL,
    raised_ns    {big} NOT NULL,
    modality     TEXT NOT NULL,
    reason       TEXT NOT NULL,
    message      TEXT NOT NULL,
    harmful_rate {real} NOT NULL,
    cleared_ns   {big},
    received_ns  {big} NOT NULL,
    PRIMARY KEY (vehicle, sensor, raised_ns)
);
"""

MIGRATIONS = (_V1, _V2)  # MIGRATIONS[n - 1] takes a store from version n - 1 to n
SCHEMA_VERSION = len(MIGRATIONS)


def statements(version: int, types: Types) -> list[str]:
    """The DDL statements that take a store from `version - 1` to `version`."""
    text = MIGRATIONS[version - 1].format(big=types.big, real=types.real, blob=types.blob)
    return [s.strip() for s in text.split(";") if s.strip()]


def check_version(found: int) -> None:
    if found > SCHEMA_VERSION:
        raise SchemaError(f"ingest index schema {found} is newer than this edgesift ({SCHEMA_VERSION}); upgrade it")


class SchemaError(EdgesiftError):
    """The store holds a schema this edgesift cannot read."""

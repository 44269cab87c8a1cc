"""The ingest index on PostgreSQL and SQLite: schema migrations, and two workers on one shared subscription with
one of them SIGKILLed mid-stream (real mosquitto, real PostgreSQL, real uplinks)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from uplink_support import fill_spool, open_spool, uplink_config, wait_for

from agent.ingest import schema
from agent.ingest.blobs import read_frames
from agent.ingest.store import SqliteIndex, open_index
from agent.spool import JPEG
from agent.uplink import Uplink

V1_ROW = ("car-1", "f-1", "cam", "camera", 5, 1, "helpful", 0.5, '["novel"]', "keep:helpful", JPEG, "heuristic", 3,
          "ab", 7, "car-1/x.mcap")  # fmt: skip


def _v1_statements(types: schema.Types) -> list[str]:
    return schema.statements(1, types)


def test_sqlite_index_of_edgesift_0_1_is_migrated_and_keeps_its_frames(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    with sqlite3.connect(path) as conn:  # what edgesift 0.1 wrote: frames + chunks, user_version 1
        for statement in _v1_statements(schema.SQLITE_TYPES):
            conn.execute(statement)
        conn.execute(f"INSERT INTO frames VALUES ({', '.join('?' * len(V1_ROW))})", V1_ROW)
        conn.execute("PRAGMA user_version=1")
    index = SqliteIndex(path)
    try:
        assert index._version() == schema.SCHEMA_VERSION == 2
        assert index.has_frame("car-1", "f-1") and index.frame_count() == 1
        index.begin()
        index.set_status("car-1", "online", 9)
        index.commit()
        assert index.execute("SELECT status FROM vehicles").fetchall() == [("online",)]
    finally:
        index.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=99")  # written by a newer edgesift: refused, never guessed at
    with pytest.raises(schema.SchemaError, match="newer"):
        SqliteIndex(path)


@pytest.mark.slow
def test_postgres_index_is_migrated_from_v1(postgres) -> None:
    import psycopg

    url = postgres.create_database("migrate_v1")
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in _v1_statements(schema.POSTGRES_TYPES):
            conn.execute(statement)
        conn.execute("CREATE TABLE edgesift_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO edgesift_schema VALUES (1)")
        conn.execute(f"INSERT INTO frames VALUES ({', '.join(['%s'] * len(V1_ROW))})", V1_ROW)
    index = open_index(url, Path("/nonexistent"))
    try:
        assert index._version() == 2 and index.frame_count() == 1
        assert index.execute("SELECT COUNT(*) FROM alerts").fetchone()[0] == 0
    finally:
        index.close()
    second = open_index(url, Path("/nonexistent"))  # already current: nothing to do
    assert second.migrate() == (2, 2)
    second.close()


def _worker(broker_url: str, out: Path, db: str, name: str, log: Path) -> subprocess.Popen[bytes]:
    cmd = [str(Path(sys.executable).parent / "edgesift"), "ingest", "--broker", broker_url, "--out", str(out),
           "--db", db, "--client-id", name, "--group", "fleet", "--batch-ms", "20", "--segment-mb", "4"]
    return subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, env={**os.environ})


def _indexed(db: str) -> list[tuple[str, str, str, str, str]]:
    import psycopg

    with psycopg.connect(db) as conn:
        return conn.execute("SELECT vehicle, frame_id, mcap, sha256, encoding FROM frames").fetchall()


@pytest.mark.slow
def test_two_workers_on_postgres_one_killed_mid_stream_store_every_frame_once(broker, postgres, tmp_path) -> None:
    db = postgres.create_database("two_workers")
    out, logs = tmp_path / "store", tmp_path / "logs"
    logs.mkdir()
    vehicles = ("car-1", "car-2", "car-3")
    spools, expected = {}, set()
    for vehicle in vehicles:
        spool = spools[vehicle] = open_spool(tmp_path / f"spool-{vehicle}")
        expected |= {(vehicle, fid) for fid in fill_spool(spool, 30, kind="camera")}
        expected |= {(vehicle, fid) for fid in fill_spool(spool, 6, kind="lidar")}  # ~1.1 MB: chunked
    workers = {name: _worker(broker.url, out, db, name, logs / f"{name}.log") for name in ("worker-a", "worker-b")}
    try:
        wait_for(lambda: _index_ready(db), 30, "the workers to create the schema")
        time.sleep(1.0)  # both subscribed
        uplinks = [Uplink(spools[v], uplink_config(broker.url, max_payload_bytes=131_072), v) for v in vehicles]
        for uplink in uplinks:
            uplink.start()
        wait_for(lambda: len(_indexed(db)) >= len(expected) // 4, 60, "a quarter of the stream")
        workers["worker-a"].send_signal(signal.SIGKILL)  # mid-stream: its open batch is neither committed nor acked
        workers["worker-a"].wait(10)
        killed_at = len(_indexed(db))
        time.sleep(1.0)
        workers["worker-a"] = _worker(broker.url, out, db, "worker-a", logs / "worker-a.log")  # restarted
        # started (its signal handlers set) before the stream can end: a SIGTERM during its imports leaves no stats
        wait_for(lambda: _ingest_sessions(db) >= 2, 30, "the restarted worker's index connection")
        for uplink in uplinks:
            assert uplink.drain(90)
            uplink.stop()
        wait_for(lambda: len(_indexed(db)) >= len(expected), 60, f"all {len(expected)} frames in the index")
    finally:
        for proc in workers.values():
            proc.send_signal(signal.SIGTERM)
        for proc in workers.values():
            proc.wait(20)
        for spool in spools.values():
            spool.close()
    assert killed_at < len(expected)
    rows = _indexed(db)
    assert len(rows) == len(expected) and {(r[0], r[1]) for r in rows} == expected  # every frame, exactly once
    final = [json.loads(ln) for p in logs.glob("*.log") for ln in p.read_text().splitlines() if ln.startswith("{")]
    assert len(final) == 2 and sum(s["reassembled"] for s in final) > 0
    by_segment: dict[str, set[str]] = {}
    for _vehicle, fid, mcap, _sha, _encoding in rows:
        by_segment.setdefault(mcap, set()).add(fid)
    blobs = {}
    for mcap, fids in by_segment.items():
        blobs.update({(mcap, k): v for k, v in read_frames(out / mcap, fids).items()})
    for _vehicle, fid, mcap, sha, encoding in rows:  # every blob reads back from the segment the index names
        header, blob = blobs[(mcap, fid)]
        assert header["sha256"] == sha
        if encoding == JPEG:
            assert hashlib.sha256(blob).hexdigest() == sha
        else:
            assert len(blob) >= 16 * 1000


def _ingest_sessions(db: str) -> int:
    import psycopg

    with psycopg.connect(db) as conn:
        sql = "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'edgesift-ingest'"
        return int(conn.execute(sql).fetchone()[0])


def _index_ready(db: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(db) as conn:
            return conn.execute("SELECT MAX(version) FROM edgesift_schema").fetchone()[0] == 2
    except psycopg.Error:
        return False

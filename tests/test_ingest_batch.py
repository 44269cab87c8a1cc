"""The ingest's group commit, batch by batch: a frame's index row is inserted only once its MCAP bytes and the
folder entries of a new segment are fsynced; duplicates inside a batch and against the index are stored once and
still receipted; JPEG chunks are stored uncompressed, point clouds zstd-compressed; two PostgreSQL workers
inserting overlapping batches neither deadlock nor store a frame twice."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zstandard
from conftest import sample_frames
from mcap.reader import make_reader
from uplink_support import IngestThread, indexed, publish_raw, received_headers, wait_for

from agent.ingest import mcap_sink
from agent.ingest.blobs import read_frames
from agent.ingest.mcap_sink import HEADERS_TOPIC, McapSink, ros_message
from agent.ingest.store import SqliteIndex
from agent.replay.mcap_out import image_topic, points_topic
from agent.spool import JPEG, XYZI_F32_ZSTD
from agent.uplink import wire


def _header(vehicle: str, frame_id: str, blob: bytes, modality: str = "camera", encoding: str = JPEG,
            sensor: str = "cam") -> wire.FrameHeader:  # fmt: skip
    return wire.FrameHeader(
        frame_id=frame_id, vehicle=vehicle, sensor=sensor, modality=modality, t_ns=1_317_000_000_000_000_000, seq=1,
        verdict="helpful", score=0.5, reasons=["novel"], rule="keep", encoding=encoding, scorer="heuristic",
        sha256=wire.sha256_hex(blob), size=len(blob),
    )  # fmt: skip


def _message(vehicle: str, frame_id: str, blob: bytes) -> tuple[str, bytes]:
    return wire.frames_topic("edgesift", vehicle, "cam"), wire.encode(_header(vehicle, frame_id, blob), blob)


def _jpeg() -> bytes:
    payload = sample_frames("camera")[0].payload
    assert payload is not None
    return payload


def test_rows_are_inserted_only_after_their_segment_and_its_folders_are_fsynced(broker, tmp_path, monkeypatch):
    events: list[tuple[str, Any]] = []
    real_fsync, real_datasync, real_insert = os.fsync, os.fdatasync, SqliteIndex.insert_frames

    def fsync(fd: int) -> None:
        real_fsync(fd)
        events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}"))))

    def fdatasync(fd: int) -> None:  # the segments' bytes (their size with them), the folders by fsync
        real_datasync(fd)
        events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}"))))

    def insert_frames(self: SqliteIndex, rows: list[Any]) -> set[tuple[str, str]]:
        events.append(("insert", [out / mcap for _, _, mcap in rows]))
        return real_insert(self, rows)

    monkeypatch.setattr(mcap_sink.os, "fsync", fsync)
    monkeypatch.setattr(mcap_sink.os, "fdatasync", fdatasync)
    monkeypatch.setattr(SqliteIndex, "insert_frames", insert_frames)
    out = tmp_path / "ingest"
    jpeg = _jpeg()
    with IngestThread(broker.url, out, segment_mb=0.25) as ingest:  # ~95 KB frames: new segments on the way
        publish_raw(broker.url, [_message(v, f"f{n}", jpeg) for n in range(6) for v in ("car-1", "car-2")])
        ingest.wait_frames(12)
    assert {r["frame_id"] for r in indexed(out)} == {f"f{n}" for n in range(6)} and len(indexed(out)) == 12
    synced: set[Path] = set()
    inserts = 0
    for kind, what in events:
        if kind == "fsync":
            synced.add(what)
            continue
        inserts += 1
        for path in what:
            # the segment's bytes, its folder's entry and (new vehicle folder) the store folder's entry
            assert {path, path.parent, path.parent.parent} <= synced, f"{path} indexed before it was durable"
        synced = {p for p in synced if p.is_dir()}  # bytes written for the next batch need a new fsync
    assert inserts >= 1 and len({r["mcap"] for r in indexed(out)}) >= 4  # segments rolled over (0.25 MB each)


def test_duplicates_in_a_batch_and_in_the_index_are_stored_once_and_receipted(broker, tmp_path: Path) -> None:
    out = tmp_path / "ingest"
    jpeg = _jpeg()
    with IngestThread(broker.url, out, batch_ms=2000.0) as ingest:  # one batch: both copies in it
        publish_raw(broker.url, [_message("car-1", "twice", jpeg), _message("car-1", "twice", jpeg)])
        ingest.wait_frames(1)
        wait_for(lambda: ingest.stat("receipted_frames") >= 2, 10, "receipts for both copies")
        assert ingest.stat("duplicates") == 1
        publish_raw(broker.url, [_message("car-1", "twice", jpeg)], client_id="again")  # committed already
        wait_for(lambda: ingest.stat("duplicates") >= 2, 10, "the duplicate of a committed frame")
        wait_for(lambda: ingest.stat("receipted_frames") >= 3, 10, "its receipt")
    assert ingest.final["frames"] == 1 and len(indexed(out)) == 1
    assert received_headers(out) == {"twice": 1}  # written to MCAP once: the look-up comes before the write


def test_a_batch_is_one_chunk_uncompressed_for_jpegs_and_zstd_with_a_point_cloud(tmp_path: Path) -> None:
    jpeg = _jpeg()
    points = sample_frames("lidar")[0].array
    assert points is not None
    raw = np.ascontiguousarray(points, dtype="<f4").tobytes()
    cloud = zstandard.ZstdCompressor().compress(raw)
    sink = McapSink(tmp_path, "run")
    batches = [[_header("car-1", "img1", jpeg), _header("car-1", "img2", jpeg)],
               [_header("car-1", "pts", cloud, "lidar", XYZI_F32_ZSTD, "velo"), _header("car-1", "img3", jpeg)]]
    for batch in batches:  # two group commits
        for header in batch:
            blob = jpeg if header.encoding == JPEG else cloud
            sink.segment("car-1")
            sink.write("car-1", header, ros_message(header, blob), 1)
        sink.sync()
    assert sink.close() == {"car-1": 4}
    (path,) = (tmp_path / "car-1").glob("*.mcap")
    with path.open("rb") as fh:
        summary = make_reader(fh).get_summary()
    assert summary is not None
    topics = {cid: channel.topic for cid, channel in summary.channels.items()}
    chunks = [({topics[cid] for cid in chunk.message_index_offsets}, chunk.compression)
              for chunk in summary.chunk_indexes]  # fmt: skip
    assert chunks == [({image_topic("cam"), HEADERS_TOPIC}, ""),
                      ({image_topic("cam"), points_topic("velo"), HEADERS_TOPIC}, "zstd")]  # fmt: skip
    frames = read_frames(path)
    assert [frames[f"img{n}"][1] for n in (1, 2, 3)] == [jpeg] * 3 and frames["pts"][1] == raw


@pytest.mark.slow
def test_two_postgres_workers_inserting_overlapping_batches_neither_deadlock_nor_store_twice(postgres) -> None:
    from agent.ingest.pg_store import PostgresIndex

    url = postgres.create_database("overlap")
    first, second = PostgresIndex(url), PostgresIndex(url)
    try:
        jpeg = _jpeg()
        rows = [(_header(v, f"f{n}", jpeg), 1, f"{v}/x.mcap") for n in range(20) for v in ("car-1", "car-2")]
        assert first.existing_frames([("car-1", "f0")]) == set()
        first.begin()
        assert len(first.insert_frames(rows[:30])) == 30
        got: dict[str, Any] = {}

        def other() -> None:  # the same frames in the opposite order, and ten more: waits for the first's commit
            try:
                second.begin()
                got["inserted"] = second.insert_frames(rows[::-1])
                second.commit()
            except Exception as exc:  # a deadlock would be psycopg.errors.DeadlockDetected
                got["error"] = exc

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive()  # blocked on the first worker's uncommitted rows
        first.commit()
        thread.join(30)
        assert "error" not in got, got
        assert got["inserted"] == {(h.vehicle, h.frame_id) for h, _, _ in rows[30:]}
        assert first.frame_count() == 40
        assert first.existing_frames([("car-1", "f0"), ("car-2", "f19"), ("car-3", "f0")]) == {
            ("car-1", "f0"), ("car-2", "f19")}
    finally:
        first.close()
        second.close()

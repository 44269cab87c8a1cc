"""The reference ingest against hostile and broken senders, restarts, and several workers sharing the load."""

from __future__ import annotations

import json
import struct
import time
from dataclasses import replace
from pathlib import Path

from conftest import sample_frames
from uplink_support import (
    IngestThread,
    fill_spool,
    indexed,
    open_spool,
    publish_raw,
    received_headers,
    uplink_config,
    wait_for,
)

from agent.spool import JPEG
from agent.uplink import Uplink, wire

TOPIC = "edgesift/car-9/frames/cam"


def _frame_messages(blob: bytes, frame_id: str = "f-1", max_payload: int = 1 << 20, **fields: object) -> list[bytes]:
    header = wire.FrameHeader(
        frame_id=frame_id, vehicle="car-9", sensor="cam", modality="camera", t_ns=1_317_000_000_000_000_000, seq=1,
        verdict="helpful", score=0.5, reasons=["novel"], rule="keep", encoding=JPEG, scorer="heuristic",
        sha256=wire.sha256_hex(blob), size=len(blob),
    )  # fmt: skip
    header = replace(header, **fields)
    return [wire.encode(h, data) for h, data in wire.split_blob(header, blob, max_payload)]


def _jpeg() -> bytes:
    payload = sample_frames("camera")[0].payload
    assert payload is not None
    return payload


def test_garbage_is_counted_and_never_stops_the_ingest(broker, tmp_path: Path) -> None:
    jpeg = _jpeg()
    good_header = json.dumps({"v": 1}).encode()
    garbage = [
        (TOPIC, b""),
        (TOPIC, b"\xff" * 5000),
        (TOPIC, struct.pack(">I", len(good_header)) + good_header),
        (TOPIC, _frame_messages(jpeg, vehicle="car-1")[0]),  # a header naming another vehicle than its topic
        ("edgesift/car-9/frames", b"no sensor level"),
        ("edgesift/car-9/unknown/x", b"?"),  # not subscribed to: never arrives
        ("edgesift/car-9/stats", b"{not json"),
    ]
    wrong_sha = _frame_messages(jpeg, frame_id="bad-sha", sha256="0" * 64)
    not_points = _frame_messages(jpeg, frame_id="bad-blob", modality="lidar", encoding="xyzi-f32-zstd")
    with IngestThread(broker.url, tmp_path / "ingest") as ingest:
        publish_raw(broker.url, [*garbage, (TOPIC, wrong_sha[0]), (TOPIC, not_points[0])])
        publish_raw(broker.url, [(TOPIC, m) for m in _frame_messages(jpeg, frame_id="good")], client_id="ok")
        ingest.wait_frames(1)
        wait_for(lambda: ingest.stat("garbage") >= 8, 5, "every bad message to be counted")
    stats = ingest.final
    assert stats["garbage"] == 8 and stats["bad_sha"] == 1 and stats["bad_blob"] == 1 and stats["frames"] == 1
    assert stats["state"] == "stopped" and stats.get("errors", 0) == 0
    assert [r["frame_id"] for r in indexed(tmp_path / "ingest")] == ["good"]
    assert stats["acks"] == stats["messages"]  # garbage is acknowledged too, or the broker would resend it forever


def test_missing_chunks_are_abandoned_after_the_timeout_and_the_buffer_is_bounded(broker, tmp_path: Path) -> None:
    jpeg = _jpeg()  # ~90 KB: 3 chunks of 32 KB
    chunks = {n: _frame_messages(jpeg, frame_id=f"partial-{n}", max_payload=32_768) for n in range(4)}
    complete = _frame_messages(jpeg, frame_id="whole", max_payload=32_768)
    with IngestThread(broker.url, tmp_path / "ingest", reassembly_timeout_s=2.5, max_partial_mb=0.1) as ingest:
        assert len(complete) == 3
        publish_raw(broker.url, [(TOPIC, chunks[0][0]), (TOPIC, chunks[0][1])])  # 2 of 3 chunks
        wait_for(lambda: ingest.stat("chunks") >= 2, 5, "the chunks")
        assert ingest.ingest.stats()["partial_bytes"] > 0
        wait_for(lambda: ingest.stat("abandoned_partials") >= 1, 10, "the reassembly timeout")
        # the buffer holds 100 KB: first chunks of three more frames push the oldest partial frames out
        publish_raw(broker.url, [(TOPIC, chunks[n][i]) for n in (1, 2, 3) for i in (0, 1)])
        wait_for(lambda: ingest.stat("abandoned_partials") >= 2, 5, "the buffer bound")
        assert ingest.ingest.stats()["partial_bytes"] <= 100_000
        mixed = [complete[2], complete[1], complete[1], complete[0], complete[0]]  # any order, duplicates
        publish_raw(broker.url, [(TOPIC, m) for m in mixed])
        ingest.wait_frames(1)
    assert ingest.final["reassembled"] == 1 and ingest.final["duplicate_chunks"] == 1
    assert ingest.final["duplicates"] == 1  # the last copy came after the frame was complete
    rows = indexed(tmp_path / "ingest")
    assert [(r["frame_id"], r["sha256"]) for r in rows] == [("whole", wire.sha256_hex(jpeg))]


def test_duplicates_are_caught_across_ingest_restarts(broker, tmp_path: Path) -> None:
    messages = [(TOPIC, m) for m in _frame_messages(_jpeg(), frame_id="once")]
    with IngestThread(broker.url, tmp_path / "ingest") as first:
        publish_raw(broker.url, messages)
        first.wait_frames(1)
    time.sleep(1.1)  # the next run gets its own MCAP file name (per-second stamp + pid)
    with IngestThread(broker.url, tmp_path / "ingest") as second:
        publish_raw(broker.url, messages)  # at least once: the vehicle sent it again
        wait_for(lambda: second.stat("duplicates") >= 1, 5, "the duplicate")
    assert second.final["frames"] == 0
    assert len(indexed(tmp_path / "ingest")) == 1 and received_headers(tmp_path / "ingest") == {"once": 1}
    assert len(list((tmp_path / "ingest" / "car-9").glob("*.mcap"))) <= 2


def test_two_workers_split_the_load_and_still_reassemble_chunks(broker, tmp_path: Path) -> None:
    """A shared subscription spreads the chunks of one frame over both workers; they meet in the shared index."""
    out = tmp_path / "ingest"
    with open_spool(tmp_path / "spool") as spool:
        expected = set(fill_spool(spool, 12, kind="lidar"))  # ~1.1 MB scans: 9 chunks of 128 KB each
        with IngestThread(broker.url, out, client_id="worker-a") as a, \
                IngestThread(broker.url, out, client_id="worker-b") as b:  # fmt: skip
            uplink = Uplink(spool, uplink_config(broker.url, max_payload_bytes=131_072), "car-9")
            uplink.start()
            assert uplink.drain(30)
            uplink.stop()
            wait_for(lambda: a.stat("frames") + b.stat("frames") >= len(expected), 30, "every scan")
    assert a.final["messages"] > 0 and b.final["messages"] > 0  # both took a share
    assert {r["frame_id"] for r in indexed(out)} == expected
    assert set(received_headers(out).values()) == {1}

"""The frame message format, the ack tracker and the uplink config: units, no broker."""

from __future__ import annotations

import json
import struct
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError
from uplink_support import fill_spool, open_spool

from agent.config.uplink import UplinkConfig, parse_broker_url
from agent.uplink import wire
from agent.uplink.connection import fatal_reason
from agent.uplink.tracker import InFlightTable

HEADER = wire.FrameHeader(
    frame_id="0001317000000000000-cam-3", vehicle="car-1", sensor="cam/front left", modality="camera", t_ns=1,
    seq=3, verdict="helpful", score=0.75, reasons=["novel"], rule="keep", encoding="jpeg", scorer="heuristic",
    sha256="0" * 64, size=10,
)  # fmt: skip


def _payload(doc: dict, data: bytes = b"") -> bytes:
    raw = json.dumps(doc).encode()
    return struct.pack(">I", len(raw)) + raw + data


def test_round_trip_and_chunks_tile_the_blob() -> None:
    blob = bytes(range(256)) * 200  # 51,200 bytes
    header = wire.FrameHeader(**{**HEADER.to_dict(), "size": len(blob), "sha256": wire.sha256_hex(blob)})
    parts = wire.split_blob(header, blob, max_payload=8192)
    assert len(parts) == 7
    rebuilt = bytearray()
    for index, (chunk_header, data) in enumerate(parts):
        message = wire.encode(chunk_header, data)
        assert len(message) <= 8192
        decoded, body = wire.decode(message)
        assert (decoded.chunk, decoded.chunks, decoded.offset) == (index, 7, len(rebuilt))
        assert decoded.sensor == "cam/front left" and decoded.reasons == ["novel"]
        rebuilt += body
    assert bytes(rebuilt) == blob
    single = wire.split_blob(header, blob, max_payload=1 << 20)
    assert len(single) == 1 and wire.decode(wire.encode(*single[0]))[1] == blob


def test_topics_are_safe_levels() -> None:
    assert wire.frames_topic("edgesift", "car-1", "cam/front left+#") == "edgesift/car-1/frames/cam_front_left__"
    assert wire.split_topic("edgesift/car-1/frames/cam", "edgesift") == ("car-1", "frames")
    assert wire.split_topic("edgesift/car-1/status", "edgesift") == ("car-1", "status")
    for bad in ("other/car-1/frames/x", "edgesift/car 1/frames/x", "edgesift/car-1", "edgesift//frames/x"):
        assert wire.split_topic(bad, "edgesift") is None


GOOD = HEADER.to_dict()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "too short"),
        (b"\x00\x00", "too short"),
        (struct.pack(">I", 1 << 30) + b"{}", "too large"),
        (struct.pack(">I", 5) + b"{}", "too large"),
        (struct.pack(">I", 3) + b"\xff\xfe{", "not UTF-8 JSON"),
        (_payload([1, 2]), "not a JSON object"),
        (_payload({**GOOD, "v": 2}, b"x" * 10), "version"),
        (_payload({k: v for k, v in GOOD.items() if k != "frame_id"}, b"x" * 10), "frame_id"),
        (_payload({**GOOD, "t_ns": "1"}, b"x" * 10), "t_ns"),
        (_payload({**GOOD, "score": True}, b"x" * 10), "score"),
        (_payload({**GOOD, "score": 7.0}, b"x" * 10), "out of range"),
        (_payload({**GOOD, "encoding": "png"}, b"x" * 10), "encoding"),
        (_payload({**GOOD, "sha256": "XYZ"}, b"x" * 10), "sha256"),
        (_payload({**GOOD, "reasons": ["a"] * 100}, b"x" * 10), "reasons"),
        (_payload({**GOOD, "size": 0}), "size"),
        (_payload({**GOOD, "size": 10**12}, b"x"), "size"),
        (_payload({**GOOD, "chunks": 3, "chunk": 3}, b"x"), "chunk 3 of 3"),
        (_payload({**GOOD, "chunks": 2, "offset": 8}, b"xxxx"), "beyond blob size"),
        (_payload(GOOD, b"x" * 9), "single-message frame carries 9 bytes"),
    ],
)
def test_decode_rejects_hostile_payloads_with_a_reason(payload: bytes, message: str) -> None:
    with pytest.raises(wire.WireError, match=message):
        wire.decode(payload)


def test_tracker_handles_an_ack_that_beats_the_registration(tmp_path: Path) -> None:
    """paho may call on_publish before publish() returns the mid (paho #361): the ack must not be lost."""
    with open_spool(tmp_path / "spool") as spool:
        fill_spool(spool, 2)
        first, second = spool.entries()
    table = InFlightTable()
    attempt = table.begin(first, messages=2, blob_bytes=10, now=0.0)
    table.acked(7, 0)  # the ack of mid 7 arrives first ...
    table.sent(attempt, 7)  # ... then the registration
    assert table.take_done() == []  # one of two chunks
    table.sent(attempt, 8)
    table.acked(8, 0)
    assert [a.entry.frame_id for a in table.take_done()] == [first.frame_id]
    refused = table.begin(second, messages=1, blob_bytes=10, now=0.0)
    table.sent(refused, 9)
    table.acked(9, 0x97)  # quota exceeded
    assert [a.failure for a in table.take_failed()] == [0x97]
    table.ignore(10)  # a status message: its ack is swallowed, not parked
    table.acked(10, 0)
    assert table.counts(0.0) == (0, 0, 0.0) and table._parked == {}


def test_tracker_is_consistent_under_racing_threads(tmp_path: Path) -> None:
    with open_spool(tmp_path / "spool") as spool:
        fill_spool(spool, 1)
        (entry,) = spool.entries()
    table = InFlightTable()
    attempt = table.begin(entry, messages=2000, blob_bytes=1, now=0.0)
    acker = threading.Thread(target=lambda: [table.acked(mid, 0) for mid in range(2000)])
    acker.start()
    for mid in range(2000):
        table.sent(attempt, mid)
    acker.join()
    assert len(table.take_done()) == 1 and table._parked == {} and table._by_mid == {}


def test_uplink_config_is_strict_and_bounded(tmp_path: Path) -> None:
    assert parse_broker_url("mqtts://broker.example:8884").port == 8884
    assert parse_broker_url("mqtt://[::1]").port == 1883
    ok = UplinkConfig(broker="mqtts://b.example", tls_ca="ca.crt", tls_cert="c.crt", username="u", password_file="p")
    assert ok.order == "score"
    for bad in (
        {"broker": "http://x"}, {"broker": "mqtt://user:pw@x"}, {"broker": "mqtt://x/path"},
        {"tls_ca": "ca.crt"}, {"broker": "mqtts://x", "tls_key": "k"}, {"password_file": "p"},
        {"max_in_flight": 0}, {"max_payload_bytes": 100}, {"order": "random"}, {"topic_prefix": "a/b"},
        {"reconnect_min_s": 10, "reconnect_max_s": 1}, {"ack_timeout_s": 0}, {"colour": "red"},
    ):  # fmt: skip
        with pytest.raises(ValidationError):
            UplinkConfig(**bad)


def test_fatal_connack_reasons() -> None:
    assert fatal_reason(0x86) == "bad user name or password"
    assert fatal_reason(0x87) == "not authorized"
    assert fatal_reason(0x88) is None  # server unavailable: retry with backoff

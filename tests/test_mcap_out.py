"""kept.mcap written from a spool of real frames, read back with the mcap library and the ROS 2 decoder."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import sample_frames, sample_png, sample_scan
from mcap.reader import make_reader
from mcap.records import DataEnd, Footer, Header
from mcap.stream_reader import StreamReader
from mcap_ros2.decoder import DecoderFactory

from agent.config.model import SpoolConfig
from agent.frame import Encoding, Frame, Modality
from agent.replay.mcap_out import DECISION_SCHEMA, DECISIONS_TOPIC, topic_token, write_kept_mcap
from agent.scoring.base import Label, Verdict
from agent.spool import JPEG, Spool, decode_points

T0 = 1_317_000_000_000_000_000  # 2011-09-26, as a ns timestamp
IMAGE_TOPICS = {"/edgesift/image_02/image/compressed", "/edgesift/cam_jpeg/image/compressed"}
POINTS_TOPIC = "/edgesift/velodyne/points"


def frames() -> list[Frame]:
    """Real frames of the sample drive: 4 camera frames as PNG (KITTI's format), 4 scans as KITTI .bin bytes, and
    3 other camera frames as they are stored (JPEG), as a second camera."""
    out = []
    for i in range(4):
        data = sample_png(i)
        t = T0 + i * 100_000_000
        out.append(Frame("image-02", Modality.CAMERA, t, i, len(data), f"sample:camera/{i}.png", Encoding.PNG, data))
        data = sample_scan(i).tobytes()
        t = T0 + i * 100_000_000 + 50_000_000
        out.append(Frame("velodyne", Modality.LIDAR, t, i, len(data), f"sample:lidar/{i}", Encoding.XYZI_F32, data))
    for i, n in enumerate((20, 21, 22)):
        data = sample_frames("camera")[n].payload
        assert data is not None
        t = T0 + i * 100_000_000 + 25_000_000
        out.append(Frame("cam_jpeg", Modality.CAMERA, t, i, len(data), f"sample:camera/{n}", Encoding.JPEG, data))
    return out


def record(frame: Frame, fid: str, kept: bool, score: float) -> dict[str, Any]:
    return {
        "sensor": frame.sensor, "modality": frame.modality.value, "seq": frame.seq, "t_ns": frame.t_ns,
        "verdict": "helpful" if kept else "useless", "score": score, "kept": kept, "reasons": ["novel"],
        "rule": "keep:novel" if kept else "drop:redundant", "bytes": frame.nbytes, "frame_id": fid,
        "signals": {"blur": 0.25, "nan_signal": float("nan")},
    }  # fmt: skip


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Spool, list[dict[str, Any]]]:
    spool = Spool.open(tmp_path / "spool", SpoolConfig(max_mb=100))
    decisions = []
    for n, frame in enumerate(frames()):
        kept = n % 4 != 3  # every 4th frame is dropped: a decision without a frame
        fid = f"{frame.t_ns:019d}-{frame.sensor}-{frame.seq}"
        if kept:
            assert spool.put(frame, Verdict(Label.HELPFUL, 0.8, ("novel",)), "keep:novel", frame_id=fid).stored
        decisions.append(record(frame, fid, kept, 0.8 if kept else 0.1))
    yield spool, decisions[::-1]  # out of order on purpose: the writer sorts by time
    spool.close()


def read_all(path: Path) -> tuple[Any, list[tuple[Any, Any, Any]]]:
    with path.open("rb") as fh:
        reader = make_reader(fh, validate_crcs=True, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        header = reader.get_header()
        messages = list(reader.iter_messages(log_time_order=False))  # file order
    return (header, summary), messages


def test_kept_mcap_round_trip(tmp_path: Path, filled: tuple[Spool, list[dict[str, Any]]]) -> None:
    spool, decisions = filled
    out = tmp_path / "kept.mcap"
    counts = write_kept_mcap(out, spool, decisions)
    entries = {e.frame_id: e for e in spool.entries()}
    n_points = sum(e.modality == "lidar" for e in entries.values())
    assert counts == {"frames": len(entries), "decisions": len(decisions), "bytes": out.stat().st_size}
    assert not (tmp_path / "kept.mcap.partial").exists()

    (header, summary), messages = read_all(out)
    assert header.profile == "ros2"
    topics = {c.topic: c for c in summary.channels.values()}
    assert set(topics) == IMAGE_TOPICS | {POINTS_TOPIC, DECISIONS_TOPIC}
    schema_of = {topic: summary.schemas[c.schema_id] for topic, c in topics.items()}
    for topic in IMAGE_TOPICS:
        assert (schema_of[topic].name, schema_of[topic].encoding) == ("sensor_msgs/msg/CompressedImage", "ros2msg")
        assert topics[topic].message_encoding == "cdr"
    points_schema = schema_of[POINTS_TOPIC]
    assert (points_schema.name, points_schema.encoding) == ("sensor_msgs/msg/PointCloud2", "ros2msg")
    assert topics[DECISIONS_TOPIC].message_encoding == "json"
    assert schema_of[DECISIONS_TOPIC].encoding == "jsonschema"
    assert json.loads(schema_of[DECISIONS_TOPIC].data) == DECISION_SCHEMA
    for definition in ("MSG: std_msgs/Header", "MSG: builtin_interfaces/Time"):
        assert definition in schema_of[POINTS_TOPIC].data.decode()
    assert "MSG: sensor_msgs/PointField" in schema_of[POINTS_TOPIC].data.decode()

    per_topic = {topic: 0 for topic in topics}
    for _, channel, _ in messages:
        per_topic[channel.topic] += 1
    assert per_topic[POINTS_TOPIC] == n_points
    assert sum(per_topic[t] for t in IMAGE_TOPICS) == len(entries) - n_points
    assert per_topic[DECISIONS_TOPIC] == len(decisions)
    assert summary.statistics.message_count == len(entries) + len(decisions)
    assert all(ci.compression == "zstd" for ci in summary.chunk_indexes)

    with out.open("rb") as fh:  # a linear pass over every record with CRC checks, as a streaming player reads it
        records = list(StreamReader(fh, validate_crcs=True).records)
    assert isinstance(records[0], Header) and isinstance(records[-1], Footer)
    assert any(isinstance(r, DataEnd) for r in records)

    log_times = [m.log_time for _, _, m in messages]
    assert log_times == sorted(log_times)  # written in log-time order
    _check_frames(spool, entries, messages)
    _check_decisions(decisions, messages)


def _check_frames(spool: Spool, entries: dict[str, Any], messages: list[tuple[Any, Any, Any]]) -> None:
    decoders = DecoderFactory()
    seen = set()
    for schema, channel, message in messages:
        if channel.topic == DECISIONS_TOPIC:
            continue
        decoded = decoders.decoder_for(channel.message_encoding, schema)(message.data)
        stamp = decoded.header.stamp.sec * 1_000_000_000 + decoded.header.stamp.nanosec
        fid = f"{stamp:019d}-{decoded.header.frame_id}-"
        (entry,) = [e for k, e in entries.items() if k.startswith(fid)]
        seen.add(entry.frame_id)
        assert message.log_time == message.publish_time == entry.t_ns
        assert channel.topic.split("/")[2] == topic_token(entry.sensor)
        blob = spool.read_blob(entry)
        if entry.encoding == JPEG:
            assert decoded.format == "jpeg"
            assert bytes(decoded.data) == blob  # the spool's JPEG, byte for byte
        else:
            expected = decode_points(blob)
            assert (decoded.height, decoded.width) == (1, len(expected))
            assert (decoded.point_step, decoded.row_step) == (16, 16 * len(expected))
            assert decoded.is_dense is False and decoded.is_bigendian is False
            assert [(f.name, f.offset, f.datatype, f.count) for f in decoded.fields] == [
                ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("intensity", 12, 7, 1)
            ]  # fmt: skip
            points = np.frombuffer(bytes(decoded.data), dtype="<f4").reshape(-1, 4)
            assert np.array_equal(points, expected)
    assert seen == set(entries)


def _check_decisions(decisions: list[dict[str, Any]], messages: list[tuple[Any, Any, Any]]) -> None:
    written = [json.loads(m.data) for _, c, m in messages if c.topic == DECISIONS_TOPIC]
    expected = sorted(decisions, key=lambda r: r["t_ns"])
    assert [w["frame_id"] for w in written] == [e["frame_id"] for e in expected]
    for got, want in zip(written, expected, strict=True):
        assert got["signals"] == {"blur": 0.25, "nan_signal": None}  # NaN is not JSON: written as null
        assert {k: v for k, v in got.items() if k != "signals"} == {k: v for k, v in want.items() if k != "signals"}
        assert set(DECISION_SCHEMA["required"]) <= set(got)
        for key, spec in DECISION_SCHEMA["properties"].items():
            assert _matches(got[key], spec), (key, got[key])
    assert any(not w["kept"] for w in written) and any(w["kept"] for w in written)


_JSON_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict}


def _matches(value: Any, spec: dict[str, Any]) -> bool:
    kind = spec["type"]
    ok = isinstance(value, _JSON_TYPES[kind]) and not (kind in ("integer", "number") and isinstance(value, bool))
    if "enum" in spec:
        ok = ok and value in spec["enum"]
    if kind == "array":
        ok = ok and all(_matches(v, spec["items"]) for v in value)
    if kind == "number":
        ok = ok and math.isfinite(value) and spec.get("minimum", -math.inf) <= value <= spec.get("maximum", math.inf)
    return ok


def test_frames_deleted_while_writing_are_skipped(tmp_path: Path, filled: tuple[Spool, list[dict[str, Any]]]) -> None:
    spool, decisions = filled
    stale = spool.entries()
    spool.delete(stale[0].frame_id)  # e.g. uploaded and deleted by the uplink thread meanwhile
    spool.entries = lambda order="oldest", limit=None: stale  # type: ignore[method-assign]
    counts = write_kept_mcap(tmp_path / "kept.mcap", spool, iter(decisions))
    assert counts["frames"] == len(stale) - 1 and counts["decisions"] == len(decisions)
    _, messages = read_all(tmp_path / "kept.mcap")
    assert len(messages) == len(stale) - 1 + len(decisions)


def test_empty_spool_still_writes_a_valid_file(tmp_path: Path) -> None:
    with Spool.open(tmp_path / "spool", SpoolConfig()) as spool:
        counts = write_kept_mcap(tmp_path / "kept.mcap", spool, [])
    assert counts["frames"] == counts["decisions"] == 0
    (_, summary), messages = read_all(tmp_path / "kept.mcap")
    assert messages == [] and [c.topic for c in summary.channels.values()] == [DECISIONS_TOPIC]


def test_topic_tokens_are_valid_ros2_names() -> None:
    assert topic_token("velodyne") == "velodyne"
    assert topic_token("image-02") == "image_02"
    assert topic_token("cam/front left") == "cam_front_left"
    assert topic_token("3d__lidar") == "sensor_3d_lidar"
    assert topic_token("---") == "sensor"

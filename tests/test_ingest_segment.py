"""The ingest's own MCAP segment writer (agent/ingest/mcap_segment.py): what it writes reads back with mcap's
readers (seeking reader with the summary, CRCs checked; streaming reader, also of a file cut short by a crash),
and its CompressedImage CDR is byte for byte mcap_ros2's."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zstandard
from conftest import sample_frames
from mcap.reader import make_reader
from mcap_ros2._dynamic import serialize_dynamic
from mcap_ros2.decoder import DecoderFactory

from agent.ingest.blobs import read_frames
from agent.ingest.mcap_segment import write_all
from agent.ingest.mcap_sink import HEADERS_TOPIC, McapSink, compressed_image_cdr, ros_message
from agent.replay import msgs
from agent.spool import JPEG, XYZI_F32_ZSTD
from agent.uplink import wire


def _header(frame_id: str, blob: bytes, t_ns: int, lidar: bool = False) -> wire.FrameHeader:
    return wire.FrameHeader(
        frame_id=frame_id, vehicle="car-1", sensor="velo" if lidar else "cam", modality="lidar" if lidar else "camera",
        t_ns=t_ns, seq=1, verdict="helpful", score=0.5, reasons=["novel"], rule="keep",
        encoding=XYZI_F32_ZSTD if lidar else JPEG, scorer="heuristic", sha256=wire.sha256_hex(blob), size=len(blob),
    )  # fmt: skip


@pytest.mark.parametrize(("frame_id", "fmt", "size"), [("cam", "jpeg", 21), ("c", "jpeg", 0), ("front_left", "png", 7),
                                                       ("abc", "jp", 1)])  # every padding
def test_compressed_image_cdr_is_what_mcap_ros2_serializes(frame_id: str, fmt: str, size: int) -> None:
    message = msgs.compressed_image_msg(1_317_000_000_123_456_789, frame_id, bytes(range(size)), fmt)
    encode = serialize_dynamic("sensor_msgs/CompressedImage", msgs.COMPRESSED_IMAGE)["sensor_msgs/CompressedImage"]
    assert b"".join(compressed_image_cdr(message)) == encode(message)


def test_segments_read_back_with_crcs_checked_and_after_a_crash(tmp_path: Path) -> None:
    jpegs = [frame.payload for frame in sample_frames("camera")[:5]]
    points = np.ascontiguousarray(sample_frames("lidar")[0].array, dtype="<f4").tobytes()
    cloud = zstandard.ZstdCompressor().compress(points)
    sink = McapSink(tmp_path / "out", "run")
    t0 = 1_317_000_000_000_000_000
    written = []
    for batch in range(3):  # three group commits, the second with a point cloud
        for n, jpeg in enumerate(jpegs):
            header = _header(f"img{batch}-{n}", jpeg, t0 + 10 * batch + n)
            sink.segment("car-1")
            sink.write("car-1", header, ros_message(header, memoryview(jpeg)), 7)
            written.append(header.frame_id)
        if batch == 1:
            header = _header("pts", cloud, t0 + 15, lidar=True)
            sink.write("car-1", header, ros_message(header, cloud), 7)
        sink.sync()
        if batch == 1:  # a copy as a crash would leave it: no summary, no footer, and a chunk cut in the middle
            (path,) = (tmp_path / "out" / "car-1").glob("*.mcap")
            crashed = tmp_path / "crashed.mcap"
            shutil.copy(path, crashed)
    with crashed.open("r+b") as fh:
        fh.truncate(crashed.stat().st_size - 1000)
    assert sink.close() == {"car-1": 16}

    with path.open("rb") as fh:
        reader = make_reader(fh, validate_crcs=True)
        summary = reader.get_summary()
        assert summary is not None and summary.statistics is not None
        assert summary.statistics.message_count == 32 and summary.statistics.chunk_count == 3
        assert [chunk.compression for chunk in summary.chunk_indexes] == ["", "zstd", ""]
        images: list[bytes] = []
        headers = 0
        for schema, channel, message in reader.iter_messages(log_time_order=False):  # chunk CRCs checked
            if channel.topic == HEADERS_TOPIC:
                headers += 1
            elif channel.topic.endswith("compressed"):
                images.append(bytes(DecoderFactory().decoder_for("cdr", schema)(message.data).data))
    assert headers == 16 and images == jpegs * 3
    frames = read_frames(path)
    assert [frames[fid][1] for fid in written] == jpegs * 3 and frames["pts"][1] == points
    assert frames["img2-4"][0]["received_ns"] == 7
    survived = read_frames(crashed)  # the first batch whole; the cut chunk of the second lost, as after a crash
    assert {f"img0-{n}" for n in range(5)} <= set(survived) and all(
        survived[fid][1] == jpegs[int(fid[-1])] for fid in survived)


def test_write_all_finishes_partial_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    real = os.writev
    monkeypatch.setattr(os, "writev", lambda fd, pieces: real(fd, [bytes(pieces[0])[:3]]))  # 3 bytes a call
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        assert write_all(fd, [b"hello", memoryview(b" "), b"", bytearray(b"world!")]) == 12
    finally:
        os.close(fd)
    assert path.read_bytes() == b"hello world!"


def test_the_chunk_crc_is_zlibs() -> None:
    import zlib

    from agent.ingest import mcap_segment

    data = bytes(range(256)) * 400
    assert mcap_segment.crc32(data[1000:], mcap_segment.crc32(data[:1000])) == zlib.crc32(data)

"""MCAP files of Foxglove's protobuf schemas (as the Foxglove SDK logs them on robots without ROS): the sample
drive's real frames written as foxglove.CompressedImage, RawImage and PointCloud read as the same frames, and
judged as the same frames written as ROS 2 messages are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
from foxglove_schemas_protobuf.PackedElementField_pb2 import PackedElementField
from foxglove_schemas_protobuf.PointCloud_pb2 import PointCloud
from foxglove_schemas_protobuf.RawImage_pb2 import RawImage
from mcap_protobuf.writer import Writer

from agent.config import AgentConfig
from agent.frame import Frame, Skip
from agent.replay.runner import run_replay
from agent.sources.mcap_source import McapSource

try:
    from tests import _sources_fixtures as fx
except ImportError:
    import _sources_fixtures as fx  # type: ignore[no-redef]

T0 = 1_700_000_000_000_000_000
STEP = 100_000_000


@pytest.fixture(scope="module")
def sample() -> tuple[list[bytes], list[np.ndarray]]:
    jpegs = [bytes(m.data) for m in fx.sample_messages("sensor_msgs/msg/CompressedImage", 5)]
    scans = [np.frombuffer(bytes(m.data), dtype="<f4").reshape(-1, 4).copy()
             for m in fx.sample_messages("sensor_msgs/msg/PointCloud2", 5)]
    return jpegs, scans


def _stamp(message: Any, t_ns: int) -> Any:
    message.timestamp.seconds, message.timestamp.nanos = divmod(t_ns, 1_000_000_000)
    return message


def foxglove_cloud(points: np.ndarray, t_ns: int) -> PointCloud:
    cloud = _stamp(PointCloud(frame_id="velo", point_stride=16, data=points.astype("<f4").tobytes()), t_ns)
    for k, name in enumerate(("x", "y", "z", "intensity")):
        cloud.fields.append(PackedElementField(name=name, offset=4 * k, type=PackedElementField.FLOAT32))
    return cloud


def write_foxglove(path: Path, jpegs: list[bytes], scans: list[np.ndarray]) -> Path:
    with path.open("wb") as fh:
        writer = Writer(fh)
        for k, (jpeg, scan) in enumerate(zip(jpegs, scans, strict=True)):
            t_ns = T0 + k * STEP
            writer.write_message("/front/image/compressed", _stamp(CompressedImage(frame_id="cam", format="jpeg",
                                                                                   data=jpeg), t_ns), t_ns, t_ns)
            writer.write_message("/velodyne/points", foxglove_cloud(scan, t_ns + 1), t_ns + 1, t_ns + 1)
        writer.finish()
    return path


def _decisions(path: Path, out: Path) -> list[dict[str, Any]]:
    run_replay([str(path)], out, AgentConfig(), progress=False)
    return [json.loads(line) for line in (out / "decisions.jsonl").read_text().splitlines()]


def test_foxglove_frames_are_the_ros_frames_and_judged_alike(tmp_path: Path, sample) -> None:
    jpegs, scans = sample
    fox = write_foxglove(tmp_path / "fox.mcap", jpegs, scans)
    items = list(McapSource(str(fox)))
    assert not [i for i in items if isinstance(i, Skip)]
    cameras = [i for i in items if isinstance(i, Frame) and i.sensor == "front"]
    lidars = [i for i in items if isinstance(i, Frame) and i.sensor == "velodyne"]
    assert [c.payload for c in cameras] == jpegs and [c.t_ns for c in cameras] == [T0 + k * STEP for k in range(5)]
    for frame, scan in zip(lidars, scans, strict=True):
        np.testing.assert_array_equal(frame.array, scan)
    messages = []
    for k, (jpeg, scan) in enumerate(zip(jpegs, scans, strict=True)):
        t_ns = T0 + k * STEP
        messages.append(("/front/image/compressed", "sensor_msgs/msg/CompressedImage",
                         {"header": fx.header(t_ns), "format": "jpeg", "data": jpeg}, t_ns))
        messages.append(("/velodyne/points", "sensor_msgs/msg/PointCloud2", fx.pointcloud2(t_ns + 1, scan, dense=True),
                         t_ns + 1))
    ros = fx.write_mcap(tmp_path / "ros.mcap", messages)
    keys = ("sensor", "seq", "t_ns", "verdict", "reasons", "signals")
    assert [{k: r[k] for k in keys} for r in _decisions(fox, tmp_path / "fox")] == [
        {k: r[k] for k in keys} for r in _decisions(ros, tmp_path / "ros")]


def test_a_foxglove_raw_image_of_12_bit_samples(tmp_path: Path, sample) -> None:
    grey = cv2.cvtColor(cv2.imdecode(np.frombuffer(sample[0][0], np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)
    raw = (grey.astype("<u2") << 4).tobytes()
    path = tmp_path / "raw.mcap"
    with path.open("wb") as fh:
        writer = Writer(fh)
        image = _stamp(RawImage(frame_id="cam", width=grey.shape[1], height=grey.shape[0], encoding="mono16",
                                step=2 * grey.shape[1], data=raw), T0)
        writer.write_message("/nir/image_raw", image, T0, T0)
        writer.finish()
    (frame,) = list(McapSource(str(path)))
    assert isinstance(frame, Frame) and frame.t_ns == T0
    np.testing.assert_array_equal(frame.array, grey)


def test_a_foxglove_point_cloud_with_a_lying_stride_or_type_is_a_skip(tmp_path: Path, sample) -> None:
    scan = sample[1][0][:1000]
    bad_type = foxglove_cloud(scan, T0)
    bad_type.fields[0].type = 42
    overrun = foxglove_cloud(scan, T0 + 1)
    overrun.point_stride = 8  # x, y at 0 and 4 fit; z at 8 does not
    path = tmp_path / "bad.mcap"
    with path.open("wb") as fh:
        writer = Writer(fh)
        writer.write_message("/velodyne/points", bad_type, T0, T0)
        writer.write_message("/velodyne/points", overrun, T0 + 1, T0 + 1)
        writer.finish()
    items = list(McapSource(str(path)))
    assert [(type(i).__name__, getattr(i, "reason", "")) for i in items] == [("Skip", "decode_error")] * 2

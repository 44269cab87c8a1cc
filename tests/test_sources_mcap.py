"""The MCAP source on real frames (from the repository's sample drive): every message kind, damage, naming."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from mcap.reader import make_reader
from mcap.writer import CompressionType

from agent.config.model import InputsConfig
from agent.errors import InputError
from agent.frame import Encoding, Frame, Modality, Skip
from agent.sources import detect_kind, merge, open_inputs
from agent.sources.decode import image_of, points_of
from agent.sources.mcap_source import McapSource, topic_sensor

try:  # as a package module when tests/ has an __init__.py, else from the test folder on sys.path
    from tests import _sources_fixtures as fx
except ImportError:
    import _sources_fixtures as fx  # type: ignore[no-redef]

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
CAMERA_TOPIC = "/kitti/camera_02/image/compressed"
LIDAR_TOPIC = "/kitti/velodyne/points"


@pytest.fixture(scope="module")
def jpegs() -> list[bytes]:
    return [bytes(m.data) for m in fx.sample_messages("sensor_msgs/msg/CompressedImage", 10)]


@pytest.fixture(scope="module")
def scans() -> list[np.ndarray]:
    msgs = fx.sample_messages("sensor_msgs/msg/PointCloud2", 2)
    return [np.frombuffer(bytes(m.data), dtype="<f4").reshape(-1, 4) for m in msgs]


def compressed(t_ns: int, data: bytes) -> dict[str, Any]:
    return {"header": fx.header(t_ns), "format": "jpeg", "data": data}


def field(name: str, offset: int, datatype: int) -> dict[str, Any]:
    return {"name": name, "offset": offset, "datatype": datatype, "count": 1}


def cloud_f64_big_endian_no_intensity(t_ns: int, points: np.ndarray) -> dict[str, Any]:
    """x, y, z as big-endian float64 plus a ring field, 2 rows with 16 bytes of padding after each."""
    width = len(points) // 2
    dtype = np.dtype({"names": ["x", "y", "z", "ring"], "formats": [">f8", ">f8", ">f8", ">u2"],
                      "offsets": [0, 8, 16, 24], "itemsize": 32})
    records = np.zeros(2 * width, dtype)
    for i, name in enumerate("xyz"):
        records[name] = points[: 2 * width, i]
    rows = np.zeros((2, width * 32 + 16), np.uint8)
    rows[:, : width * 32] = records.view(np.uint8).reshape(2, -1)
    fields = [field("x", 0, 8), field("y", 8, 8), field("z", 16, 8), field("ring", 24, 4)]
    return {
        "header": fx.header(t_ns), "height": 2, "width": width, "fields": fields, "is_bigendian": True,
        "point_step": 32, "row_step": width * 32 + 16, "data": rows.tobytes(), "is_dense": False,
    }


def items_of(path: Path) -> list[Frame | Skip]:
    return list(merge(open_inputs([str(path)], InputsConfig())))


def message_sizes(path: Path) -> dict[str, list[int]]:
    sizes: dict[str, list[int]] = {}
    with path.open("rb") as fh:
        for _, channel, message in make_reader(fh).iter_messages(log_time_order=False):
            sizes.setdefault(channel.topic, []).append(len(message.data))
    return sizes


def test_topic_names_become_sensor_names() -> None:
    assert topic_sensor("/kitti/camera_02/image/compressed") == "kitti_camera_02"
    assert topic_sensor("/kitti/velodyne/points") == "kitti_velodyne"
    assert topic_sensor("/sensing/lidar/top/pointcloud") == "sensing_lidar_top"
    assert topic_sensor("/front cam/image_rect") == "front_cam"
    assert topic_sensor("/image_raw") == "image_raw"  # nothing left: the whole topic
    assert topic_sensor("/velodyne_points") == "velodyne_points"


def test_repository_sample_drive() -> None:
    items = items_of(fx.SAMPLE_MCAP)
    assert Counter(i.sensor for i in items) == {"kitti_camera_02": 31, "kitti_velodyne": 16}
    assert [i.t_ns for i in items] == sorted(i.t_ns for i in items)
    camera = next(i for i in items if isinstance(i, Frame) and i.modality is Modality.CAMERA)
    assert camera.encoding is Encoding.JPEG and camera.meta == {"width": "1242", "height": "375"}
    assert camera.t_ns == 1_317_000_000_000_000_000 and image_of(camera).shape == (375, 1242, 3)


def test_every_message_kind_from_real_frames(tmp_path: Path, jpegs: list[bytes], scans: list[np.ndarray]) -> None:
    bgr = cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    string = {"data": "status ok"}
    messages = [
        (CAMERA_TOPIC, "sensor_msgs/msg/CompressedImage", compressed(T0, jpegs[0]), T0),
        ("/status", "std_msgs/msg/String", string, T0 + 1 * MS),
        ("/front/image_raw", "sensor_msgs/msg/Image", fx.image_msg(T0 + 10 * MS, bgr[:, :, ::-1], "rgb8"),
         T0 + 10 * MS),
        ("/mono/image", "sensor_msgs/msg/Image", fx.image_msg(0, grey, "mono8", pad=6), T0 + 20 * MS),  # no stamp
        ("/bgra/image_raw", "sensor_msgs/msg/Image", fx.image_msg(T0 + 30 * MS, bgra, "bgra8"), T0 + 30 * MS),
        ("/bayer/image_raw", "sensor_msgs/msg/Image", fx.image_msg(T0 + 40 * MS, grey, "bayer_rggb8"), T0 + 40 * MS),
        (LIDAR_TOPIC, "sensor_msgs/msg/PointCloud2", fx.pointcloud2(T0 + 50 * MS, scans[0]), T0 + 60 * MS),
        ("/lidar64/points_raw", "sensor_msgs/msg/PointCloud2",
         cloud_f64_big_endian_no_intensity(T0 + 70 * MS, scans[1]), T0 + 75 * MS),
        (CAMERA_TOPIC, "sensor_msgs/msg/CompressedImage", compressed(T0 + 100 * MS, jpegs[1]), T0 + 100 * MS),
        ("/status", "std_msgs/msg/String", string, T0 + 101 * MS),
        ("/broken/compressed", "sensor_msgs/msg/CompressedImage",
         compressed(T0 + 110 * MS, jpegs[2][: len(jpegs[2]) // 2]), T0 + 110 * MS),
        (CAMERA_TOPIC, "sensor_msgs/msg/CompressedImage", compressed(T0 + 200 * MS, jpegs[2]), T0 + 200 * MS),
        # Logged after the camera frame at 200 ms but stamped before it: the source restores time order.
        (LIDAR_TOPIC, "sensor_msgs/msg/PointCloud2", fx.pointcloud2(T0 + 150 * MS, scans[1]), T0 + 260 * MS),
    ]
    path = fx.write_mcap(tmp_path / "drive.mcap", messages)
    items = items_of(path)
    assert [i.t_ns for i in items] == sorted(i.t_ns for i in items)

    skips = [(i.sensor, i.reason) for i in items if isinstance(i, Skip)]
    assert skips == [("status", "unknown_schema"), ("broken", "decode_error")]
    unknown = next(i for i in items if isinstance(i, Skip) and i.reason == "unknown_schema")
    assert "std_msgs/msg/String" in unknown.detail and unknown.seq == -1

    frames = {i.sensor: [] for i in items if isinstance(i, Frame)}  # type: dict[str, list[Frame]]
    for i in items:
        if isinstance(i, Frame):
            frames[i.sensor].append(i)
    camera = frames["kitti_camera_02"]
    assert [f.payload for f in camera] == jpegs[:3] and [f.seq for f in camera] == [0, 1, 2]
    assert camera[0].encoding is Encoding.JPEG and camera[0].meta == {"width": "1242", "height": "375"}
    assert [f.nbytes for f in camera] == message_sizes(path)[CAMERA_TOPIC]

    np.testing.assert_array_equal(image_of(frames["front"][0]), bgr)
    assert frames["mono"][0].t_ns == T0 + 20 * MS  # header stamp 0: the log time
    np.testing.assert_array_equal(frames["mono"][0].array, grey)
    np.testing.assert_array_equal(frames["bgra"][0].array, bgr)
    assert frames["bayer"][0].array.shape == bgr.shape  # a mosaic, demosaiced (tests/test_sources_raw_camera.py)

    lidar = frames["kitti_velodyne"]
    assert [f.t_ns for f in lidar] == [T0 + 50 * MS, T0 + 150 * MS]
    np.testing.assert_array_equal(points_of(lidar[0]), scans[0])
    assert lidar[0].modality is Modality.LIDAR and lidar[0].nbytes == message_sizes(path)[LIDAR_TOPIC][0]
    wide = points_of(frames["lidar64"][0])
    n = 2 * (len(scans[1]) // 2)
    np.testing.assert_array_equal(wide[:, :3], scans[1][:n, :3])
    assert wide.dtype == np.float32 and not wide[:, 3].any()  # no intensity field: zeros


def test_two_topics_of_one_sensor_name_get_distinct_names(tmp_path: Path, jpegs: list[bytes]) -> None:
    messages = [
        ("/cam/image_raw/compressed", "sensor_msgs/msg/CompressedImage", compressed(T0, jpegs[0]), T0),
        ("/cam/compressed", "sensor_msgs/msg/CompressedImage", compressed(T0 + MS, jpegs[1]), T0 + MS),
    ]
    items = items_of(fx.write_mcap(tmp_path / "two.mcap", messages))
    assert [i.sensor for i in items] == ["cam", "cam_2"]


def _camera_drive(tmp_path: Path, jpegs: list[bytes], compression: CompressionType) -> Path:
    messages = [
        (CAMERA_TOPIC, "sensor_msgs/msg/CompressedImage", compressed(T0 + k * 100 * MS, jpeg), T0 + k * 100 * MS)
        for k, jpeg in enumerate(jpegs)
    ]
    # Small chunks, so that damage in one leaves earlier chunks whole.
    return fx.write_mcap(tmp_path / "drive.mcap", messages, chunk_size=150_000, compression=compression)


def test_truncated_recording_is_salvaged(tmp_path: Path, jpegs: list[bytes]) -> None:
    path = _camera_drive(tmp_path, jpegs, CompressionType.ZSTD)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])  # a recorder killed mid-write: no summary, half a chunk
    items = items_of(path)
    frames = [i for i in items if isinstance(i, Frame)]
    skips = [i for i in items if isinstance(i, Skip)]
    assert skips and all(s.reason == "corrupt_recording" for s in skips)
    assert 2 <= len(frames) < len(jpegs)
    assert [f.payload for f in frames] == jpegs[: len(frames)]  # what was read is intact and in order
    assert items[-1] in skips and items[-1].t_ns >= frames[-1].t_ns


def test_crc_error_skips_the_chunk_and_reading_resumes_after_it(tmp_path: Path, jpegs: list[bytes]) -> None:
    path = _camera_drive(tmp_path, jpegs, CompressionType.NONE)
    data = bytearray(path.read_bytes())
    at = data.find(jpegs[6][5000:5064])
    data[at + 10] ^= 0xFF  # one flipped bit pattern inside an uncompressed chunk: only the CRC can tell
    path.write_bytes(bytes(data))
    items = items_of(path)
    frames = [i for i in items if isinstance(i, Frame)]
    (skip,) = [i for i in items if isinstance(i, Skip)]
    assert skip.reason == "corrupt_recording" and "crc" in skip.detail.lower()
    payloads = [f.payload for f in frames]
    assert jpegs[6] not in payloads  # the damaged frame never comes out as a plausible one
    assert jpegs[-1] in payloads and 6 <= len(frames) < len(jpegs)  # the chunks after the damage are read
    assert all(p in jpegs for p in payloads) and payloads == sorted(payloads, key=jpegs.index)


def test_not_an_mcap_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "drive.mcap"
    path.write_bytes(fx.SAMPLE_MCAP.read_bytes()[8:4096])  # real MCAP content without its magic
    assert detect_kind(str(path)) == "mcap"
    with pytest.raises(InputError, match="not an MCAP file"):
        McapSource(str(path))

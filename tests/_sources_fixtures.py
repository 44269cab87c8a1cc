"""Real-data inputs for the source tests: small drives built from the sample drive's real frames, the shipped pcap,
and paths into ../shared/data for the tests about those files."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from conftest import TEST_DATA, sample_frames, write_kitti_drive
from mcap.reader import make_reader
from mcap.writer import CompressionType
from mcap_ros2.decoder import DecoderFactory
from mcap_ros2.writer import Writer

from agent.replay.msgs import COMPRESSED_IMAGE, IMAGE, POINT_CLOUD2

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SAMPLE_MCAP = ROOT / "data" / "sample_drive.mcap"  # real KITTI frames (JPEG) and scans, in the repository
KITTI_DATE = SHARED / "kitti" / "2011_09_26"
KITTI_SYNC = KITTI_DATE / "udacity_sfnd_sync"
KITTI_77 = KITTI_DATE / "udacity_sfnd_partial_frame77"
BDD = SHARED / "camera" / "bdd100k_yolop"
VIDEO = SHARED / "video" / "udacity_vehicle_detection_test_video.mp4"
PCAP_HDL32 = TEST_DATA / "velodyne_hdl32e_driving_example.pcap"  # shipped in the repository (tests/data/README.md)
PCAP_VLP16 = SHARED / "pcap" / "velodyne_vlp16_test_50frames.pcap"
PCAP_OUSTER = SHARED / "pcap" / "ouster_OS-1-128_v2.3.0_1024x10_lb_n3.pcap"

STRING = "string data\n"
SCHEMAS = {
    "sensor_msgs/msg/CompressedImage": COMPRESSED_IMAGE,
    "sensor_msgs/msg/Image": IMAGE,
    "sensor_msgs/msg/PointCloud2": POINT_CLOUD2,
    "std_msgs/msg/String": STRING,
}

F = TypeVar("F", bound=Callable[..., Any])


def shared_data(test: F) -> F:
    """Mark a test as needing ../shared/data and skip it when that folder is absent."""
    skip = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent")
    return pytest.mark.shared(skip(test))  # type: ignore[no-any-return]


def make_kitti(root: Path, frames: Iterable[int] = range(3), cameras: Iterable[str] = ("image_02",)) -> Path:
    """A KITTI-layout drive folder of real frames from the sample drive (see conftest.write_kitti_drive)."""
    return write_kitti_drive(root, frames, cameras)


JPEG_STILLS = (20, 21, 22, 23, 25, 26)  # sample camera frames used as a folder of JPEG stills (24 is a fault copy)


def make_jpeg_folder(folder: Path, frames: Iterable[int] = JPEG_STILLS) -> Path:
    """A folder of real JPEG stills: the sample drive's camera frames, byte for byte, in file-name order."""
    folder.mkdir(parents=True, exist_ok=True)
    camera = sample_frames("camera")
    for k, n in enumerate(frames):
        data = camera[n].payload
        assert data is not None
        (folder / f"still_{k:02d}.jpg").write_bytes(data)
    return folder


def sample_messages(schema_name: str, limit: int) -> list[Any]:
    """The first `limit` decoded messages of one schema from the repository's real sample drive."""
    out = []
    with SAMPLE_MCAP.open("rb") as fh:
        reader = make_reader(fh, decoder_factories=[DecoderFactory()])
        for schema, _, _, msg in reader.iter_decoded_messages(log_time_order=False):
            if schema is not None and schema.name == schema_name:
                out.append(msg)
                if len(out) == limit:
                    break
    return out


def stamp(t_ns: int) -> dict[str, int]:
    return {"sec": t_ns // 1_000_000_000, "nanosec": t_ns % 1_000_000_000}


def header(t_ns: int, frame_id: str = "sensor") -> dict[str, Any]:
    return {"stamp": stamp(t_ns), "frame_id": frame_id}


def pointcloud2(t_ns: int, points: np.ndarray, rows: int = 1, dense: bool = False) -> dict[str, Any]:
    """A sensor_msgs/PointCloud2 message dict of Nx4 float32 x, y, z, intensity points in `rows` rows."""
    fields = [{"name": n, "offset": 4 * i, "datatype": 7, "count": 1}
              for i, n in enumerate(("x", "y", "z", "intensity"))]
    width = len(points) // rows
    return {"header": header(t_ns), "height": rows, "width": width, "fields": fields, "is_bigendian": False,
            "point_step": 16, "row_step": 16 * width, "data": points.astype("<f4").tobytes(), "is_dense": dense}


def image_msg(t_ns: int, pixels: np.ndarray, encoding: str, pad: int = 0) -> dict[str, Any]:
    """A sensor_msgs/Image message dict of `pixels` (any sample type, little-endian), each row padded by `pad`
    bytes to its `step`, as some drivers align them."""
    height, width = pixels.shape[:2]
    row = np.ascontiguousarray(pixels).astype(pixels.dtype.newbyteorder("<")).view(np.uint8).reshape(height, -1)
    padded = np.zeros((height, row.shape[1] + pad), np.uint8)
    padded[:, : row.shape[1]] = row
    return {"header": header(t_ns), "height": height, "width": width, "encoding": encoding, "is_bigendian": 0,
            "step": padded.shape[1], "data": padded.tobytes()}


def write_mcap(
    path: Path,
    messages: Iterable[tuple[str, str, dict[str, Any], int]],
    chunk_size: int = 1024 * 1024,
    compression: CompressionType = CompressionType.ZSTD,
) -> Path:
    """Write (topic, schema name, message dict, log time ns) records as a ROS 2 MCAP file."""
    with path.open("wb") as fh:
        writer = Writer(fh, chunk_size=chunk_size, compression=compression)
        schemas = {name: writer.register_msgdef(name, text) for name, text in SCHEMAS.items()}
        for seq, (topic, schema_name, msg, log_time) in enumerate(messages):
            writer.write_message(topic, schemas[schema_name], msg, log_time=log_time, sequence=seq)
        writer.finish()
    return path

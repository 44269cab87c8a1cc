"""Shared fixtures: the shipped sample drive (always present) and ../shared/data (skipped when absent).

Tests that need real inputs in another form than the sample drive's (PNG files, a KITTI folder, .bin scans) make
them from the sample drive's real frames with the helpers below, so that they run on a fresh clone too.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from agent.frame import Encoding, Frame, Modality
from agent.scoring.base import Label

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DRIVE = REPO / "data" / "sample_drive.mcap"
SHARED_DATA = REPO.parent / "shared" / "data"
TEST_DATA = REPO / "tests" / "data"  # small real files shipped for the tests (see tests/data/README.md)

# KITTI frame numbers of the sample drive's camera frames and LiDAR scans, in the order sample_frames() gives them.
SAMPLE_CAMERA_FRAMES = (*range(30), 77)
SAMPLE_SCAN_FRAMES = (*range(0, 29, 2), 77)


@pytest.fixture(scope="session")
def sample_drive() -> Path:
    assert SAMPLE_DRIVE.exists(), "data/sample_drive.mcap is part of the repository"
    return SAMPLE_DRIVE


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside the checkout")
    return SHARED_DATA


@cache
def _sample_messages() -> tuple[tuple[str, int, bytes], ...]:
    out = []
    with SAMPLE_DRIVE.open("rb") as fh:
        reader = make_reader(fh, decoder_factories=[DecoderFactory()])
        for schema, _channel, message, ros in reader.iter_decoded_messages():
            kind = "camera" if schema.name.endswith("CompressedImage") else "lidar"
            out.append((kind, message.log_time, bytes(ros.data)))
    return tuple(out)


def sample_frames(kind: str) -> list[Frame]:
    """Real frames of the shipped sample drive (KITTI image_02 as JPEG, Velodyne as points), in time order."""
    frames = []
    for seq, (k, t_ns, data) in enumerate(m for m in _sample_messages() if m[0] == kind):
        if k == "camera":
            frames.append(Frame("cam", Modality.CAMERA, t_ns, seq, len(data), "sample", Encoding.JPEG, data,
                                meta={"width": "1242", "height": "375"}))
        else:
            points = np.frombuffer(data, dtype="<f4").reshape(-1, 4)
            frames.append(Frame("velo", Modality.LIDAR, t_ns, seq, len(data), "sample", Encoding.XYZI_F32, None,
                                points))
    return frames


def score_in_order(scorer, frames: Iterable[Frame]) -> list:
    """Each frame's verdict, scored in order as replay does: frames not judged harmful join the scorer's memory."""
    verdicts = []
    for frame in frames:
        verdict = scorer.score(frame)
        if verdict.label is not Label.HARMFUL:
            scorer.remember(frame, verdict)
        verdicts.append(verdict)
    return verdicts


@cache
def sample_png(index: int, grey: bool = False) -> bytes:
    """Camera frame `index` of the sample drive (a real KITTI image_02 JPEG) decoded and re-encoded losslessly as
    PNG, as KITTI ships its images; with `grey`, converted to one channel first (as KITTI's image_00 camera)."""
    jpeg = sample_frames("camera")[index].payload
    assert jpeg is not None
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if grey:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    ok, png = cv2.imencode(".png", image)
    assert ok
    return png.tobytes()


def sample_scan(index: int) -> np.ndarray:
    """LiDAR scan `index` of the sample drive (real KITTI Velodyne points), Nx4 float32, read-only."""
    points = sample_frames("lidar")[index].array
    assert points is not None
    return points


def write_kitti_drive(root: Path, frames: Iterable[int] = range(3), cameras: Iterable[str] = ("image_02",)) -> Path:
    """A KITTI raw drive folder (<camera>/data/NNNNNNNNNN.png, velodyne_points/data/NNNNNNNNNN.bin) of real frames.

    Image N is the sample drive's camera frame of KITTI number N (0-29 or 77) as PNG, grey for image_00/image_01.
    Scan N is the sample's N-th scan (the sample keeps every second KITTI scan, so N must be 0-14), and scan 77 the
    sample's frame 77 scan, truncated in the source; each written as KITTI .bin (float32 x, y, z, intensity rows).
    """
    cameras = tuple(cameras)
    for camera in cameras:
        (root / camera / "data").mkdir(parents=True, exist_ok=True)
    (root / "velodyne_points" / "data").mkdir(parents=True, exist_ok=True)
    for n in frames:
        name = f"{n:010d}"
        for camera in cameras:
            png = sample_png(SAMPLE_CAMERA_FRAMES.index(n), grey=camera in ("image_00", "image_01"))
            (root / camera / "data" / f"{name}.png").write_bytes(png)
        assert n == 77 or 0 <= n < SAMPLE_SCAN_FRAMES.index(77), f"no sample scan for KITTI frame {n}"
        scan = sample_scan(SAMPLE_SCAN_FRAMES.index(77) if n == 77 else n)
        (root / "velodyne_points" / "data" / f"{name}.bin").write_bytes(scan.astype("<f4").tobytes())
    return root


@pytest.fixture
def broker(tmp_path: Path):
    """A real mosquitto on a free loopback port (anonymous, persistent), stopped after the test."""
    from mqtt_broker import Broker, find_mosquitto

    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (scripts/setup.sh installs it)")
    with Broker(tmp_path / "broker") as b:
        yield b


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL (Debian package, initdb in a temporary folder, free port) shared by the session."""
    from pg_server import postgres_server

    yield from postgres_server()

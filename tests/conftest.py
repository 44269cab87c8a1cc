"""Shared fixtures: the shipped sample drive (always present) and ../shared/data (skipped when absent)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from agent.frame import Encoding, Frame, Modality

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DRIVE = REPO / "data" / "sample_drive.mcap"
SHARED_DATA = REPO.parent / "shared" / "data"


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


@pytest.fixture
def broker(tmp_path: Path):
    """A real mosquitto on a free loopback port (anonymous, persistent), stopped after the test."""
    from mqtt_broker import Broker, find_mosquitto

    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (scripts/setup.sh installs it)")
    with Broker(tmp_path / "broker") as b:
        yield b

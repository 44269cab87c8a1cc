"""Raw camera images in ROS recordings: Bayer mosaics and 16-bit samples of 10-, 12- and 16-bit sensors, from real
frames. A camera whose driver sends the sensor's mosaic, or 12-bit samples in a 16-bit word, is healthy: before,
the first was skipped (unsupported encoding) and the second turned black (only the top byte kept)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
from camera_support import sample_images

from agent.config import AgentConfig
from agent.frame import Frame
from agent.replay.runner import run_replay
from agent.sources.decode import SampleDepth
from agent.sources.mcap_source import McapSource
from agent.sources.ros_convert import image_array

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import bench_hostile

try:
    from tests import _sources_fixtures as fx
except ImportError:
    import _sources_fixtures as fx  # type: ignore[no-redef]

T0 = 1_700_000_000_000_000_000
PATTERNS = {"rggb": "RGGB", "bggr": "BGGR", "gbrg": "GBRG", "grbg": "GRBG"}


def mosaic(bgr: np.ndarray, pattern: str) -> np.ndarray:
    """What a sensor with this colour filter array records of the scene `bgr` (even height and width)."""
    out = np.zeros(bgr.shape[:2], bgr.dtype)
    channel = {"B": 0, "G": 1, "R": 2}
    for (dy, dx), colour in zip(((0, 0), (0, 1), (1, 0), (1, 1)), pattern, strict=True):
        out[dy::2, dx::2] = bgr[dy::2, dx::2, channel[colour]]
    return out


def message(pixels: np.ndarray, encoding: str, t_ns: int = T0) -> dict[str, Any]:
    return fx.image_msg(t_ns, pixels, encoding)


def as_msg(pixels: np.ndarray, encoding: str) -> SimpleNamespace:
    return SimpleNamespace(**message(pixels, encoding))


@pytest.mark.parametrize("pattern", list(PATTERNS))
@pytest.mark.parametrize("bits", [8, 16])
def test_a_bayer_mosaic_in_each_pattern_is_demosaiced_to_the_scene(pattern: str, bits: int) -> None:
    bgr = sample_images(1)[0][:192]
    raw = mosaic(bgr, PATTERNS[pattern])
    if bits == 16:
        raw = raw.astype(np.uint16) << 4  # a 12-bit sensor, low bits of the word
    out = image_array(as_msg(raw, f"bayer_{pattern}{bits}"))
    assert out.shape == bgr.shape and out.dtype == np.uint8
    assert float(np.abs(out.astype(int) - bgr.astype(int)).mean()) < 4.0  # a wrong pattern is 15-23 grey levels off


@pytest.mark.parametrize(("shift", "bits"), [(2, 10), (4, 12), (8, 16)])
def test_16_bit_samples_keep_the_sensors_own_range(shift: int, bits: int) -> None:
    grey = cv2.cvtColor(sample_images(1)[0], cv2.COLOR_BGR2GRAY)
    depth = SampleDepth()
    out = image_array(as_msg(grey.astype(np.uint16) << shift, "mono16"), depth)
    np.testing.assert_array_equal(out, grey)
    assert depth.bits == bits
    # The depth only grows: a darker frame of the same stream is not brightened back.
    dark = image_array(as_msg((grey // 4).astype(np.uint16) << shift, "mono16"), depth)
    np.testing.assert_array_equal(dark, grey // 4)
    assert depth.bits == bits


def test_a_12_bit_stream_whose_first_frame_is_dark_settles_at_its_range() -> None:
    grey = cv2.cvtColor(sample_images(1)[0], cv2.COLOR_BGR2GRAY)
    depth = SampleDepth()
    first = image_array(as_msg((grey // 8).astype(np.uint16) << 4, "mono16"), depth)  # under 1024: seen as 10 bits
    assert depth.bits == 10 and int(first.max()) == int(grey.max() // 8) << 2
    image_array(as_msg(grey.astype(np.uint16) << 4, "mono16"), depth)
    assert depth.bits == 12


@pytest.mark.parametrize("encoding", ["mono16", "bayer_rggb8", "bayer_grbg16"])
def test_a_healthy_raw_camera_replayed_from_a_recording_is_valid(encoding: str, tmp_path: Path) -> None:
    frames = [image[:192] for image in sample_images(8)]
    messages = []
    for k, bgr in enumerate(frames):
        if encoding == "mono16":
            pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.uint16) << 4
        else:
            pixels = mosaic(bgr, PATTERNS[encoding[6:10]])
            pixels = pixels.astype(np.uint16) << 4 if encoding.endswith("16") else pixels
        t_ns = T0 + k * 100_000_000
        messages.append(("/front/image_raw", "sensor_msgs/msg/Image", message(pixels, encoding, t_ns), t_ns))
    path = fx.write_mcap(tmp_path / "raw.mcap", messages)
    assert all(isinstance(item, Frame) for item in McapSource(str(path)))
    run_replay([str(path)], tmp_path / "out", AgentConfig(), progress=False)
    records = [json.loads(line) for line in (tmp_path / "out" / "decisions.jsonl").read_text().splitlines()]
    assert len(records) == len(frames)
    assert [r["verdict"] for r in records if r["verdict"] == "harmful"] == [], [r["reasons"] for r in records]


def uyvy(bgr: np.ndarray, order: str = "uyvy") -> np.ndarray:
    """The scene as a UVC camera sends it: BT.601 limited-range YUV, chroma shared by each pair of pixels."""
    ycrcb = cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb).astype(np.float32)
    y = 16 + ycrcb[..., 0] * 219 / 255
    v, u = (128 + (ycrcb[..., k] - 128) * 224 / 255 for k in (1, 2))
    out = np.zeros((*bgr.shape[:2], 2), np.uint8)
    luma, chroma = (1, 0) if order == "uyvy" else (0, 1)
    out[..., luma] = np.round(y)
    out[:, 0::2, chroma] = np.round((u[:, 0::2] + u[:, 1::2]) / 2)
    out[:, 1::2, chroma] = np.round((v[:, 0::2] + v[:, 1::2]) / 2)
    return out


@pytest.mark.parametrize(("encoding", "order"), [("yuv422", "uyvy"), ("yuv422_yuy2", "yuyv")])
def test_yuv_422_from_a_usb_camera_is_read_in_its_byte_order(encoding: str, order: str) -> None:
    bgr = sample_images(1)[0][:192]
    out = image_array(as_msg(uyvy(bgr, order), encoding))
    assert float(np.abs(out.astype(int) - bgr.astype(int)).mean()) < 2.0  # the other order is 80 levels off


def test_a_yuv_422_image_of_odd_width_is_a_decode_error_not_a_crash(tmp_path: Path) -> None:
    from agent.errors import DecodeError
    from agent.frame import Skip

    with pytest.raises(DecodeError, match="pairs pixels"):
        image_array(as_msg(np.zeros((4, 7, 2), np.uint8), "yuv422"))
    path = fx.write_mcap(tmp_path / "odd.mcap", [("/usb/image_raw", "sensor_msgs/msg/Image",
                                                  message(np.zeros((4, 7, 2), np.uint8), "yuv422"), T0)])
    (item,) = list(McapSource(str(path)))
    assert isinstance(item, Skip) and item.reason == "decode_error"


def test_a_ros1_bag_of_12_bit_bayer_frames_keeps_the_streams_range(tmp_path: Path) -> None:
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    from agent.sources.rosbag import RosbagSource

    store = get_typestore(Stores.ROS1_NOETIC)
    types = store.types
    frames = [image[:192] for image in sample_images(3)]
    with Writer(tmp_path / "raw.bag") as writer:
        connection = writer.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=store)
        for k, bgr in enumerate(frames):
            raw = mosaic(bgr, "RGGB").astype("<u2") << 4
            stamp = types["builtin_interfaces/msg/Time"](sec=1_700_000_000 + k, nanosec=0)
            header = types["std_msgs/msg/Header"](seq=k, stamp=stamp, frame_id="cam")
            msg = types["sensor_msgs/msg/Image"](header=header, height=raw.shape[0], width=raw.shape[1],
                                                 encoding="bayer_rggb16", is_bigendian=0, step=raw.shape[1] * 2,
                                                 data=np.frombuffer(raw.tobytes(), np.uint8))
            writer.write(connection, (1_700_000_000 + k) * 10**9, store.serialize_ros1(msg, msg.__msgtype__))
    got = [item for item in RosbagSource(str(tmp_path / "raw.bag")) if isinstance(item, Frame)]
    assert len(got) == 3
    for frame, bgr in zip(got, frames, strict=True):
        assert float(np.abs(frame.array.astype(int) - bgr.astype(int)).mean()) < 4.0


def test_a_folder_of_12_bit_pngs_and_tiffs_keeps_the_cameras_range(tmp_path: Path) -> None:
    from agent.config.model import InputsConfig
    from agent.sources import merge, open_inputs

    greys = [cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) for image in sample_images(4)]
    folder = tmp_path / "nir"
    folder.mkdir()
    for k, grey in enumerate(greys):  # a 12-bit camera's samples in the low bits of 16-bit files
        cv2.imwrite(str(folder / f"{k:04d}.{'png' if k % 2 else 'tiff'}"), grey.astype(np.uint16) << 4)
    frames = [i for i in merge(open_inputs([str(folder)], InputsConfig())) if isinstance(i, Frame)]
    assert [f.meta["file"] for f in frames] == ["0000.tiff", "0001.png", "0002.tiff", "0003.png"]
    for frame, grey in zip(frames, greys, strict=True):
        np.testing.assert_array_equal(frame.array, grey)  # the top byte alone would be 0-15: black


def test_a_tiff_with_a_lying_or_broken_header_is_a_skip(tmp_path: Path) -> None:
    import struct

    from agent.frame import Skip
    from agent.sources.images import image_file_item
    from agent.sources.limits import InputLimits

    grey = cv2.cvtColor(sample_images(1)[0], cv2.COLOR_BGR2GRAY)
    ok, data = cv2.imencode(".tiff", grey)
    assert ok
    data = data.tobytes()
    good = tmp_path / "good.tiff"
    good.write_bytes(data)
    frame = image_file_item(good, "cam", 0, 0)
    assert isinstance(frame, Frame) and frame.meta["width"] == "640"
    # A width of 4 billion in the directory: refused from the header, before any decoding.
    lying = bench_hostile.tiff_claiming(4_000_000_000, grey.shape[0], data)
    cases = {"lying.tiff": lying, "truncated.tiff": data[: len(data) // 3],
             "no_directory.tiff": data[:4] + struct.pack("<I", 10**9)}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        item = image_file_item(tmp_path / name, "cam", 0, 0, InputLimits())
        assert isinstance(item, Skip) and item.reason in ("too_large", "decode_error"), (name, item)

"""Turn decoded ROS 2 sensor messages (Image, CompressedImage, PointCloud2) into frame arrays and payloads.

Every function raises DecodeError with a short reason; the MCAP source turns that into a Skip.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from agent.errors import DecodeError
from agent.frame import Encoding
from agent.sources.decode import SampleDepth
from agent.sources.imageinfo import inspect_image
from agent.sources.points import returns_only, xyzi_records

# ROS Bayer patterns -> OpenCV demosaicing, which names a pattern by its second row's second and third pixels
# (cv_bridge's mapping; checked by mosaicing a real frame in each pattern and demosaicing it back).
_BAYER = {"rggb": cv2.COLOR_BayerBG2BGR, "bggr": cv2.COLOR_BayerRG2BGR, "gbrg": cv2.COLOR_BayerGR2BGR,
          "grbg": cv2.COLOR_BayerGB2BGR}
# ROS image encoding -> (channels, numpy dtype, OpenCV conversion to BGR/grey or None).
_IMAGE_LAYOUTS: dict[str, tuple[int, str, int | None]] = {
    "bgr8": (3, "u1", None),
    "8UC3": (3, "u1", None),  # cv_bridge treats untyped 3-channel data as BGR
    "rgb8": (3, "u1", cv2.COLOR_RGB2BGR),
    "bgra8": (4, "u1", cv2.COLOR_BGRA2BGR),
    "rgba8": (4, "u1", cv2.COLOR_RGBA2BGR),
    "mono8": (1, "u1", None),
    "8UC1": (1, "u1", None),
    "mono16": (1, "u2", None),
    "bgr16": (3, "u2", None),
    "rgb16": (3, "u2", cv2.COLOR_RGB2BGR),
    # YUV 4:2:2 as USB (UVC) cameras send it: "yuv422" is UYVY, "yuv422_yuy2" YUYV (ROS image_encodings).
    "yuv422": (2, "u1", cv2.COLOR_YUV2BGR_UYVY),
    "uyvy": (2, "u1", cv2.COLOR_YUV2BGR_UYVY),
    "yuv422_yuy2": (2, "u1", cv2.COLOR_YUV2BGR_YUY2),
    "yuyv": (2, "u1", cv2.COLOR_YUV2BGR_YUY2),
    # A camera whose driver sends the sensor's mosaic (demosaiced later, to spare the vehicle's CPU) is healthy.
    **{f"bayer_{p}{bits}": (1, "u1" if bits == 8 else "u2", code) for p, code in _BAYER.items() for bits in (8, 16)},
}


# sensor_msgs/PointField datatypes.
_FIELD_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


def stamp_ns(msg: Any) -> int:
    """The header stamp in ns (0 when unset, so the caller falls back to the log time); a Foxglove message's
    `timestamp` (protobuf Timestamp: seconds, nanos)."""
    if not hasattr(msg, "header"):
        stamp = msg.timestamp
        return int(stamp.seconds) * 1_000_000_000 + int(stamp.nanos)
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _rows(data: bytes, height: int, step: int, row_bytes: int) -> np.ndarray:
    """height x row_bytes uint8 view of `data`, dropping the padding at the end of each `step`-byte row."""
    if step < row_bytes or len(data) < step * height:
        raise DecodeError(
            f"{len(data)} bytes cannot hold {height} rows of {row_bytes} bytes with a step of {step}"
        )
    rows = np.frombuffer(data, dtype=np.uint8, count=step * height).reshape(height, step)
    return rows[:, :row_bytes]


def image_array(msg: Any, depth: SampleDepth | None = None) -> np.ndarray:
    """sensor_msgs/Image -> HxWx3 BGR or HxW grey uint8 (Bayer mosaics demosaiced); `depth`: the stream's, for
    16-bit samples (a new one: this image alone)."""
    layout = _IMAGE_LAYOUTS.get(msg.encoding)
    if layout is None:
        raise DecodeError(f"unsupported image encoding {msg.encoding!r}")
    channels, dtype, conversion = layout
    height, width = int(msg.height), int(msg.width)
    if height == 0 or width == 0:
        raise DecodeError(f"empty image ({width}x{height})")
    if channels == 2 and width % 2:
        raise DecodeError(f"{msg.encoding} pairs pixels, but the image is {width} wide")
    itemsize = np.dtype(dtype).itemsize
    rows = _rows(bytes(msg.data), height, int(msg.step), width * channels * itemsize)
    order = ">" if getattr(msg, "is_bigendian", False) else "<"  # Foxglove's RawImage is little-endian
    pixels = np.ascontiguousarray(rows).view(order + dtype).reshape(height, width, channels)
    if itemsize == 2:
        pixels = (depth or SampleDepth()).to_8bit(pixels)  # the scorer works on 8-bit samples
    if channels == 1:
        pixels = pixels.reshape(height, width)
    try:
        return cv2.cvtColor(pixels, conversion) if conversion is not None else pixels
    except cv2.error as exc:  # a layout OpenCV refuses: the message's fault, one skip
        raise DecodeError(f"{msg.encoding} {width}x{height}: {str(exc).strip().splitlines()[-1][:200]}") from None


def compressed_payload(msg: Any) -> tuple[Encoding, bytes, int, int]:
    """sensor_msgs/CompressedImage -> (encoding, bytes, width, height), from the bytes' own header.

    The `format` field is free text ("jpeg", "rgb8; jpeg compressed bgr8"...), so the magic bytes decide.
    """
    data = bytes(msg.data)
    encoding, width, height = inspect_image(data)
    return encoding, data, width, height


def points_array(msg: Any) -> np.ndarray:
    """sensor_msgs/PointCloud2 -> Nx4 float32 (x, y, z, intensity); intensity is 0 when the cloud has none.

    An organized cloud (height > 1: one point per beam and firing, as velodyne_pointcloud's organize_cloud and
    most drivers publish it) that declares it may hold invalid points (`is_dense` false) marks a beam that saw
    nothing with NaN: those placeholders are left out, as the "no return" they are. NaN anywhere else (a cloud
    that says it is dense, or an unorganized one, which has no slot for a missing return) is kept, for the scorer
    to judge."""
    point_step = int(msg.point_step)
    if point_step <= 0:
        raise DecodeError(f"PointCloud2 point_step is {point_step}")
    order = ">" if msg.is_bigendian else "<"
    fields = {f.name: (int(f.offset), order + code if (code := _FIELD_TYPES.get(int(f.datatype))) else None)
              for f in msg.fields}
    height, width = int(msg.height), int(msg.width)
    count = height * width
    data = bytes(msg.data)
    row_step = int(msg.row_step) or width * point_step
    if height > 1 and row_step != width * point_step:
        data = _rows(data, height, row_step, width * point_step).tobytes()  # drop per-row padding
    if len(data) < count * point_step:
        raise DecodeError(f"PointCloud2 data is {len(data)} bytes, {count} points of {point_step} need more")
    points = xyzi_records(data, count, point_step, fields, "PointCloud2")
    return returns_only(points) if height > 1 and not getattr(msg, "is_dense", True) else points


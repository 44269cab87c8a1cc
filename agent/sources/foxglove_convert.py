"""Foxglove's message schemas in MCAP files (protobuf: foxglove.CompressedImage, RawImage, PointCloud), as the
Foxglove SDK logs them on robots that do not run ROS: the same frames as their ROS counterparts.

CompressedImage and RawImage carry the fields the ROS converters read (data and format; width, height, encoding,
step); a PointCloud is a flat list of points of `point_stride` bytes with typed fields, converted here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.errors import DecodeError
from agent.sources.points import xyzi_records

SCHEMAS = {"foxglove.CompressedImage": "compressed", "foxglove.RawImage": "image",
           "foxglove.PointCloud": "foxglove_points"}
# foxglove.PackedElementField.NumericType -> numpy (not ROS PointField's numbering: 1 is UINT8 here, INT8 there).
_NUMERIC = {1: "u1", 2: "i1", 3: "u2", 4: "i2", 5: "u4", 6: "i4", 7: "f4", 8: "f8"}


def point_count(msg: Any) -> int:
    """Points the message holds (its data over its stride): checked against the limits before any array."""
    stride = int(msg.point_stride)
    if stride <= 0:
        raise DecodeError(f"PointCloud point_stride is {stride}")
    return len(msg.data) // stride


def points_array(msg: Any) -> np.ndarray:
    """foxglove.PointCloud -> Nx4 float32 x, y, z, intensity (0 without one). A flat list of points has no slot
    for a beam that saw nothing, so NaN is kept for the scorer to judge, as in a one-row PointCloud2."""
    fields = {f.name: (int(f.offset), "<" + code if (code := _NUMERIC.get(int(f.type))) else None) for f in msg.fields}
    return xyzi_records(bytes(msg.data), point_count(msg), int(msg.point_stride), fields, "PointCloud")

"""Foxglove's message schemas in MCAP files (protobuf: foxglove.CompressedImage, RawImage, PointCloud), as the
Foxglove SDK logs them on robots that do not run ROS: the same frames as their ROS counterparts.

CompressedImage and RawImage carry the fields the ROS converters read (data and format; width, height, encoding,
step); a PointCloud is a flat list of points of `point_stride` bytes with typed fields, converted here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.errors import DecodeError

SCHEMAS = {"foxglove.CompressedImage": "compressed", "foxglove.RawImage": "image",
           "foxglove.PointCloud": "foxglove_points"}
# foxglove.PackedElementField.NumericType -> numpy (not ROS PointField's numbering: 1 is UINT8 here, INT8 there).
_NUMERIC = {1: "u1", 2: "i1", 3: "u2", 4: "i2", 5: "u4", 6: "i4", 7: "f4", 8: "f8"}
_INTENSITY_NAMES = ("intensity", "reflectance", "i")


def point_count(msg: Any) -> int:
    """Points the message holds (its data over its stride): checked against the limits before any array."""
    stride = int(msg.point_stride)
    if stride <= 0:
        raise DecodeError(f"PointCloud point_stride is {stride}")
    return len(msg.data) // stride


def points_array(msg: Any) -> np.ndarray:
    """foxglove.PointCloud -> Nx4 float32 x, y, z, intensity (0 without one). A flat list of points has no slot
    for a beam that saw nothing, so NaN is kept for the scorer to judge, as in a one-row PointCloud2."""
    stride, count = int(msg.point_stride), point_count(msg)
    fields = {f.name: f for f in msg.fields}
    missing = [n for n in "xyz" if n not in fields]
    if missing:
        raise DecodeError(f"PointCloud has no {'/'.join(missing)} field (fields: {', '.join(fields)})")
    intensity = next((n for n in _INTENSITY_NAMES if n in fields), None)
    names, formats, offsets = [], [], []
    for out, name in zip(("x", "y", "z", "i"), ["x", "y", "z", *([intensity] if intensity else [])], strict=False):
        code = _NUMERIC.get(int(fields[name].type))
        if code is None:
            raise DecodeError(f"PointCloud field {name!r} has unknown type {fields[name].type}")
        if int(fields[name].offset) + np.dtype(code).itemsize > stride:
            raise DecodeError(f"PointCloud field {name!r} at offset {fields[name].offset} overruns stride {stride}")
        names.append(out)
        formats.append("<" + code)
        offsets.append(int(fields[name].offset))
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": stride})
    records = np.frombuffer(bytes(msg.data), dtype=dtype, count=count)
    points = np.zeros((count, 4), dtype=np.float32)
    for column, name in enumerate(names):
        points[:, column] = records[name]
    return points

"""The one Frame type every source yields, and the Skip record for items that could not be read."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class Modality(str, enum.Enum):
    CAMERA = "camera"
    LIDAR = "lidar"


class Encoding(str, enum.Enum):
    """How `Frame.payload` is encoded, when the source had encoded bytes."""

    JPEG = "jpeg"
    PNG = "png"
    RAW = "raw"  # no encoded payload; `array` is authoritative
    XYZI_F32 = "xyzi-f32"  # little-endian float32 (x, y, z, intensity) rows


# Frame.meta key a source sets (to "1") on a spinning LiDAR's scan that the data path cut short: a capture that
# ended mid-rotation. Evidence of an incomplete scan from the source itself, where a cold scan's points alone cannot
# tell it from a unit that sees part of its circle.
PARTIAL_ROTATION = "partial_rotation"
# Frame.meta key a source sets on a frame that is a file of its own (a folder of images or scans, KITTI, nuScenes):
# the file's name, which the decision record carries, so that a user can tell which file was dropped and why.
FILE = "file"
# Frame.meta key a source sets (to "1") on an image or scan unrelated to the one before it (a folder of stills from
# many cars, snapshots of several LiDAR units): scorers judge it on its own, not against "its" sensor's history.
STILL = "still"


@dataclass(slots=True)
class Frame:
    """One sensor sample.

    Camera `array` is HxWx3 uint8 BGR (or HxW uint8 grey); LiDAR `array` is Nx4 float32 (x, y, z, intensity).
    Sources that hold encoded bytes (JPEG/PNG files, CompressedImage) keep them in `payload` and may leave
    `array` as None so that consumers decode only what they need (see agent.sources.decode).
    """

    sensor: str
    modality: Modality
    t_ns: int
    seq: int
    nbytes: int  # size of the frame as stored in the input
    source: str  # where it came from (path, topic, URL), for messages and reports
    encoding: Encoding = Encoding.RAW
    payload: bytes | None = None
    array: np.ndarray | None = field(default=None, repr=False)
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Skip:
    """An input item that was not turned into a Frame, with a machine-readable reason.

    Sources yield these in place of frames so that nothing is dropped silently.
    """

    sensor: str
    seq: int
    t_ns: int
    source: str
    reason: str  # e.g. "decode_error", "bad_size", "unknown_schema", "corrupt_chunk"
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "sensor": self.sensor,
            "seq": self.seq,
            "t_ns": self.t_ns,
            "source": self.source,
            "reason": self.reason,
            "detail": self.detail,
        }


Item = Frame | Skip

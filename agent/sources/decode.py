"""Decode frame payloads, reading only as much of a JPEG as the consumer needs."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from agent.errors import DecodeError
from agent.frame import Encoding, Frame, Modality

# OpenCV's JPEG decoder can scale by 1/2, 1/4 or 1/8 while decoding (DCT scaling), far cheaper than a full
# decode followed by a resize.
_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def _reduction_for(full_width: int, max_width: int | None) -> int:
    if not max_width or full_width <= max_width:
        return 1
    for factor, _ in _REDUCED:
        if full_width // factor >= max_width:
            return factor
    return 1


@dataclass(slots=True)
class SampleDepth:
    """The bits a 16-bit image stream's samples use, as seen so far: 10, 12, 14 or 16.

    A 10- or 12-bit sensor's samples often sit in the low bits of the 16-bit word (0-1023, 0-4095); keeping only
    the top byte, as a 16-bit image is usually reduced to 8 bits, turns every frame of such a healthy camera
    black. The depth only grows (to the smallest that holds every sample seen), so the stream is not rescaled to
    and fro by what it shows; a stream whose first frames are darker than its range brightens until a sample
    shows the range (on a 16-bit stream, at the first sample over 16383)."""

    bits: int = 10

    def to_8bit(self, samples: np.ndarray) -> np.ndarray:
        top = int(samples.max()) if samples.size else 0
        while self.bits < 16 and top >= 1 << self.bits:
            self.bits += 2
        return (samples >> (self.bits - 8)).astype(np.uint8)


def decode_samples(data: bytes, depth: SampleDepth | None = None) -> np.ndarray:
    """A TIFF or 16-bit PNG file's picture as uint8 BGR or grey, 16-bit samples by the stream's `depth` (a new
    one: this picture alone); the 8-bit JPEG and PNG path keeps its payload and decodes later (image_of)."""
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if image is None or not image.size:
        raise DecodeError("image does not decode (truncated or corrupt)")
    if image.dtype == np.uint16:
        image = (depth or SampleDepth()).to_8bit(image)
    elif image.dtype != np.uint8:
        raise DecodeError(f"{image.dtype} samples are not read (8- and 16-bit only)")
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] != 3:
        raise DecodeError(f"{image.shape[2]} channels are not read")
    return image


def decode_image_bytes(data: bytes, max_width: int | None = None, full_width: int | None = None) -> np.ndarray:
    """Decode JPEG/PNG bytes to BGR uint8; with max_width, JPEGs are decoded at a reduced scale when possible."""
    buf = np.frombuffer(data, dtype=np.uint8)
    flag = cv2.IMREAD_COLOR
    if max_width and full_width and data[:2] == b"\xff\xd8":
        factor = _reduction_for(full_width, max_width)
        flag = dict(_REDUCED).get(factor, cv2.IMREAD_COLOR)
    image = cv2.imdecode(buf, flag) if buf.size else None
    if image is None:
        raise DecodeError("image does not decode (truncated or corrupt)")
    if not _is_complete(data):
        raise DecodeError("image is truncated")
    return image


def decode_grey_bytes(data: bytes) -> np.ndarray | None:
    """The whole picture's luma (no colour conversion or chroma upsampling: the cheaper full decode), or None."""
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE) if data else None
    return image if image is not None and image.size else None


def _is_complete(data: bytes) -> bool:
    # OpenCV happily returns a half-grey image for a truncated JPEG or PNG; check the end markers ourselves.
    if data[:2] == b"\xff\xd8":
        return data.rstrip(b"\x00")[-2:] == b"\xff\xd9"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" in data[-16:]
    return True


def image_of(frame: Frame, max_width: int | None = None) -> np.ndarray:
    """The frame's image as BGR uint8, decoded from its payload if needed (reduced when max_width allows)."""
    if frame.modality is not Modality.CAMERA:
        raise ValueError(f"{frame.sensor} is not a camera")
    if frame.array is not None:
        image = frame.array
        return image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if frame.payload is None or frame.encoding not in (Encoding.JPEG, Encoding.PNG):
        raise DecodeError(f"{frame.sensor} frame {frame.seq} has no image payload")
    return decode_image_bytes(frame.payload, max_width, stated_width(frame))


def stated_width(frame: Frame) -> int | None:
    """The picture width its source stated (meta "width"), None when it stated none or not a number."""
    stated = frame.meta.get("width", "")
    return int(stated) if stated.isdigit() else None


def points_of(frame: Frame) -> np.ndarray:
    """The frame's point cloud as Nx4 float32 (x, y, z, intensity)."""
    if frame.modality is not Modality.LIDAR:
        raise ValueError(f"{frame.sensor} is not a LiDAR")
    if frame.array is not None:
        return frame.array
    if frame.payload is None or frame.encoding is not Encoding.XYZI_F32:
        raise DecodeError(f"{frame.sensor} scan {frame.seq} has no point payload")
    if len(frame.payload) % 16:
        raise DecodeError(f"point payload of {len(frame.payload)} bytes is not a whole number of 16-byte points")
    return np.frombuffer(frame.payload, dtype="<f4").reshape(-1, 4)

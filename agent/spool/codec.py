"""How the spool stores a frame: camera frames as JPEG, point clouds as zstd-compressed xyzi float32 rows."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import zstandard

from agent.errors import DecodeError
from agent.frame import Encoding, Frame, Modality
from agent.sources.decode import image_of, points_of
from agent.sources.limits import DEFAULT_LIMITS, zstd_decompress

JPEG = "jpeg"
XYZI_F32_ZSTD = "xyzi-f32-zstd"
BLOB_SUFFIX = {JPEG: ".jpg", XYZI_F32_ZSTD: ".xyzi.zst"}


class FrameCodec:
    """Encodes frames for storage. Thread-safe: each thread gets its own zstd compressor."""

    def __init__(self, jpeg_quality: int, zstd_level: int) -> None:
        self.jpeg_quality = jpeg_quality
        self.zstd_level = zstd_level
        self._local = threading.local()

    def encode(self, frame: Frame) -> tuple[str, bytes]:
        """(encoding name, blob) for a frame; raises DecodeError when the frame's content cannot be read."""
        if frame.modality is Modality.CAMERA:
            return JPEG, self._jpeg_of(frame)
        if frame.modality is Modality.LIDAR:
            return XYZI_F32_ZSTD, self._compressor().compress(_points_bytes(frame))
        raise DecodeError(f"{frame.sensor}: no spool encoding for modality {frame.modality!r}")

    def _jpeg_of(self, frame: Frame) -> bytes:
        if frame.encoding is Encoding.JPEG and frame.payload:
            return bytes(frame.payload)  # already JPEG: keep the sensor's exact bytes, never re-encode
        image = image_of(frame)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise DecodeError(f"{frame.sensor} frame {frame.seq}: JPEG encoding failed")
        return buf.tobytes()

    def _compressor(self) -> zstandard.ZstdCompressor:
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            # write_content_size (the default) lets decode_points size its output without streaming.
            compressor = zstandard.ZstdCompressor(level=self.zstd_level)
            self._local.compressor = compressor
        return compressor


def _points_bytes(frame: Frame) -> bytes:
    if frame.encoding is Encoding.XYZI_F32 and frame.payload is not None:
        if len(frame.payload) % 16:
            raise DecodeError(f"{frame.sensor} scan {frame.seq}: payload is not a whole number of 16-byte points")
        return bytes(frame.payload)
    points = points_of(frame)
    if points.ndim != 2 or points.shape[1] != 4:
        raise DecodeError(f"{frame.sensor} scan {frame.seq}: points have shape {points.shape}, expected Nx4")
    return np.ascontiguousarray(points, dtype="<f4").tobytes()


_decompressors = threading.local()
MAX_POINT_BYTES = DEFAULT_LIMITS.max_points * 16  # float32 x, y, z, intensity


def decode_points(blob: bytes) -> np.ndarray:
    """An `xyzi-f32-zstd` blob back to an Nx4 float32 array (x, y, z, intensity)."""
    raw = decompress_points(blob)
    return np.frombuffer(raw, dtype="<f4").reshape(-1, 4)


def decompress_points(blob: bytes) -> bytes:
    """An `xyzi-f32-zstd` blob back to little-endian float32 xyzi rows (the PointCloud2 data layout)."""
    try:
        size = zstandard.frame_content_size(blob)
    except zstandard.ZstdError as exc:
        raise DecodeError(f"point blob does not decompress: {exc}") from exc
    if size < 0 or size > MAX_POINT_BYTES:
        # no size in its header, or a huge one: a blob from a vehicle must not decide what the ingest allocates
        raw = zstd_decompress(blob, MAX_POINT_BYTES)
    else:
        decompressor = getattr(_decompressors, "d", None)
        if decompressor is None:
            decompressor = _decompressors.d = zstandard.ZstdDecompressor()
        try:
            raw = decompressor.decompress(blob)
        except zstandard.ZstdError as exc:
            raise DecodeError(f"point blob does not decompress: {exc}") from exc
    if len(raw) % 16:
        raise DecodeError(f"point blob holds {len(raw)} bytes, not a whole number of 16-byte points")
    return raw


def decode_jpeg(blob: bytes) -> np.ndarray:
    """A `jpeg` blob as a BGR uint8 image (JPEG blobs themselves stay bytes; this is for consumers that need pixels)."""
    image = cv2.imdecode(np.frombuffer(blob, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise DecodeError("JPEG blob does not decode")
    return image

"""Bounds on what one input item may cost, checked before the memory is spent.

A file's header can claim anything: a 389 KB PNG of 20000x20000 pixels decodes to 1.2 GB, an MCAP chunk of a
few KB can claim 3 GB decompressed, a PointCloud2 can say point_step 2^32-1. Readers check the claim here first
(from headers and file sizes, never by trying) and turn a refusal into a counted Skip with reason `too_large`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

from agent.errors import DecodeError

MB = 1024 * 1024


class TooLarge(DecodeError):
    """An item whose header or size exceeds a bound; its Skip reason is `too_large`."""


@dataclass(frozen=True)
class InputLimits:
    max_pixels: int = 50_000_000  # 8K video is 33 MP
    max_points: int = 4_000_000  # a 128-beam LiDAR scan is ~260k
    max_chunk_bytes: int = 64 * MB  # decompressed MCAP chunk / zstd blob
    max_file_bytes: int = 256 * MB  # one image or scan file read whole

    @classmethod
    def of(cls, inputs: Any) -> InputLimits:
        """From an InputsConfig (fields max_pixels, max_points, max_chunk_mb)."""
        return cls(max_pixels=inputs.max_pixels, max_points=inputs.max_points,
                   max_chunk_bytes=int(inputs.max_chunk_mb * MB))


DEFAULT_LIMITS = InputLimits()


def check_pixels(width: int, height: int, limits: InputLimits = DEFAULT_LIMITS) -> None:
    if width * height > limits.max_pixels:
        raise TooLarge(f"image header says {width}x{height} = {width * height} pixels (limit {limits.max_pixels}, "
                       "inputs.max_pixels)")


def check_points(count: int, limits: InputLimits = DEFAULT_LIMITS) -> None:
    if count > limits.max_points:
        raise TooLarge(f"scan of {count} points (limit {limits.max_points}, inputs.max_points)")


def read_bounded(path: Path, limit: int) -> bytes:
    """The whole file, or TooLarge without reading it when it is bigger than `limit`. OSError passes through."""
    size = path.stat().st_size
    if size > limit:
        raise TooLarge(f"file of {size} bytes (limit {limit})")
    with path.open("rb") as fh:
        return fh.read(limit + 1)[:limit]  # it may have grown since the stat: still never more than the limit


def zstd_decompress(data: bytes | memoryview, limit: int) -> bytes:
    """zstd data decompressed, never more than `limit` bytes held: TooLarge beyond (whatever the header claims)."""
    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(bytes(data))) as reader:
            out = reader.read(limit + 1)
            while len(out) <= limit:  # read() may return short before the end
                more = reader.read(limit + 1 - len(out))
                if not more:
                    break
                out += more
    except zstandard.ZstdError as exc:
        raise DecodeError(f"zstd data does not decompress: {exc}") from exc
    if len(out) > limit:
        raise TooLarge(f"zstd data decompresses to more than {limit} bytes")
    return out


def lz4_decompress(data: bytes | memoryview, limit: int) -> bytes:
    import lz4.frame

    decompressor = lz4.frame.LZ4FrameDecompressor()
    try:
        out = decompressor.decompress(bytes(data), max_length=limit + 1)
    except RuntimeError as exc:  # lz4 reports corrupt frames as RuntimeError
        raise DecodeError(f"lz4 data does not decompress: {exc}") from exc
    if len(out) > limit:
        raise TooLarge(f"lz4 data decompresses to more than {limit} bytes")
    return out

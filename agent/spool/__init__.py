"""The crash-safe local spool of kept frames (see store.py for the on-disk layout and the guarantees)."""

from agent.spool.codec import JPEG, XYZI_F32_ZSTD, FrameCodec, decode_jpeg, decode_points, decompress_points
from agent.spool.records import (
    DUPLICATE,
    ENCODE_ERROR,
    SPOOL_FULL,
    STORED,
    PutResult,
    SpoolEntry,
    SpoolStats,
)
from agent.spool.store import Spool, default_frame_id

__all__ = [
    "DUPLICATE",
    "ENCODE_ERROR",
    "JPEG",
    "SPOOL_FULL",
    "STORED",
    "XYZI_F32_ZSTD",
    "FrameCodec",
    "PutResult",
    "Spool",
    "SpoolEntry",
    "SpoolStats",
    "decode_jpeg",
    "decode_points",
    "decompress_points",
    "default_frame_id",
]

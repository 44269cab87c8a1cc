"""The spool's value types: one stored frame, the outcome of a put, and the counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# PutResult.reason values
STORED = "stored"
DUPLICATE = "duplicate"  # a frame with this id is already in the spool; nothing was written
SPOOL_FULL = "spool_full"  # no room, even after evicting every frame scoring strictly lower
ENCODE_ERROR = "encode_error"  # the frame's content could not be encoded for storage


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One frame in the spool (its index row); the blob is read with `Spool.read_blob`."""

    frame_id: str
    sensor: str
    modality: str  # Modality value: "camera" | "lidar"
    t_ns: int
    seq: int
    label: str  # Label value of the verdict: "helpful" | "useless" | "harmful"
    score: float
    reasons: tuple[str, ...]
    rule: str
    encoding: str  # codec.JPEG | codec.XYZI_F32_ZSTD
    input_bytes: int  # Frame.nbytes: the frame's size in its input
    blob_bytes: int  # size of the stored blob
    created_ns: int  # wall-clock time (ns since the epoch) the frame was committed
    blob_path: Path


@dataclass(frozen=True, slots=True)
class PutResult:
    stored: bool  # True when the frame is in the spool after the call (also for a duplicate put)
    frame_id: str
    evicted: list[str] = field(default_factory=list)  # ids evicted to make room, lowest score first
    reason: str = STORED  # STORED | DUPLICATE | SPOOL_FULL | ENCODE_ERROR
    blob_bytes: int = 0


@dataclass(frozen=True, slots=True)
class SpoolStats:
    frames: int
    bytes: int  # blob bytes held (the index itself is not counted)
    budget_bytes: int
    evicted_frames: int
    evicted_bytes: int
    orphans_removed: int  # blob or temp files without an index row, removed on open (crash leftovers)
    rejected_frames: int  # puts refused with SPOOL_FULL
    encode_failures: int  # puts refused with ENCODE_ERROR
    lost_frames: int  # index rows whose blob was missing or truncated on open; should stay 0


COUNTERS = (
    "evicted_frames",
    "evicted_bytes",
    "orphans_removed",
    "rejected_frames",
    "encode_failures",
    "lost_frames",
)

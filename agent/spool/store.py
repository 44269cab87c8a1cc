"""The crash-safe local spool of kept frames.

Layout under the spool root:

    index.sqlite3 (+ -wal, -shm)   SQLite index in WAL mode, synchronous=FULL: one row per frame, plus counters
    blobs/<frame id>.<hash>.jpg    camera frames (JPEG)
    blobs/<frame id>.<hash>.xyzi.zst  point clouds (zstd of little-endian float32 x, y, z, intensity rows)
    LOCK                           held (flock) while a process has the spool open

A put writes the blob to a temp file, fsyncs it, renames it into place and fsyncs the folder, and only then
inserts and commits the index row. A crash at any point therefore leaves either no row (the blob, or its temp
file, is an orphan that the next open removes and counts) or a committed row with its complete blob.
Deletes and evictions commit the row removal first and unlink the blob afterwards, with the same guarantee.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import cv2

from agent.config.model import SpoolConfig
from agent.errors import DecodeError, SpoolError
from agent.frame import Frame
from agent.scoring.base import Verdict
from agent.spool import files
from agent.spool.codec import FrameCodec
from agent.spool.index import BlobRef, Index
from agent.spool.lockfile import LockFile
from agent.spool.records import (
    DUPLICATE,
    ENCODE_ERROR,
    SPOOL_FULL,
    STORED,
    PutResult,
    SpoolEntry,
    SpoolStats,
)

log = logging.getLogger(__name__)

INDEX_FILE = "index.sqlite3"
BLOBS_DIR = "blobs"
LOCK_FILE = "LOCK"
Order = Literal["oldest", "score"]


def default_frame_id(frame: Frame) -> str:
    return f"{frame.t_ns:019d}-{frame.sensor}-{frame.seq}"


class Spool:
    """Kept frames on local disk, within a size budget, safe against crashes and power loss. Thread-safe."""

    def __init__(self, root: Path, config: SpoolConfig, index: Index, lock_file: LockFile,
                 durable: bool = True) -> None:
        self.root = root
        self.durable = durable
        self.blobs_dir = root / BLOBS_DIR
        self.budget_bytes = int(config.max_mb * 1_000_000)
        self._codec = FrameCodec(config.jpeg_quality, config.zstd_level)
        self._index = index
        self._lock_file = lock_file
        self._lock = threading.RLock()
        self._closed = False
        self._frames, self._bytes = index.totals()

    # ---- opening and closing

    @classmethod
    def open(cls, root: Path | str, config: SpoolConfig, durable: bool = True) -> Spool:
        """Open (creating if needed) the spool at `root` and remove what an earlier crash left half-written.

        `durable=False` (a replay's spool: a record of what the policy keeps, which a rerun rebuilds) skips the
        per-frame fsyncs; each write is still atomic (temp file, rename, then the index row), so a process that
        dies leaves a consistent spool, a power cut may cost frames (the next open counts them as lost), and the
        caller flushes the disk once when it is done."""
        root = Path(root)
        try:
            (root / BLOBS_DIR).mkdir(parents=True, exist_ok=True)
            files.fsync_dir(root)
            lock_file = LockFile.acquire(root / LOCK_FILE)
        except OSError as exc:
            raise SpoolError(f"cannot open spool {root}: {exc}") from exc
        try:
            index = Index(root / INDEX_FILE, durable)
        except (sqlite3.Error, OSError) as exc:
            lock_file.release()
            raise SpoolError(f"cannot open spool index {root / INDEX_FILE}: {exc}") from exc
        if index.journal_mode != "wal":
            log.warning("spool index %s is in %s journal mode, not WAL", root / INDEX_FILE, index.journal_mode)
        spool = cls(root, config, index, lock_file, durable)
        try:
            spool._reconcile()
        except (sqlite3.Error, OSError) as exc:
            spool.close()
            raise SpoolError(f"cannot check spool {root}: {exc}") from exc
        return spool

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._index.close()
            self._lock_file.release()

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _reconcile(self) -> None:
        """Remove orphan blobs and temp files; drop (and count as lost) rows whose blob is missing or truncated."""
        expected = {ref.blob_name: ref for ref in self._index.all_blob_refs()}
        present: set[str] = set()
        orphans = 0
        for item in os.scandir(self.blobs_dir):
            ref = expected.get(item.name)
            if ref is not None and item.is_file(follow_symlinks=False) and item.stat().st_size == ref.blob_bytes:
                present.add(item.name)
            elif ref is None and item.is_file(follow_symlinks=False):
                orphans += files.remove_quietly(Path(item.path))
        lost = [ref for name, ref in expected.items() if name not in present]
        for ref in lost:
            log.error("spool frame %s lost: blob %s missing or truncated", ref.frame_id, ref.blob_name)
            files.remove_quietly(self.blobs_dir / ref.blob_name)
        if orphans or lost:
            files.fsync_dir(self.blobs_dir)
            with self._index.transaction():
                for ref in lost:
                    self._index.delete(ref.frame_id)
                self._index.add_counters(orphans_removed=orphans, lost_frames=len(lost))
            self._frames, self._bytes = self._index.totals()
            log.info("spool %s: removed %d orphan files, %d lost frames", self.root, orphans, len(lost))

    # ---- writing

    def encode(self, frame: Frame) -> tuple[str, bytes]:
        """(encoding, blob) as `put` would store the frame; DecodeError/ValueError when it cannot be encoded."""
        return self._codec.encode(frame)

    def put(self, frame: Frame, verdict: Verdict, rule: str, frame_id: str | None = None,
            encoded: tuple[str, bytes] | None = None) -> PutResult:
        """Store a kept frame, evicting lower-scored frames if the budget needs it. Idempotent per frame id.

        `encoded` is the frame's `encode()` result when the caller already has it (it sized a budget with it).
        """
        fid = frame_id or default_frame_id(frame)
        with self._lock:
            self._check_open()
            if self._index.contains(fid):
                return PutResult(True, fid, reason=DUPLICATE)
        try:
            encoding, blob = encoded or self._codec.encode(frame)  # outside the lock: encoding is the slow part
        except (DecodeError, ValueError, cv2.error) as exc:
            log.warning("spool: %s not stored, cannot encode: %s", fid, exc)
            return self._refuse(fid, ENCODE_ERROR, encode_failures=1)
        score = _finite_score(verdict.score)
        with self._lock:
            self._check_open()
            if self._plan_room(score, len(blob)) is None:
                return self._refuse(fid, SPOOL_FULL, rejected_frames=1)
        row = _row(fid, frame, verdict, score, rule, encoding, len(blob), files.blob_name(fid, encoding))
        try:
            temp = files.write_temp(self.blobs_dir, row[-1], blob, self.durable)
        except OSError as exc:
            raise SpoolError(f"cannot write spool blob for {fid}: {exc}") from exc
        try:
            with self._lock:
                return self._commit(row, score, temp)
        finally:
            files.remove_quietly(temp)  # still there only when the frame was not committed

    def _commit(self, row: tuple[Any, ...], score: float, temp: Path) -> PutResult:
        self._check_open()
        fid, size, final = row[0], row[11], self.blobs_dir / row[-1]
        if self._index.contains(fid):  # another thread stored the same frame meanwhile
            return PutResult(True, fid, reason=DUPLICATE)
        victims = self._plan_room(score, size)
        if victims is None:  # another thread took the room meanwhile
            return self._refuse(fid, SPOOL_FULL, rejected_frames=1)
        try:
            files.publish(temp, final, self.durable)
            freed = sum(v.blob_bytes for v in victims)
            with self._index.transaction():
                for victim in victims:
                    self._index.delete(victim.frame_id)
                self._index.insert(row)
                self._index.add_counters(evicted_frames=len(victims), evicted_bytes=freed)
        except (sqlite3.Error, OSError) as exc:
            files.remove_quietly(final)
            raise SpoolError(f"cannot commit {fid} to the spool: {exc}") from exc
        self._frames += 1 - len(victims)
        self._bytes += size - freed
        for victim in victims:
            files.remove_quietly(self.blobs_dir / victim.blob_name)
        return PutResult(True, fid, [v.frame_id for v in victims], STORED, size)

    def _plan_room(self, score: float, size: int) -> list[BlobRef] | None:
        """The frames to evict so that `size` more bytes fit, or None when they cannot be made to fit."""
        if size > self.budget_bytes:
            return None
        need = self._bytes + size - self.budget_bytes
        victims: list[BlobRef] = []
        for ref in self._index.eviction_candidates(score) if need > 0 else ():
            victims.append(ref)
            need -= ref.blob_bytes
            if need <= 0:
                break
        return victims if need <= 0 else None

    def _refuse(self, fid: str, reason: str, **counter: int) -> PutResult:
        with self._lock:
            self._check_open()
            try:
                with self._index.transaction():
                    self._index.add_counters(**counter)
            except sqlite3.Error as exc:
                raise SpoolError(f"cannot update spool counters: {exc}") from exc
        return PutResult(False, fid, reason=reason)

    def delete(self, frame_id: str) -> bool:
        """Remove a frame (e.g. after the broker acknowledged its upload); False when it was not there."""
        with self._lock:
            self._check_open()
            ref = self._index.blob_ref(frame_id)
            if ref is None:
                return False
            try:
                with self._index.transaction():
                    self._index.delete(frame_id)
            except sqlite3.Error as exc:
                raise SpoolError(f"cannot delete {frame_id} from the spool: {exc}") from exc
            self._frames -= 1
            self._bytes -= ref.blob_bytes
            files.remove_quietly(self.blobs_dir / ref.blob_name)
            return True

    # ---- reading

    def get(self, frame_id: str) -> SpoolEntry | None:
        with self._lock:
            self._check_open()
            row = self._index.row(frame_id)
        return self._entry(row) if row else None

    def entries(self, order: Order = "oldest", limit: int | None = None) -> list[SpoolEntry]:
        """Stored frames, oldest capture time first, or highest score first (ties: oldest first)."""
        if order not in ("oldest", "score"):
            raise ValueError(f"unknown order {order!r}")
        with self._lock:
            self._check_open()
            rows = self._index.rows(order, limit)
        return [self._entry(row) for row in rows]

    def read_blob(self, entry: SpoolEntry) -> bytes:
        """The stored bytes of a frame (JPEG, or xyzi-f32-zstd: see codec.decode_points)."""
        try:
            data = entry.blob_path.read_bytes()
        except FileNotFoundError as exc:
            raise SpoolError(f"frame {entry.frame_id} is no longer in the spool") from exc
        except OSError as exc:
            raise SpoolError(f"cannot read spool blob {entry.blob_path}: {exc}") from exc
        if len(data) != entry.blob_bytes:
            raise SpoolError(f"spool blob {entry.blob_path} has {len(data)} bytes, expected {entry.blob_bytes}")
        return data

    def stats(self) -> SpoolStats:
        with self._lock:
            self._check_open()
            counters = self._index.counters()
            return SpoolStats(frames=self._frames, bytes=self._bytes, budget_bytes=self.budget_bytes, **counters)

    def __len__(self) -> int:
        return self._frames

    def __contains__(self, frame_id: object) -> bool:
        if not isinstance(frame_id, str):
            return False
        with self._lock:
            self._check_open()
            return self._index.contains(frame_id)

    def _entry(self, row: tuple[Any, ...]) -> SpoolEntry:
        *fields, blob_name = row
        fields[7] = tuple(json.loads(fields[7]))  # reasons
        return SpoolEntry(*fields, blob_path=self.blobs_dir / blob_name)

    def _check_open(self) -> None:
        if self._closed:
            raise SpoolError(f"spool {self.root} is closed")


def _finite_score(score: float) -> float:
    value = float(score)
    return value if math.isfinite(value) else 0.0


def _row(
    fid: str, frame: Frame, verdict: Verdict, score: float, rule: str, encoding: str, size: int, name: str
) -> tuple[Any, ...]:
    """Index values in index.COLUMNS order."""
    return (
        fid, frame.sensor, frame.modality.value, int(frame.t_ns), int(frame.seq), verdict.label.value, score,
        json.dumps(list(verdict.reasons)), rule, encoding, int(frame.nbytes), size, time.time_ns(), name,
    )  # fmt: skip

"""End-to-end receipts: the ingest says which frames it has durably stored; only then may a vehicle delete them.

A broker's PUBACK only means the broker has the message, in memory: a broker crash before its next save, a
client-id takeover of the ingest's session or a retired shared-subscription worker can still lose it. So the
ingest publishes, after each group commit, `<prefix>/<vehicle>/receipts` (QoS 1) listing the frame ids of that
vehicle it stored (or already had). The uplink keeps a PUBACKed frame in its spool, "awaiting a receipt", and
deletes it when a receipt names it; a frame whose receipt does not come within its timeout is sent again (the
ingest deduplicates and receipts the copy), the timeout doubling per frame up to 8x so that an ingest that is
down for a day does not cost the link a full resend every few minutes.
"""

from __future__ import annotations

import json
import threading
from typing import Any

RECEIPT_VERSION = 1
MAX_RECEIPT_IDS = 1000  # frame ids per receipt message (~70 KB): well under the broker's max_packet_size
MAX_PENDING_IDS = 100_000  # confirmed ids waiting for the uplink thread; beyond it they are counted and dropped
_MAX_BACKOFF = 8.0


class ReceiptError(ValueError):
    """A receipt message that is not one (wrong shape, too big)."""


def receipts_topic(prefix: str, vehicle: str) -> str:
    return f"{prefix}/{vehicle}/receipts"


def encode_receipts(frame_ids: list[str]) -> list[bytes]:
    """Receipt payloads for one vehicle's frame ids, MAX_RECEIPT_IDS per message."""
    return [json.dumps({"v": RECEIPT_VERSION, "frames": frame_ids[i:i + MAX_RECEIPT_IDS]},
                       separators=(",", ":")).encode() for i in range(0, len(frame_ids), MAX_RECEIPT_IDS)]


def decode_receipt(payload: bytes) -> list[str]:
    if len(payload) > 256 * 1024:
        raise ReceiptError(f"receipt of {len(payload)} bytes")
    try:
        doc: Any = json.loads(payload)
    except ValueError as exc:
        raise ReceiptError(f"receipt is not JSON: {exc}") from exc
    frames = doc.get("frames") if isinstance(doc, dict) else None
    if not isinstance(frames, list) or len(frames) > MAX_RECEIPT_IDS or \
            not all(isinstance(f, str) and len(f) <= 256 for f in frames):
        raise ReceiptError("receipt must be {\"frames\": [frame id, ...]} with at most 1000 ids")
    return frames


class ReceiptBook:
    """Frames PUBACKed and awaiting their receipt, and receipts not yet applied to the spool. Thread-safe."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._awaiting: dict[str, tuple[float, float]] = {}  # frame id -> (deadline, its current timeout)
        self._backoff: dict[str, float] = {}  # frame id -> timeout of its next wait (grows per resend)
        self._confirmed: list[str] = []
        self.overflow = 0  # confirmed ids dropped because the uplink thread fell behind (the frame is resent)

    def awaiting(self, frame_id: str, now: float) -> None:
        with self._lock:
            timeout = self._backoff.get(frame_id, self.timeout_s)
            self._awaiting[frame_id] = (now + timeout, timeout)

    def confirm(self, frame_ids: list[str]) -> None:
        """From paho's network thread: never blocks on the spool."""
        with self._lock:
            room = MAX_PENDING_IDS - len(self._confirmed)
            self._confirmed.extend(frame_ids[:max(0, room)])
            self.overflow += max(0, len(frame_ids) - max(0, room))

    def take_confirmed(self) -> list[str]:
        with self._lock:
            confirmed, self._confirmed = self._confirmed, []
            for frame_id in confirmed:
                self._awaiting.pop(frame_id, None)
                self._backoff.pop(frame_id, None)
            return confirmed

    def expire(self, now: float) -> list[str]:
        """Frames whose receipt is overdue: no longer awaited (so sent again); their next wait is twice as long."""
        with self._lock:
            late = [fid for fid, (deadline, _) in self._awaiting.items() if deadline <= now]
            for frame_id in late:
                _, timeout = self._awaiting.pop(frame_id)
                self._backoff[frame_id] = min(timeout * 2, self.timeout_s * _MAX_BACKOFF)
            if len(self._backoff) > 4 * MAX_PENDING_IDS:  # frames deleted otherwise (evicted): forget them
                self._backoff.clear()
            return late

    def expire_all(self) -> int:
        """The broker lost our session (and what it had queued): every awaited frame is sent again now."""
        with self._lock:
            n = len(self._awaiting)
            self._awaiting.clear()
            return n

    def __contains__(self, frame_id: object) -> bool:
        with self._lock:
            return frame_id in self._awaiting

    def __len__(self) -> int:
        with self._lock:
            return len(self._awaiting)

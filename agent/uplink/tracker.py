"""Which frames are in flight, and which MQTT message ids (mids) each still waits for. Thread-safe.

paho calls on_publish from its network thread, and it can do so before publish() has returned the mid to the
publishing thread (eclipse/paho.mqtt.python#361, #482; Home Assistant's "either side may run first"). So a mid
is a slot created by whichever side arrives first: an ack for a mid nobody registered yet is parked, and the
registration that follows consumes it. Every publish is registered (status messages too, as `ignore`), so a
parked ack always belongs to a publish that is about to be registered and can never leak onto a reused mid.
The lock is never held while calling paho (paho holds its own lock while calling on_publish).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from agent.spool import SpoolEntry

SUCCESS = 0
NO_MATCHING_SUBSCRIBERS = 0x10  # accepted, but nobody will receive it (e.g. a broker that lost the ingest's
# shared subscription in a restart): worth sending again, like a refusal


@dataclass(eq=False)
class Attempt:
    """One try at delivering one frame: its chunk messages and what came back."""

    entry: SpoolEntry
    messages: int
    blob_bytes: int
    first_sent: float
    last_sent: float
    pending: set[int] = field(default_factory=set)
    registered: int = 0
    failure: int | None = None  # first PUBACK reason code that means "not delivered" (>= 0x80, or 0x10)


class InFlightTable:
    def __init__(self, retry_no_subscribers: bool = True) -> None:
        self._retry_no_subscribers = retry_no_subscribers
        self._lock = threading.Lock()
        self._frames: dict[str, Attempt] = {}
        self._by_mid: dict[int, Attempt | None] = {}  # None: a publish we do not track (status, stats)
        self._parked: dict[int, int] = {}  # mid -> reason code of an ack that beat its registration
        self._done: list[Attempt] = []
        self._failed: list[Attempt] = []

    def begin(self, entry: SpoolEntry, messages: int, blob_bytes: int, now: float) -> Attempt:
        attempt = Attempt(entry, messages, blob_bytes, now, now)
        with self._lock:
            self._frames[entry.frame_id] = attempt
        return attempt

    def sent(self, attempt: Attempt, mid: int) -> None:
        """Register a published chunk of `attempt` (consumes an ack that arrived first)."""
        with self._lock:
            attempt.registered += 1
            reason = self._parked.pop(mid, None)
            if reason is None:
                attempt.pending.add(mid)
                self._by_mid[mid] = attempt
            else:
                self._settle(attempt, reason)

    def ignore(self, mid: int) -> None:
        """Register a publish whose ack nobody waits for."""
        with self._lock:
            if self._parked.pop(mid, None) is None:
                self._by_mid[mid] = None

    def abandon(self, attempt: Attempt) -> None:
        """Stop tracking an attempt (refused by paho's queue, or timed out); late acks of its chunks are swallowed."""
        with self._lock:
            if self._frames.get(attempt.entry.frame_id) is attempt:
                del self._frames[attempt.entry.frame_id]

    def acked(self, mid: int, reason: int) -> None:
        """on_publish: a PUBACK (reason < 0x80 accepted, >= 0x80 refused) for `mid`."""
        with self._lock:
            if mid not in self._by_mid:
                self._parked[mid] = reason
                return
            attempt = self._by_mid.pop(mid)
            if attempt is not None:
                attempt.pending.discard(mid)
                self._settle(attempt, reason)

    def _settle(self, attempt: Attempt, reason: int) -> None:
        if self._frames.get(attempt.entry.frame_id) is not attempt:
            return  # an abandoned or superseded attempt
        undelivered = reason >= 0x80 or (reason == NO_MATCHING_SUBSCRIBERS and self._retry_no_subscribers)
        if undelivered and attempt.failure is None:
            attempt.failure = reason
            del self._frames[attempt.entry.frame_id]
            self._failed.append(attempt)
        elif attempt.failure is None and not attempt.pending and attempt.registered == attempt.messages:
            del self._frames[attempt.entry.frame_id]
            self._done.append(attempt)

    def take_done(self) -> list[Attempt]:
        with self._lock:
            done, self._done = self._done, []
        return done

    def take_failed(self) -> list[Attempt]:
        with self._lock:
            failed, self._failed = self._failed, []
        return failed

    def stale(self, now: float, timeout: float) -> list[Attempt]:
        """Attempts still waiting for an ack `timeout` seconds after they were last (re)sent."""
        with self._lock:
            return [a for a in self._frames.values() if now - a.last_sent >= timeout]

    def resent_all(self, now: float) -> int:
        """paho retransmits every unacknowledged message on reconnect: restart their clocks. Returns the count."""
        with self._lock:
            for attempt in self._frames.values():
                attempt.last_sent = now
            return len(self._frames)

    def __contains__(self, frame_id: object) -> bool:
        """In flight, or acknowledged and not yet taken (so not yet deleted from the spool: do not resend it)."""
        with self._lock:
            return frame_id in self._frames or any(a.entry.frame_id == frame_id for a in self._done)

    def counts(self, now: float) -> tuple[int, int, float]:
        """(frames in flight, messages in flight, age in s of the oldest unacknowledged frame)."""
        with self._lock:
            messages = sum(a.messages - a.registered + len(a.pending) for a in self._frames.values())
            oldest = min((a.first_sent for a in self._frames.values()), default=now)
            return len(self._frames), messages, max(0.0, now - oldest)

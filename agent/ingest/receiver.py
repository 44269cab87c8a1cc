"""The reference cloud receiver: frames from every vehicle -> dedup index (SQLite or PostgreSQL) + MCAP segments.

Delivery: the broker gets our PUBACK (manual ack) only after the frame, or the chunk, is durable: messages are
decoded and checked as they arrive, then a group commit (every batch_max messages or batch_ms) looks the batch's
frames up in the index at once, writes the new ones to the MCAP files, fsyncs them, then inserts their rows and
commits the index, and only then acks the whole batch. A crash before the commit leaves the messages
unacknowledged, and the broker redelivers them to the resumed session; the index, keyed by (vehicle, frame id),
drops the copies (a copy written to MCAP but never indexed is an unreferenced spare).
After the commit it also publishes receipts (agent/uplink/receipts.py): per vehicle, the frame ids of the batch,
stored or already there; a vehicle with `uplink.delete_on: receipt` deletes a frame only then.
Everything a sender can get wrong is counted, logged (truncated, rate-limited) and acknowledged, never raised.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from agent.errors import DecodeError
from agent.ingest import fleet_state
from agent.ingest.config import IngestConfig
from agent.ingest.group_commit import GroupCommit
from agent.ingest.mcap_sink import McapSink, RosMessage, ros_message
from agent.ingest.store import ADDED, MISMATCH, IngestIndex, open_index
from agent.uplink import wire
from agent.uplink.connection import connect_async, connect_failure_reason, fatal_reason, make_client

log = logging.getLogger(__name__)

MAX_VEHICLES = 100_000  # vehicles whose last status/stats are remembered; more are counted, not stored
_LOG_FIRST = 20  # bad messages are logged one by one up to here, then every 1000th
COUNTERS = (
    "messages",  # MQTT messages received (frames, chunks, status, stats, garbage)
    "frames",  # new frames stored (MCAP + index) by this run
    "bytes",  # their blob bytes
    "duplicates",  # frames already in the index (at-least-once delivery, another worker, an earlier run)
    "chunks", "duplicate_chunks", "reassembled", "abandoned_partials", "inconsistent_chunks",
    "garbage",  # messages that are not valid frames (includes bad_sha and bad_blob): logged, acked, dropped
    "bad_sha", "bad_blob",
    "status_messages", "stats_messages", "config_states", "alert_messages", "vehicles_not_tracked",
    "acks", "commits", "storage_errors", "errors",
    "receipts",  # receipt messages published (each lists up to 1000 frame ids of one vehicle)
    "receipted_frames",  # frame ids in them
    "connects", "disconnects", "connect_failures", "connect_refused", "subscribed",
)  # fmt: skip


@dataclass
class VehicleState:
    status: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    frames: int = 0


class Ingest(GroupCommit):
    """start() -> run(count, timeout) or wait; stop() flushes, acks, finishes the MCAP files."""

    def __init__(self, config: IngestConfig, out_dir: Path | str, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self._clock = clock
        self._lock = threading.RLock()  # the index, the sink, the batch: touched by paho's thread and run()
        self._counts: Counter[str] = Counter()
        self._seconds: Counter[str] = Counter()  # where the time goes: handle (decode, index, MCAP), sync, commit
        self._state = "stopped"
        self._error: str | None = None
        self._pending: list[int] = []  # mids handled in the open batch, acked after its commit
        self._receipt_ids: dict[str, list[str]] = {}  # vehicle -> frame ids of the open batch, receipted after it
        # complete frames of the open batch (bounded by batch_max messages), stored by the group commit
        self._batch: dict[tuple[str, str], tuple[wire.FrameHeader, RosMessage, int]] = {}
        self._committing = False  # a commit is fsyncing without the lock (tick): no other one starts meanwhile
        self._idle = threading.Condition(self._lock)  # notified when that commit ends
        self._runner = False  # run() is serving: the network thread asks it to commit instead of committing
        self._commit_due = threading.Event()
        self._link = 0  # connection generation (see _Commit.link)
        self._batch_started = 0.0
        self._next_sweep = 0.0
        self._partial_bytes = 0
        self._failing = False  # between a failed connect and the next CONNACK
        self.vehicles: dict[str, VehicleState] = {}
        self._client: mqtt.Client | None = None
        self._index: IngestIndex | None = None
        self._sink: McapSink | None = None
        self._done = threading.Event()
        self._storage_errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)

    # ---- lifecycle

    def start(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._index = open_index(self.config.db, self.out_dir)
        self._storage_errors = (*self._index.errors, OSError)
        self._partial_bytes = self._index.partial_bytes()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self._sink = McapSink(self.out_dir, f"{stamp}-{re.sub(r'[^A-Za-z0-9_.-]', '_', self.config.client_id)}"
                                            f"-{os.getpid()}", self.config.segment_mb, self.config.segment_s)
        client = make_client(self.config, self.config.client_id, manual_ack=True, fast_publish=True)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = lambda *_: self._count("subscribed")
        self._client = client
        self._state = "connecting"
        connect_async(client, self.config)
        client.loop_start()

    def run(self, count: int | None = None, timeout: float | None = None, stop: threading.Event | None = None) -> bool:
        """Serve until `count` new frames are stored, `timeout` s pass or `stop` is set; True when count reached."""
        deadline = None if timeout is None else self._clock() + timeout
        stop = stop or threading.Event()
        self._runner = True
        try:
            while not stop.is_set() and self._state != "auth_failed":
                if count is not None and self._counts["frames"] >= count:
                    return True
                if deadline is not None and self._clock() >= deadline:
                    return False
                self._commit_due.wait(max(0.005, self.config.batch_ms / 2000))
                self._commit_due.clear()
                self.tick()
            return count is not None and self._counts["frames"] >= count
        finally:
            self._runner = False

    def tick(self) -> None:
        """Close a batch that is full or waited batch_ms; abandon partial frames past their timeout.
        The batch's fsync, insert and index commit run without the lock: the network thread handles the next batch
        meanwhile."""
        with self._lock:
            job, failure = None, None
            if (self._pending or self._batch) and (len(self._pending) >= self.config.batch_max or
                                                   self._clock() - self._batch_started >= self.config.batch_ms / 1000):
                job = self._commit_take()
                failure = self._commit_write(job) if job is not None else None
        if job is not None:
            failure = failure or self._commit_sync(job)
            with self._lock:
                self._commit_end(job, failure)
        with self._lock:
            if self._clock() >= self._next_sweep and self._index is not None:
                self._next_sweep = self._clock() + 1.0
                self._guard(self._sweep_partials)
                self._commit()

    def stop(self) -> dict[str, Any]:
        with self._lock:
            while self._committing:  # run() in another thread, between the fsync and the commit
                self._idle.wait(1.0)
            self._commit()
            if self._state == "online":
                self._state = "stopping"
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        with self._lock:
            while self._committing:
                self._idle.wait(1.0)
            self._commit()  # messages handled while disconnecting: durable, acked on the next session
            files = self._sink.close() if self._sink is not None else {}
            if self._index is not None:
                self._index.close()
            self._state = "stopped" if self._state != "auth_failed" else self._state
        return {**self.stats(), "mcap_frames": files}

    def stats(self) -> dict[str, Any]:
        with self._lock:
            counters = {name: self._counts[name] for name in COUNTERS}
            return {"state": self._state, "error": self._error, "partial_bytes": self._partial_bytes,
                    "vehicles": len(self.vehicles), **counters,
                    "seconds": {k: round(v, 3) for k, v in self._seconds.items()}}

    # ---- paho callbacks (network thread)

    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: Any, reason: Any, _props: Any) -> None:
        self._failing = False
        if reason.is_failure:
            self._count("connect_refused")
            why = fatal_reason(reason)
            if why is not None:
                self._error = f"broker refused client {self.config.client_id!r}: {reason} ({why})"
                self._state = "auth_failed"
                log.error("ingest: %s; not reconnecting", self._error)
                client.disconnect()
            return
        self._count("connects")
        with self._lock:
            self._link += 1
        self._state = "online"
        prefix = self.config.topic_prefix
        frames = f"{prefix}/+/frames/#"
        if self.config.shared:
            frames = f"$share/{self.config.group}/{frames}"
        # Re-subscribed on every connect: harmless when the session kept them, needed when the broker lost it.
        client.subscribe([(frames, 1), (f"{prefix}/+/status", 1), (f"{prefix}/+/stats", 1),
                          (f"{prefix}/+/config/state", 1), (f"{prefix}/+/status/alerts/+", 1)])
        log.info("ingest connected (session present: %s), subscribed to %s",
                 getattr(flags, "session_present", None), frames)

    def _on_connect_fail(self, *_: Any) -> None:
        first = not self._failing
        self._count("connect_failures")
        self._failing = True
        # once per outage at warning level (with the TLS or socket error that caused it), then quietly
        log.log(logging.WARNING if first else logging.DEBUG, "ingest cannot reach %s (%s); retrying",
                self.config.broker, connect_failure_reason())

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self._count("disconnects")
        if self._state == "online":
            self._state = "offline"
            log.warning("ingest lost the broker (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._count("messages")
            started = time.perf_counter()
            stored = self._guard(self._handle, message)
            self._seconds["handle"] += time.perf_counter() - started
            if message.qos == 0 or not stored:
                return
            if not self._pending:
                self._batch_started = self._clock()
            self._pending.append(message.mid)
            if len(self._pending) >= self.config.batch_max:
                if not self._runner:
                    self._commit()
                    return
                self._commit_due.set()
                while self._committing and self._runner and len(self._pending) >= 2 * self.config.batch_max:
                    self._idle.wait(1.0)  # the batch stays bounded: the broker waits meanwhile

    # ---- handling (under the lock)

    def _guard(self, handler: Callable[..., None], *args: Any) -> bool:
        """Run a handler; True when what it did is durable-ready, False after a storage failure."""
        try:
            handler(*args)
        except wire.WireError as exc:
            self._bad("garbage", exc, args)
        except self._storage_errors as exc:
            self._storage_failed(exc)
            return False
        except Exception as exc:  # a bug must not stop the receiver; the message is acked and counted
            self._count("errors")
            log.exception("ingest: unexpected error: %s", exc)
        return True

    def _handle(self, message: mqtt.MQTTMessage) -> None:
        parsed = wire.split_topic(message.topic, self.config.topic_prefix)
        kind = parsed[1] if parsed else None
        if parsed is None or kind not in ("frames", "status", "stats", "config"):
            raise wire.WireError(f"unexpected topic {message.topic[:200]!r}")
        vehicle = parsed[0]
        if kind == "frames":
            self._on_frame(vehicle, message.payload)
            return
        area = fleet_state.area_of(message.topic, self.config.topic_prefix, vehicle)
        state = self._vehicle(vehicle)
        if state is None:
            return
        index = self._index_between_commits()
        index.begin()
        self._count(fleet_state.record(index, state, vehicle, area, message.payload, time.time_ns()))

    def _on_frame(self, vehicle: str, payload: bytes) -> None:
        header, data = wire.decode(payload)
        if header.vehicle != vehicle:  # the topic is what the broker's ACL checked; the header must agree
            raise wire.WireError(f"header vehicle {header.vehicle[:64]!r} on a topic of vehicle {vehicle!r}")
        if (vehicle, header.frame_id) in self._batch:
            self._duplicate(vehicle, header.frame_id)
            return
        if header.chunks == 1:
            blob: bytes | memoryview | None = data  # a view of the message: not copied
        else:
            index = self._index_between_commits()
            index.begin()
            if index.has_frame(vehicle, header.frame_id):  # no chunks kept of a frame stored already
                self._duplicate(vehicle, header.frame_id)
                return
            blob = self._reassemble(header, data)
        if blob is None:
            return
        if wire.sha256_hex(blob) != header.sha256:
            self._count("bad_sha")
            raise wire.WireError(f"{vehicle}/{header.frame_id[:80]}: sha256 does not match the blob")
        try:
            ros = ros_message(header, blob)
        except DecodeError as exc:
            self._count("bad_blob")
            raise wire.WireError(f"{header.frame_id[:80]}: {exc}") from exc
        self._batch[(vehicle, header.frame_id)] = (header, ros, time.time_ns())  # received now

    def _reassemble(self, header: wire.FrameHeader, data: memoryview) -> bytes | None:
        index = self._require_index()
        outcome = index.add_chunk(header, data, time.time_ns())
        if outcome == MISMATCH:
            self._count("inconsistent_chunks")
            raise wire.WireError(f"chunk of {header.frame_id[:80]} disagrees with earlier chunks (count/size/sha)")
        self._count("chunks")
        if outcome == ADDED:
            self._partial_bytes += len(data)
        else:
            self._count("duplicate_chunks")
        if index.chunk_count(header.vehicle, header.frame_id) < header.chunks:
            self._bound_partials()
            return None
        blob = index.assemble(header.vehicle, header.frame_id)
        self._partial_bytes -= index.drop_partial(header.vehicle, header.frame_id)
        if blob is None:
            raise wire.WireError(f"chunks of {header.frame_id[:80]} do not tile the blob")
        self._count("reassembled")
        return blob

    def _bound_partials(self) -> None:
        limit = int(self.config.max_partial_mb * 1_000_000)
        index = self._require_index()
        while self._partial_bytes > limit:
            victims = index.partials(limit=1)
            if not victims:
                self._partial_bytes = 0
                return
            self._abandon(victims[0], "reassembly buffer full")

    def _sweep_partials(self) -> None:
        index = self._require_index()
        cutoff = time.time_ns() - int(self.config.reassembly_timeout_s * 1e9)
        victims = index.partials(received_before_ns=cutoff)
        if victims:
            index.begin()
        for victim in victims:
            self._abandon(victim, "reassembly timeout")

    def _abandon(self, victim: Any, why: str) -> None:
        self._partial_bytes -= self._require_index().drop_partial(victim.vehicle, victim.frame_id)
        self._count("abandoned_partials")
        log.warning("ingest: partial frame %s/%s abandoned (%s)", victim.vehicle, victim.frame_id[:80], why)

    def _bad(self, counter: str, exc: BaseException, args: tuple[Any, ...]) -> None:
        self._count(counter)
        n = self._counts[counter]
        if n <= _LOG_FIRST or n % 1000 == 0:
            message = args[0] if args else None
            topic = getattr(message, "topic", "?")[:200]
            payload = getattr(message, "payload", b"")[:64]
            log.warning("ingest: %s #%d on %r: %s (payload starts %r)", counter, n, topic, str(exc)[:300], payload)

    def _vehicle(self, vehicle: str) -> VehicleState | None:
        state = self.vehicles.get(vehicle)
        if state is None:
            if len(self.vehicles) >= MAX_VEHICLES:
                self._count("vehicles_not_tracked")
                return None
            state = self.vehicles[vehicle] = VehicleState()
        return state

    def _index_between_commits(self) -> IngestIndex:
        """The index for handling a message, once no commit is in flight: what the handling writes (chunks,
        status) must commit with its own batch, not with the one being fsynced."""
        while self._committing:
            self._idle.wait(1.0)
        return self._require_index()

    def _require_index(self) -> IngestIndex:
        if self._index is None:
            raise RuntimeError("ingest not started")
        return self._index

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n


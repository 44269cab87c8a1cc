"""The ingest's group commit (a mixin of receiver.Ingest, which owns the state it uses).

A batch's frames are looked up in the index at once; the new ones are written to their MCAP segments and handed
to the OS; the files are fsynced; only then are the batch's rows inserted and the index committed (the fsync,
insert and commit in tick() without the lock: the network thread handles the next batch meanwhile; handling that
touches the index waits for the commit to end); then the receipts and, last, the acks go out. A failure anywhere
rolls the index back, acks nothing and reconnects, so that the broker sends the batch again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.ingest.mcap_sink import Flushed, McapSink, RosMessage
from agent.ingest.store import IngestIndex
from agent.uplink import wire
from agent.uplink.connection import drop_link
from agent.uplink.receipts import encode_receipts, receipts_topic

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

    from agent.ingest.config import IngestConfig

log = logging.getLogger("agent.ingest.receiver")


@dataclass
class _Commit:
    """A group commit in flight: the batch taken (frames, and what it acks and receipts once they are stored), then
    its rows (MCAP written) and the files to fsync."""

    acks: list[int]
    receipts: dict[str, list[str]]
    frames: dict[tuple[str, str], tuple[wire.FrameHeader, RosMessage, int]]
    link: int  # the connection its messages came on: acks on a later one would name other messages
    rows: list[tuple[wire.FrameHeader, int, str]] = field(default_factory=list)
    flushed: Flushed | None = None  # the files to fsync


class GroupCommit:
    """The commit half of receiver.Ingest: its attributes are set by Ingest.__init__."""

    config: IngestConfig
    _lock: threading.RLock
    _idle: threading.Condition
    _counts: Counter[str]
    _seconds: Counter[str]
    _pending: list[int]
    _receipt_ids: dict[str, list[str]]
    _batch: dict[tuple[str, str], tuple[wire.FrameHeader, RosMessage, int]]
    _committing: bool
    _link: int
    _partial_bytes: int
    _client: mqtt.Client | None
    _index: IngestIndex | None
    _sink: McapSink | None
    _storage_errors: tuple[type[BaseException], ...]

    def _require_index(self) -> IngestIndex:
        raise NotImplementedError

    def _count(self, name: str, n: int = 1) -> None:
        raise NotImplementedError

    def _vehicle(self, vehicle: str) -> Any:
        raise NotImplementedError

    def _write_batch(self, job: _Commit) -> None:
        """The batch's frames that the index lacks (one look-up for the batch) into MCAP, not synced yet; their
        index rows. Outside the index's write transaction: SQLite's write lock is not held across the writes."""
        index, sink = self._require_index(), self._sink
        assert sink is not None
        known = index.existing_frames(list(job.frames)) if job.frames else set()
        for key, (header, ros, received) in job.frames.items():
            if key in known:
                self._duplicate(*key, job.receipts)
                continue
            path = sink.segment(header.vehicle)  # rolls the segment over between frames, as they are written
            sink.write(header.vehicle, header, ros, received)
            job.rows.append((header, received, path))

    def _index_batch(self, rows: list[tuple[wire.FrameHeader, int, str]], receipts: dict[str, list[str]]) -> None:
        """The rows of the batch's frames (synced to disk by now) in one insert, in the transaction to commit
        (with or without the lock)."""
        index = self._require_index()
        index.begin()
        inserted = index.insert_frames(rows)
        with self._lock:  # the counters and vehicle states are the network thread's too
            for header, _, _ in rows:
                key = (header.vehicle, header.frame_id)
                if key not in inserted:  # another worker stored it meanwhile: our MCAP copy is an unindexed spare
                    self._duplicate(*key, receipts)
                    continue
                receipts.setdefault(header.vehicle, []).append(header.frame_id)
                self._count("frames")
                self._count("bytes", header.size)
                state = self._vehicle(header.vehicle)
                if state is not None:
                    state.frames += 1

    def _commit(self) -> None:
        """The group commit in one go, under the caller's lock: MCAP on disk, index committed, then the acks."""
        job = self._commit_take()
        if job is not None:
            self._commit_end(job, self._commit_write(job) or self._commit_sync(job))

    def _commit_take(self) -> _Commit | None:
        """Under the lock: take the batch (messages handled from now on make the next one). Until _commit_end,
        handling that touches the index waits (Ingest._index_between_commits), so the batch's fsync, insert and
        index commit can run without the lock."""
        index, sink = self._index, self._sink
        if self._committing or index is None or sink is None or \
                (not self._pending and not self._batch and not index.in_transaction):
            return None
        acks, self._pending = self._pending, []
        receipts, self._receipt_ids = self._receipt_ids, {}
        frames, self._batch = self._batch, {}
        self._committing = True
        return _Commit(acks, receipts, frames, self._link)

    def _commit_write(self, job: _Commit) -> BaseException | None:
        """Under the lock: the batch's new frames written to MCAP and handed to the OS. (Not without it: this is
        Python work, and a network thread that gives up the GIL at every read would wait for it each time.)
        Returns the storage error that stopped the commit, if any."""
        started = time.perf_counter()
        try:
            self._write_batch(job)
            assert self._sink is not None
            job.flushed = self._sink.flush()
        except self._storage_errors as exc:
            return exc
        except BaseException:
            self._commit_abandoned()
            raise
        finally:
            self._seconds["store"] += time.perf_counter() - started
        return None

    def _commit_sync(self, job: _Commit) -> BaseException | None:
        """The batch's files fsynced, only then its rows inserted and the index committed (tick: without the lock,
        mostly waiting for the disk and the database, while the network thread receives the next batch). Returns
        the storage error that stopped the commit, if any."""
        try:
            started = time.perf_counter()
            try:
                assert self._sink is not None and job.flushed is not None
                self._sink.fsync(job.flushed)
            finally:
                self._seconds["mcap_sync"] += time.perf_counter() - started
            started = time.perf_counter()
            try:
                if job.rows:
                    self._index_batch(job.rows, job.receipts)
                self._require_index().commit()
            finally:
                self._seconds["db_commit"] += time.perf_counter() - started
        except self._storage_errors as exc:
            return exc
        except BaseException:
            self._commit_abandoned()
            raise
        return None

    def _commit_abandoned(self) -> None:
        with self._lock:  # a bug: the commit ends here (and the exception goes on), no one waits for it
            self._committing = False
            self._idle.notify_all()

    def _commit_end(self, job: _Commit, failure: BaseException | None) -> None:
        """Under the lock: after a failure, the rollback and a reconnect; else the receipts, then the acks."""
        try:
            if failure is not None:
                self._storage_failed(failure)
                return
        finally:
            self._committing = False
            self._idle.notify_all()
        client = self._client
        self._count("commits")
        # Receipts before acks (paho sends in order): killed in between, the unacked messages come again and are
        # receipted as duplicates; the other way round, a vehicle could wait for a receipt that never comes.
        if client is not None and self.config.receipts:
            for vehicle, frame_ids in job.receipts.items():
                for payload in encode_receipts(frame_ids):
                    client.publish(receipts_topic(self.config.topic_prefix, vehicle), payload, qos=1)
                    self._count("receipts")
                self._count("receipted_frames", len(frame_ids))
        if job.link == self._link and client is not None:  # else they come again on the new connection: deduped
            ack_all = getattr(client, "ack_all", None)  # FastPublishClient: the batch's PUBACKs in one write
            if ack_all is not None:
                ack_all(job.acks)
            else:
                for mid in job.acks:
                    client.ack(mid, 1)
            self._count("acks", len(job.acks))

    def _storage_failed(self, exc: BaseException) -> None:
        """Nothing of the open batch is acked: roll it back and reconnect so the broker redelivers it."""
        self._count("storage_errors")
        log.error("ingest: storage failed (%s); batch of %d messages rolled back, reconnecting to get it again",
                  exc, len(self._pending))
        if self._index is not None:
            self._index.rollback()
        self._pending = []
        self._receipt_ids = {}
        self._batch = {}
        self._link += 1  # acks of a commit in flight would name messages of the dropped connection
        try:
            self._partial_bytes = self._index.partial_bytes() if self._index is not None else 0
        except self._storage_errors:  # still down: recounted after the next failure or restart
            self._partial_bytes = 0
        if self._client is not None:
            drop_link(self._client)

    # ---- helpers

    def _duplicate(self, vehicle: str, frame_id: str, receipts: dict[str, list[str]] | None = None) -> None:
        self._count("duplicates")
        # durable already (or in the batch, receipted with it): the vehicle may have lost our receipt
        (self._receipt_ids if receipts is None else receipts).setdefault(vehicle, []).append(frame_id)


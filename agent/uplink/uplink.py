"""The uplink: a thread that streams the spool to the broker at QoS 1 and deletes each frame once it is safe.

Durability lives in the spool, not in paho (whose queue is in memory): with `delete_on: receipt` (the default) a
frame leaves the spool only when the ingest's receipt says it is stored durably (see receipts.py); with
`delete_on: puback` once the broker has sent PUBACK for every one of its messages.
Everything else (a dead link, a broker restart, an agent
crash) ends with the frame still in the spool and sent again later: delivery is at least once, and the ingest
deduplicates by (vehicle, frame id).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.config.uplink import UplinkConfig
from agent.errors import SpoolError
from agent.spool import Spool, SpoolEntry
from agent.uplink import wire
from agent.uplink.connection import (
    Will,
    connect_async,
    connect_failure_reason,
    drop_link,
    fatal_reason,
    make_client,
)
from agent.uplink.receipts import ReceiptBook, ReceiptError, decode_receipt, receipts_topic
from agent.uplink.tracker import NO_MATCHING_SUBSCRIBERS, InFlightTable

log = logging.getLogger(__name__)

STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"
_STOP = -1  # _publish_entry: no room or paho refused; stop filling the window for now


@dataclass(frozen=True)
class UplinkStats:
    state: str  # stopped | connecting | online | offline | auth_failed
    error: str | None  # why the uplink gave up (auth_failed), for status pages
    published: int  # frames published (first sends and re-publishes)
    acked: int  # frames acknowledged in full by the broker (deleted from the spool with delete_on: puback)
    receipted: int  # frames the ingest confirmed as stored, deleted from the spool (delete_on: receipt)
    receipt_timeouts: int  # frames acknowledged by the broker whose receipt did not come in time: sent again
    bad_receipts: int  # receipt messages that were not receipts (logged, ignored)
    retried: int  # frames sent again: retransmitted after a reconnect, or re-published after a refusal or timeout
    rejected: int  # frames the broker refused (a PUBACK reason code >= 0x80); retried after retry_delay_s
    no_subscribers: int  # frames acked with 'no matching subscribers' (0x10); retried after retry_delay_s
    timeouts: int  # frames without PUBACK within ack_timeout_s on a live connection
    queue_full: int  # publishes paho refused (its queue was full); retried after retry_delay_s
    messages: int  # MQTT messages published (a chunked frame is several)
    bytes: int  # blob bytes acknowledged
    in_flight: int  # frames published and not yet acknowledged
    in_flight_messages: int
    awaiting_receipt: int  # frames acknowledged by the broker, still in the spool until their receipt
    receipts_dropped: int  # receipt ids dropped because too many waited to be applied (those frames are resent)
    lag_s: float  # age of the oldest unacknowledged frame (0 when none)
    spool_frames: int  # frames waiting in the spool (including those in flight)
    connects: int
    disconnects: int
    connect_failures: int  # TCP/TLS failures before any CONNACK
    connect_refused: int  # CONNACKs with a failure reason code
    errors: int  # unexpected errors in the uplink thread (logged; the thread carries on)


_GAUGES = ("state", "error", "in_flight", "in_flight_messages", "awaiting_receipt", "receipts_dropped", "lag_s",
           "spool_frames")
_COUNTERS = tuple(name for name in UplinkStats.__dataclass_fields__ if name not in _GAUGES)


def frame_properties(header: wire.FrameHeader) -> Properties:
    """The MQTT 5 properties of a frame message."""
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = wire.CONTENT_TYPE
    props.UserProperty = [("frame_id", header.frame_id), ("chunk", f"{header.chunk}/{header.chunks}")]
    return props


class Uplink:
    """Streams spool frames to `<prefix>/<vehicle>/frames/<sensor>`; start() / notify() / drain() / stop()."""

    def __init__(
        self, spool: Spool, config: UplinkConfig, vehicle_id: str, *, scorer: str = "heuristic",
        client_id: str | None = None, clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.spool = spool
        self.config = config
        self.vehicle_id = vehicle_id
        self._last_fail_reason = ""
        self.scorer = scorer
        self.client_id = client_id or vehicle_id  # one session per vehicle: the broker's ACLs key on it
        self._clock = clock
        self._table = InFlightTable(config.retry_no_subscribers)
        self._retry_at: dict[str, float] = {}  # frame id -> when it may be sent again (refused or queue full)
        self._quiet_until = 0.0  # nobody subscribes (PUBACK 0x10): send nothing until then ...
        self._quiet_delay = 0.0  # ... then probe with one frame; doubles while it stays so, 0 once one got through
        self._window = config.max_in_flight  # lowered to the broker's Receive Maximum on connect
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # counters, state, error
        self._counts: Counter[str] = Counter()
        self._state = "stopped"
        self._error: str | None = None
        self._client: mqtt.Client | None = None
        self._thread: threading.Thread | None = None
        self._next_stats = 0.0
        self._status_topic = wire.status_topic(config.topic_prefix, vehicle_id)
        self._receipts = ReceiptBook(config.receipt_timeout_s) if config.delete_on == "receipt" else None
        self._receipts_topic = receipts_topic(config.topic_prefix, vehicle_id)

    # ---- lifecycle

    def start(self) -> None:
        """Connect in the background and start streaming; returns at once (an absent broker is retried)."""
        if self._thread is not None:
            raise RuntimeError("uplink already started")
        client = make_client(self.config, self.client_id, will=Will(self._status_topic, STATUS_OFFLINE))
        client.max_inflight_messages_set(self.config.max_in_flight)
        # paho's own queue stays small without a limit of its own: the uplink hands it at most max_in_flight
        # messages (or the chunks of one big frame) at a time, and frames wait in the spool (on disk) instead.
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        if self._receipts is not None:
            client.message_callback_add(self._receipts_topic, self._on_receipt)
        self._client = client
        self._stopping.clear()
        self._set_state("connecting")
        connect_async(client, self.config)
        client.loop_start()
        self._thread = threading.Thread(target=self._run, name=f"uplink-{self.vehicle_id}", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """New frames are in the spool: look now instead of at the next poll."""
        self._wake.set()

    def drain(self, timeout: float) -> bool:
        """Wait until the spool is empty and nothing is in flight; False on timeout or when the uplink gave up."""
        deadline = self._clock() + timeout
        while True:
            frames, _, _ = self._table.counts(self._clock())
            if len(self.spool) == 0 and frames == 0:
                return True
            if self.state == "auth_failed" or self._clock() >= deadline:
                return False
            self.notify()
            time.sleep(0.02)

    def stop(self, drain_timeout: float = 0.0) -> UplinkStats:
        """Optionally drain, then say `offline` (retained), disconnect and stop the thread."""
        if self._thread is None or self._client is None:
            return self.stats()
        if drain_timeout > 0:
            self.drain(drain_timeout)
        self._stopping.set()
        self._wake.set()
        self._thread.join()
        client = self._client
        if self.state == "online":
            info = client.publish(self._status_topic, STATUS_OFFLINE, qos=1, retain=True)
            self._table.ignore(info.mid)
            try:
                info.wait_for_publish(timeout=2.0)
            except (ValueError, RuntimeError) as exc:
                log.debug("offline status not confirmed: %s", exc)
        client.disconnect()
        client.loop_stop()
        self._settle()  # acks that arrived while stopping still delete their frames
        self._thread = None
        if self.state != "auth_failed":
            self._set_state("stopped")
        return self.stats()

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    @property
    def error(self) -> str | None:
        with self._lock:
            return self._error

    def stats(self) -> UplinkStats:
        frames, messages, lag = self._table.counts(self._clock())
        with self._lock:
            counters = {name: self._counts[name] for name in _COUNTERS}
            return UplinkStats(state=self._state, error=self._error, in_flight=frames, in_flight_messages=messages,
                               awaiting_receipt=len(self._receipts) if self._receipts is not None else 0,
                               receipts_dropped=self._receipts.overflow if self._receipts is not None else 0,
                               lag_s=round(lag, 3), spool_frames=len(self.spool), **counters)

    # ---- paho callbacks (network thread: never raise, never block)

    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._count("connect_refused")
            why = fatal_reason(reason)
            if why is None:
                log.warning("broker refused the connection (%s); retrying with backoff", reason)
                return
            message = f"broker {self.config.broker} refused client {self.client_id!r}: {reason} ({why}); " \
                      "not reconnecting until the configuration is fixed"
            log.error("uplink: %s", message)
            with self._lock:
                self._state, self._error = "auth_failed", message
            client.disconnect()  # ends paho's reconnect loop: retrying bad credentials is a reconnect storm
            return
        receive_maximum = getattr(properties, "ReceiveMaximum", None)
        # The broker's own in-flight limit (MQTT 5; mosquitto's default is 20). paho refuses to change its limit on
        # a live connection, so the uplink's window honours it instead.
        self._window = min(self.config.max_in_flight, int(receive_maximum)) if receive_maximum else \
            self.config.max_in_flight
        resent = self._table.resent_all(self._clock())
        if self._receipts is not None:
            # Subscribed on every connect (a broker that lost our session lost the subscription too); when it
            # did lose the session it may have lost what it held for the ingest: send every awaited frame again.
            client.subscribe(self._receipts_topic, qos=1)
            if not getattr(flags, "session_present", True):
                self._count("receipt_timeouts", self._receipts.expire_all())
        self._count("connects")
        self._count("retried", resent)
        self._set_state("online")
        log.info("uplink connected to %s (session present: %s, %d frames retransmitted)",
                 self.config.broker, getattr(flags, "session_present", None), resent)
        info = client.publish(self._status_topic, STATUS_ONLINE, qos=1, retain=True)
        self._table.ignore(info.mid)
        self._wake.set()

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        self._count("connect_failures")
        previous = self.state
        if previous == "auth_failed":
            return
        self._set_state("offline")
        # once per outage at warning level, then quietly: the backoff already caps how often this happens
        reason = connect_failure_reason()
        # A TLS refusal is a configuration problem, not an outage: say why at warning level every time it changes.
        quiet = previous == "offline" and reason == self._last_fail_reason
        self._last_fail_reason = reason
        log.log(logging.DEBUG if quiet else logging.WARNING,
                "uplink cannot reach %s (%s); retrying with backoff up to %g s, frames stay in the spool",
                self.config.broker, reason, self.config.reconnect_max_s)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self._count("disconnects")
        if self.state == "online":
            self._set_state("offline")
            if not self._stopping.is_set():
                log.warning("uplink lost the broker (%s); frames stay in the spool until it is back", reason)

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, reason: Any, _props: Any) -> None:
        self._table.acked(mid, int(getattr(reason, "value", reason or 0)))
        self._wake.set()

    def _on_receipt(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._receipts is None or message.topic != self._receipts_topic:
            return
        try:
            self._receipts.confirm(decode_receipt(message.payload))
        except ReceiptError as exc:
            self._count("bad_receipts")
            log.warning("uplink: ignored a bad receipt on %s: %s", message.topic, exc)
        self._wake.set()

    # ---- the uplink thread

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.config.poll_interval_s)
            self._wake.clear()
            try:
                self._step()
            except Exception:  # the uplink must outlive a vanished blob or a full disk; the frame stays spooled
                self._count("errors")
                log.exception("uplink step failed; retrying")
                self._stopping.wait(min(1.0, self.config.poll_interval_s))
        self._settle()

    def _step(self) -> None:
        self._settle()
        if self.state != "online":
            return
        self._expire_stale()
        self._fill_window()
        self._maybe_publish_stats()

    def _settle(self) -> None:
        """Delete fully acknowledged frames from the spool; park undelivered ones for a later retry."""
        for attempt in self._table.take_done():
            if self._receipts is None:
                self.spool.delete(attempt.entry.frame_id)  # False when evicted or displaced meanwhile: fine
            else:
                self._receipts.awaiting(attempt.entry.frame_id, self._clock())
            self._count("acked")
            self._count("bytes", attempt.blob_bytes)
            self._quiet_delay = 0.0
        if self._receipts is not None:
            for frame_id in self._receipts.take_confirmed():
                if self.spool.delete(frame_id):
                    self._count("receipted")
            self._count("receipt_timeouts", len(self._receipts.expire(self._clock())))
        failed = self._table.take_failed()
        unheard = [a for a in failed if a.failure == NO_MATCHING_SUBSCRIBERS]
        for attempt in failed:
            if attempt.failure != NO_MATCHING_SUBSCRIBERS:  # unheard frames keep their place in the order
                self._retry_at[attempt.entry.frame_id] = self._clock() + self.config.retry_delay_s
            self._count("retried")
        self._count("rejected", len(failed) - len(unheard))
        self._count("no_subscribers", len(unheard))
        if len(failed) > len(unheard):
            log.warning("broker refused %d frames (e.g. %s: reason 0x%02x); retrying in %.1f s",
                        len(failed) - len(unheard), failed[0].entry.frame_id, failed[0].failure or 0,
                        self.config.retry_delay_s)
        if unheard:
            self._go_quiet()

    def _go_quiet(self) -> None:
        # Resending whole frames to a topic nobody reads wastes the (cellular) link: back off, then probe with one.
        cap = max(self.config.retry_delay_s, self.config.reconnect_max_s)
        self._quiet_delay = min(cap, max(self.config.retry_delay_s, 2 * self._quiet_delay))
        self._quiet_until = self._clock() + self._quiet_delay
        log.warning("no subscriber for %s frames (PUBACK 0x10): pausing %.1f s, frames stay in the spool",
                    self.vehicle_id, self._quiet_delay)

    def _expire_stale(self) -> None:
        stale = self._table.stale(self._clock(), self.config.ack_timeout_s)
        if not stale:
            return
        for attempt in stale:
            self._table.abandon(attempt)  # sent again below, under new message ids
        self._count("timeouts", len(stale))
        self._count("retried", len(stale))
        log.warning("no PUBACK for %d frames in %.1f s: dropping the link to reconnect", len(stale),
                    self.config.ack_timeout_s)
        if self._client is not None:
            drop_link(self._client)

    def _fill_window(self) -> None:
        now = self._clock()
        if now < self._quiet_until:
            return
        frames, messages, _ = self._table.counts(now)
        room = self._window - messages
        if self._quiet_delay > 0:  # probing: one frame at a time until one is delivered
            room = 1 if messages == 0 else 0
        if room <= 0:
            return
        self._retry_at = {fid: t for fid, t in self._retry_at.items() if t > now}
        awaiting = len(self._receipts) if self._receipts is not None else 0
        if awaiting >= self.config.max_awaiting_receipt:
            return
        limit = frames + len(self._retry_at) + awaiting + room
        for entry in self.spool.entries(self.config.order, limit=limit):
            if entry.frame_id in self._retry_at or entry.frame_id in self._table or \
                    (self._receipts is not None and entry.frame_id in self._receipts):
                continue
            used = self._publish_entry(entry, room, busy=messages > 0)
            if used == _STOP:
                return
            room -= used
            messages += used
            if room <= 0:
                return

    def _publish_entry(self, entry: SpoolEntry, room: int, busy: bool) -> int:
        """Publish one frame's messages; how many were used, 0 when it vanished, _STOP when it must wait."""
        try:
            blob = self.spool.read_blob(entry)
        except SpoolError as exc:  # evicted or displaced after entries() listed it
            log.debug("uplink: %s skipped: %s", entry.frame_id, exc)
            return 0
        parts = wire.split_blob(self._header(entry, blob), blob, self.config.max_payload_bytes)
        if len(parts) > room and busy:
            return _STOP  # keep the order: a big frame waits for the window to empty rather than being overtaken
        client = self._client
        assert client is not None
        topic = wire.frames_topic(self.config.topic_prefix, self.vehicle_id, entry.sensor)
        attempt = self._table.begin(entry, len(parts), len(blob), self._clock())
        for header, data in parts:
            info = client.publish(topic, wire.encode(header, data), qos=1, properties=self._properties(header))
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                self._table.abandon(attempt)
                self._retry_at[entry.frame_id] = self._clock() + self.config.retry_delay_s
                self._count("queue_full")
                return _STOP
            self._table.sent(attempt, info.mid)
        self._count("published")
        self._count("messages", len(parts))
        return len(parts)

    def _header(self, entry: SpoolEntry, blob: bytes) -> wire.FrameHeader:
        return wire.FrameHeader(
            frame_id=entry.frame_id, vehicle=self.vehicle_id, sensor=entry.sensor, modality=entry.modality,
            t_ns=entry.t_ns, seq=entry.seq, verdict=entry.label, score=entry.score, reasons=list(entry.reasons),
            rule=entry.rule, encoding=entry.encoding, scorer=self.scorer, sha256=wire.sha256_hex(blob),
            size=len(blob), sent_ns=time.time_ns(),
        )  # fmt: skip

    def _properties(self, header: wire.FrameHeader) -> Properties | None:
        return frame_properties(header) if self.config.protocol == "5" else None

    def _maybe_publish_stats(self) -> None:
        # QoS 1 like everything else we publish: every registered mid then gets an ack (see tracker.py)
        if self.config.stats_interval_s <= 0 or self._clock() < self._next_stats or self._client is None:
            return
        self._next_stats = self._clock() + self.config.stats_interval_s
        doc = {"vehicle": self.vehicle_id, "t_ns": time.time_ns(), "uplink": asdict(self.stats())}
        with contextlib.suppress(SpoolError):  # closed under us: send the uplink counters alone
            doc["spool"] = asdict(self.spool.stats())
        topic = wire.stats_topic(self.config.topic_prefix, self.vehicle_id)
        info = self._client.publish(topic, json.dumps(doc, separators=(",", ":")).encode(), qos=1)
        self._table.ignore(info.mid)

    # ---- helpers

    def _count(self, name: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._counts[name] += n

    def _set_state(self, state: str) -> None:
        with self._lock:
            self._state = state

"""The load generator of bench_fleet_ingest.py: simulated vehicles that speak the uplink's protocol, cheaply.

Each vehicle is one MQTT client set up as the agent's uplink sets it up (agent.uplink.connection: MQTT 5, a
persistent session, the retained `offline` Last Will), says `online` (retained), subscribes to its receipts, and
publishes frame messages at QoS 1 on `<prefix>/<vehicle>/frames/<sensor>` with the uplink's payload (wire.encode:
JSON header + blob) and properties (content type, frame id, chunk; packed by fast_publish.packed_frame_properties,
byte for byte what uplink.frame_properties packs, tested). What it skips is the vehicle's own work, which
is not what the benchmark measures: no spool (no blob write and fsync per frame), no re-reading and re-hashing of
the blob per frame (each distinct JPEG is hashed once), and one event loop per process for all its vehicles
instead of two threads per vehicle. So the ingest, the broker and the database get exactly what real vehicles
send them, for a fraction of the load generator's CPU.
"""

from __future__ import annotations

import os
import selectors
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from agent.config.uplink import UplinkConfig
from agent.spool import JPEG
from agent.uplink import wire
from agent.uplink.connection import Will, connect_async, make_client
from agent.uplink.fast_publish import packed_frame_properties
from agent.uplink.receipts import decode_receipt, receipts_topic
from agent.uplink.uplink import STATUS_OFFLINE, STATUS_ONLINE

_CONTENT_TYPE = wire.CONTENT_TYPE.encode()
MAX_BACKLOG = 256  # frames published and not yet acked by the broker, per vehicle; beyond it frames are skipped


@dataclass
class Vehicle:
    name: str
    client: mqtt.Client
    topic: str
    connected: bool = False
    published: int = 0
    acked: int = 0
    refused: int = 0
    receipted: int = 0
    skipped: int = 0  # frames not offered because MAX_BACKLOG were unacknowledged (the generator fell behind)
    writing: bool = False
    ignored: set[int] = field(default_factory=set)  # mids of status messages (not frames)


class Fleet:
    """The vehicles of one process on one selector; publish() offers one frame per vehicle."""

    def __init__(self, names: list[str], broker: str, blobs: list[bytes], sensor: str = "cam") -> None:
        self.config = UplinkConfig(broker=broker, keepalive_s=30)
        self.sensor = sensor
        self.blobs = [(blob, wire.sha256_hex(blob)) for blob in blobs]  # hashed once, not per frame
        self.selector = selectors.DefaultSelector()
        self.vehicles = [self._vehicle(name) for name in names]
        self.n = 0

    def _vehicle(self, name: str) -> Vehicle:
        prefix = self.config.topic_prefix
        client = make_client(self.config, name, will=Will(wire.status_topic(prefix, name), STATUS_OFFLINE),
                             fast_publish=True)  # the ingest's client class: PUBACKs and receipts taken cheaply
        client.max_inflight_messages_set(self.config.max_in_flight)
        vehicle = Vehicle(name, client, wire.frames_topic(prefix, name, self.sensor))

        def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if not reason.is_failure:
                c.subscribe(receipts_topic(prefix, name), qos=1)
                vehicle.ignored.add(c.publish(wire.status_topic(prefix, name), STATUS_ONLINE, qos=1, retain=True).mid)
                vehicle.connected = True

        def on_publish(_c: mqtt.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
            if mid in vehicle.ignored:
                vehicle.ignored.discard(mid)
            elif getattr(reason, "is_failure", False):
                vehicle.refused += 1
            else:
                vehicle.acked += 1

        def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
            vehicle.receipted += len(decode_receipt(message.payload))

        client.on_connect, client.on_publish, client.on_message = on_connect, on_publish, on_message
        connect_async(client, self.config)
        client.reconnect()  # the TCP connection now, in this thread; CONNACK comes through the selector
        self.selector.register(client.socket(), selectors.EVENT_READ, vehicle)  # type: ignore[arg-type]
        return vehicle

    def publish(self) -> None:
        blob, sha = self.blobs[self.n % len(self.blobs)]
        for vehicle in self.vehicles:
            if vehicle.published - vehicle.acked - vehicle.refused >= MAX_BACKLOG:
                vehicle.skipped += 1
                continue
            now = time.time_ns()
            header = wire.FrameHeader(
                frame_id=f"{now:019d}-{self.sensor}-{self.n}", vehicle=vehicle.name, sensor=self.sensor,
                modality="camera", t_ns=now, seq=self.n, verdict="helpful", score=0.9, reasons=["novel"],
                rule="keep", encoding=JPEG, scorer="heuristic", sha256=sha, size=len(blob), sent_ns=now,
            )  # fmt: skip
            # the uplink's properties (frame_properties), packed directly: same bytes, a fraction of paho's CPU
            props = packed_frame_properties(_CONTENT_TYPE, header.frame_id, "0/1")
            vehicle.client.publish(vehicle.topic, wire.encode(header, blob), qos=1, properties=props)
            vehicle.published += 1
            self._want_write(vehicle)
        self.n += 1

    def serve(self, timeout: float) -> None:
        """Read and write whatever the sockets allow for up to `timeout` s."""
        for key, events in self.selector.select(max(0.0, timeout)):
            vehicle: Vehicle = key.data
            if events & selectors.EVENT_READ:
                vehicle.client.loop_read()
            if events & selectors.EVENT_WRITE:
                vehicle.client.loop_write()
            self._want_write(vehicle)

    def misc(self) -> None:
        for vehicle in self.vehicles:
            vehicle.client.loop_misc()  # keepalive pings

    def _want_write(self, vehicle: Vehicle) -> None:
        want = vehicle.client.want_write()
        if want != vehicle.writing:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
            self.selector.modify(vehicle.client.socket(), events, vehicle)  # type: ignore[arg-type]
            vehicle.writing = want

    def until(self, done: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        next_misc = 0.0
        while not done():
            if time.monotonic() > deadline:
                return False
            if time.monotonic() > next_misc:
                self.misc()
                next_misc = time.monotonic() + 1.0
            self.serve(0.05)
        return True

    def close(self) -> None:
        prefix = self.config.topic_prefix
        for vehicle in self.vehicles:
            vehicle.ignored.add(vehicle.client.publish(wire.status_topic(prefix, vehicle.name), STATUS_OFFLINE,
                                                       qos=1, retain=True).mid)
            self._want_write(vehicle)
        self.until(lambda: all(not v.ignored for v in self.vehicles), 5.0)
        self.selector.close()
        for vehicle in self.vehicles:
            vehicle.client.disconnect()


def run_fleet(job: dict[str, Any]) -> dict[str, Any]:
    """One process: its vehicles connected, then one frame per vehicle every 1/rate s for `duration` s (all from
    job["start_at"]), then waits for the broker's acks and the ingest's receipts of every frame."""
    from bench_uplink import camera_frames

    fleet = Fleet(job["names"], job["broker"], [frame.payload for frame in camera_frames()])
    fleet.until(lambda: all(v.connected for v in fleet.vehicles), 60.0)
    late = time.time() - job["start_at"]  # > 0: this process was not ready at the common start (reported)
    fleet.until(lambda: time.time() >= job["start_at"], max(0.0, -late) + 1.0)
    cpu0 = sum(os.times()[:2])  # the stream's CPU, not the imports and the sample drive's decoding
    period, start, behind = 1.0 / job["rate"], time.monotonic(), 0.0
    next_misc = start + 1.0
    while time.monotonic() - start < job["duration"]:
        behind = max(behind, time.monotonic() - (start + fleet.n * period))
        fleet.publish()
        while (wait := start + fleet.n * period - time.monotonic()) > 0:
            fleet.serve(wait)
        if time.monotonic() > next_misc:
            fleet.misc()
            next_misc = time.monotonic() + 1.0
    vehicles = fleet.vehicles
    acked = fleet.until(lambda: all(v.acked + v.refused >= v.published for v in vehicles), 120.0)
    receipted = fleet.until(lambda: all(v.receipted >= v.acked for v in vehicles), 120.0)
    fleet.close()
    return {
        "put": sum(v.published for v in vehicles), "acked": sum(v.acked for v in vehicles),
        "refused": sum(v.refused for v in vehicles), "receipted": sum(v.receipted for v in vehicles),
        "skipped": sum(v.skipped for v in vehicles), "drained": acked and receipted,
        "cpu_s": sum(os.times()[:2]) - cpu0, "late_s": max(0.0, late), "max_behind_s": round(behind, 3),
    }  # fmt: skip

"""Helpers for the uplink / ingest tests: real sample-drive frames in a spool, an in-process ingest, readers."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from conftest import sample_frames
from mcap.reader import make_reader
from mcap.stream_reader import StreamReader
from mqtt_broker import Broker
from paho.mqtt.enums import CallbackAPIVersion

from agent.config.model import SpoolConfig
from agent.config.uplink import UplinkConfig
from agent.frame import Frame
from agent.ingest.config import IngestConfig
from agent.ingest.receiver import Ingest
from agent.scoring.base import Label, Verdict
from agent.spool import Spool

FAST = {"reconnect_min_s": 0.05, "reconnect_max_s": 0.5, "keepalive_s": 5}


def make_broker(workdir: Path, extra_conf: list[str] | None = None, **options: Any) -> Broker:
    """A Broker (not started) that can write its persistence file, log and read our files in pytest's tmp dirs."""
    extra = list(extra_conf or [])
    if os.geteuid() == 0:
        extra.append("user root")  # else mosquitto drops to its own user, who cannot read pytest's 0700 tmp dirs
    return Broker(workdir, extra_conf=extra, **options)


def uplink_config(url: str, **overrides: Any) -> UplinkConfig:
    settings = {**FAST, "poll_interval_s": 0.05, "stats_interval_s": 0.0, "retry_delay_s": 0.3, **overrides}
    return UplinkConfig(broker=url, **settings)


def ingest_config(url: str, **overrides: Any) -> IngestConfig:
    return IngestConfig(broker=url, **{"batch_ms": 10.0, **FAST, **overrides})


def numbered(frame: Frame, n: int) -> Frame:
    """A copy of a real frame made distinct: its own time and sequence number (so its own spool frame id)."""
    return replace(frame, t_ns=frame.t_ns + n * 1_000_000, seq=n)


def fill_spool(
    spool: Spool, count: int, kind: str = "camera", score: Callable[[int], float] = lambda n: 0.5
) -> dict[str, float]:
    """Put `count` distinct real frames (the sample drive's, cycled); returns frame id -> score of those stored."""
    frames = sample_frames(kind)
    stored = {}
    for n in range(count):
        frame = numbered(frames[n % len(frames)], n)
        fid = f"{frame.t_ns:019d}-{frame.sensor}-{frame.seq}"
        result = spool.put(frame, Verdict(Label.HELPFUL, score(n), ("novel",)), "keep", frame_id=fid)
        if result.stored:
            stored[fid] = score(n)
    return stored


def open_spool(root: Path, max_mb: float = 2048.0) -> Spool:
    return Spool.open(root, SpoolConfig(max_mb=max_mb))


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class IngestThread:
    """An in-process Ingest served by a thread; stopped (MCAP files finished) on exit."""

    def __init__(self, url: str, out: Path, **overrides: Any) -> None:
        self.ingest = Ingest(ingest_config(url, **overrides), out)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.ingest.run, kwargs={"stop": self._stop}, daemon=True)
        self.final: dict[str, Any] = {}

    def __enter__(self) -> IngestThread:
        self.ingest.start()
        self._thread.start()
        wait_for(lambda: self.ingest.stats().get("subscribed", 0) > 0, 10, "the ingest to subscribe")
        return self

    def stat(self, name: str) -> int:
        return int(self.ingest.stats().get(name, 0))

    def wait_frames(self, n: int, timeout: float = 20.0) -> None:
        wait_for(lambda: self.stat("frames") >= n, timeout, f"{n} frames at the ingest (have {self.stat('frames')})")

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.final = self.ingest.stop()


def indexed(out: Path) -> list[dict[str, Any]]:
    """The ingest index rows in arrival order."""
    with sqlite3.connect(out / "index.sqlite3") as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM frames ORDER BY received_ns, rowid")]


def mcap_messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """(topic, raw data) of every message; streaming, so files cut short by a crash are read too."""
    with path.open("rb") as fh:
        channels: dict[int, str] = {}
        for record in StreamReader(fh, skip_magic=False, emit_chunks=False).records:
            kind = type(record).__name__
            if kind == "Channel":
                channels[record.id] = record.topic
            elif kind == "Message":
                yield channels[record.channel_id], record.data


def received_headers(out: Path) -> Counter[str]:
    """frame_id -> how many times it was written to any MCAP file of the ingest (the JSON header channel)."""
    seen: Counter[str] = Counter()
    for path in out.glob("*/*.mcap"):
        for topic, data in mcap_messages(path):
            if topic == "/edgesift/frames":
                seen[json.loads(data)["frame_id"]] += 1
    return seen


def ros_frames(path: Path) -> list[tuple[str, int, bytes]]:
    """(topic, log time, data bytes) of the ROS 2 frames of a finished MCAP file."""
    from mcap_ros2.decoder import DecoderFactory

    factory, decoders, out = DecoderFactory(), {}, []
    with path.open("rb") as fh:
        for schema, channel, message in make_reader(fh).iter_messages():
            if channel.message_encoding == "cdr":
                decode = decoders.setdefault(channel.id, factory.decoder_for("cdr", schema))
                out.append((channel.topic, message.log_time, bytes(decode(message.data).data)))
    return out


def publish_raw(url: str, messages: list[tuple[str, bytes]], client_id: str = "test-raw") -> None:
    """Publish arbitrary payloads at QoS 1 and wait for the broker's acks (a hostile or buggy sender)."""
    port = int(url.rsplit(":", 1)[1])
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


class FlakyLink:
    """A TCP proxy in front of the broker that a test can cut and restore: a network outage, broker untouched."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._flowing = threading.Event()  # cleared: bytes are held back, connections stay open (a half-dead link)
        self._flowing.set()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._up.is_set():
                client.close()  # the link is down: connection refused, as far as the client can tell
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.close()

    def cut(self) -> None:
        """Drop every connection abruptly (RST, bytes in transit lost) and refuse new ones until restore()."""
        self._up.clear()
        self.cuts += 1
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()

    def stall(self) -> None:
        """Hold every byte back while keeping the connections open: no error, just silence (no PUBACK)."""
        self._flowing.clear()

    def restore(self) -> None:
        self._up.set()
        self._flowing.set()

    def close(self) -> None:
        self.cut()
        self._listener.close()

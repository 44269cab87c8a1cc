"""Helpers for the daemon tests: real inputs (a video made from sample frames, the shipped Velodyne pcap replayed
as UDP at its recorded timing), an in-process daemon, config builders."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from conftest import TEST_DATA, sample_frames

from agent.app import App
from agent.config import AgentConfig
from agent.sources.pcap import velodyne_packets

PCAP = TEST_DATA / "velodyne_hdl32e_driving_example.pcap"


def make_video(path: Path, frames: int = 30, fps: float = 10.0, width: int = 620) -> Path:
    """An MJPG .avi of the sample drive's real camera frames (scaled to `width`)."""
    cams = sample_frames("camera")
    writer = None
    for i in range(frames):
        jpeg = cams[i % len(cams)].payload
        assert jpeg is not None
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        image = cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1]) // 2 * 2))
        if writer is None:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, image.shape[1::-1])
        writer.write(image)
    assert writer is not None
    writer.release()
    return path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def send_pcap(port: int, repeat: int = 1, speed: float = 1.0, stop: threading.Event | None = None) -> int:
    """Send the pcap's Velodyne data packets to 127.0.0.1:port at their recorded timing; returns packets sent."""
    packets = list(velodyne_packets(str(PCAP)))
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(repeat):
            t0, start = packets[0][0], time.monotonic()
            for stamp, data in packets:
                if stop is not None and stop.is_set():
                    return sent
                delay = (stamp - t0) / speed - (time.monotonic() - start)
                if delay > 0:
                    time.sleep(delay)
                sock.sendto(data, ("127.0.0.1", port))
                sent += 1
    return sent


def daemon_config(tmp: Path, sources: list[dict[str, Any]], **sections: Any) -> AgentConfig:
    data: dict[str, Any] = {
        "vehicle_id": "car-1",
        "spool": {"path": str(tmp / "spool")},
        "sources": sources,
        "daemon": {"tick_s": 0.1, "shutdown_timeout_s": 10.0, **sections.pop("daemon", {})},
        **sections,
    }
    return AgentConfig.model_validate(data)


@contextlib.contextmanager
def running(app: App) -> Iterator[App]:
    """Start the daemon in-process (serve loop in a thread); shut it down on exit."""
    app.start()
    result: dict[str, int] = {}
    thread = threading.Thread(target=lambda: result.setdefault("rc", app.serve()), daemon=True)
    thread.start()
    try:
        yield app
    finally:
        app.request_stop()
        thread.join(30)
        assert result.get("rc") == 0


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def retained(url: str, topic: str, timeout: float = 5.0) -> bytes | None:
    """The retained message on `topic`, or None."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from agent.config.uplink import parse_broker_url

    address = parse_broker_url(url)
    got: list[bytes] = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-retained")
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_message = lambda _c, _u, msg: (got.append(msg.payload), done.set())
    client.connect(address.host, address.port)
    client.loop_start()
    done.wait(timeout)
    client.loop_stop()
    client.disconnect()
    return got[0] if got else None


def write_config(path: Path, config: AgentConfig) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")
    return path

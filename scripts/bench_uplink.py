#!/usr/bin/env python3
"""Uplink throughput: spool -> loopback mosquitto -> `edgesift ingest`, QoS 1, with real ~95 KB camera JPEGs.

Prints one JSON object:
- sustained: a pre-filled spool streamed to an ingest that is already subscribed (MB/s, frames/s, zero loss);
- outage: the broker is down for --outage-s while frames keep arriving in the spool (at the pace the spool
  takes them, up to --outage-frames); then it comes back and the time to drain the backlog is measured.

The uplink runs in this process; mosquitto and the ingest run as their own processes, as they would in a fleet
(the ingest on other machines). The ingest uses a plain persistent subscription (--no-share): mosquitto 2.0
does not restore shared subscriptions from its persistence file, which would add 'no subscriber' back-off to the
drain time after the outage. Needs mosquitto on PATH (or /usr/sbin).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from agent.config.model import SpoolConfig
from agent.config.uplink import UplinkConfig
from agent.frame import Encoding, Frame, Modality
from agent.scoring.base import Label, Verdict
from agent.spool import Spool
from agent.uplink import Uplink

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample_drive.mcap"


def camera_frames() -> list[Frame]:
    frames = []
    with SAMPLE.open("rb") as fh:
        reader = make_reader(fh, decoder_factories=[DecoderFactory()])
        for schema, _channel, message, ros in reader.iter_decoded_messages():
            if schema.name.endswith("CompressedImage"):
                data = bytes(ros.data)
                frames.append(Frame("cam", Modality.CAMERA, message.log_time, len(frames), len(data), "sample",
                                    Encoding.JPEG, data))
    return frames


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


class Mosquitto:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence true",
                 f"persistence_location {self.workdir}/", "max_inflight_messages 0", "max_queued_messages 0",
                 "message_size_limit 0", f"log_dest file {self.workdir}/mosquitto.log"]
        if os.geteuid() == 0:
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _port_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("mosquitto did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
            self.proc = None


def fill(spool: Spool, frames: list[Frame], start: int, count: int) -> int:
    n = start
    while n < start + count:
        frame = replace(frames[n % len(frames)], t_ns=frames[0].t_ns + n * 1_000_000, seq=n)
        spool.put(frame, Verdict(Label.HELPFUL, (n * 7919 % 1000) / 1000, ("novel",)), "keep",
                  frame_id=f"{frame.t_ns:019d}-cam-{n}")
        n += 1
    return n - start


def indexed(out: Path) -> int:
    try:
        with sqlite3.connect(out / "index.sqlite3", timeout=30) as conn:
            return int(conn.execute("SELECT COUNT(DISTINCT frame_id) FROM frames").fetchone()[0])
    except sqlite3.Error:
        return 0


def start_ingest(url: str, out: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "ingest", "--broker", url, "--out", str(out), "--no-share",
         "--client-id", "bench-ingest", "--reconnect-max", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while not (out / "index.sqlite3").exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("the ingest did not start")
        time.sleep(0.05)
    time.sleep(0.5)  # connected and subscribed: its persistent session now collects every frame
    return proc


def wait_indexed(out: Path, count: int, timeout: float) -> float:
    started = time.monotonic()
    while indexed(out) < count:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"ingest has {indexed(out)} of {count} frames after {timeout} s")
        time.sleep(0.05)
    return time.monotonic()


def uplink_config(url: str) -> UplinkConfig:
    return UplinkConfig(broker=url, reconnect_min_s=0.1, reconnect_max_s=1.0, poll_interval_s=0.1,
                        stats_interval_s=0.0, max_in_flight=32)


def sustained(tmp: Path, frames: list[Frame], count: int) -> dict[str, object]:
    broker = Mosquitto(tmp / "broker-1")
    broker.start()
    ingest = start_ingest(broker.url, tmp / "ingest-1")
    try:
        with Spool.open(tmp / "spool-1", SpoolConfig(max_mb=100_000)) as spool:
            fill(spool, frames, 0, count)
            total = spool.stats().bytes
            uplink = Uplink(spool, uplink_config(broker.url), "bench-car")
            started = time.monotonic()
            uplink.start()
            drained = uplink.drain(600)
            acked_at = time.monotonic()
            done = wait_indexed(tmp / "ingest-1", count, 600)
            stats = uplink.stop()
        wall = done - started
        return {
            "frames": count, "mb": round(total / 1e6, 1), "mean_frame_kb": round(total / count / 1e3, 1),
            "uplink_drained": drained, "uplink_s": round(acked_at - started, 2), "end_to_end_s": round(wall, 2),
            "mb_per_s": round(total / 1e6 / wall, 1), "frames_per_s": round(count / wall, 1),
            "lost": count - indexed(tmp / "ingest-1"), "uplink": asdict(stats),
        }  # fmt: skip
    finally:
        ingest.send_signal(signal.SIGTERM)
        ingest.communicate(timeout=60)
        broker.stop()


def outage(tmp: Path, frames: list[Frame], count: int, outage_s: float) -> dict[str, object]:
    broker = Mosquitto(tmp / "broker-2")
    broker.start()
    ingest = start_ingest(broker.url, tmp / "ingest-2")
    try:
        with Spool.open(tmp / "spool-2", SpoolConfig(max_mb=100_000)) as spool:
            broker.stop()  # the outage starts: the vehicle keeps recording into its spool
            down_at = time.monotonic()
            uplink = Uplink(spool, uplink_config(broker.url), "bench-car")
            uplink.start()
            stored = fill(spool, frames, 0, count)  # the outage lasts at least until the backlog is complete
            filled_s = time.monotonic() - down_at
            time.sleep(max(0.0, down_at + outage_s - time.monotonic()))
            backlog = spool.stats()
            broker.start()
            back_at = time.monotonic()
            drained = uplink.drain(1800)
            drained_at = time.monotonic()
            done = wait_indexed(tmp / "ingest-2", stored, 1800)
            stats = uplink.stop()
        return {
            "outage_s": round(back_at - down_at, 1), "backlog_frames": stored,
            "backlog_mb": round(backlog.bytes / 1e6, 1), "spool_fill_frames_per_s": round(stored / filled_s, 1),
            "uplink_drained": drained,
            "drain_s": round(drained_at - back_at, 2), "drain_to_ingest_s": round(done - back_at, 2),
            "drain_mb_per_s": round(backlog.bytes / 1e6 / (done - back_at), 1),
            "lost": stored - indexed(tmp / "ingest-2"), "connect_failures_while_down": stats.connect_failures,
            "uplink": asdict(stats),
        }  # fmt: skip
    finally:
        ingest.send_signal(signal.SIGTERM)
        ingest.communicate(timeout=120)
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer frames, 5 s outage")
    parser.add_argument("--frames", type=int, help="frames in the sustained run (default 3000, quick 500)")
    parser.add_argument("--outage-frames", type=int, help="backlog built during the outage (default 10000)")
    parser.add_argument("--outage-s", type=float, help="outage length (default 60, quick 5)")
    parser.add_argument("--tmp", help="work folder (default: a temporary folder, removed afterwards)")
    args = parser.parse_args()
    count = args.frames or (500 if args.quick else 3000)
    backlog = args.outage_frames or (1000 if args.quick else 10_000)
    outage_s = args.outage_s or (5.0 if args.quick else 60.0)
    frames = camera_frames()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        result = {
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
            "sustained": sustained(Path(tmp), frames, count),
            "outage": outage(Path(tmp), frames, backlog, outage_s),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Frames lost / duplicated per delivery fault, with the uplink deleting on PUBACK (before) and on receipt (after).

Each run: a real mosquitto (persistence on, mosquitto's default autosave as in config/mosquitto.conf), an ingest
that subscribed once and then went offline (its persistent session holds the frames), a spool of --frames real
camera frames streamed by the uplink until the broker has acknowledged every one, then the fault:

- broker_kill: SIGKILL the broker and start it again (what it had not saved is gone);
- takeover: another client connects with the offline ingest's client id and a clean start (what the issue's
  hostile vehicle did; the broker ACL of config/ now forbids it, this measures the delivery layer alone).

Then the ingest comes back; the run ends when the uplink's spool is empty or --settle-s passed without progress.
lost = frames never stored by the ingest; duplicated = frames stored (written to its MCAP files) more than once;
redelivered = copies the ingest received and dropped by its (vehicle, frame id) index. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from uplink_support import (  # noqa: E402
    IngestThread,
    fill_spool,
    indexed,
    make_broker,
    open_spool,
    received_headers,
    uplink_config,
)

from agent.uplink import Uplink  # noqa: E402

INGEST_ID = "edgesift-ingest"


def _take_over(port: int, client_id: str) -> None:
    """Connect with someone else's client id, clean start, session expiry 0: the broker discards that session."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    client.connect("127.0.0.1", port, clean_start=True, properties=props)
    client.loop_start()
    time.sleep(0.5)
    client.disconnect()
    client.loop_stop()


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def run_case(root: Path, backlog: Path, ids: set[str], fault: str, delete_on: str, settle_s: float) -> dict[str, Any]:
    shutil.copytree(backlog, root / "spool")
    out = root / "ingest"
    started = time.monotonic()
    with make_broker(root / "broker") as broker:
        with IngestThread(broker.url, out, client_id=INGEST_ID, shared=False):
            pass  # subscribed once: from now on the broker queues frames for its persistent session
        with open_spool(root / "spool") as spool:
            uplink = Uplink(spool, uplink_config(broker.url, delete_on=delete_on, receipt_timeout_s=2.0), "car-1")
            uplink.start()
            try:
                _wait(lambda: uplink.stats().acked >= len(ids), 60)
                acked_before_fault = uplink.stats().acked
                if fault == "broker_kill":
                    broker.stop(signal.SIGKILL)
                    broker.start()
                else:
                    _take_over(broker.port, INGEST_ID)
                with IngestThread(broker.url, out, client_id=INGEST_ID, shared=False) as ingest:
                    last, quiet_since = -1, time.monotonic()
                    while (time.monotonic() - quiet_since < settle_s and len(spool) > 0) or last < 0:
                        now = ingest.stat("frames") + ingest.stat("duplicates")
                        if now != last:
                            last, quiet_since = now, time.monotonic()
                        time.sleep(0.1)
                    time.sleep(0.5)  # the last receipts
                    redelivered = ingest.stat("duplicates")
                stats = uplink.stats()
            finally:
                uplink.stop()
    stored = {r["frame_id"] for r in indexed(out)}
    copies = received_headers(out)
    return {"fault": fault, "delete_on": delete_on, "frames": len(ids), "acked_before_fault": acked_before_fault,
            "lost": len(ids - stored), "duplicated": sum(1 for n in copies.values() if n > 1),
            "redelivered_and_dropped": redelivered, "left_in_spool": stats.spool_frames,
            "receipt_timeouts": stats.receipt_timeouts, "seconds": round(time.monotonic() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--settle-s", type=float, default=6.0, help="end a run after this long without progress")
    parser.add_argument("--faults", default="broker_kill,takeover")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgesift-delivery-") as tmp:
        backlog = Path(tmp) / "backlog"
        with open_spool(backlog) as spool:
            ids = set(fill_spool(spool, args.frames))
        results = [run_case(Path(tmp) / f"{fault}-{delete_on}", backlog, ids, fault, delete_on, args.settle_s)
                   for fault in args.faults.split(",") for delete_on in ("puback", "receipt")]
    print(json.dumps({"results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

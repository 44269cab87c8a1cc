"""End-to-end receipts against a real mosquitto: what the broker acknowledged but lost is sent again.

The cases are scripts/bench_delivery.py's (the script prints the before/after figures of the README).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from mqtt_broker import find_mosquitto
from uplink_support import fill_spool, open_spool

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

FRAMES = 60


@pytest.fixture(scope="module")
def backlog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (scripts/setup.sh installs it)")
    root = tmp_path_factory.mktemp("backlog") / "spool"
    with open_spool(root) as spool:
        return root, set(fill_spool(spool, FRAMES))


@pytest.mark.parametrize("fault", ["broker_kill", "takeover"])
def test_acknowledged_frames_survive_a_broker_kill_or_takeover_with_the_ingest_offline(
    tmp_path: Path, backlog: tuple[Path, set[str]], fault: str
) -> None:
    from bench_delivery import run_case

    after = run_case(tmp_path / "receipt", backlog[0], backlog[1], fault, "receipt", settle_s=4.0)
    assert after["acked_before_fault"] == FRAMES
    assert (after["lost"], after["duplicated"], after["left_in_spool"]) == (0, 0, 0), after
    # The same fault with delete-on-PUBACK loses them: the fault is real, and receipts are what saved the frames.
    before = run_case(tmp_path / "puback", backlog[0], backlog[1], fault, "puback", settle_s=2.0)
    assert before["lost"] > 0, before


@pytest.mark.parametrize("delete_on", ["receipt", "puback"])
def test_a_retired_shared_subscription_worker_holds_no_frames(tmp_path: Path, backlog: tuple[Path, set[str]],
                                                              delete_on: str) -> None:
    """Worker b of the group stops for good. Its session expires after its (short) session_expiry_s and the
    broker drops what it queued for it; with receipts the vehicle sends those frames again and worker a gets
    them. With delete-on-PUBACK they would be gone (or held until b came back, with a long expiry)."""
    import shutil

    from mqtt_broker import Broker
    from uplink_support import IngestThread, indexed, open_spool, uplink_config, wait_for

    from agent.uplink import Uplink

    shutil.copytree(backlog[0], tmp_path / "spool")
    expected = backlog[1]
    with Broker(tmp_path / "broker") as broker:
        with IngestThread(broker.url, tmp_path / "b", client_id="worker-b", session_expiry_s=1):
            pass  # b subscribed to the group once, then retired
        with IngestThread(broker.url, tmp_path / "a", client_id="worker-a") as a, \
                open_spool(tmp_path / "spool") as spool:  # fmt: skip
            uplink = Uplink(spool, uplink_config(broker.url, delete_on=delete_on, receipt_timeout_s=2.0), "car-2")
            uplink.start()
            try:
                if delete_on == "receipt":
                    assert uplink.drain(40), uplink.stats()
                    wait_for(lambda: a.stat("frames") >= len(expected), 10, "every frame at worker a")
                else:
                    wait_for(lambda: uplink.stats().acked >= len(expected), 20, "the broker's acks")
                    time.sleep(2.0)
            finally:
                uplink.stop()
    got = {r["frame_id"] for r in indexed(tmp_path / "a")}
    if delete_on == "receipt":
        assert got == expected and len(indexed(tmp_path / "a")) == len(expected)
    else:
        assert got < expected  # b's share never reached a: the failure receipts fix

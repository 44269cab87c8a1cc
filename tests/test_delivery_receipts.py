"""End-to-end receipts against a real mosquitto: what the broker acknowledged but lost is sent again.

The cases are scripts/bench_delivery.py's (the script prints the before/after figures of the README).
"""

from __future__ import annotations

import sys
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

"""replay --broker -> real mosquitto -> edgesift ingest, end to end with the sample drive's real frames."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from mcap.reader import make_reader
from uplink_support import indexed, received_headers, ros_frames, wait_for

REPO = Path(__file__).resolve().parents[1]


def _start_ingest(url: str, out: Path, *extra: str) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "-v", "ingest", "--broker", url, "--out", str(out), "--timeout", "60",
         "--reconnect-max", "0.5", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True).start()
    def subscribed() -> bool:
        assert proc.poll() is None, "".join(lines)
        return any("subscribed to $share/" in line for line in lines)

    wait_for(subscribed, 20, "the ingest to subscribe")
    return proc, lines


def test_replay_streams_through_the_broker_to_the_ingest_byte_identical(
    broker, sample_drive: Path, tmp_path: Path
) -> None:
    config = tmp_path / "agent.yaml"
    # 200 KB payloads: every LiDAR scan (~1.1 MB zstd) travels as 6 chunks, camera frames (~95 KB) whole.
    config.write_text("vehicle_id: car-7\nuplink:\n  max_payload_bytes: 200000\n  reconnect_min_s: 0.05\n")
    ingest_out = tmp_path / "ingest"
    ingest, log_lines = _start_ingest(broker.url, ingest_out)
    replay = subprocess.run(
        [sys.executable, "-m", "agent", "replay", str(sample_drive), "--out", str(tmp_path / "replay"), "-q",
         "--config", str(config), "--broker", broker.url],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    kept = ros_frames(tmp_path / "replay" / "kept.mcap")
    assert f"uplink: sent {len(kept)} frames" in replay.stdout
    assert f"acked {len(kept)}, retried 0" in replay.stdout and "0 left in the spool" in replay.stdout

    wait_for(lambda: (ingest_out / "index.sqlite3").exists() and len(indexed(ingest_out)) >= len(kept), 30,
             "every kept frame in the ingest index")
    ingest.send_signal(signal.SIGTERM)  # finishes the MCAP files cleanly
    out, _ = ingest.communicate(timeout=30)
    assert ingest.returncode == 0, "".join(log_lines)[-3000:]
    stats = json.loads(out.splitlines()[-1])
    assert stats["reassembled"] > 0 and stats["garbage"] == 0 and stats["state"] == "stopped"

    (mcap_file,) = (ingest_out / "car-7").glob("*.mcap")
    with mcap_file.open("rb") as fh:
        assert make_reader(fh).get_summary() is not None  # summary + footer written on SIGTERM
    received = ros_frames(mcap_file)

    def digest(frames: list[tuple[str, int, bytes]]) -> Counter[tuple[str, int, str]]:
        return Counter((topic, t, hashlib.sha256(data).hexdigest()) for topic, t, data in frames)

    assert digest(received) == digest(kept)  # same frames, byte for byte (points: the decompressed rows)
    assert any("points" in topic for topic, _, _ in kept) and any("image" in topic for topic, _, _ in kept)
    rows = indexed(ingest_out)
    assert len(rows) == len(kept) and {r["vehicle"] for r in rows} == {"car-7"}
    images = {t: hashlib.sha256(data).hexdigest() for topic, t, data in kept if "image" in topic}
    for row in rows:  # the index's sha256 is the spool blob's: the JPEG bytes themselves for camera frames
        if row["modality"] == "camera":
            assert row["sha256"] == images[row["t_ns"]]
        assert row["mcap"] == f"car-7/{mcap_file.name}" and row["scorer"] == "heuristic"
    assert set(received_headers(ingest_out).values()) == {1}


def test_default_settings_against_a_broker_with_a_small_receive_maximum(broker, tmp_path: Path) -> None:
    """Regression: a default mosquitto announces Receive Maximum 20, below the default window of 32. paho refuses to
    change its in-flight limit on a live connection, and the uplink once died silently in on_connect there."""
    from uplink_support import IngestThread, fill_spool, open_spool, uplink_config

    from agent.uplink.uplink import Uplink

    small = type(broker)(tmp_path / "small", extra_conf=["max_inflight_messages 5"]).start()
    try:
        with open_spool(tmp_path / "spool") as spool, IngestThread(small.url, tmp_path / "ingest") as ingest:
            expected = set(fill_spool(spool, 40))
            uplink = Uplink(spool, uplink_config(small.url), "car-9")
            uplink.start()
            try:
                assert uplink.drain(30), uplink.stats()
            finally:
                stats = uplink.stop()
            ingest.wait_frames(len(expected))
        assert stats.acked == len(expected) and stats.errors == 0
        assert {row["frame_id"] for row in indexed(tmp_path / "ingest")} == expected
    finally:
        small.stop()

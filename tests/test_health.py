"""Sensor health alerts on real recordings with a fault stretch: replay reports them; the daemon logs, counts and
publishes them retained, and the ingest stores them (real mosquitto)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import sample_frames
from daemon_support import daemon_config, retained, running, wait_for
from uplink_support import FAST, IngestThread

from agent.app import App
from agent.config import AgentConfig
from agent.config.health import HealthRule
from agent.ingest.store import open_index
from agent.replay.runner import run_replay

CLEAN = (*range(8), 9, 20, 21, 22, 23, 25, 26, 27, 28, 29)  # sample frames the heuristic finds valid
COVERED = range(10, 20)


def _image(index: int, covered: bool) -> np.ndarray:
    jpeg = sample_frames("camera")[index].payload
    assert jpeg is not None
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if covered:  # a lens cover: a dark disc over most of the real frame
        h, w = image.shape[:2]
        cv2.circle(image, (w // 2, h // 2), int(h * 0.9), (12, 10, 8), -1)
    return image


def _fault_sequence(clean_after: int = 1) -> list[np.ndarray]:
    """10 clean frames, 10 covered, then clean again: a real drive whose camera gets covered for a second."""
    return [*(_image(i, False) for i in CLEAN[:10]), *(_image(i, True) for i in COVERED),
            *(_image(i, False) for i in CLEAN * clean_after)]


def test_replay_raises_and_clears_an_alert_over_the_fault_stretch(tmp_path: Path, caplog) -> None:
    drive = tmp_path / "front"
    drive.mkdir()
    for n, image in enumerate(_fault_sequence()):
        cv2.imwrite(str(drive / f"{n:04d}.png"), image)
    config = AgentConfig.model_validate({"inputs": {"nominal_hz": 10.0},
                                         "health": {"camera": {"window_s": 1.0, "min_frames": 5}}})
    with caplog.at_level(logging.INFO, logger="agent.health"):
        summary = run_replay([str(drive)], tmp_path / "out", config, progress=False)
    alerts = summary["alerts"]
    assert [a["state"] for a in alerts] == ["raised", "cleared"]
    raised, cleared = alerts
    assert raised["reason"] == "occluded" and raised["sensor"] == "front"
    t0 = summary["t_first_ns"]  # an image folder has no wall clock: replay starts it at the replay's start time
    assert 1.0e9 <= raised["raised_ns"] - t0 < 2.0e9  # within the covered stretch (frames 10-19 at 10 Hz)
    assert cleared["cleared_ns"] - t0 >= 2.0e9  # after it
    assert raised["message"].startswith("camera front: occluded ")
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["alerts"] == alerts
    logged = [r.getMessage() for r in caplog.records if "event=sensor_alert" in r.getMessage()]
    assert len(logged) == 2  # once raised, once cleared


def test_the_same_drive_without_the_fault_raises_nothing(tmp_path: Path) -> None:
    drive = tmp_path / "front"
    drive.mkdir()
    for n, index in enumerate(range(30)):  # every real frame, including the odd blurred / dark one
        cv2.imwrite(str(drive / f"{n:04d}.png"), _image(index, False))
    config = AgentConfig.model_validate({"health": {"camera": {"window_s": 1.0, "min_frames": 5}}})
    assert run_replay([str(drive)], tmp_path / "out", config, progress=False)["alerts"] == []


def test_clear_rate_must_be_below_raise_rate() -> None:
    with pytest.raises(ValueError, match="clear_rate"):
        HealthRule(raise_rate=0.3, clear_rate=0.3)


@pytest.mark.slow
def test_daemon_publishes_alerts_retained_counts_them_and_the_ingest_stores_them(tmp_path: Path, broker) -> None:
    video = tmp_path / "front.avi"
    frames = _fault_sequence(clean_after=3)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, frames[0].shape[1::-1])
    for image in frames:
        writer.write(image)
    writer.release()
    uplink = {"enabled": True, "broker": broker.url, "poll_interval_s": 0.05, **FAST}
    config = daemon_config(  # live frames carry wall-clock times: one long window, thresholds set for the stretch
        tmp_path, [{"type": "video", "name": "front", "path": str(video), "speed": 5.0}], uplink=uplink,
        health={"camera": {"window_s": 3600, "min_frames": 5, "raise_rate": 0.3, "clear_rate": 0.2}},
    )
    app = App(config)
    out = tmp_path / "ingest"
    with IngestThread(broker.url, out) as ingest, running(app):
        wait_for(lambda: app.workers[0].state == "finished", 30, "the video to end")
        wait_for(lambda: app.hub.pending() == 0, 10, "the queues to empty")
        assert [e["state"] for e in app.health.events] == ["raised", "cleared"]
        wait_for(lambda: ingest.stat("alert_messages") >= 2, 10, "both alert messages at the ingest")
        registry = app.metrics.registry
        for state in ("raised", "cleared"):
            assert registry.get_sample_value("edgesift_sensor_alerts_total",
                                             {"sensor": "front", "reason": "occluded", "state": state}) == 1
        assert registry.get_sample_value("edgesift_sensor_alert_open", {"sensor": "front"}) == 0
    doc = json.loads(retained(broker.url, "edgesift/car-1/status/alerts/front") or b"{}")
    assert doc["state"] == "cleared" and doc["reason"] == "occluded"
    index = open_index(None, out)
    try:
        rows = index.execute("SELECT vehicle, sensor, reason, cleared_ns FROM alerts").fetchall()
    finally:
        index.close()
    assert len(rows) == 1 and rows[0][:3] == ("car-1", "front", "occluded") and rows[0][3] == doc["cleared_ns"]

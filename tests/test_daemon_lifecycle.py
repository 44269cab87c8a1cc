"""Daemon lifecycle: SIGTERM mid-stream (a real subprocess), SIGHUP reload, overload shedding, worker restarts."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
from daemon_support import daemon_config, make_video, retained, running, wait_for, write_config
from uplink_support import FAST, IngestThread, indexed

from agent.app import App
from agent.spool import Spool

REPO = Path(__file__).resolve().parent.parent


def _decisions(path: Path) -> tuple[set[str], set[str]]:
    kept, revoked = set(), set()
    for line in path.read_text().splitlines():
        doc = json.loads(line)
        if "revoked" in doc:
            revoked.add(doc["frame_id"])
        elif doc["kept"]:
            kept.add(doc["frame_id"])
    return kept, revoked


def test_sigterm_mid_stream_drains_loses_nothing_and_says_offline(tmp_path: Path, broker) -> None:
    video = make_video(tmp_path / "front.avi", frames=30, fps=30.0)
    decisions = tmp_path / "decisions.jsonl"
    config = daemon_config(
        tmp_path, [{"type": "video", "name": "front", "path": str(video), "loop": True},
                   {"type": "video", "name": "rear", "path": str(video), "loop": True}],
        uplink={"enabled": True, "broker": broker.url, "poll_interval_s": 0.05, "stats_interval_s": 0.0, **FAST},
        daemon={"decisions_path": str(decisions), "shutdown_timeout_s": 8.0, "tick_s": 0.2},
        policy={"camera": {"coverage_every_s": 0.2}},
    )
    cfg_file = write_config(tmp_path / "agent.yaml", config)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # stands in for systemd's notify socket
    notify.bind(str(tmp_path / "notify.sock"))
    notify.setblocking(False)
    env = {**os.environ, "PYTHONPATH": str(REPO), "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
           "WATCHDOG_USEC": "1000000"}
    with IngestThread(broker.url, tmp_path / "ingest") as ingest:
        proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(cfg_file)], cwd=tmp_path,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: decisions.exists() and len(_decisions(decisions)[0]) >= 10, 30, "10 kept frames")
            wait_for(lambda: ingest.stat("frames") >= 3, 20, "frames at the ingest")
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=15)
            took = time.monotonic() - started
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, out.decode()[-2000:]
        assert took < 8.0 + 2.0
        time.sleep(0.5)  # the last acked frames reach the ingest index
    kept, revoked = _decisions(decisions)
    received = {row["frame_id"] for row in indexed(tmp_path / "ingest")}
    with Spool.open(tmp_path / "spool", config.spool) as spool:
        left = {entry.frame_id for entry in spool.entries()}
    assert kept - revoked <= received | left, "a frame reported stored was lost"
    assert retained(broker.url, "edgesift/car-1/status") == b"offline"
    assert b"event=stopped" in out
    messages = []
    with contextlib.suppress(BlockingIOError):
        while True:
            messages.append(notify.recv(4096).decode())
    notify.close()
    assert messages[0].startswith("READY=1")
    assert "WATCHDOG=1" in messages and messages[-1] == "STOPPING=1"


def test_overload_sheds_and_counts_with_bounded_queues_and_memory(tmp_path: Path) -> None:
    video = make_video(tmp_path / "cam.avi", frames=30, fps=30.0, width=1240)
    sources = [{"type": "video", "name": f"cam{i}", "path": str(video), "loop": True, "queue_size": 3,
                "overflow": "drop_oldest" if i % 2 else "drop_newest"} for i in range(3)]
    config = daemon_config(tmp_path, sources, daemon={"debug_score_delay_ms": 50.0})
    app = App(config)
    proc = psutil.Process()
    with running(app):
        time.sleep(0.5)
        rss_start = proc.memory_info().rss
        peak_depth = 0
        for _ in range(20):
            time.sleep(0.1)
            peak_depth = max(peak_depth, max(app.hub.depths().values()))
        rss_end = proc.memory_info().rss
    shed = app.hub.shed()
    assert all(n > 0 for n in shed.values()), shed
    assert app.metrics.snapshot()["shed"] == shed
    assert peak_depth <= 3
    assert rss_end - rss_start < 60 * 2**20  # 3 x 90 fps of 1240 px frames would be ~1 GB/s if queued


def test_sighup_reload_applies_a_valid_file_and_rejects_an_invalid_one(tmp_path: Path) -> None:
    video = make_video(tmp_path / "cam.avi", frames=10)
    config = daemon_config(tmp_path, [{"type": "video", "name": "cam", "path": str(video), "loop": True}])
    cfg_file = write_config(tmp_path / "agent.yaml", config)
    app = App(config, str(cfg_file))
    with running(app):
        policy_before = app.pipeline.policy
        newer = config.model_copy(update={"version": 1, "policy": config.policy.model_copy(
            update={"camera": config.policy.camera.model_copy(update={"keep_min_score": 0.5})})})
        write_config(cfg_file, newer)
        app.request_reload()
        wait_for(lambda: app.store.current.version == 1, 5, "the reload")
        assert app.pipeline.policy is not policy_before
        assert app.store.current.policy.camera.keep_min_score == 0.5
        cfg_file.write_text("version: 2\npolicy:\n  camera:\n    keep_min_score: 7\n")
        app.request_reload()
        wait_for(lambda: app.metrics.snapshot() is not None and _reloads(app, "invalid") == 1, 5, "the rejection")
        assert app.store.current.version == 1
        write_config(cfg_file, newer.model_copy(update={"version": 3, "vehicle_id": "other"}))
        app.request_reload()
        wait_for(lambda: _reloads(app, "restart_needed") == 1, 5, "the refusal")
        assert app.store.current.vehicle_id == "car-1"


def _reloads(app: App, result: str) -> float:
    return app.metrics.reloads.labels(result)._value.get()


def test_failing_source_is_restarted_a_bounded_number_of_times_then_failed(tmp_path: Path) -> None:
    video = make_video(tmp_path / "cam.avi", frames=10)
    config = daemon_config(
        tmp_path,
        [{"type": "folder", "name": "gone", "path": str(tmp_path / "missing")},
         {"type": "video", "name": "cam", "path": str(video), "loop": True}],
        daemon={"watchdog": {"max_restarts": 3, "restart_window_s": 60, "backoff_min_s": 0.05,
                             "backoff_max_s": 0.2}},
    )
    app = App(config)
    with running(app):
        broken, healthy = app.workers
        wait_for(lambda: broken.state == "failed", 10, "the broken source to be marked failed")
        assert broken.restarts == 3
        assert "not a folder" in (broken.error or "")
        assert app.metrics.failed.labels("gone")._value.get() == 1
        assert app.metrics.snapshot()["restarts"]["gone"] == 3
        before = app.metrics.snapshot()["in"]["cam"]
        wait_for(lambda: app.metrics.snapshot()["in"]["cam"] > before + 5, 5, "the healthy source to carry on")
        assert healthy.state == "running"


def test_hung_source_is_abandoned_and_restarted(tmp_path: Path) -> None:
    from agent.daemon.live import VideoFileSource, make_source

    video = make_video(tmp_path / "cam.avi", frames=10)
    hangs = {"left": 1}

    class HangsOnce(VideoFileSource):  # a driver that blocks in read() (a USB camera gone quiet)
        def read(self):  # type: ignore[no-untyped-def]
            if hangs["left"]:
                hangs["left"] -= 1
                time.sleep(3.0)
            return super().read()

    def factory(cfg):  # type: ignore[no-untyped-def]
        return HangsOnce(cfg) if cfg.name == "cam" else make_source(cfg)

    config = daemon_config(tmp_path, [{"type": "video", "name": "cam", "path": str(video), "loop": True}],
                           daemon={"watchdog": {"hang_s": 0.5, "backoff_min_s": 0.05}})
    app = App(config, source_factory=factory)
    with running(app):
        worker = app.workers[0]
        wait_for(lambda: worker.restarts == 1, 5, "the hung worker to be restarted")
        assert "heartbeat" in (worker.error or "")
        wait_for(lambda: app.metrics.snapshot().get("in", {}).get("cam", 0) > 3, 5, "frames after the restart")
        assert worker.state == "running"


def test_file_sources_win_over_a_newer_persisted_remote_config(tmp_path: Path) -> None:
    video = make_video(tmp_path / "cam.avi", frames=5)
    remote = {"enabled": True, "state_dir": str(tmp_path / "state")}
    first = daemon_config(tmp_path, [{"type": "video", "name": "cam", "path": str(video)}], remote=remote)
    app = App(first)
    newer = first.model_copy(update={"version": 5, "policy": first.policy.model_copy(
        update={"camera": first.policy.camera.model_copy(update={"keep_min_score": 0.3})})})
    assert app.store.apply(newer).ok  # as a remote update would be: persisted under state_dir
    app.spool.close()
    edited = daemon_config(tmp_path, [{"type": "video", "name": "cam", "path": str(video)},
                                      {"type": "video", "name": "rear", "path": str(video)}], remote=remote)
    app = App(edited)  # the operator added a camera to the file (version 0) and restarted
    try:
        assert app.store.current.version == 5 and app.store.current.policy.camera.keep_min_score == 0.3
        assert [s.name for s in app.store.current.sources] == ["cam", "rear"]
        assert [w.sensor for w in app.workers] == ["cam", "rear"]
    finally:
        app.spool.close()

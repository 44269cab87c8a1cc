"""The daemon's folder source receiving camera images and LiDAR scans together, and `fleet status` after a local
SIGHUP reload."""

from __future__ import annotations

import json
import time
from pathlib import Path

from conftest import sample_frames
from daemon_support import daemon_config, running, wait_for, write_config
from uplink_support import FAST

from agent.app import App


def test_folder_with_images_and_scans_scores_both(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    decisions = tmp_path / "decisions.jsonl"
    # existing=True: the folder starts empty, and a source worker that lists it only after the first file was
    # written (a loaded machine) would otherwise take that file for one already there at start-up and skip it.
    config = daemon_config(tmp_path, [{"type": "folder", "name": "rec", "path": str(drop), "settle_s": 0.2,
                                       "existing": True}], daemon={"decisions_path": str(decisions)})
    app = App(config)
    cameras, scans = sample_frames("camera")[:3], sample_frames("lidar")[:3]
    with running(app):
        for n, (camera, scan) in enumerate(zip(cameras, scans, strict=True)):
            (drop / f"{n:03d}.jpg").write_bytes(camera.payload or b"")
            assert scan.array is not None
            (drop / f"{n:03d}.bin").write_bytes(scan.array.astype("<f4").tobytes())
            time.sleep(0.1)

        def scored() -> list[dict]:
            if not decisions.exists():
                return []
            return [r for r in map(json.loads, decisions.read_text().splitlines()) if "verdict" in r]

        wait_for(lambda: len(scored()) == 6, 60, "six decisions")  # a loaded CI machine is slow to settle
    rows = scored()
    by_sensor = {(r["sensor"], r["modality"]) for r in rows}
    assert by_sensor == {("rec", "camera"), ("rec_lidar", "lidar")}
    # Every scan was judged on its own merits: none is harmful because of a scorer error.
    assert not [r for r in rows if any("error" in reason for reason in r.get("reasons", []))]
    assert sorted(r["seq"] for r in rows if r["sensor"] == "rec_lidar") == [0, 1, 2]


def test_fleet_status_shows_the_version_after_a_local_reload(tmp_path: Path, broker) -> None:
    from remote_support import StateWatcher, watcher_client

    from agent.fleet.status import collect_status
    from agent.remote.mqttconn import BrokerSettings

    config = daemon_config(
        tmp_path, [],
        uplink={"enabled": True, "broker": broker.url, "poll_interval_s": 0.05, "stats_interval_s": 0.0, **FAST},
        remote={"enabled": True, "state_dir": str(tmp_path / "state")},
    )
    cfg_file = write_config(tmp_path / "agent.yaml", config)
    app = App(config, str(cfg_file))
    with watcher_client(broker.url) as client:
        watcher = StateWatcher(client, "car-1")
        with running(app):
            assert watcher.next().via == "startup"
            watcher.mark()
            write_config(cfg_file, config.model_copy(update={"version": 4}))
            app.request_reload()
            report = watcher.next()
            assert (report.status, report.version, report.via) == ("accepted", 4, "local")
            status = collect_status(BrokerSettings.from_url(broker.url), window=0.5)
    assert [(s.vehicle, s.config.version if s.config else None) for s in status] == [("car-1", 4)]

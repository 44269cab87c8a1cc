"""`edgesift run` end to end, in-process: real inputs over loopback -> daemon -> mosquitto -> ingest."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

from daemon_support import daemon_config, free_udp_port, make_video, running, send_pcap, wait_for
from prometheus_client.parser import text_string_to_metric_families
from uplink_support import FAST, IngestThread, indexed

from agent.app import App


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, lab), v in samples.items() if n == name and all((k, v2) in lab for k, v2 in labels.items()))


def test_live_video_and_velodyne_stream_to_the_ingest(tmp_path: Path, broker) -> None:
    video = make_video(tmp_path / "front.avi", frames=20, fps=20.0)
    port = free_udp_port()
    uplink = {"enabled": True, "broker": broker.url, "poll_interval_s": 0.05, "stats_interval_s": 0.2, **FAST}
    config = daemon_config(
        tmp_path,
        [{"type": "video", "name": "front", "path": str(video)},
         {"type": "velodyne_udp", "name": "velodyne", "host": "127.0.0.1", "port": port}],
        uplink=uplink,
        daemon={"decisions_path": str(tmp_path / "decisions.jsonl")},
        policy={"camera": {"coverage_every_s": 0.0}, "lidar": {"coverage_every_s": 0.0}},
    )
    app = App(config)
    from remote_support import watcher_client

    from agent.fleet.collect import TopicCollector

    with watcher_client(broker.url) as client, IngestThread(broker.url, tmp_path / "ingest") as ingest, \
            running(app):
        stats = TopicCollector(client, ["edgesift/car-1/stats"]).start(5)
        for worker in app.workers:
            assert worker.wait_open(5)
        sender = threading.Thread(target=send_pcap, args=(port,), daemon=True)
        sender.start()
        sender.join(10)
        wait_for(lambda: app.workers[0].state == "finished", 10, "the video to end")
        wait_for(lambda: app.hub.pending() == 0, 10, "the queues to empty")
        snapshot = app.metrics.snapshot()
        assert snapshot["in"]["front"] == 20
        assert snapshot["in"]["velodyne"] >= 3  # ~5 rotations in 0.48 s; the first and last are partial
        kept = sum(snapshot.get("kept", {}).values())
        assert kept > 0
        wait_for(lambda: ingest.stat("frames") >= kept, 20, f"{kept} frames at the ingest")
        wait_for(lambda: app.uplink is not None and app.uplink.stats().spool_frames == 0, 10, "the spool to empty")
        doc = stats.wait_for(lambda m: b'"front"' in m.payload and b'"velodyne"' in m.payload, 5)
        assert doc is not None, "daemon stats on the MQTT stats topic"
        daemon_stats = json.loads(doc.payload)["daemon"]
        assert daemon_stats["info"]["scorer"] == "heuristic" and daemon_stats["in"]["front"] > 0
    sensors = {row["sensor"] for row in indexed(tmp_path / "ingest")}
    assert "front" in sensors


def test_metrics_endpoint_is_scraped_and_parsed(tmp_path: Path) -> None:
    video = make_video(tmp_path / "cam.avi", frames=10, fps=30.0)
    from mqtt_broker import free_port

    config = daemon_config(tmp_path, [{"type": "video", "name": "cam", "path": str(video)}],
                           daemon={"metrics_port": free_port()})
    app = App(config)
    with running(app):
        wait_for(lambda: app.workers[0].state == "finished" and app.hub.pending() == 0, 10, "the video to end")
        wait_for(lambda: sum(app.metrics.snapshot().get("kept", {}).values())
                 + sum(app.metrics.snapshot().get("dropped", {}).values()) == 10, 5, "10 decisions")
        app.tick()
        url = f"http://127.0.0.1:{app.metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    samples = _samples(text)
    assert _total(samples, "edgesift_frames_in_total", sensor="cam") == 10
    assert _total(samples, "edgesift_decisions_total", sensor="cam") == 10
    assert _total(samples, "edgesift_decision_latency_seconds_count", sensor="cam") == 10
    assert _total(samples, "edgesift_inference_seconds_count", modality="camera") == 10
    assert ("edgesift_scorer_info", (("providers", "python"), ("scorer", "heuristic"), ("vehicle", "car-1"),
                                     ("version", "0"))) in samples
    assert _total(samples, "edgesift_spool_frames") >= 1  # coverage keeps the first frame at least


def test_folder_source_reads_complete_files_only(tmp_path: Path) -> None:
    from conftest import sample_frames

    from agent.daemon.live import FolderSource
    from agent.frame import Frame, Modality

    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "old.jpg").write_bytes(sample_frames("camera")[0].payload or b"")  # there before start: ignored
    config = daemon_config(tmp_path, [{"type": "folder", "name": "rec", "path": str(drop), "settle_s": 0.6}])
    source = FolderSource(config.sources[0])
    source.open()
    jpeg = sample_frames("camera")[1].payload or b""
    scan = sample_frames("lidar")[0].array
    assert scan is not None
    (drop / "a.jpg.tmp").write_bytes(jpeg)  # a recorder's write-then-rename
    partial = drop / "b.jpg"
    partial.write_bytes(jpeg[: len(jpeg) // 2])  # still being written
    assert source.read() is None
    (drop / "a.jpg.tmp").rename(drop / "a.jpg")
    (drop / "c.bin").write_bytes(scan.tobytes())
    with partial.open("ab") as fh:
        fh.write(jpeg[len(jpeg) // 2:])
    got = []
    deadline = time.monotonic() + 10
    while len(got) < 3 and time.monotonic() < deadline:
        item = source.read()
        if item is not None:
            got.append(item)
    frames = [f for f in got if isinstance(f, Frame)]
    names = sorted(Path(f.source).name for f in frames)
    assert names == ["a.jpg", "b.jpg", "c.bin"]
    b = next(f for f in frames if f.source.endswith("b.jpg"))
    assert b.payload == jpeg  # read whole, not the half written first
    assert {f.modality for f in frames} == {Modality.CAMERA, Modality.LIDAR}
    source.close()


def test_remote_update_on_the_shared_uplink_client_rebuilds_the_policy(tmp_path: Path, broker) -> None:
    from remote_support import StateWatcher, envelope, publish, watcher_client

    video = make_video(tmp_path / "cam.avi", frames=10)
    config = daemon_config(
        tmp_path, [{"type": "video", "name": "cam", "path": str(video), "loop": True}],
        uplink={"enabled": True, "broker": broker.url, "poll_interval_s": 0.05, "stats_interval_s": 0.0, **FAST},
        remote={"enabled": True, "state_dir": str(tmp_path / "state")},
    )
    app = App(config)
    with watcher_client(broker.url) as client:
        watcher = StateWatcher(client, "car-1")
        with running(app):
            assert watcher.next().via == "startup"  # the manager subscribed on the uplink's own connection
            policy = app.pipeline.policy
            watcher.mark()
            publish(client, "edgesift/car-1/config/set",
                    envelope({"version": 7, "policy": {"camera": {"keep_min_score": 0.4}}}))
            report = watcher.next()
            assert report.status == "accepted", report
            assert app.pipeline.policy is not policy
            assert app.store.current.policy.camera.keep_min_score == 0.4
            assert app.remote is not None and app.remote.client is app.uplink.client
            # sources / daemon name devices, files and ports: only the local file may change them
            watcher.mark()
            publish(client, "edgesift/car-1/config/set", envelope(
                {"version": 8, "sources": [{"type": "folder", "name": "etc", "path": "/etc"}]}))
            report = watcher.next()
            assert report.status == "rejected" and "local file" in (report.error or ""), report
            assert [s.name for s in app.store.current.sources] == ["cam"]
            assert app.store.current.version == 7

"""Benchmark `edgesift run` under a vehicle-like load; prints one JSON document.

Recorded data played at real rate through the daemon's own path (App: source threads -> bounded queues -> scoring
thread -> policy -> spool): N cameras x F fps of 720p JPEG (frames of the Udacity test video in ../shared/data,
else the sample drive's KITTI frames, resized to 1280x720) and M LiDARs x 10 Hz of KITTI scans (~120k points).
Reports CPU % and memory of the whole process tree (the daemon and its measuring processes), p50/p99 decision
latency (capture to decision; p99 per modality too), frames shed, and where the scoring threads' time goes.

    .venv/bin/python scripts/bench_daemon.py --seconds 20 --cameras 8
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from agent.app import App  # noqa: E402
from agent.config import AgentConfig, load_config  # noqa: E402
from agent.config.daemon import SourceConfig  # noqa: E402
from agent.daemon.live import READ_TIMEOUT_S, LiveSource  # noqa: E402
from agent.frame import Encoding, Frame, Item, Modality  # noqa: E402

VIDEO = REPO.parent / "shared" / "data" / "video" / "udacity_vehicle_detection_test_video.mp4"


def camera_jpegs(count: int) -> list[bytes]:
    images = []
    capture = cv2.VideoCapture(str(VIDEO)) if VIDEO.exists() else None
    while capture is not None and len(images) < count:
        ok, image = capture.read()
        if not ok:
            break
        images.append(image)
    if not images:
        from conftest import sample_frames

        images = [cv2.imdecode(np.frombuffer(f.payload or b"", np.uint8), cv2.IMREAD_COLOR)
                  for f in sample_frames("camera")]
    out = []
    for image in images:
        ok, jpeg = cv2.imencode(".jpg", cv2.resize(image, (1280, 720)), [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        out.append(jpeg.tobytes())
    return out


def lidar_scans() -> list[np.ndarray]:
    from conftest import sample_frames

    return [f.array for f in sample_frames("lidar") if f.array is not None]


class PlaybackSource(LiveSource):
    """Recorded frames played at a fixed rate, stamped with the host clock like a live sensor."""

    def __init__(self, config: SourceConfig, items: list, hz: float, offset: int, phase: float = 0.0) -> None:
        super().__init__(config)
        self.items, self.period, self.index = items, 1.0 / hz, offset
        self.next_at = time.monotonic() + phase * self.period  # phase: share of a period this sensor lags by

    def read(self) -> Item | None:
        delay = self.next_at - time.monotonic()
        if delay > READ_TIMEOUT_S:
            time.sleep(READ_TIMEOUT_S)
            return None
        if delay > 0:
            time.sleep(delay)
        self.next_at += self.period
        item = self.items[self.index % len(self.items)]
        self.index += 1
        if isinstance(item, bytes):
            return Frame(self.sensor, Modality.CAMERA, time.time_ns(), self._next_seq(), len(item), "bench",
                         Encoding.JPEG, item, meta={"width": "1280", "height": "720"})
        if item.ndim == 3:  # a decoded picture, as a raw camera driver or a ROS Image message delivers it
            return Frame(self.sensor, Modality.CAMERA, time.time_ns(), self._next_seq(), item.nbytes, "bench",
                         Encoding.RAW, None, item, meta={"width": "1280", "height": "720"})
        return Frame(self.sensor, Modality.LIDAR, time.time_ns(), self._next_seq(), item.nbytes, "bench",
                     array=item, meta={"points": str(len(item))})


def tree_cpu(proc: psutil.Process) -> dict[int, float]:
    """CPU seconds of the daemon and of its measuring processes (children of the fork server), by pid."""
    out = {}
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        out[p.pid] = t.user + t.system
    return out


def tree_memory(proc: psutil.Process) -> dict[str, int]:
    """RSS summed over the process tree (counts pages the fork server's children share once per process) and
    PSS (shared pages split between their processes: what the tree really holds)."""
    rss = pss = count = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            info = p.memory_full_info()
        except psutil.Error:
            continue
        rss, pss, count = rss + info.rss, pss + info.pss, count + 1
    return {"rss": rss, "pss": pss, "count": count}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--lidars", type=int, default=2)
    parser.add_argument("--lidar-hz", type=float, default=10.0)
    parser.add_argument("--queue-size", type=int, default=8)
    parser.add_argument("--scoring-threads", type=int, default=2)
    parser.add_argument("--measure-processes", type=int, default=2,
                        help="daemon.measure_processes: processes that decode and measure frames (0 = in the threads)")
    parser.add_argument("--no-ahead", action="store_true",
                        help="scoring threads wait for each frame's measuring (no frame sent to its process ahead)")
    parser.add_argument("--phases", choices=("together", "spread"), default="together",
                        help="together: every camera captures at the same instant (hardware-triggered rigs, the "
                        "worst case); spread: free-running cameras, their captures spread over the frame period")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds before measuring (start-up keeps a burst of novel frames: spool fsyncs)")
    parser.add_argument("--camera-encoding", choices=("jpeg", "raw"), default="jpeg",
                        help="jpeg: each camera frame a 1280x720 JPEG (q85) that the agent decodes; raw: the same "
                        "frames as decoded BGR arrays (GMSL or other raw cameras, ROS Image messages)")
    parser.add_argument("--config", help="agent config to start from (sources are replaced)")
    args = parser.parse_args()

    jpegs, scans = camera_jpegs(60), lidar_scans()
    pictures: list = jpegs
    if args.camera_encoding == "raw":
        pictures = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in jpegs]
    with tempfile.TemporaryDirectory() as tmp:
        base = load_config(args.config)
        sources = [{"type": "folder", "name": f"cam{i}", "path": tmp, "queue_size": args.queue_size}
                   for i in range(args.cameras)]
        sources += [{"type": "folder", "name": f"lidar{i}", "path": tmp, "queue_size": args.queue_size}
                    for i in range(args.lidars)]
        data = base.model_dump(mode="json")
        data.update(sources=sources, spool={**data["spool"], "path": str(Path(tmp) / "spool")})
        data["uplink"]["enabled"] = False
        data["daemon"]["scoring_threads"] = args.scoring_threads
        data["daemon"]["measure_processes"] = args.measure_processes
        config = AgentConfig.model_validate(data)

        def factory(cfg: SourceConfig) -> LiveSource:
            index = int(cfg.name.lstrip("camlidr"))
            if cfg.name.startswith("cam"):
                phase = index / args.cameras if args.phases == "spread" else 0.0
                return PlaybackSource(cfg, pictures, args.fps, index * 7, phase)
            return PlaybackSource(cfg, scans, args.lidar_hz, index * 3)

        app = App(config, source_factory=factory)
        latencies: list[float] = []
        by_modality: dict[str, list[float]] = {"camera": [], "lidar": []}
        handle_s: list[float] = []
        decided = app.metrics.decided

        def record(rec: dict, latency: float, score_s: float) -> None:
            latencies.append(latency)
            by_modality.setdefault(str(rec["modality"]), []).append(latency)
            decided(rec, latency, score_s)

        app.metrics.decided = record  # type: ignore[method-assign]
        inner = app._handle

        def timed(frame: Frame) -> None:
            started = time.perf_counter()
            inner(frame)
            handle_s.append(time.perf_counter() - started)

        for loop in app.scoring:
            loop._handle = timed  # type: ignore[attr-defined]
            if args.no_ahead:
                loop._ahead = None  # type: ignore[attr-defined]
        proc = psutil.Process()
        app.start()
        server = threading.Thread(target=app.serve, daemon=True)
        server.start()
        time.sleep(args.warmup)  # start-up transient: every sensor's first frames are novel and kept
        latencies.clear()
        for values in by_modality.values():
            values.clear()
        handle_s.clear()
        shed_start = app.hub.shed()  # frames shed in the warm-up do not count
        sent_ahead = app.metrics.measured_ahead.labels("sent")
        ahead_start = sent_ahead._value.get()
        cpu0, wall0, peak, tree_peak = tree_cpu(proc), time.monotonic(), 0, {"rss": 0, "pss": 0}
        while time.monotonic() - wall0 < args.seconds:
            time.sleep(0.2)
            peak = max(peak, proc.memory_info().rss)
            if time.monotonic() - wall0 > args.seconds / 2 and not tree_peak["pss"]:
                tree_peak = tree_memory(proc)  # once, mid-run: reading smaps of every process costs CPU
        cpu1, wall = tree_cpu(proc), time.monotonic() - wall0
        shed = {k: v - shed_start.get(k, 0) for k, v in app.hub.shed().items() if v - shed_start.get(k, 0)}
        inference = app.metrics.inference
        ahead = sent_ahead._value.get() - ahead_start
        app.request_stop()
        server.join(30)

    lat = np.array(latencies) * 1000 if latencies else np.zeros(1)
    cpu_s = sum(cpu1.values()) - sum(cpu0.get(pid, 0.0) for pid in cpu1)
    score_sum = {m: inference.labels(m)._sum.get() for m in ("camera", "lidar")}
    result = {
        "load": {"cameras": args.cameras, "fps": args.fps, "lidars": args.lidars, "lidar_hz": args.lidar_hz,
                 "camera": f"1280x720 {args.camera_encoding.upper()}",
                 "lidar_points": int(np.mean([len(s) for s in scans])),
                 "seconds": round(wall, 1), "warmup_s": args.warmup,
                 "scoring_threads": args.scoring_threads, "measure_processes": args.measure_processes,
                 "camera_phases": args.phases, "measure_ahead": bool(app.measure) and not args.no_ahead},
        "frames_decided": len(latencies),
        "frames_offered_per_s": round(args.cameras * args.fps + args.lidars * args.lidar_hz, 1),
        "frames_decided_per_s": round(len(latencies) / wall, 1),
        "cpu_percent": round(100 * cpu_s / wall, 1),
        "cpu_cores": psutil.cpu_count(),
        "peak_rss_mb": round(peak / 2**20, 1),
        "processes": tree_peak.get("count", 1),
        "tree_rss_mb": round(tree_peak["rss"] / 2**20, 1),
        "tree_pss_mb": round(tree_peak["pss"] / 2**20, 1),
        "latency_ms": {"p50": round(float(np.percentile(lat, 50)), 2), "p99": round(float(np.percentile(lat, 99)), 2),
                       "max": round(float(lat.max()), 2),
                       **{f"p99_{m}": round(1000 * float(np.percentile(v, 99)), 2)
                          for m, v in by_modality.items() if v}},
        "shed": sum(shed.values()), "shed_by_sensor": shed,
        "camera_frames_measured_ahead": round(ahead / max(1, len(by_modality["camera"])), 3),
        "scoring_thread": {"busy_percent": round(100 * sum(handle_s) / wall, 1),
                           "mean_handle_ms": round(1000 * float(np.mean(handle_s or [0])), 2),
                           "p99_handle_ms": round(1000 * float(np.percentile(handle_s or [0], 99)), 2),
                           "max_handle_ms": round(1000 * float(np.max(handle_s or [0])), 2),
                           "scoring_s_by_modality": {k: round(v, 2) for k, v in score_sum.items()}},
        "kept": sum(app.metrics.snapshot().get("kept", {}).values()),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

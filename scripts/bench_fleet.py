#!/usr/bin/env python3
"""Corpus replay throughput: 1 and 2 local workers and a local 2-node Ray cluster (1 CPU per node), in one run.

Prints one JSON object. Two corpora of real drives (the sample drive and, when ../shared/data is beside the
checkout, recordings from it), each listed several times under ids of their own (--copies N; a fleet's corpus
has thousands of drives, over which a job's start-up, the pool's fork server or Ray's worker processes, vanishes):
  --corpus long   (the default) every recorded sequence of 30 frames or more, whole (sample drive, KITTI, dusk,
                  rain, highway and vehicle-detection videos, a Velodyne VLP-16 capture), each 6 times: 42 drives,
                  about 3,700 frames, 30-40 s for one worker; the throughput a corpus of whole recordings gets,
                  which the targets are about (--copies 2: 14 drives, 1,222 frames, the corpus until 2026-12-02,
                  where the pool's start-up is about 6% of a 2-worker run)
  --corpus short  the sample drive, the shared KITTI drive, a dusk image sequence and a highway video, each capped
                  at --max-frames frames (40 by default): 8 drives of 4 s, 320 frames, a 3-second job; a quick
                  check, where a job's fixed start-up (Ray's is about 1 s) is a large part of its time
Every run is the same code as `edgesift replay --manifest` (outputs, summary, report) into a temporary folder,
timed from start to the last drive written: the pool's fork server and workers and the Ray job's driver connection
and worker processes start inside that time, in every run (the Ray cluster itself is started before, as a
standing cluster would be).

With --repeats N the 1-worker and 2-worker runs alternate N times, with no Ray cluster standing (its idle
daemons take 3% of a core, which a user of the local pool does not have), then 2-worker and Ray runs alternate N
times on one standing cluster; each pair's ratio (2 workers / 1, Ray / 2 workers) and their medians are printed:
the machine's speed drifts by 20-30% within minutes, and runs back to back share most of the drift. The same pairs
then run as `edgesift replay --manifest` jobs (`as_cli_jobs`, unless --no-cli): a new process each, timed from its
start to its exit, so each pays its interpreter, imports, pool or Ray connection, summary and report, as a user's
job does (the in-process runs start with the agent imported, which favours one inline worker).

The machine is shared, so beside wall time each run states CPU time: of the whole process tree (driver, pool
workers or Ray's processes: GCS, raylets, workers), of the drives themselves (inside the tasks) and the
difference, what the executor costs (start-up, results, scheduling). The load average before and after is part
of the output.

From the one-worker run it fits the seconds a camera frame and a LiDAR scan cost (least squares over the drives:
seconds = a * camera frames + b * scans + c per drive; CPU time of the process, and wall time) and extrapolates
to a vehicle of 8 cameras at 30 fps and 2 LiDARs at 10 Hz: drive-hours replayed per core-hour, and the cores
needed to replay 1,000 such drive-hours in 8 hours.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import AgentConfig
from agent.config.model import InputsConfig
from agent.corpus.manifest import Drive
from agent.corpus.runner import run_corpus

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
VEHICLE = {"cameras": 8, "camera_fps": 30.0, "lidars": 2, "lidar_hz": 10.0}


SHORT = {"sample": REPO / "data" / "sample_drive.mcap",
         "kitti": SHARED / "kitti" / "2011_09_26" / "udacity_sfnd_sync",
         "dusk": SHARED / "camera" / "dusk_uk_camvid_0001TP",
         "highway": SHARED / "video" / "udacity_lanelines_solidWhiteRight.mp4"}
# Every recording in ../shared/data that is a sequence of 30 frames or more (SOURCES.md), replayed whole.
LONG = {**SHORT,
        "rain": SHARED / "camera" / "rain_singapore_nturain_rb2",
        "vehicles": SHARED / "video" / "udacity_vehicle_detection_test_video.mp4",
        "vlp16": SHARED / "pcap" / "velodyne_vlp16_test_50frames.pcap"}


def corpus(kind: str = "short", copies: int = 2) -> list[Drive]:
    found = LONG if kind == "long" else SHORT
    return [Drive(id=f"{name}-{k}", vehicle=name, inputs=(str(path),))
            for name, path in found.items() if path.exists() for k in range(1, copies + 1)]


class TreeCpu:
    """CPU seconds of this process and every process below it (pool workers, Ray's GCS, raylets and workers),
    sampled every `interval` s while a run goes: a process's last sample stands for it once it has exited (the
    parent reaping it is not reliable: Ray's raylet ignores SIGCHLD). Processes that were already running count
    from their CPU time at the start. Without psutil, `cpu_s` is None."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.cpu_s = interval, None
        self._seen: dict[int, tuple[Any, float, float]] = {}  # pid -> (process, CPU at the start, last CPU)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-cpu", daemon=True)

    def _sample(self, first: bool = False) -> None:
        import psutil

        me = psutil.Process()
        for proc in [me, *me.children(recursive=True)]:
            try:
                known = self._seen.get(proc.pid)
                proc = known[0] if known else proc  # the same Process object: psutil checks the pid was not reused
                t = proc.cpu_times()
            except psutil.Error:
                continue
            cpu = t.user + t.system
            self._seen[proc.pid] = (proc, known[1] if known else (cpu if first else 0.0), cpu)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> TreeCpu:
        try:
            import psutil  # noqa: F401
        except ImportError:
            return self
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._thread.is_alive():
            return
        self._stop.set()
        self._thread.join()
        self._sample()
        self.cpu_s = sum(last - start for _, start, last in self._seen.values())


def stop_fork_server() -> None:
    """Python keeps one fork server per process for its life: without this, every pool run after the first would
    find it running with the replay code imported, a start that a user's `edgesift replay` (one process per job)
    always pays and that each Ray job pays in its workers. (A private API; a Python without it keeps the server.)"""
    import multiprocessing.forkserver as forkserver

    stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)
    if callable(stop):
        stop()


def timed(drives: list[Drive], config: AgentConfig, **how: Any) -> dict[str, Any]:
    stop_fork_server()
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp, TreeCpu() as cpu:
        started = time.perf_counter()
        run = run_corpus(drives, Path(tmp), config, progress=False, **how)
        wall = time.perf_counter() - started
    ok = [r for r in run.results if r["ok"]]
    frames = sum(int(r["frames_in"]) for r in ok)
    busy = sum(float(r["wall_s"]) for r in ok)  # seconds inside the drive tasks
    out = {"executor": run.executor, "slots": run.slots, "drives": len(ok), "failed": len(run.results) - len(ok),
           "frames": frames, "wall_s": round(wall, 2), "frames_per_s": round(frames / wall, 2),
           "overhead_core_s_per_drive": round((run.slots * wall - busy) / max(1, len(ok)), 3),
           "digests": {r["id"]: r["decisions_sha256"] for r in ok}, "results": ok}
    if cpu.cpu_s is not None:
        drives_cpu = sum(float(r["cpu_s"]) for r in ok)
        out.update(cpu_s=round(cpu.cpu_s, 2), drives_cpu_s=round(drives_cpu, 2),
                   executor_cpu_s=round(cpu.cpu_s - drives_cpu, 2),
                   frames_per_cpu_s=round(frames / max(1e-9, cpu.cpu_s), 2))
    return out


def cli_job(manifest: Path, config: Path, **how: Any) -> dict[str, Any]:
    """One `edgesift replay --manifest` job as a user runs it: a new process, timed from its start to its exit
    (interpreter, imports, the pool's or Ray's start, the drives, summary and report)."""
    extra = ["--ray", how["ray"]] if "ray" in how else ["--workers", str(how["workers"])]
    with tempfile.TemporaryDirectory(prefix="bench-fleet-cli-") as tmp:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "agent", "replay", "--manifest", str(manifest), "--config",
                        str(config), "--out", tmp, "--quiet", *extra], check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        summary = json.loads((Path(tmp) / "summary.json").read_text(encoding="utf-8"))
    frames = sum(int(d["frames_in"]) for d in summary["per_drive"] if d["ok"])
    return {"wall_s": round(wall, 2), "frames_per_s": round(frames / wall, 2),
            "digests": {d["id"]: d["decisions_sha256"] for d in summary["per_drive"] if d["ok"]}}


@contextlib.contextmanager
def cli_inputs(drives: list[Drive], config: AgentConfig) -> Iterator[tuple[Path, Path]]:
    """The corpus as a manifest file and the config as a file, for `edgesift replay` jobs."""
    with tempfile.TemporaryDirectory(prefix="bench-fleet-manifest-") as tmp:
        manifest, config_file = Path(tmp) / "drives.jsonl", Path(tmp) / "config.yaml"
        manifest.write_text("".join(d.model_dump_json() + "\n" for d in drives), encoding="utf-8")
        config_file.write_text(json.dumps(config.model_dump(mode="json")), encoding="utf-8")  # JSON is YAML
        yield manifest, config_file


def cli_pairs(files: tuple[Path, Path], first: dict[str, Any], second: dict[str, Any], repeats: int,
              reference: dict[str, str]) -> dict[str, Any]:
    """Jobs run `first` then `second` way, alternating `repeats` times: the ratio a user sees (second's speed over
    first's), where every job pays its own start (the in-process runs start with the agent imported)."""
    def name(how: dict[str, Any]) -> str:
        return "ray" if "ray" in how else f"{how['workers']}_worker{'s' if how['workers'] > 1 else ''}"

    pairs = []
    for _ in range(max(1, repeats)):
        a, b = cli_job(*files, **first), cli_job(*files, **second)
        pairs.append({f"{name(first)}_s": a["wall_s"], f"{name(second)}_s": b["wall_s"],
                      "ratio": round(a["wall_s"] / b["wall_s"], 3),
                      "identical": a["digests"] == b["digests"] == reference})
    return {"pairs": pairs, "ratio_median": round(float(np.median([p["ratio"] for p in pairs])), 3)}


def frame_costs(results: list[dict[str, Any]], clock: str) -> dict[str, float]:
    """Seconds (`clock`: wall_s or cpu_s) per camera frame, per LiDAR scan and per drive, fitted over the drives."""
    rows, secs = [], []
    for r in results:
        cams = sum(s["frames_in"] for s in r["by_sensor"].values() if s["modality"] == "camera")
        scans = sum(s["frames_in"] for s in r["by_sensor"].values() if s["modality"] == "lidar")
        rows.append([cams, scans, 1.0])
        secs.append(float(r[clock]))
    coef, *_ = np.linalg.lstsq(np.asarray(rows, dtype=float), np.asarray(secs), rcond=None)
    camera, lidar, per_drive = (max(0.0, float(c)) for c in coef)
    if lidar == 0.0:  # too few LiDAR drives to separate the costs: a scan costs what a frame costs on average
        lidar = sum(secs) / max(1.0, float(np.asarray(rows)[:, :2].sum()))
    return {"camera_frame_s": round(camera, 5), "lidar_scan_s": round(lidar, 5), "per_drive_s": round(per_drive, 3)}


def extrapolate(costs: dict[str, float]) -> dict[str, Any]:
    per_drive_second = (VEHICLE["cameras"] * VEHICLE["camera_fps"] * costs["camera_frame_s"]
                        + VEHICLE["lidars"] * VEHICLE["lidar_hz"] * costs["lidar_scan_s"])
    per_core_hour = 1.0 / per_drive_second
    return {"vehicle": VEHICLE, "frames_per_drive_s": 260, "core_s_per_drive_s": round(per_drive_second, 2),
            "drive_hours_per_core_hour": round(per_core_hour, 4),
            "cores_for_1000_drive_hours_in_8h": int(np.ceil(1000.0 / (per_core_hour * 8.0)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=("short", "long"), default="long",
                        help="long (default): 7 recordings x 2, whole; short: 4 recordings x 2, capped at --max-frames")
    parser.add_argument("--max-frames", type=int, default=None,
                        help="frames per drive (default: 40 for the short corpus, all for the long one)")
    parser.add_argument("--copies", type=int, default=None,
                        help="each recording listed this many times, under ids of its own (default: 6 for the long "
                             "corpus, 42 drives, a fleet-like run where a job's start-up is 1-2%% of it; 2 for the "
                             "short one)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray cluster")
    parser.add_argument("--ray-worker-niceness", type=int, default=0,
                        help="the cluster's worker_niceness: 0 (the default here) runs Ray's workers at the pool's "
                             "priority; Ray's own default, 15, lets any other process take their cores first")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run 1 and 2 workers, then 2 workers and Ray (and each as CLI jobs) this many times, "
                             "alternating, and report every pair's ratio and their median: the machine's speed drifts "
                             "by 20-30%% within minutes, and runs back to back share most of the drift")
    parser.add_argument("--no-cli", action="store_true", help="skip the runs as `edgesift replay` jobs")
    args = parser.parse_args()
    max_frames = args.max_frames if args.max_frames is not None else (40 if args.corpus == "short" else 0)
    config = AgentConfig(inputs=InputsConfig(max_frames=max_frames))
    copies = args.copies if args.copies is not None else (6 if args.corpus == "long" else 2)
    drives = corpus(args.corpus, max(1, copies))
    load_before = os.getloadavg()
    # 1 worker against 2 with no Ray cluster standing (its idle daemons take 3% of a core, not there for a user of
    # the local pool); then the pool against Ray, back to back on the standing cluster.
    pairs = [(timed(drives, config, workers=1), timed(drives, config, workers=2)) for _ in range(max(1, args.repeats))]
    one, two = pairs[0]
    reference = one["digests"]
    cli: dict[str, Any] = {}
    with cli_inputs(drives, config) as files:
        if not args.no_cli:
            cli["scaling"] = cli_pairs(files, {"workers": 1}, {"workers": 2}, args.repeats, reference)
        with ray_cluster(args.ray_worker_niceness, skip=args.no_ray) as cluster:
            ray_pairs = [(timed(drives, config, workers=2), ray_run(drives, config, cluster))
                         for _ in range(max(1, args.repeats))] if cluster else []
            if cluster and not args.no_cli:
                cli["ray"] = cli_pairs(files, {"workers": 2}, {"ray": cluster.address}, args.repeats, reference)
    out: dict[str, Any] = {"corpus": args.corpus, "drives": len(drives), "max_frames_per_drive": max_frames or None,
                           "cpus": os.cpu_count(),
                           "load_avg_before": [round(x, 2) for x in load_before]}
    runs = {"1_worker": one, "2_workers": two}
    ratios = [b["frames_per_s"] / a["frames_per_s"] for a, b in pairs]
    out["pairs"] = [{"1_worker_frames_per_s": a["frames_per_s"], "2_workers_frames_per_s": b["frames_per_s"],
                     "speedup": round(r, 3), "identical": a["digests"] == b["digests"] == reference}
                    for (a, b), r in zip(pairs, ratios, strict=True)]
    out["speedup_2_workers_median"] = round(float(np.median(ratios)), 3)
    if ray_pairs:
        ray_ratios = [c["frames_per_s"] / b["frames_per_s"] for b, c in ray_pairs]
        out["ray_pairs"] = [{"2_workers_frames_per_s": b["frames_per_s"], "ray_frames_per_s": c["frames_per_s"],
                             "ray_vs_local_2": round(r, 3), "identical": b["digests"] == c["digests"] == reference,
                             "ray_extra_executor_cpu_s": round(c.get("executor_cpu_s", 0.0)
                                                               - b.get("executor_cpu_s", 0.0), 2)}
                            for (b, c), r in zip(ray_pairs, ray_ratios, strict=True)]
        out["ray_vs_local_2_median"] = round(float(np.median(ray_ratios)), 3)
        two_beside_ray, runs["ray_2_nodes"] = ray_pairs[0]
        two_beside_ray.pop("results")
    if cli:
        out["as_cli_jobs"] = cli
    out["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    wall_costs, cpu_costs = frame_costs(one["results"], "wall_s"), frame_costs(one["results"], "cpu_s")
    for name, run in runs.items():
        run["identical_to_1_worker"] = run.pop("digests") == reference
        run.pop("results")
        out[name] = run
    out["speedup_2_workers"] = round(two["frames_per_s"] / one["frames_per_s"], 3)
    if "ray_2_nodes" in runs:
        ray, two = runs["ray_2_nodes"], two_beside_ray
        out["ray_vs_local_2"] = round(ray["frames_per_s"] / two["frames_per_s"], 3)
        out["ray_overhead_s_per_drive"] = round((ray["wall_s"] - two["wall_s"]) / len(drives) * 2, 3)
        if "cpu_s" in ray and "cpu_s" in two:  # CPU time does not depend on what else the shared machine runs
            out["ray_vs_local_2_frames_per_cpu_s"] = round(ray["frames_per_cpu_s"] / two["frames_per_cpu_s"], 3)
            out["ray_extra_executor_cpu_s"] = round(ray["executor_cpu_s"] - two["executor_cpu_s"], 2)
    out["one_drive_assess_ahead"] = assess_ahead(drives[-1], config)
    out["frame_costs_1_worker_wall"] = wall_costs
    out["frame_costs_1_worker_cpu"] = cpu_costs
    # CPU time is what a frame costs on a core of its own; the wall figure includes waiting for the shared cores.
    out["fleet_extrapolation"] = extrapolate(cpu_costs)
    out["fleet_extrapolation_from_wall_time"] = extrapolate(wall_costs)
    out["note"] = ("measured on a shared machine (other jobs were running, see load_avg); a pool or Ray worker's "
                   "start-up is inside the wall time and the CPU time; the Ray cluster's own start is not "
                   "(cluster_start_s)")
    print(json.dumps(out, indent=1))


def assess_ahead(drive: Drive, config: AgentConfig) -> dict[str, Any]:
    """One drive alone: frames/s with its frames assessed inline and ahead in 2 threads (same decisions)."""
    from agent.replay.runner import run_replay

    out: dict[str, Any] = {"drive": drive.id}
    digests = set()
    for threads in (1, 2):
        with tempfile.TemporaryDirectory(prefix="bench-ahead-") as tmp:
            summary = run_replay(list(drive.inputs), Path(tmp), config, progress=False, assess_threads=threads)
            digests.add((Path(tmp) / "decisions.jsonl").read_bytes())
        out[f"frames_per_s_{threads}_thread{'s' if threads > 1 else ''}"] = summary["frames_per_s"]
    out["identical"] = len(digests) == 1
    return out


@dataclass(frozen=True)
class StandingCluster:
    address: str
    start_s: float  # seconds to start it (not part of any job's time)
    niceness: int


@contextlib.contextmanager
def ray_cluster(niceness: int, skip: bool = False) -> Iterator[StandingCluster | None]:
    """A local 2-node Ray cluster (1 CPU per node), started once for every Ray run of the benchmark."""
    if skip:
        yield None
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from ray.cluster_utils import Cluster

    started = time.perf_counter()
    # Ray starts its task workers at nice 15 (its worker_niceness); the local pool's workers run at the driver's
    # priority. At equal cores they run at equal priority: the option a user sets for `ray start` on shared nodes
    # (RAY_worker_niceness=0). The head's system config reaches every node through the GCS.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                             "object_store_memory": 200 * 1024 * 1024,
                                                             "_system_config": {"worker_niceness": niceness}})
    try:
        cluster.add_node(num_cpus=1, object_store_memory=200 * 1024 * 1024)
        cluster.wait_for_nodes()
        yield StandingCluster(cluster.address, round(time.perf_counter() - started, 2), niceness)
    finally:
        cluster.shutdown()


def ray_run(drives: list[Drive], config: AgentConfig, cluster: StandingCluster) -> dict[str, Any]:
    """One job on the standing cluster: its driver connection and worker processes start inside the time."""
    run = timed(drives, config, ray=cluster.address)
    run["cluster_start_s"] = cluster.start_s
    run["worker_niceness"] = cluster.niceness
    return run


if __name__ == "__main__":
    main()

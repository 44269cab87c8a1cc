#!/usr/bin/env python3
"""Fleet ingest: simulated vehicles -> mosquitto -> 2 ingest workers (one shared subscription) -> index, for
PostgreSQL and for SQLite, one after the other in one run. Prints one JSON object.

The vehicles (--generator prebuilt, the default; scripts/_fleet_load.py) are load generators that speak the
uplink's protocol: one MQTT 5 client each, set up by the agent's own code (session, Last Will, retained status,
receipts subscription), publishing the uplink's frame messages (wire.encode, real ~95 KB camera JPEGs of the sample
drive, each hashed once) at --rate frames/s per vehicle for --duration s, stamped with the publish time, spread
over --processes processes with one event loop each. --generator uplink runs the agent's whole Uplink per vehicle
instead (spool put + fsync, re-read, re-hash per frame: the vehicles' own CPU then dominates this machine).
The two workers run `edgesift ingest` as their own
processes. Reported per backend: offered and committed frames/s and MB/s over the stream, lost (put, never
indexed) and duplicated (stored twice; deliveries dropped by the dedup are counted apart), put-to-commit latency
(p50/p99: a frame's put time to the poll that first sees it committed, polled every --poll-s, so an upper bound),
and where the time goes: CPU seconds per process group (vehicles, mosquitto, ingest workers, PostgreSQL), the
ingest's CPU per frame (and so frames/s per core of ingest alone), and the workers' own split (handle: decode and
check; store: MCAP write and the batch's index look-up and insert; MCAP fsync; DB commit). The load average at
start and end says how much else the machine was doing.

    .venv/bin/python scripts/bench_fleet_ingest.py --vehicles 20 --rate 5 --duration 25
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "scripts"), str(REPO / "tests")]

from bench_uplink import Mosquitto, camera_frames  # noqa: E402


def run_vehicles(job: dict[str, Any]) -> dict[str, Any]:
    """One process: its vehicles' spools fed at the rate, their uplinks streaming; then drained."""
    from agent.config.model import SpoolConfig
    from agent.config.uplink import UplinkConfig
    from agent.scoring.base import Label, Verdict
    from agent.spool import Spool
    from agent.uplink import Uplink

    frames = camera_frames()
    config = UplinkConfig(broker=job["broker"], poll_interval_s=0.02, stats_interval_s=0.0, max_in_flight=32)
    root = Path(job["root"])
    spools = {v: Spool.open(root / v, SpoolConfig(max_mb=100_000)) for v in job["names"]}
    uplinks = {v: Uplink(spools[v], config, v) for v in job["names"]}
    for uplink in uplinks.values():
        uplink.start()
    late = time.time() - job["start_at"]  # > 0: this process was not ready at the common start (reported)
    time.sleep(max(0.0, -late))
    put, n, period = 0, 0, 1.0 / job["rate"]
    start = time.monotonic()
    while time.monotonic() - start < job["duration"]:
        for vehicle, spool in spools.items():
            frame = frames[n % len(frames)]
            frame = replace(frame, sensor="cam", t_ns=time.time_ns(), seq=n)
            spool.put(frame, Verdict(Label.HELPFUL, 0.9, ("novel",)), "keep", frame_id=f"{frame.t_ns:019d}-cam-{n}")
            uplinks[vehicle].notify()
            put += 1
        n += 1
        time.sleep(max(0.0, start + n * period - time.monotonic()))
    drained = all(uplink.drain(120) for uplink in uplinks.values())
    for uplink in uplinks.values():
        uplink.stop()
    for spool in spools.values():
        spool.close()
    return {"put": put, "drained": drained, "cpu_s": sum(os.times()[:2]), "late_s": max(0.0, late)}


class Postgres:
    def __init__(self, root: Path) -> None:
        from pg_server import PostgresServer, find_pg_bin

        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL binaries not found (apt-get install postgresql)")
        self.server = PostgresServer(bin_dir, root, durable=True)  # fsync on: a commit is on disk, as deployed
        self.server.start()
        self.url = self.server.create_database("bench")
        self.pid = int((self.server.data / "postmaster.pid").read_text().split()[0])

    def processes(self) -> list[psutil.Process]:
        main = psutil.Process(self.pid)
        return [main, *main.children(recursive=True)]


def _cpu(processes: list[psutil.Process], system_only: bool = False) -> float:
    total = 0.0
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.system + (0.0 if system_only else times.user)
    return total


def _index_rows(db: str | Path, after_ns: int) -> list[tuple[str, str, int, int]]:
    sql = "SELECT vehicle, frame_id, t_ns, received_ns FROM frames WHERE received_ns > ?"
    if isinstance(db, Path):
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
            return conn.execute(sql, (after_ns,)).fetchall()
    import psycopg

    with psycopg.connect(db) as conn:
        return conn.execute(sql.replace("?", "%s"), (after_ns,)).fetchall()


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


def run_prebuilt(job: dict[str, Any]) -> dict[str, Any]:
    from _fleet_load import run_fleet

    return run_fleet(job)


def run_backend(backend: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    broker = Mosquitto(tmp / f"broker-{backend}")
    broker.start()
    pg = Postgres(Path(tempfile.mkdtemp(prefix="edgesift-bench-pg-"))) if backend == "postgresql" else None
    store = tmp / f"store-{backend}"
    db: str | Path = pg.url if pg else store / "index.sqlite3"
    workers = []
    for name in ("w1", "w2"):
        cmd = [str(Path(sys.executable).parent / "edgesift"), "ingest", "--broker", broker.url, "--out", str(store),
               "--group", "bench", "--client-id", f"bench-{name}", *(["--db", str(db)] if pg else [])]
        workers.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _index_rows(db, 0)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        time.sleep(1.0)  # subscribed
        names = [f"v{n:03d}" for n in range(args.vehicles)]
        start_at = time.time() + 10.0 + args.vehicles * 0.05  # spawned processes import and connect first
        jobs = [{"names": names[k :: args.processes], "broker": broker.url, "rate": args.rate, "start_at": start_at,
                 "duration": args.duration, "root": str(tmp / f"spools-{backend}")} for k in range(args.processes)]
        watched = {"mosquitto": [psutil.Process(broker.proc.pid)], "ingest_workers": [psutil.Process(w.pid)
                                                                                     for w in workers]}
        if pg:
            watched["postgresql"] = pg.processes()
        cpu0 = {k: _cpu(v) for k, v in watched.items()}
        sys0 = {k: _cpu(v, system_only=True) for k, v in watched.items()}
        load_start = os.getloadavg()[0]
        latencies: list[float] = []
        seen: set[tuple[str, str]] = set()
        last_ns, stop = [0], threading.Event()

        def poll() -> None:  # commit visibility: rows appear only once their batch committed
            while not stop.is_set():
                now = time.time_ns()
                try:  # the two workers commit out of received_ns order: look back 5 s, skip what was seen
                    rows = _index_rows(db, last_ns[0] - 5_000_000_000)
                except Exception:  # the database going away at the end
                    rows = []
                for vehicle, fid, t_ns, received_ns in rows:
                    if (vehicle, fid) not in seen:
                        seen.add((vehicle, fid))
                        latencies.append((now - t_ns) / 1e9)
                        last_ns[0] = max(last_ns[0], received_ns)
                stop.wait(args.poll_s)

        poller = threading.Thread(target=poll, daemon=True)
        with mp.get_context("spawn").Pool(len(jobs)) as pool:
            pending = pool.map_async(run_prebuilt if args.generator == "prebuilt" else run_vehicles, jobs)
            time.sleep(max(0.0, start_at - time.time()))
            poller.start()
            t0 = time.monotonic()
            results = pending.get()
            drained_at = time.monotonic()
        put = sum(r["put"] for r in results)
        deadline = time.monotonic() + 60
        while len(seen) < put and time.monotonic() < deadline:
            time.sleep(0.1)
        done_at = time.monotonic()
        stop.set()
        poller.join(5)
        cpu = {k: round(_cpu(v) - cpu0[k], 1) for k, v in watched.items()}
        kernel = {k: round(_cpu(v, system_only=True) - sys0[k], 1) for k, v in watched.items()}
        indexed = len(_index_rows(db, 0))
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        finals = [json.loads(w.communicate(timeout=60)[0].strip().splitlines()[-1] or "{}") for w in workers]
        broker.stop()
        if pg:
            pg.server.stop()
            shutil.rmtree(pg.server.root, ignore_errors=True)
    stored = sum(f.get("frames", 0) for f in finals)
    wall = done_at - t0
    extra = {k: sum(r.get(k, 0) for r in results) for k in ("acked", "refused", "receipted", "skipped")}
    extra["max_behind_s"] = max(r.get("max_behind_s", 0.0) for r in results)
    per_frame = {k: round(v / max(1, indexed) * 1e3, 3) for k, v in {**cpu, "vehicles": sum(
        r["cpu_s"] for r in results)}.items()}
    return {
        "backend": backend, "vehicles": args.vehicles, "rate_per_vehicle": args.rate, "duration_s": args.duration,
        "frames_put": put, "frames_indexed": indexed, "lost": put - indexed, "duplicated": stored - indexed,
        "deliveries_deduplicated": sum(f.get("duplicates", 0) for f in finals),
        "offered_frames_per_s": round(put / args.duration, 1),
        "committed_frames_per_s": round(indexed / wall, 1), "committed_mb_per_s": round(
            sum(f.get("bytes", 0) for f in finals) / 1e6 / wall, 1),
        "stream_to_last_commit_s": round(wall, 1), "drain_after_stream_s": round(done_at - drained_at, 1),
        "latency_s": {"p50": _pct(latencies, 0.5), "p99": _pct(latencies, 0.99), "max": _pct(latencies, 1.0),
                      "poll_s": args.poll_s},
        "cpu_s": {**cpu, "vehicles": round(sum(r["cpu_s"] for r in results), 1)},
        "cpu_ms_per_frame": per_frame, "cpu_s_in_kernel": kernel,
        "ingest_frames_per_s_per_core": round(indexed / max(0.1, cpu["ingest_workers"]), 1),
        "generator": {"kind": args.generator, **extra},
        "load_average_1m": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "worker_seconds": [f.get("seconds", {}) for f in finals], "worker_frames": [f.get("frames") for f in finals],
        "all_drained": all(r["drained"] for r in results), "late_start_s": max(r["late_s"] for r in results),
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vehicles", type=int, default=20)
    parser.add_argument("--rate", type=float, default=5.0, help="frames/s per vehicle")
    parser.add_argument("--duration", type=float, default=25.0, help="seconds of stream per backend")
    parser.add_argument("--processes", type=int, default=2, help="processes the vehicles are spread over")
    parser.add_argument("--poll-s", type=float, default=0.1)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--generator", choices=("prebuilt", "uplink"), default="prebuilt",
                        help="vehicles: pre-built uplink messages (default) or the agent's whole Uplink + spool")
    args = parser.parse_args()
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                       "note": "CPU shared with other work; vehicles, broker, workers, DB on one host"}}
    with tempfile.TemporaryDirectory(prefix="edgesift-bench-fleet-") as tmp:
        for backend in args.backends.split(","):
            out[backend] = run_backend(backend, args, Path(tmp))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

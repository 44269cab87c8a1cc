#!/usr/bin/env python3
"""A simulated fleet: V vehicles replaying a recorded drive at real rate through a broker, with the agent's own code.

Each vehicle is the on-vehicle path minus the cameras: the drive's frames (re-stamped to now) go through the
policy into the vehicle's own spool, its DaemonUplink (one MQTT client per vehicle: frames, retained status with
its last will, stats) streams them, its SensorHealth raises alerts, and its RemoteConfigManager answers config
pushes. Verdicts are scored once per process and shared by its vehicles (scoring every copy of the same frame
V times would only burn the shared CPU); the faulty vehicle's noisy frames are scored for real.

Events: --bad-vehicle gets a failing camera (heavy sensor noise) from 1/4 to 1/2 of the
run; --offline vehicles stop (retained `offline`) at 3/4; --push-config pushes a config to the first vehicle
at 1/3 (accepted) and a broken one at 2/3 (rejected). Prints a JSON summary.

    .venv/bin/python scripts/simulate_fleet.py --broker mqtt://127.0.0.1:1883 --vehicles 8 --duration 60
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEFAULT_DRIVE = REPO / "data" / "sample_drive.mcap"
MAX_GAP_NS = 200_000_000  # the sample drive jumps from KITTI frame 29 to 77: no 5 s of silence in the middle


def _load(drive: str, config: Any) -> list[Any]:
    from agent.frame import Skip
    from agent.sources import merge, open_inputs

    return [item for item in merge(open_inputs([drive], config.inputs), None) if not isinstance(item, Skip)]


def _faulty(frame: Any) -> Any:
    """The real frame from a failing camera: heavy sensor noise (sigma 40 grey levels)."""
    import cv2
    import numpy as np

    from agent.frame import Encoding

    image = cv2.imdecode(np.frombuffer(frame.payload, np.uint8), cv2.IMREAD_COLOR)
    noise = np.random.default_rng(frame.seq).normal(0.0, 40.0, image.shape)
    image = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    return replace(frame, payload=jpeg, nbytes=len(jpeg), encoding=Encoding.JPEG, array=None)


class Cached:
    """The scorer interface over verdicts computed once (keyed by the frame's index in the drive)."""

    name = "heuristic"

    def __init__(self, verdicts: dict[tuple[str, int], Any]) -> None:
        self.verdicts, self.key = verdicts, ("", 0)

    def score(self, frame: Any) -> Any:
        return self.verdicts[self.key]

    def remember(self, frame: Any, verdict: Any) -> None:
        pass


def _vehicle_config(name: str, broker: str, root: Path, stats_s: float) -> Any:
    from agent.config import AgentConfig

    return AgentConfig.model_validate({
        "vehicle_id": name, "spool": {"path": str(root / name / "spool")},
        "uplink": {"enabled": True, "broker": broker, "stats_interval_s": stats_s, "poll_interval_s": 0.05,
                   "keepalive_s": 10},
        "remote": {"enabled": True, "state_dir": str(root / name / "remote")},
        "health": {"camera": {"window_s": 5.0, "min_frames": 10}},
    })  # fmt: skip


class Vehicle:
    def __init__(self, name: str, args: dict[str, Any], root: Path) -> None:
        from agent.daemon.lifecycle import DaemonUplink
        from agent.health import SensorHealth, alert_topic
        from agent.metrics import Metrics
        from agent.pipeline import FramePipeline
        from agent.policy import Policy
        from agent.remote.manager import RemoteConfigManager
        from agent.remote.store import ConfigStore
        from agent.spool import Spool

        self.name, self.alive, self.topic = name, True, alert_topic
        self.config = cfg = _vehicle_config(name, args["broker"], root, args["stats_s"])
        self.metrics = Metrics()
        self.spool = Spool.open(Path(cfg.spool.path), cfg.spool)
        self.scorer = Cached({})
        self.pipeline = FramePipeline(self.scorer, Policy(cfg.policy), self.spool)
        self.health = SensorHealth(cfg.health, self.metrics.registry)
        self.uplink = DaemonUplink(self.spool, cfg.uplink, name, extra_stats=self.metrics.snapshot)
        self.store = ConfigStore.open(cfg)
        self.uplink.start()
        self.remote = RemoteConfigManager.from_store(self.store, self.uplink.client)
        self.uplink.connect_hooks.append(self.remote.on_connect)
        self.remote.start()

    def offer(self, frame: Any, key: tuple[str, int], verdicts: dict[tuple[str, int], Any]) -> None:
        self.scorer.verdicts, self.scorer.key = verdicts, key
        outcome = self.pipeline.process(frame)
        self.metrics.frame_in(frame.sensor)
        self.metrics.decided(outcome.record, 0.0, 0.0)
        for alert in self.health.observe(outcome.record):
            self.uplink.post(self.topic("edgesift", self.name, alert.sensor), alert.payload())
        if outcome.record["kept"]:
            self.uplink.notify()

    def stop(self) -> dict[str, Any]:
        self.alive = False
        self.remote.stop(timeout=1.0)
        self.uplink.drain(2.0)
        connected = self.uplink.state == "online"  # else no `offline` now: the broker's Last Will says it later
        up = self.uplink.stop()
        self.spool.close()
        return {"vehicle": self.name, "acked": up.acked, "alerts": len(self.health.events), "said_offline": connected}


def run_process(args: dict[str, Any]) -> list[dict[str, Any]]:
    """One process: its share of the vehicles, fed from one clock."""
    from agent.config import AgentConfig
    from agent.frame import Modality
    from agent.scoring.factory import make_scorer

    config = AgentConfig()
    frames = _load(args["drive"], config)
    scorer = make_scorer(config)
    clean = {(f.sensor, i): scorer.score(f) for i, f in enumerate(frames)}
    faulty_frames = {i: _faulty(f) for i, f in enumerate(frames) if f.modality == Modality.CAMERA}
    # the same scorer, after the clean drive: a sensor is judged against its own history
    faulty = {(f.sensor, i): scorer.score(f) for i, f in faulty_frames.items()}
    root = Path(args["root"])
    vehicles = [Vehicle(name, args, root) for name in args["names"]]
    args["ready"].put(len(vehicles))  # every process starts its clock together, once all vehicles are up
    args["go"].wait(300)
    offsets, at = [], 0  # playback time of each frame: the recording's timing, with long gaps cut to MAX_GAP_NS
    for prev, frame in zip([frames[0], *frames], frames, strict=False):
        at += min(max(0, frame.t_ns - prev.t_ns), MAX_GAP_NS)
        offsets.append(at)
    span = offsets[-1] + 100_000_000
    start, duration, speed = time.monotonic(), args["duration"], args["speed"]
    loop, went_offline = 0, {}
    while time.monotonic() - start < duration:
        for i, frame in enumerate(frames):
            elapsed = time.monotonic() - start
            if elapsed >= duration:
                break
            due = (loop * span + offsets[i]) / 1e9 / speed
            if due > elapsed:
                time.sleep(due - elapsed)
            share = (time.monotonic() - start) / duration
            for vehicle in vehicles:
                if vehicle.name in args["offline"] and share >= 0.75 and vehicle.alive:
                    went_offline[vehicle.name] = vehicle.stop()
                if not vehicle.alive:
                    continue
                bad = vehicle.name == args["bad"] and 0.25 <= share < 0.5 and i in faulty_frames
                live = replace(faulty_frames[i] if bad else frame, t_ns=time.time_ns(), seq=loop * len(frames) + i)
                vehicle.offer(live, (frame.sensor, i), faulty if bad else clean)
        loop += 1
    return [v.stop() if v.alive else {**went_offline[v.name], "stopped": "offline"} for v in vehicles]


def _push(broker: str, vehicle: str, doc: dict[str, Any]) -> str:
    from agent.fleet.push import Target, push_config
    from agent.remote.mqttconn import BrokerSettings

    outcome = push_config(BrokerSettings.from_url(broker), Target(vehicle=vehicle), doc, timeout=10.0)
    return outcome.summary()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--vehicles", type=int, default=6)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds")
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed (1 = the recording's rate)")
    parser.add_argument("--drive", default=str(DEFAULT_DRIVE), help="recording to replay (default: the sample drive)")
    parser.add_argument("--bad-vehicle", default="car-02", help="vehicle whose camera fails ('' = none)")
    parser.add_argument("--offline", type=int, default=1, help="vehicles that go offline at 3/4 of the run")
    parser.add_argument("--push-config", action="store_true", help="push configs to car-01 (one good, one bad)")
    parser.add_argument("--stats-s", type=float, default=2.0, help="stats message period")
    parser.add_argument("--work", default="", help="folder for the vehicles' spools (default: a temporary one)")
    args = parser.parse_args()
    names = [f"car-{n + 1:02d}" for n in range(args.vehicles)]
    offline = set(names[::-1][: args.offline]) - {args.bad_vehicle}
    root = Path(args.work or tempfile.mkdtemp(prefix="edgesift-fleet-"))
    shares = [names[k :: args.processes] for k in range(min(args.processes, len(names)))]
    jobs = [{"names": share, "broker": args.broker, "drive": args.drive, "duration": args.duration,
             "speed": args.speed, "bad": args.bad_vehicle, "offline": offline, "root": str(root),
             "stats_s": args.stats_s} for share in shares]  # fmt: skip
    started = time.monotonic()
    pushes = []
    context = mp.get_context("spawn")
    with context.Manager() as manager, context.Pool(len(jobs)) as pool:
        ready, go = manager.Queue(), manager.Event()
        pending = pool.map_async(run_process, [{**job, "ready": ready, "go": go} for job in jobs])
        for _ in jobs:
            ready.get(timeout=300)
        go.set()
        if args.push_config:
            time.sleep(args.duration / 3)
            pushes.append(_push(args.broker, names[0], {"version": 2, "policy": {"camera": {"keep_min_score": 0.6}}}))
            time.sleep(args.duration / 3)
            pushes.append(_push(args.broker, names[0], {"version": 3, "policy": {"camera": {"keep_min_score": 7}}}))
        results = [r for batch in pending.get() for r in batch]
    print(json.dumps({"vehicles": len(names), "processes": len(jobs), "elapsed_s": round(time.monotonic() - started, 1),
                      "offline": sorted(offline), "bad_vehicle": args.bad_vehicle, "pushes": pushes,
                      "per_vehicle": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

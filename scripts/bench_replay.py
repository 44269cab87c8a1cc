#!/usr/bin/env python3
"""Replay throughput and what each verdict caught, on the sample drive and (when present) the shared KITTI drive.

Prints one JSON object. Each run replays the whole input through the same code as `edgesift replay` (sources,
scorer, policy, spool, kept.mcap, report) into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections import Counter
from pathlib import Path

from agent.config import AgentConfig
from agent.replay.runner import run_replay

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"


def _inputs() -> dict[str, list[str]]:
    runs = {"sample_drive": [str(REPO / "data" / "sample_drive.mcap")]}
    kitti = SHARED / "kitti" / "2011_09_26" / "udacity_sfnd_sync"
    if kitti.is_dir():
        runs["kitti_2011_09_26_shared"] = [str(kitti)]
    video = SHARED / "video" / "udacity_lanelines_solidWhiteRight.mp4"
    if video.exists():
        runs["highway_video_shared"] = [str(video)]
    pcap = SHARED / "pcap" / "velodyne_hdl32e_monterey_first_packets.pcap"
    if pcap.exists():
        runs["hdl32e_pcap_shared"] = [str(pcap)]
    return runs


def _caught(out: Path) -> dict[str, dict[str, int]]:
    by: dict[str, Counter[str]] = {}
    for line in (out / "decisions.jsonl").read_text().splitlines():
        record = json.loads(line)
        by.setdefault(record["verdict"], Counter())[record["reasons"][0] if record["reasons"] else "-"] += 1
    return {verdict: dict(counts) for verdict, counts in by.items()}


def bench(name: str, inputs: list[str], repeat: int) -> dict[str, object]:
    best: dict[str, object] = {}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            summary = run_replay(inputs, Path(tmp), AgentConfig(), progress=False)
            wall = time.perf_counter() - started
            if not best or wall < best["wall_s"]:
                best = {
                    "frames_in": summary["frames_in"],
                    "frames_kept": summary["frames_kept"],
                    "bytes_in": summary["bytes_in"],
                    "bytes_kept": summary["bytes_kept"],
                    "bytes_dropped_pct": round(100 * (1 - summary["bytes_kept"] / max(1, summary["bytes_in"])), 1),
                    "pipeline_frames_per_s": summary["frames_per_s"],
                    "wall_s": round(wall, 3),
                    "end_to_end_frames_per_s": round(summary["frames_in"] / wall, 2),
                    "by_verdict": summary["by_verdict"],
                    "caught": _caught(Path(tmp)),
                    "skipped": summary["skipped"]["count"],
                }
    return {"input": name, **best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="runs per input; the fastest is reported")
    args = parser.parse_args()
    results = [bench(name, inputs, args.repeat) for name, inputs in _inputs().items()]
    print(json.dumps({"machine": platform.machine(), "python": platform.python_version(), "runs": results},
                     indent=2))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Per input type: how fast the reader decodes it, how fast `replay` runs on it, and input vs stored bytes.

Prints one JSON object. `read_fps` times the source alone (open + decode every frame, best of --repeat);
`replay_fps` the whole replay (scorer, policy, spool, kept.mcap, report; includes start-up, which dominates
the few-frame recordings). `bytes_in` is what the kept frames took in the input, `bytes_stored` what the spool
holds for them (and the uplink sends). Inputs come from ../shared/data; missing ones are left out.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from agent.config import AgentConfig
from agent.config.model import InputsConfig
from agent.frame import Frame
from agent.replay.runner import run_replay
from agent.sources import detect_kind, merge, open_inputs

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
INPUTS = {
    "rosbag2_velodyne_vlp32": "bags/nebula_velodyne_vlp32/1713492677464078412",
    "rosbag2_velodyne_vlp16": "bags/nebula_velodyne_vlp16/1673400471837873222",
    "ros1_bag_ouster_packets": "bags/ouster_512x10_raw.bag",
    "ouster_pcap_json": "pcap/ouster_OS-1-128_v2.3.0_1024x10_lb_n3.pcap",
    "pcd_binary_compressed_folder": "lidar/hesai_pandar64_pjlab_5scans/pcd_original",
    "bin_folder_hesai_vls128": "lidar/nebula_hesai_vls128_single_scans",
    "bin_folder_ouster": "lidar/ouster_sdk_test_frames",
    "nuscenes_sample": "nuscenes/n015-2018-07-24-11-22-45_sample",
    "kitti_object_folder": "kitti/object_000008_mmdet3d",
    # the byte comparison the issue asks for: video, Velodyne pcap, KITTI drive
    "video_mp4": "video/udacity_lanelines_solidWhiteRight.mp4",
    "velodyne_pcap": "pcap/velodyne_hdl32e_monterey_first_packets.pcap",
    "kitti_drive": "kitti/2011_09_26/udacity_sfnd_sync",
}


def read_rate(path: str, repeat: int) -> tuple[int, float]:
    best = float("inf")
    frames = 0
    for _ in range(repeat):
        started = time.perf_counter()
        frames = sum(isinstance(i, Frame) for i in merge(open_inputs([path], InputsConfig())))
        best = min(best, time.perf_counter() - started)
    return frames, best


def bench(path: str, repeat: int) -> dict[str, object]:
    frames, read_s = read_rate(path, repeat)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        summary = run_replay([path], Path(tmp), AgentConfig(), progress=False)
        replay_s = time.perf_counter() - started
    kept_in, stored = summary["bytes_kept"], summary["bytes_stored"]
    return {
        "kind": detect_kind(path), "frames": frames, "read_s": round(read_s, 3),
        "read_fps": round(frames / read_s, 1) if read_s else None,
        "replay_s": round(replay_s, 2), "replay_fps": round(frames / replay_s, 1),
        "frames_kept": summary["frames_kept"], "bytes_in_all": summary["bytes_in"], "bytes_in_kept": kept_in,
        "bytes_stored": stored, "stored_over_input": round(stored / kept_in, 2) if kept_in else None,
        "clock": summary["clocks"][0]["clock"], "skipped": summary["skipped"]["count"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="names of INPUTS to run")
    args = parser.parse_args()
    results = {}
    for name, rel in INPUTS.items():
        path = SHARED / rel
        if (args.only and name not in args.only) or not path.exists():
            continue
        results[name] = bench(str(path), args.repeat)
    print(json.dumps({"machine": platform.machine(), "python": platform.python_version(), "inputs": results},
                     indent=1))


if __name__ == "__main__":
    main()

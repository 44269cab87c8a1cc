#!/usr/bin/env python3
"""Damaged real recordings: every recording format in ../shared/data (and the sample drive), damaged as storage
and power loss damage them, replayed by `edgesift replay` each in its own process; prints one JSON object.

Damage, each on a copy: cut at 25%, 50% and 90% of the file (power lost while recording); 64 single-bit flips
(bit rot; seeded); 4 KiB zeroed 40% of the way in (a lost sector); 4 KiB repeated half-way (a write replayed);
the bytes 8-200 scrambled (a broken header). Recordings: a ROS 1 bag, a rosbag2 (SQLite) folder, Velodyne VLP-16
and HDL-32E pcaps, an Ouster pcap with its metadata, an MP4 video and the MCAP sample drive.

Per case: `outcome` as scripts/bench_hostile.py reports it (`error` a one-line error, `skipped` frames read with
counted skips, `ok`, `recorded`, or `crash`: a traceback, a signal or a hang), the frames read against the
undamaged recording's, the skips by reason and the peak RSS. A `crash` is a bug; so is damage that loses frames
without a counted skip.

    python scripts/bench_damaged.py > /tmp/damaged.json      # about 3 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import bench_hostile

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
RECORDINGS: dict[str, tuple[Path, tuple[str, ...]]] = {  # name: (recording, files that go beside it)
    "ros1_bag": (DATA / "bags" / "ouster_512x10_raw.bag", ()),
    "rosbag2_sqlite": (DATA / "bags" / "nebula_velodyne_vlp16" / "1673400471837873222", ()),
    "velodyne_vlp16_pcap": (DATA / "pcap" / "velodyne_vlp16_test_50frames.pcap", ()),
    "velodyne_hdl32_pcap": (DATA / "pcap" / "velodyne_hdl32e_driving_example.pcap", ()),
    "ouster_pcap": (DATA / "pcap" / "ouster_OS-1-128_v2.3.0_1024x10_lb_n3.pcap",
                    ("ouster_OS-1-128_v2.3.0_1024x10.json",)),
    "mp4_video": (DATA / "video" / "udacity_vehicle_detection_test_video.mp4", ()),
    "mcap_sample_drive": (REPO / "data" / "sample_drive.mcap", ()),
}
DAMAGE = ("none", "cut25", "cut50", "cut90", "bit_flips", "zeroed_4k", "repeated_4k", "scrambled_header")


def damage(data: bytes, how: str, rng: random.Random) -> bytes:
    n = len(data)
    if how.startswith("cut"):
        return data[: n * int(how[3:]) // 100]
    out = bytearray(data)
    if how == "bit_flips":
        for _ in range(64):
            at = rng.randrange(64, n)
            out[at] ^= 1 << rng.randrange(8)
    elif how == "zeroed_4k":
        at = n * 2 // 5
        out[at:at + 4096] = bytes(len(out[at:at + 4096]))
    elif how == "repeated_4k":
        at = n // 2
        out[at:at] = out[at - 4096:at]
    elif how == "scrambled_header":
        out[8:200] = bytes(rng.randrange(256) for _ in range(len(out[8:200])))
    return bytes(out)


def _copy(name: str, how: str, root: Path) -> Path:
    """The recording damaged `how`, in a folder of its own (a rosbag2 folder: its .db3 file damaged)."""
    source, beside = RECORDINGS[name]
    folder = root / f"{name}-{how}"
    folder.mkdir()
    rng = random.Random(f"{name}/{how}")
    target = folder / source.name
    if source.is_dir():
        shutil.copytree(source, target)
        db3 = next(target.glob("*.db3"))
        db3.write_bytes(damage(db3.read_bytes(), how, rng))
    else:
        target.write_bytes(damage(source.read_bytes(), how, rng))
    for extra in beside:
        shutil.copy(source.parent / extra, folder)
    return target


def run(name: str, how: str, root: Path) -> dict[str, Any]:
    target = _copy(name, how, root)
    out = target.parent / "out"
    result = bench_hostile.run_case({"name": f"{name}/{how}", "argv": ["replay", str(target), "--out", str(out),
                                                                      "-q"]}, timeout=300)
    summary = out / "summary.json"
    frames = json.loads(summary.read_text()).get("frames_in") if summary.exists() else None
    shutil.rmtree(target.parent, ignore_errors=True)
    return {"recording": name, "damage": how, "outcome": result["outcome"], "frames": frames,
            "skipped": result.get("skipped", {}), "peak_rss_mb": result["peak_rss_mb"],
            "error": result["stderr_last"] if result["outcome"] in ("error", "crash") else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", nargs="+", default=list(RECORDINGS), choices=list(RECORDINGS))
    parser.add_argument("--damage", nargs="+", default=list(DAMAGE), choices=list(DAMAGE))
    args = parser.parse_args()
    missing = [n for n in args.recordings if not RECORDINGS[n][0].exists()]
    cases = []
    with tempfile.TemporaryDirectory(prefix="edgesift-damaged-") as tmp:
        for name in (n for n in args.recordings if n not in missing):
            for how in dict.fromkeys(["none", *args.damage]):  # the undamaged run first: the frames to compare
                cases.append(run(name, how, Path(tmp)))
                print(json.dumps(cases[-1]), file=sys.stderr, flush=True)
    whole = {c["recording"]: c["frames"] for c in cases if c["damage"] == "none"}
    for case in cases:
        case["frames_undamaged"] = whole.get(case["recording"])
    crashes = [f"{c['recording']}/{c['damage']}" for c in cases if c["outcome"] == "crash"]
    silent = [f"{c['recording']}/{c['damage']}" for c in cases if c["damage"] != "none"
              and c["outcome"] in ("ok", "recorded") and (c["frames"] or 0) < (c["frames_undamaged"] or 0)]
    print(json.dumps({"cases": cases, "crashes": crashes, "frames_lost_without_a_skip": silent,
                      "recordings_missing": missing}, indent=1))


if __name__ == "__main__":
    main()

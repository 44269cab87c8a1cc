#!/usr/bin/env python3
"""Convert the real KITTI drive in ../shared/data into the compact sample drive shipped in data/.

Camera frames (image_02, PNG) become JPEG CompressedImage messages; Velodyne scans become PointCloud2 messages,
every `--lidar-every`-th scan to stay under the repository's size budget (zstd chunk compression). Frame 77 of
the drive, whose scan is truncated at the source (lower laser rings missing), is appended at its real time.

With --faults (the default) a few real frames are given synthetic sensor faults so that the demo shows every
verdict; the list is written into the MCAP metadata record "edgesift.sample_faults" and data/README.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from mcap_ros2.writer import Writer

from agent.replay.msgs import COMPRESSED_IMAGE, POINT_CLOUD2, compressed_image_msg, point_cloud2_msg

T0_NS = 1_317_000_000_000_000_000  # nominal start (2011-09-26 UTC); KITTI's timestamps.txt is not in the source
CAMERA_TOPIC = "/kitti/camera_02/image/compressed"
LIDAR_TOPIC = "/kitti/velodyne/points"

# Synthetic faults applied to copies of real frames: index -> (kind, what is done).
CAMERA_FAULTS = {
    8: ("blur", "Gaussian blur, sigma 6 px"),
    13: ("occluded", "lower 60% of the lens covered by a dark smudge"),
    18: ("overexposed", "gain x4 (most pixels clip to white)"),
    19: ("frozen", "exact copy of frame 18's bytes (a stuck camera)"),
    24: ("underexposed", "gain x0.05 (near black)"),
}
LIDAR_FAULTS = {
    10: ("missing_sector", "points with azimuth in [30, 120) degrees removed"),
    20: ("nonfinite", "2% of points set to NaN"),
}


def apply_camera_fault(kind: str, image: np.ndarray) -> np.ndarray:
    if kind == "blur":
        return cv2.GaussianBlur(image, (0, 0), 6)
    if kind == "occluded":
        out = image.copy()
        h = image.shape[0]
        out[int(h * 0.4) :] = (out[int(h * 0.4) :] * 0.08).astype(np.uint8) + 12
        return out
    if kind == "overexposed":
        return np.clip(image.astype(np.float32) * 4.0, 0, 255).astype(np.uint8)
    if kind == "underexposed":
        return (image.astype(np.float32) * 0.05).astype(np.uint8)
    raise ValueError(kind)


def apply_lidar_fault(kind: str, points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if kind == "missing_sector":
        az = np.degrees(np.arctan2(points[:, 1], points[:, 0])) % 360.0
        return points[(az < 30.0) | (az >= 120.0)]
    if kind == "nonfinite":
        out = points.copy()
        rows = rng.choice(len(out), size=len(out) // 50, replace=False)
        out[rows, :3] = np.nan
        return out
    raise ValueError(kind)


def camera_frames(drive: Path, partial: Path, count: int) -> list[tuple[int, Path]]:
    frames = [(i, drive / "image_02" / "data" / f"{i:010d}.png") for i in range(count)]
    extra = partial / "image_02" / "data" / "0000000077.png"
    return [*frames, (77, extra)] if extra.exists() else frames


def lidar_frames(drive: Path, partial: Path, count: int, every: int) -> list[tuple[int, Path]]:
    frames = [(i, drive / "velodyne_points" / "data" / f"{i:010d}.bin") for i in range(0, count, every)]
    extra = partial / "velodyne_points" / "data" / "0000000077.bin"
    return [*frames, (77, extra)] if extra.exists() else frames


def build(args: argparse.Namespace) -> dict[str, object]:
    drive = args.kitti / "udacity_sfnd_sync"
    partial = args.kitti / "udacity_sfnd_partial_frame77"
    rng = np.random.default_rng(7)
    messages: list[tuple[int, str, dict[str, object]]] = []
    last_jpeg = b""
    for idx, path in camera_frames(drive, partial, args.frames):
        t_ns = T0_NS + idx * 100_000_000
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        fault = CAMERA_FAULTS.get(idx) if args.faults else None
        if fault and fault[0] == "frozen":
            jpeg = last_jpeg
        else:
            if fault:
                image = apply_camera_fault(fault[0], image)
            jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, args.jpeg_quality])[1].tobytes()
        last_jpeg = jpeg
        messages.append((t_ns, "camera", compressed_image_msg(t_ns, "camera_02", jpeg)))
    for idx, path in lidar_frames(drive, partial, args.frames, args.lidar_every):
        t_ns = T0_NS + idx * 100_000_000 + 50_000_000  # Velodyne scans end mid-way between camera triggers
        points = np.fromfile(path, dtype="<f4").reshape(-1, 4)
        fault = LIDAR_FAULTS.get(idx) if args.faults else None
        if fault:
            points = apply_lidar_fault(fault[0], points, rng)
        messages.append((t_ns, "lidar", point_cloud2_msg(t_ns, "velodyne", points.astype("<f4").tobytes())))
    messages.sort(key=lambda m: m[0])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("wb") as fh:
        writer = Writer(fh, chunk_size=4 * 1024 * 1024)
        cam_schema = writer.register_msgdef("sensor_msgs/msg/CompressedImage", COMPRESSED_IMAGE)
        pc_schema = writer.register_msgdef("sensor_msgs/msg/PointCloud2", POINT_CLOUD2)
        for seq, (t_ns, kind, msg) in enumerate(messages):
            topic, schema = (CAMERA_TOPIC, cam_schema) if kind == "camera" else (LIDAR_TOPIC, pc_schema)
            writer.write_message(topic, schema, msg, log_time=t_ns, publish_time=t_ns, sequence=seq)
        faults = {"camera": CAMERA_FAULTS, "lidar": LIDAR_FAULTS} if args.faults else {}
        writer._writer.add_metadata("edgesift.sample_faults", {"faults": json.dumps(faults)})
        writer.finish()
    return {"out": str(args.out), "messages": len(messages), "bytes": args.out.stat().st_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    here = Path(__file__).resolve().parent.parent
    parser.add_argument("--kitti", type=Path, default=here.parent / "shared/data/kitti/2011_09_26")
    parser.add_argument("--out", type=Path, default=here / "data/sample_drive.mcap")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--lidar-every", type=int, default=2)
    parser.add_argument("--jpeg-quality", type=int, default=88)
    parser.add_argument("--faults", action=argparse.BooleanOptionalAction, default=True)
    print(json.dumps(build(parser.parse_args())))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Build a LABELLED evaluation drive from real recordings, for `edgesift tune` and scripts/evaluate.py.

Writes into --out: drive.mcap (ROS 2, zstd chunks; one camera topic, CompressedImage JPEG, and one LiDAR topic,
PointCloud2 x y z intensity float32; log time = publish time = header stamp), labels.jsonl (one line per frame:
sensor and seq as `edgesift replay` numbers them, t_ns, modality, label helpful/useless/harmful, fault, segment,
bytes = the serialised message size the agent counts, source = the real frame shown) and drive.json (what was
built).

The drive alternates driving and stationary segments on one timeline for both sensors (it starts driving):
- driving, camera: real consecutive video frames at least --min-gap-s of source time apart, each used once (both
  Udacity videos, the 960x540 one upscaled to 1280x720: one camera sensor); helpful.
- driving, LiDAR: the real KITTI scans at least --lidar-min-gap-s apart (default 0.4 s: every 4th of the 10 Hz
  scans; consecutive 10 Hz scans of this stop-and-go drive are near-duplicates), each used once. When there are
  fewer scans than LiDAR driving slots (the default: 8 scans), they are spread evenly over the driving time and the
  slots between two new scans repeat the latest one with sensor noise (useless). Never rotated or looped.
- stationary: the last driving frame repeated with sensor noise (camera: Gaussian pixel noise sigma 2-3 and a
  +-1.5% brightness flicker, re-encoded; LiDAR: 1-2 cm range noise, 1-3% dropout); useless, the first one too.
- faults (harmful, replacing the frame at that position; in driving, that content is lost): about --fault-rate of
  each sensor's frames and at least one of each type, spread over driving and stationary segments. Camera: blur,
  occluded, overexposed, underexposed, frozen (exact byte copies of the previous frame, runs of 2-5), tearing,
  noise; LiDAR: sparse, sector_loss, nonfinite, lost_rings, noise (see _eval_drive_parts.FAULT_IMPL).
When the real content runs out before the requested driving time the driving time is shortened (never looped) and
the drive keeps its length, so the idle fraction rises (drive.json: idle_fraction.actual); with --shorten the
drive is shortened instead so that the requested idle fraction holds. ../shared/data as shipped holds 27 such
camera frames (videos of 221 and 38 frames at 25 fps) and 8 such scans: 13.5 s of driving at 2 Hz, so a 10-minute
drive is about 98% idle whatever --idle-fraction asks.

    python scripts/make_eval_drive.py --out /tmp/evaldrive/idle                      # 10 min, 85% idle
    python scripts/make_eval_drive.py --out /tmp/evaldrive/busy --minutes 3 --idle-fraction 0.3
    python scripts/make_eval_drive.py --out /tmp/small --source sample --minutes 0.5  # without ../shared
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
import _eval_drive_parts as parts
from _train_data import lidar_fault
from make_sample_drive import T0_NS as SAMPLE_T0_NS
from mcap_ros2._dynamic import serialize_dynamic
from mcap_ros2.writer import Writer

from agent.replay.msgs import COMPRESSED_IMAGE, POINT_CLOUD2, compressed_image_msg, point_cloud2_msg
from agent.sources.mcap_source import topic_sensor

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
T0_NS = 1_600_000_000_000_000_000  # nominal start (2020-09-13 12:26:40 UTC); the content's own times differ
CAMERA_TOPIC = "/camera_front/image/compressed"
LIDAR_TOPIC = "/lidar_top/points"
CAMERA_TYPE, LIDAR_TYPE = "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/PointCloud2"
CAMERA_SENSOR, LIDAR_SENSOR = topic_sensor(CAMERA_TOPIC), topic_sensor(LIDAR_TOPIC)  # as `edgesift replay` names
BATCH = 16  # frames rendered in parallel at a time (bounded memory)


def _overhead(datatype: str, text: str, msg: dict[str, object]) -> int:
    """Serialised size of `msg` minus its payload (the payload is the last variable part of both types)."""
    encode = serialize_dynamic(datatype, text)[datatype]
    return len(encode({**msg, "data": b""}))


def _plan(content: parts.Content, *, minutes: float, idle_fraction: float, camera_hz: float, lidar_hz: float,
          shorten: bool, fault_rate: float, segment_s: float, rng: np.random.Generator) -> dict[str, object]:
    duration = minutes * 60.0
    want = round(duration * (1.0 - idle_fraction) * camera_hz)
    n_drive = max(1, min(want, len(content.camera)))
    if shorten and n_drive < want:
        duration = n_drive / camera_hz / (1.0 - idle_fraction)
    n_cam = max(n_drive, round(duration * camera_hz))
    end_ns = T0_NS + round(n_cam * 1e9 / camera_hz)
    bounds, start = [], 0
    for kind, length in parts.segments(n_cam, n_drive, round(segment_s * camera_hz), rng):
        t_start = T0_NS + round(start * 1e9 / camera_hz)
        start += length
        bounds.append((kind, t_start, T0_NS + round(start * 1e9 / camera_hz)))
    cam_times = parts.slot_times(T0_NS, 0, camera_hz, end_ns)
    lidar_offset = round(0.25e9 / lidar_hz)  # scans fall between camera frames
    lidar_times = parts.slot_times(T0_NS, lidar_offset, lidar_hz, end_ns)
    cam = parts.sensor_slots(cam_times, bounds, len(content.camera))
    lidar = parts.sensor_slots(lidar_times, bounds, len(content.lidar))
    missing = parts.place_faults(cam, parts.CAMERA_FAULTS, fault_rate, rng)
    missing += parts.place_faults(lidar, parts.LIDAR_FAULTS, fault_rate, rng)
    if missing:
        print(f"warning: no room for fault types {missing} (the drive is too short)", file=sys.stderr)
    for slots in (cam, lidar):
        parts.label(slots)
    assert all(s.fault or s.label == "useless" for s in cam if s.segment == "stationary"), "stationary, not a repeat"
    return {"camera": cam, "lidar": lidar, "bounds": bounds, "duration_s": (end_ns - T0_NS) / 1e9,
            "driving_slots_wanted": want, "missing_fault_types": missing}


def build_drive(out_dir: Path, *, source: str = "shared", minutes: float = 10.0, idle_fraction: float = 0.85,
                camera_hz: float = 2.0, lidar_hz: float = 2.0, seed: int = 0, min_gap_s: float = 0.4,
                lidar_min_gap_s: float = 0.4, fault_rate: float = 0.065, shorten: bool = False,
                fault_impl: str = "auto", jpeg_quality: int = 90, segment_s: float = 4.0,
                shared_dir: Path | None = None) -> dict[str, object]:
    """Build drive.mcap, labels.jsonl and drive.json in out_dir; return what drive.json holds."""
    if not 0.0 <= idle_fraction < 1.0:
        raise ValueError("idle_fraction must be in [0, 1)")
    if min(minutes, camera_hz, lidar_hz) <= 0:
        raise ValueError("minutes, camera_hz and lidar_hz must be positive")
    started = time.perf_counter()
    if source == "shared":
        content = parts.shared_content(shared_dir or SHARED, min_gap_s, lidar_min_gap_s)
    elif source == "sample":
        content = parts.sample_content(REPO / "data" / "sample_drive.mcap", SAMPLE_T0_NS, min_gap_s, lidar_min_gap_s)
    else:
        raise ValueError(f"unknown source {source!r} (shared or sample)")
    if not content.camera or not content.lidar:
        raise ValueError(f"no camera or no LiDAR content in source {source!r}")
    impl = ("imagecorruptions" if parts.ic_available() else "cv2") if fault_impl == "auto" else fault_impl
    if impl == "imagecorruptions" and not parts.ic_available():
        raise ValueError("imagecorruptions is not installed (pip install -e '.[train]')")
    plan = _plan(content, minutes=minutes, idle_fraction=idle_fraction, camera_hz=camera_hz, lidar_hz=lidar_hz,
                 shorten=shorten, fault_rate=fault_rate, segment_s=segment_s,
                 rng=np.random.default_rng([seed, 1]))
    cam_slots, lidar_slots = plan["camera"], plan["lidar"]
    height, width = content.camera[0].shape[:2]

    def render(event: tuple[int, int, int]) -> bytes | None:
        _t, sensor, k = event
        rng = np.random.default_rng([seed, 2, sensor, k])
        if sensor == 0:
            slot = cam_slots[k]
            if slot.fault == "frozen":
                return None  # the writer repeats the previous frame's bytes
            image = content.camera[slot.content]
            image = image if slot.raw else parts.camera_repeat(image, rng)
            if slot.fault:
                other = content.camera[(slot.content + len(content.camera) // 2) % len(content.camera)]
                image = parts.camera_fault(image, slot.fault, rng, other, impl)
            return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])[1].tobytes()
        slot = lidar_slots[k]
        points = content.lidar[slot.content]
        points = points if slot.raw else parts.lidar_repeat(points, rng)
        if slot.fault:
            points = lidar_fault(points, slot.fault, rng)
        return points.astype("<f4").tobytes()

    events = sorted([(s.t_ns, 0, k) for k, s in enumerate(cam_slots)]
                    + [(s.t_ns, 1, k) for k, s in enumerate(lidar_slots)])
    cam_over = _overhead(CAMERA_TYPE, COMPRESSED_IMAGE, compressed_image_msg(0, CAMERA_SENSOR, b""))
    lidar_over = _overhead(LIDAR_TYPE, POINT_CLOUD2, point_cloud2_msg(0, LIDAR_SENSOR, b""))
    out_dir.mkdir(parents=True, exist_ok=True)
    labels, previous = [], b""
    with (out_dir / "drive.mcap").open("wb") as fh, ThreadPoolExecutor(max_workers=4) as pool:
        writer = Writer(fh, chunk_size=8 * 1024 * 1024)  # zstd chunk compression (the writer's default)
        cam_schema = writer.register_msgdef(CAMERA_TYPE, COMPRESSED_IMAGE)
        lidar_schema = writer.register_msgdef(LIDAR_TYPE, POINT_CLOUD2)
        for b in range(0, len(events), BATCH):
            batch = events[b: b + BATCH]
            for (t_ns, sensor, k), data in zip(batch, pool.map(render, batch), strict=True):
                if sensor == 0:
                    data = previous if data is None else data
                    previous = data
                    msg, topic, schema = compressed_image_msg(t_ns, CAMERA_SENSOR, data), CAMERA_TOPIC, cam_schema
                    slot, name, nbytes = cam_slots[k], CAMERA_SENSOR, cam_over + len(data)
                    src = content.camera_source[slot.content]
                else:
                    assert data is not None
                    msg, topic, schema = point_cloud2_msg(t_ns, LIDAR_SENSOR, data), LIDAR_TOPIC, lidar_schema
                    slot, name, nbytes = lidar_slots[k], LIDAR_SENSOR, lidar_over + len(data)
                    src = content.lidar_source[slot.content]
                writer.write_message(topic, schema, msg, log_time=t_ns, publish_time=t_ns, sequence=k)
                labels.append({"sensor": name, "seq": k, "t_ns": t_ns, "modality": ("camera", "lidar")[sensor],
                               "label": slot.label, "fault": slot.fault, "segment": slot.segment, "bytes": nbytes,
                               "source": src})
        writer.add_metadata("edgesift.eval_drive", {"labels": "labels.jsonl", "seed": str(seed)})
        writer.finish()
    with (out_dir / "labels.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row, separators=(",", ":")) + "\n" for row in labels)
    options = {"source": source, "minutes": minutes, "idle_fraction": idle_fraction, "camera_hz": camera_hz,
               "lidar_hz": lidar_hz, "min_gap_s": min_gap_s, "lidar_min_gap_s": lidar_min_gap_s,
               "fault_rate": fault_rate, "shorten": shorten, "fault_impl": fault_impl, "jpeg_quality": jpeg_quality,
               "segment_s": segment_s}
    summary = _summary(plan, labels, content, out_dir, impl, seed, options, (width, height))
    summary["build_s"] = round(time.perf_counter() - started, 2)
    (out_dir / "drive.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _counts(rows: list[dict[str, object]]) -> dict[str, object]:
    total = sum(int(r["bytes"]) for r in rows)  # type: ignore[call-overload]
    return {
        "frames": len(rows),
        "label": dict(Counter(str(r["label"]) for r in rows)),
        "fault": dict(Counter(str(r["fault"]) for r in rows if r["fault"])),
        "segment": dict(Counter(str(r["segment"]) for r in rows)),
        "bytes": total,
        "bytes_by_label": {k: sum(int(r["bytes"]) for r in rows if r["label"] == k)  # type: ignore[call-overload]
                           for k in ("helpful", "useless", "harmful")},
    }


def _summary(plan: dict, labels: list[dict[str, object]], content: parts.Content, out_dir: Path, impl: str,
             seed: int, options: dict[str, object], size: tuple[int, int]) -> dict[str, object]:
    duration = float(plan["duration_s"])
    driving_s = sum(end - start for kind, start, end in plan["bounds"] if kind == "driving") / 1e9
    camera = [r for r in labels if r["sensor"] == CAMERA_SENSOR]
    lidar = [r for r in labels if r["sensor"] == LIDAR_SENSOR]
    total = _counts(labels)
    useful = total["bytes_by_label"]["helpful"]  # type: ignore[index]
    return {
        "seed": seed,
        "options": options,
        "duration_s": round(duration, 3),
        "driving_s": round(driving_s, 3),
        "idle_fraction": {"requested": options["idle_fraction"], "actual": round(1 - driving_s / duration, 4)},
        "content_limited": len(content.camera) < int(plan["driving_slots_wanted"]),
        "missing_fault_types": plan["missing_fault_types"],
        "droppable_bytes_fraction": round(1 - useful / max(1, int(total["bytes"])), 4),  # type: ignore[call-overload]
        "file_bytes": (out_dir / "drive.mcap").stat().st_size,
        "sensors": {
            CAMERA_SENSOR: {"topic": CAMERA_TOPIC, "modality": "camera", "size": list(size), "hz": options["camera_hz"],
                            "content_frames": len(content.camera), **_counts(camera)},
            LIDAR_SENSOR: {"topic": LIDAR_TOPIC, "modality": "lidar", "hz": options["lidar_hz"],
                           "content_frames": len(content.lidar), **_counts(lidar)},
        },
        "total": total,
        "segments": [{"kind": k, "start_s": round((a - T0_NS) / 1e9, 3), "end_s": round((b - T0_NS) / 1e9, 3)}
                     for k, a, b in plan["bounds"]],
        "fault_impl": {"camera": impl, "camera_detail": parts.FAULT_IMPL[impl], "lidar": parts.FAULT_IMPL["lidar"]},
        "label_rule": "harmful: a fault was injected (fault = its type); helpful: the first clean frame showing its "
        "real source frame; useless: a repeat (with sensor noise) of a source frame already shown cleanly",
        "sources": content.sources,
        "licence": "derived from KITTI raw (CC BY-NC-SA 3.0): the drive is non-commercial, share-alike; "
        "Udacity videos MIT",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--source", choices=("shared", "sample"), default="shared",
                        help="../shared/data (default) or the repository's data/sample_drive.mcap")
    parser.add_argument("--shared-dir", type=Path, default=SHARED, help="where the shared data lies")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--idle-fraction", type=float, default=0.85, help="stationary share of the drive's time")
    parser.add_argument("--camera-hz", type=float, default=2.0)
    parser.add_argument("--lidar-hz", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-gap-s", type=float, default=0.4, help="source time between driving camera frames")
    parser.add_argument("--lidar-min-gap-s", type=float, default=0.4, help="source time between driving scans")
    parser.add_argument("--fault-rate", type=float, default=0.065, help="share of each sensor's frames faulted")
    parser.add_argument("--fault-impl", choices=("auto", "imagecorruptions", "cv2"), default="auto")
    parser.add_argument("--jpeg-quality", type=int, default=90)
    parser.add_argument("--segment-s", type=float, default=4.0, help="typical driving segment length")
    parser.add_argument("--shorten", action="store_true",
                        help="when the real content runs out, shorten the drive to keep --idle-fraction")
    a = parser.parse_args()
    summary = build_drive(a.out, source=a.source, minutes=a.minutes, idle_fraction=a.idle_fraction,
                          camera_hz=a.camera_hz, lidar_hz=a.lidar_hz, seed=a.seed, min_gap_s=a.min_gap_s,
                          lidar_min_gap_s=a.lidar_min_gap_s, fault_rate=a.fault_rate, shorten=a.shorten,
                          fault_impl=a.fault_impl, jpeg_quality=a.jpeg_quality, segment_s=a.segment_s,
                          shared_dir=a.shared_dir)
    print(json.dumps({k: summary[k] for k in ("duration_s", "idle_fraction", "file_bytes", "build_s")}
                     | {"labels": summary["total"]["label"], "faults": summary["total"]["fault"]}))


if __name__ == "__main__":
    main()

"""Parts of scripts/make_eval_drive.py: the real content, sensor noise, faults and the drive's frame-by-frame plan.

Label rule (per sensor, in time order): a faulted frame is harmful; otherwise a frame is helpful when it is the
first clean frame that shows its real source frame (its `content`), and useless when that content was already
shown cleanly (a stationary repeat with sensor noise).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import _train_data as td
import cv2
import numpy as np
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

CAMERA_FAULTS = ("blur", "occluded", "overexposed", "underexposed", "frozen", "tearing", "noise")
LIDAR_FAULTS = ("sparse", "sector_loss", "nonfinite", "lost_rings", "noise")
WARMUP = 3  # the first frames of each sensor are never faulted (per-sensor baselines need a few frames)
GAP = 3  # at least this many clean frames between two faults (or frozen runs) of one sensor
MAX_DRIVE_LOSS = 5  # at most one driving frame in this many is given a fault (driving content is scarce)
KITTI_HZ = 10.0  # nominal KITTI raw rate (the source has no timestamps.txt)
VIDEOS = ("udacity_lanelines_solidWhiteRight.mp4", "udacity_vehicle_detection_test_video.mp4")
KITTI_DIR = "kitti/2011_09_26/udacity_sfnd_sync"
CAMERA_SIZE = (1280, 720)  # every shared camera frame is brought to this size (one camera sensor)
LICENCES = {
    "kitti": "KITTI raw (Geiger et al., IJRR 2013), CC BY-NC-SA 3.0: non-commercial, attribution, share-alike",
    "udacity": "Udacity Self-Driving-Car ND video, MIT (Udacity)",
}
_IC_LOCK = threading.Lock()  # imagecorruptions draws from numpy's global RNG: seed and call under one lock


@dataclass
class Content:
    """The real frames a drive is made of, per modality, in source order; `source` names each one."""

    camera: list[np.ndarray]
    camera_source: list[str]
    lidar: list[np.ndarray]
    lidar_source: list[str]
    sources: list[dict[str, object]]


def _gap_pick(times: list[float], min_gap: float) -> list[int]:
    """Indices of `times` (one source, ascending) kept greedily so that kept ones are >= min_gap s apart."""
    kept: list[int] = []
    for i, t in enumerate(times):
        if not kept or t - times[kept[-1]] >= min_gap - 1e-9:
            kept.append(i)
    return kept


def shared_content(root: Path, min_gap_s: float, lidar_min_gap_s: float) -> Content:
    """Both Udacity videos (one frame per >= min_gap_s of source time, each used once, 960x540 upscaled to
    1280x720) and the KITTI scans (one per >= lidar_min_gap_s at the nominal 10 Hz, each used once)."""
    images, names, sources = [], [], []
    for video in VIDEOS:
        path = root / "video" / video
        cap = cv2.VideoCapture(str(path))
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        keep = _gap_pick([j / fps for j in range(len(frames))], min_gap_s)
        for j in keep:
            frame = frames[j]
            if frame.shape[1::-1] != CAMERA_SIZE:
                frame = cv2.resize(frame, CAMERA_SIZE, interpolation=cv2.INTER_CUBIC)
            images.append(frame)
            names.append(f"video/{video}#{j}")
        sources.append({"path": f"video/{video}", "modality": "camera", "frames": len(frames), "used": len(keep),
                        "fps": fps, "licence": LICENCES["udacity"]})
    bins = sorted((root / KITTI_DIR / "velodyne_points" / "data").glob("*.bin"))
    keep = _gap_pick([int(p.stem) / KITTI_HZ for p in bins], lidar_min_gap_s)
    scans = [np.fromfile(bins[i], dtype="<f4").reshape(-1, 4) for i in keep]
    sources.append({"path": f"{KITTI_DIR}/velodyne_points", "modality": "lidar", "frames": len(bins),
                    "used": len(keep), "licence": LICENCES["kitti"]})
    return Content(images, names, scans, [f"{KITTI_DIR}/velodyne_points/{bins[i].name}" for i in keep], sources)


def sample_content(mcap: Path, t0_ns: int, min_gap_s: float, lidar_min_gap_s: float) -> Content:
    """The repository's sample drive: its real KITTI frames minus the ones it faulted (and scan 77, truncated at
    the source), by KITTI frame number (10 Hz nominal, scans 50 ms after the camera frame)."""
    camera: dict[int, np.ndarray] = {}
    lidar: dict[int, np.ndarray] = {}
    with mcap.open("rb") as fh:
        reader = make_reader(fh, decoder_factories=[DecoderFactory()])
        faults = json.loads(next(m for m in reader.iter_metadata() if m.name == "edgesift.sample_faults")
                            .metadata["faults"])
    with mcap.open("rb") as fh:
        reader = make_reader(fh, decoder_factories=[DecoderFactory()])
        for schema, _channel, message, ros in reader.iter_decoded_messages():
            if schema is not None and schema.name.endswith("CompressedImage"):
                idx = round((message.log_time - t0_ns) / 1e8)
                if str(idx) not in faults["camera"]:
                    camera[idx] = cv2.imdecode(np.frombuffer(bytes(ros.data), np.uint8), cv2.IMREAD_COLOR)
            else:
                idx = round((message.log_time - t0_ns - 50_000_000) / 1e8)
                if str(idx) not in faults["lidar"] and idx != 77:
                    lidar[idx] = np.frombuffer(bytes(ros.data), dtype="<f4").reshape(-1, 4).copy()
    cam_idx, lid_idx = sorted(camera), sorted(lidar)
    cam_idx = [cam_idx[i] for i in _gap_pick([i / KITTI_HZ for i in cam_idx], min_gap_s)]
    lid_idx = [lid_idx[i] for i in _gap_pick([i / KITTI_HZ for i in lid_idx], lidar_min_gap_s)]
    sources = [{"path": "data/sample_drive.mcap", "modality": m, "frames": len(d), "used": len(u),
                "licence": LICENCES["kitti"]} for m, d, u in (("camera", camera, cam_idx), ("lidar", lidar, lid_idx))]
    return Content([camera[i] for i in cam_idx], [f"sample_drive.mcap#camera/kitti{i}" for i in cam_idx],
                   [lidar[i] for i in lid_idx], [f"sample_drive.mcap#lidar/kitti{i}" for i in lid_idx], sources)


# --- sensor noise of a stationary repeat ---

def camera_repeat(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same view again: Gaussian pixel noise (sigma 2-3 grey levels) and a slight brightness flicker."""
    gain, lift, sigma = rng.uniform(0.985, 1.015), rng.uniform(-1.5, 1.5), rng.uniform(2.0, 3.0)
    noisy = image.astype(np.float32) * gain + lift + rng.standard_normal(image.shape, dtype=np.float32) * sigma
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def lidar_repeat(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same scene again: 1-3% of the returns missing, 1-2 cm range noise along each ray."""
    out = points[rng.random(len(points)) >= rng.uniform(0.01, 0.03)].copy()
    rng_m = np.maximum(np.linalg.norm(out[:, :3], axis=1), 0.1)
    noise = rng.normal(0.0, rng.uniform(0.01, 0.02), len(out)).astype(np.float32)
    out[:, :3] *= (1.0 + noise / rng_m)[:, None]
    return out


# --- faults ---

def ic_available() -> bool:
    try:
        import imagecorruptions  # noqa: F401
    except ImportError:
        return False
    return True


FAULT_IMPL = {
    "imagecorruptions": "scripts/_train_data.camera_fault at the frame's full size: blur = imagecorruptions "
    "defocus/motion/gaussian/zoom blur severity 3-5, noise = gaussian/shot/impulse noise severity 3-5, occluded = "
    "dark/brown blobs or band (75%) or spatter severity 5 (25%); over/under-exposed gain, tearing as in "
    "_train_data; frozen = exact byte copy of the previous frame (runs of 2-5)",
    "cv2": "cv2 fallback (imagecorruptions not importable or not chosen): blur = Gaussian sigma 4-8 px, noise = "
    "Gaussian sigma 25-40 grey levels, occluded = _train_data._occlude; over/under-exposed and tearing as in "
    "_train_data; frozen = exact byte copy of the previous frame (runs of 2-5)",
    "lidar": "scripts/_train_data.lidar_fault: sparse (10-55% of points kept), sector_loss (50-200 deg), nonfinite "
    "(0.5-20% NaN/inf), lost_rings (lower 30-60% of the elevation span removed), noise (0.4-1.5 m on 40-100%)",
}


def camera_fault(image: np.ndarray, fault: str, rng: np.random.Generator, other: np.ndarray, impl: str) -> np.ndarray:
    if impl == "imagecorruptions" and fault in ("blur", "noise", "occluded"):
        with _IC_LOCK:
            np.random.seed(int(rng.integers(2**32)))  # imagecorruptions uses numpy's global RNG
            return td.camera_fault(image, fault, rng, other)
    if fault == "blur":
        return cv2.GaussianBlur(image, (0, 0), rng.uniform(4.0, 8.0))
    if fault == "noise":
        noise = rng.standard_normal(image.shape, dtype=np.float32) * rng.uniform(25.0, 40.0)
        return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if fault == "occluded":
        return td._occlude(image, rng)
    return td.camera_fault(image, fault, rng, other)


# --- the plan ---

@dataclass
class Slot:
    """One frame of one sensor: when, in which segment, which real frame it shows, raw or a noisy repeat."""

    t_ns: int
    segment: str
    content: int
    raw: bool
    fault: str | None = None
    label: str = ""


def segments(n_slots: int, n_drive: int, segment_slots: int, rng: np.random.Generator) -> list[tuple[str, int]]:
    """(kind, length in camera slots) alternating driving / stationary, starting with driving."""
    n_stat = n_slots - n_drive
    k = max(1, min(max(1, n_drive // 3), max(2, round(n_drive / max(segment_slots, 1)))))
    k = min(k, n_stat) if n_stat else 1

    def split(total: int, parts: int, minimum: int) -> list[int]:
        spare = total - minimum * parts
        weights = rng.uniform(0.6, 1.4, parts)
        sizes = [minimum + int(spare * w / weights.sum()) for w in weights]
        sizes[-1] += total - sum(sizes)
        return sizes

    drive, stat = split(n_drive, k, 3 if n_drive >= 3 * k else 1), split(n_stat, k, 1)
    out: list[tuple[str, int]] = []
    for d, s in zip(drive, stat, strict=True):
        out += [("driving", d)] * (d > 0) + [("stationary", s)] * (s > 0)
    return out


def sensor_slots(times: list[int], bounds: list[tuple[str, int, int]], n_content: int) -> list[Slot]:
    """Slots at `times`: driving ones advance through the content (spread evenly when it is shorter than the
    driving time, the slots between new frames repeating the latest), stationary ones repeat the latest."""
    kinds = []
    b = 0
    for t in times:
        while b + 1 < len(bounds) and t >= bounds[b][2]:
            b += 1
        kinds.append(bounds[b][0])
    n_drive = kinds.count("driving")
    slots, current, m = [], 0, 0
    for t, kind in zip(times, kinds, strict=True):
        previous = current if slots else -1
        if kind == "driving":
            current = m if n_content >= n_drive else m * n_content // n_drive
            m += 1
        slots.append(Slot(t, kind, current, current != previous))
    return slots


def place_faults(slots: list[Slot], types: tuple[str, ...], rate: float, rng: np.random.Generator) -> list[str]:
    """Give about `rate` of the slots a fault (at least one of each type), spread evenly over the stationary and
    the driving slots; never in the first WARMUP slots nor on the last slot of a driving segment (the stationary
    repeats after it must show a scene that was seen cleanly), GAP clean slots around each fault. Returns the
    fault types that found no room (a drive too short)."""
    n = len(slots)
    last_drive = {i for i in range(n) if slots[i].segment == "driving"
                  and (i + 1 == n or slots[i + 1].segment != "driving")}
    ok = [i >= WARMUP and i not in last_drive for i in range(n)]
    groups = {kind: [i for i in range(n) if ok[i] and slots[i].segment == kind] for kind in ("driving", "stationary")}
    per_fault = (len(types) + 2.5 * ("frozen" in types)) / len(types)  # a frozen run is 2-5 frames
    total = max(len(types), round(rate * n / per_fault))
    share = sum(s.segment == "driving" for s in slots) / max(n, 1)
    n_drive = min(max(1, round(total * max(share, 0.25))), len(groups["driving"]) // MAX_DRIVE_LOSS)
    if not groups["stationary"]:
        n_drive = min(total, len(groups["driving"]) // MAX_DRIVE_LOSS)
    order: list[str] = []
    while len(order) < total:
        order += [str(t) for t in rng.permutation(types)]
    busy = np.zeros(n, bool)

    def fits(i: int, length: int, gap: int = GAP) -> bool:
        run = range(i, i + length)
        return (i + length <= n and all(ok[j] and slots[j].segment == slots[i].segment for j in run)
                and not busy[max(0, i - gap): i + length + gap].any())

    missed: list[str] = []
    for kind, faults in (("driving", order[:n_drive]), ("stationary", order[n_drive:total])):
        cands = groups[kind]
        for s, fault in enumerate(faults):
            lo, hi = len(cands) * s // len(faults), len(cands) * (s + 1) // len(faults)
            stratum = [cands[j] for j in rng.permutation(range(lo, hi))]
            if not _put(slots, busy, fault, [*stratum, *(cands[j] for j in rng.permutation(len(cands)))], fits, rng):
                missed.append(fault)
    everywhere = [int(i) for i in rng.permutation([*groups["stationary"], *groups["driving"]])]
    for fault in dict.fromkeys(missed):  # a short drive: one of each type wherever it fits, 1 clean frame apart
        if not any(slot.fault == fault for slot in slots):
            _put(slots, busy, fault, everywhere, lambda i, length: fits(i, length, 1), rng, short=True)
    return sorted(set(types) - {str(slot.fault) for slot in slots})


def _put(slots: list[Slot], busy: np.ndarray, fault: str, candidates: list[int], fits: Callable[[int, int], bool],
         rng: np.random.Generator, short: bool = False) -> bool:
    length = (2 if short else int(rng.integers(2, 6))) if fault == "frozen" else 1
    pick = next((i for i in candidates if fits(i, length)), None)
    if pick is None:
        return False
    for j in range(pick, pick + length):
        slots[j].fault = fault
    busy[pick: pick + length] = True
    return True


def label(slots: list[Slot]) -> None:
    seen: set[int] = set()
    for slot in slots:
        if slot.fault:
            slot.label = "harmful"
        elif slot.content not in seen:
            slot.label = "helpful"
            seen.add(slot.content)
        else:
            slot.label = "useless"


def slot_times(t0_ns: int, offset_ns: int, hz: float, end_ns: int) -> list[int]:
    n = max(0, math.ceil((end_ns - t0_ns - offset_ns) * hz / 1e9 - 1e-9))
    return [t0_ns + offset_ns + round(k * 1e9 / hz) for k in range(n)]

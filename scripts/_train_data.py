"""Real frames from ../shared/data and the faults applied to them, shared by training and evaluation.

Split (fixed, by source and position, so that held-out frames are never seen in training):
camera: KITTI image_02 0-19 train / 20-29 held out; BDD and nuScenes stills sorted by name, last 2 of each held
out; each highway video's last 20% of frames held out. LiDAR: KITTI scans 0-19 train / 20-29 held out.
Camera faults are applied at the analysis resolution (320 px wide, what the reduced JPEG decode yields for a
1280 px frame at 1/4), so fault strengths are relative to that scale. Only severities 3-5 of ImageNet-C are
used: severities 1-2 are often invisible, and labelling them harmful would teach the model noise.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KITTI = SHARED / "kitti" / "2011_09_26" / "udacity_sfnd_sync"
KITTI77 = SHARED / "kitti" / "2011_09_26" / "udacity_sfnd_partial_frame77"
WORK_WIDTH = 320

CAMERA_FAULTS = ("ok", "blur", "noise", "overexposed", "underexposed", "occluded", "tearing", "compression")
LIDAR_FAULTS = ("ok", "sparse", "sector_loss", "noise", "nonfinite", "lost_rings")


def _video_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return frames
        frames.append(frame)


def _work(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(image, (WORK_WIDTH, round(h * WORK_WIDTH / w)), interpolation=cv2.INTER_AREA)


def camera_split(video_step: int = 2) -> dict[str, list[tuple[str, np.ndarray]]]:
    """{'train': [(name, image at work width)], 'test': [...]} of real camera frames."""
    out: dict[str, list[tuple[str, np.ndarray]]] = {"train": [], "test": []}
    for i in range(30):
        image = cv2.imread(str(KITTI / "image_02" / "data" / f"{i:010d}.png"))
        out["train" if i < 20 else "test"].append((f"kitti/{i}", _work(image)))
    for folder, tag in ((SHARED / "camera" / "bdd100k_yolop", "bdd"), (next((SHARED / "nuscenes").iterdir()), "nus")):
        files = sorted(folder.glob("*.jpg"))
        for j, f in enumerate(files):
            out["train" if j < len(files) - 2 else "test"].append((f"{tag}/{f.stem[:24]}", _work(cv2.imread(str(f)))))
    for video in sorted((SHARED / "video").glob("*.mp4")):
        frames = _video_frames(video)
        cut = int(len(frames) * 0.8)
        for j, frame in enumerate(frames):
            if j < cut and j % video_step == 0:
                out["train"].append((f"{video.stem[:20]}/{j}", _work(frame)))
            elif j >= cut:
                out["test"].append((f"{video.stem[:20]}/{j}", _work(frame)))
    return out


def _ic(name: str, severity: int) -> Callable[[np.ndarray], np.ndarray]:
    def apply(image: np.ndarray) -> np.ndarray:
        from imagecorruptions import corrupt

        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = corrupt(rgb, corruption_name=name, severity=severity)
        return cv2.cvtColor(np.asarray(out, dtype=np.uint8)[: image.shape[0], : image.shape[1]], cv2.COLOR_RGB2BGR)

    return apply


def _gain(image: np.ndarray, gain: float, lift: float = 0.0) -> np.ndarray:
    return np.clip(image.astype(np.float32) * gain + lift, 0, 255).astype(np.uint8)


def _occlude(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A covered or soiled lens: dark/brown blurred blobs over 30-80% of the view, or a darkened lower band."""
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.float32)
    if rng.random() < 0.4:
        mask[int(h * rng.uniform(0.2, 0.6)):] = 1.0
    else:
        for _ in range(int(rng.integers(2, 6))):
            center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            axes = (int(rng.uniform(0.15, 0.45) * w), int(rng.uniform(0.3, 0.8) * h))
            cv2.ellipse(mask, center, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 3 + 5 * rng.random())[..., None]
    colour = np.array(rng.choice([[10, 10, 10], [30, 50, 70], [60, 60, 60]]), np.float32)
    return (image * (1 - 0.95 * mask) + colour * 0.95 * mask).astype(np.uint8)


def _tear(image: np.ndarray, rng: np.random.Generator, other: np.ndarray) -> np.ndarray:
    """Tearing: the frame below a row comes from another frame, is shifted sideways, or is decoder garbage."""
    h, w = image.shape[:2]
    out = image.copy()
    row = int(h * rng.uniform(0.2, 0.7))
    kind = rng.integers(0, 3)
    if kind == 0:
        out[row:] = cv2.resize(other, (w, h))[row:]
    elif kind == 1:
        out[row:] = np.roll(image[row:], int(w * rng.uniform(0.15, 0.5)), axis=1)
    else:
        out[row:] = np.array(rng.choice([[0, 128, 0], [128, 128, 128], [255, 0, 255]]), np.uint8)
    return out


def camera_fault(image: np.ndarray, fault: str, rng: np.random.Generator, other: np.ndarray) -> np.ndarray:
    """`image` (BGR at work width) with `fault` applied at a random severity; 'ok' gets a mild benign change."""
    sev = int(rng.integers(3, 6))
    if fault == "ok":
        out = _gain(image, rng.uniform(0.8, 1.2), rng.uniform(-10, 10))
        return out[:, ::-1].copy() if rng.random() < 0.5 else out
    if fault == "blur":
        name = str(rng.choice(["defocus_blur", "motion_blur", "gaussian_blur", "zoom_blur"]))
        return _ic(name, sev)(image)
    if fault == "noise":
        return _ic(str(rng.choice(["gaussian_noise", "shot_noise", "impulse_noise"])), sev)(image)
    if fault == "overexposed":
        return _gain(image, rng.uniform(3.0, 8.0), rng.uniform(0, 60))
    if fault == "underexposed":
        return _gain(image, rng.uniform(0.02, 0.12))
    if fault == "occluded":
        return _ic("spatter", 5)(image) if rng.random() < 0.25 else _occlude(image, rng)
    if fault == "tearing":
        return _tear(image, rng, other)
    if fault == "compression":
        return _ic(str(rng.choice(["jpeg_compression", "pixelate"])), int(rng.integers(4, 6)))(image)
    raise ValueError(fault)


def kitti_scans(indices: range | list[int]) -> list[np.ndarray]:
    return [np.fromfile(KITTI / "velodyne_points" / "data" / f"{i:010d}.bin", np.float32).reshape(-1, 4)
            for i in indices]


def kitti_scan77() -> np.ndarray:
    return np.fromfile(KITTI77 / "velodyne_points" / "data" / "0000000077.bin", np.float32).reshape(-1, 4)


def lidar_augment(points: np.ndarray, rng: np.random.Generator, yaw_max: float = np.pi) -> np.ndarray:
    """A benign variant: rotation about z, small shift, mirror, 85-100% of the points kept."""
    yaw = rng.uniform(-yaw_max, yaw_max)
    c, s = np.cos(yaw), np.sin(yaw)
    out = points[rng.random(len(points)) < rng.uniform(0.85, 1.0)].copy()
    x, y = out[:, 0].copy(), out[:, 1].copy()
    out[:, 0] = c * x - s * y + rng.uniform(-1, 1) * (yaw_max > 0.1)
    out[:, 1] = s * x + c * y
    if rng.random() < 0.5 and yaw_max > 0.1:
        out[:, 1] *= -1
    return out


def lidar_fault(points: np.ndarray, fault: str, rng: np.random.Generator) -> np.ndarray:
    out = points.copy()
    if fault == "ok":
        return out
    if fault == "sparse":
        return out[rng.random(len(out)) < rng.uniform(0.1, 0.55)]
    if fault == "sector_loss":
        az = np.degrees(np.arctan2(out[:, 1], out[:, 0]))
        start, width = rng.uniform(-180, 180), rng.uniform(50, 200)
        return out[((az - start) % 360) > width]
    if fault == "noise":
        hit = rng.random(len(out)) < rng.uniform(0.4, 1.0)
        out[hit, :3] += rng.normal(0, rng.uniform(0.4, 1.5), (int(hit.sum()), 3)).astype(np.float32)
        return out
    if fault == "nonfinite":
        hit = rng.random(len(out)) < rng.uniform(0.005, 0.2)
        out[hit, int(rng.integers(0, 3))] = np.float32(np.nan if rng.random() < 0.8 else np.inf)
        return out
    if fault == "lost_rings":
        rng_xy = np.hypot(out[:, 0], out[:, 1])
        elev = np.degrees(np.arctan2(out[:, 2], rng_xy))
        lo, hi = np.percentile(elev, [1, 99])
        cut = lo + (hi - lo) * rng.uniform(0.3, 0.6)  # the lower rings are gone, as in KITTI scan 77
        return out[elev > cut]
    raise ValueError(fault)

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
        # impulse_noise (through scikit-image) draws from an unseeded generator unless given a seed; the other
        # corruptions use numpy's global one, which the scripts seed.
        kwargs = {"seed": int(np.random.randint(2**31))} if name == "impulse_noise" else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = corrupt(rgb, corruption_name=name, severity=severity, **kwargs)
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


def lidar_fault(points: np.ndarray, fault: str, rng: np.random.Generator, start: float | None = None
                ) -> np.ndarray:
    """`points` with `fault`; `start`: where a lost sector begins (degrees; drawn anywhere on the circle if None)."""
    out = points.copy()
    if fault == "ok":
        return out
    if fault == "sparse":
        return out[rng.random(len(out)) < rng.uniform(0.1, 0.55)]
    if fault == "sector_loss":
        az = np.degrees(np.arctan2(out[:, 1], out[:, 0]))
        start = rng.uniform(-180, 180) if start is None else start
        width = rng.uniform(50, 200)
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


# -- training-only additions (camera_split, camera_fault and _tear above are what evaluation uses; unchanged) --------

KITTI_OBJECT = SHARED / "kitti" / "object_000008_mmdet3d"


def camera_train_frames(video_step: int = 1, grey: bool = True, extra: bool = True,
                        val_fraction: float = 0.0) -> dict[str, list[tuple[str, np.ndarray]]]:
    """The training side of camera_split(video_step) (never a held-out frame), plus more clean real frames:
    with `grey`, KITTI image_00 frames 0-9 (the greyscale camera, as 3 equal channels; the same instants as
    image_02 frames 0-9, which are training frames); with `extra`, KITTI image_02 frame 77 (same drive, after the
    held-out 20-29) and the KITTI object-benchmark frame 000008.

    {'train': [...], 'val': [...]}: with `val_fraction` > 0, a validation split carved from these training
    frames, at the end of each source's training part (as the held-out split is at the end of each source):
    KITTI image_02 frames from 20 * (1 - val_fraction), the last still by name of BDD and of nuScenes, and each
    video's frames from (0.8 - 0.8 * val_fraction) of its length on (0.6 for val_fraction 0.25), every frame
    whatever `video_step`. The greyscale and extra frames stay in 'train'."""
    frames = camera_split(video_step=1)["train"]
    out: dict[str, list[tuple[str, np.ndarray]]] = {"train": [], "val": []}
    lengths = {v.stem[:20]: int(cv2.VideoCapture(str(v)).get(cv2.CAP_PROP_FRAME_COUNT))
               for v in (SHARED / "video").glob("*.mp4")}
    last_still = {tag: max(k for k, (n, _) in enumerate(frames) if n.startswith(tag + "/")) for tag in ("bdd", "nus")}
    for k, (name, image) in enumerate(frames):
        tag, index = name.split("/", 1)
        if not val_fraction:
            val = False
        elif tag == "kitti":
            val = int(index) >= round(20 * (1 - val_fraction))
        elif tag in last_still:
            val = k == last_still[tag]  # camera_split lists the stills sorted by file name
        else:
            val = int(index) >= int(lengths[tag] * 0.8 * (1 - val_fraction))
        if val:
            out["val"].append((name, image))  # every video frame, whatever video_step, so that runs compare
        elif tag in lengths and int(index) % video_step:
            continue
        else:
            out["train"].append((name, image))
    if grey:
        for i in range(10):
            image = cv2.imread(str(KITTI / "image_00" / "data" / f"{i:010d}.png"), cv2.IMREAD_COLOR)
            out["train"].append((f"kitti_grey/{i}", _work(image)))
    if extra:
        out["train"].append(("kitti/77", _work(cv2.imread(str(KITTI77 / "image_02" / "data" / "0000000077.png")))))
        out["train"].append(("kitti_object/8", _work(cv2.imread(str(KITTI_OBJECT / "000008.png")))))
    return out


def cast_shadow(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A benign hard shadow, as cast on a sunlit road by an overpass, a pole, a sign or trees: 1-3 dark bands
    (any angle, often near-horizontal and across the whole width, often diagonal), polygons or dappled blobs,
    mostly below a horizon, darkened to 30-70% (slightly blue, as skylight fills shadows), hard or soft edges."""
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.random()
        if kind < 0.5:  # a straight band: overpass, bridge, building edge (wide) or pole, sign post (narrow)
            angle = np.radians(rng.uniform(-15, 15) if rng.random() < 0.5 else rng.uniform(-75, 75))
            thick = h * (rng.uniform(0.08, 0.5) if rng.random() < 0.6 else rng.uniform(0.02, 0.08))
            cy, cx = h * rng.uniform(0.25, 1.0), w * rng.uniform(0.0, 1.0)
            d = (np.arange(h)[:, None] - cy) * np.cos(angle) - (np.arange(w)[None, :] - cx) * np.sin(angle)
            band = np.abs(d) <= thick / 2
            if rng.random() < 0.3:  # a band that ends (the shadow of a sign or gantry, not of a whole bridge)
                along = (np.arange(h)[:, None] - cy) * np.sin(angle) + (np.arange(w)[None, :] - cx) * np.cos(angle)
                band &= np.abs(along) <= w * rng.uniform(0.2, 0.6)
            mask[band] = 1.0
        elif kind < 0.8:  # a polygon: a building, a truck
            n = int(rng.integers(3, 8))
            cx, cy = w * rng.uniform(0, 1), h * rng.uniform(0.3, 1.0)
            r = rng.uniform(0.1, 0.45) * w
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            pts = np.stack([cx + r * rng.uniform(0.4, 1.0, n) * np.cos(ang),
                            cy + 0.6 * r * rng.uniform(0.4, 1.0, n) * np.sin(ang)], 1)
            cv2.fillPoly(mask, [pts.astype(np.int32)], 1.0)
        else:  # dappled tree shadow: many small blobs in one area
            cx, cy = w * rng.uniform(0, 1), h * rng.uniform(0.4, 1.0)
            for _ in range(int(rng.integers(10, 40))):
                c = (int(cx + rng.normal(0, w * 0.15)), int(cy + rng.normal(0, h * 0.12)))
                axes = (int(rng.uniform(2, w * 0.06)), int(rng.uniform(1, h * 0.05)))
                cv2.ellipse(mask, c, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    if rng.random() < 0.85:  # on the ground: below a horizon (an overpass darkens the whole view, sometimes)
        mask[: int(h * rng.uniform(0.3, 0.6))] = 0.0
    soft = rng.choice([0.0, 0.0, 0.7, 1.5, 3.0])
    if soft:
        mask = cv2.GaussianBlur(mask, (0, 0), float(soft))
    dark = rng.uniform(0.3, 0.7)
    tint = np.array([1.0 + rng.uniform(0, 0.15), 1.0, 1.0 - rng.uniform(0, 0.1)], np.float32)  # BGR: bluish
    factor = 1.0 - mask[..., None] * (1.0 - dark * tint)
    return np.clip(image.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def _row_jump(image: np.ndarray, row: int) -> float:
    """How much row `row` differs from the row above, over the median of the image's row-to-row differences."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    diffs = np.abs(np.diff(grey, axis=0)).mean(1)
    return float(diffs[row - 1] / max(np.median(diffs), 1.0))


def _tear_more(image: np.ndarray, rng: np.random.Generator, other: np.ndarray) -> np.ndarray:
    """More kinds of tearing, for training: a discontinuity across the whole width at one row (sometimes two),
    below which the picture is another frame with the brightness of this one (so that the cue is the broken
    structure, not a change of brightness, which a shadow makes too), this frame shifted sideways and/or
    vertically, the last good row smeared down (decoder error concealment), or blocky garbage. Redrawn until
    the row is a clear jump (3x the frame's median row-to-row difference), so the label is never invisible."""
    h, w = image.shape[:2]
    out = image
    for _ in range(8):
        out = image.copy()
        row = int(h * rng.uniform(0.15, 0.85))
        end = h if rng.random() < 0.75 else int(rng.uniform(row + 0.1 * h, h))
        kind = rng.choice(4, p=[0.35, 0.35, 0.15, 0.15])
        if kind == 0:
            part = cv2.resize(other, (w, h))[row:end].astype(np.float32)
            ref = image[row:end].astype(np.float32)
            part = (part - part.mean((0, 1))) / (part.std((0, 1)) + 1) * ref.std((0, 1)) + ref.mean((0, 1))
            out[row:end] = np.clip(part, 0, 255).astype(np.uint8)
        elif kind == 1:
            dy = int(rng.integers(-h // 6, h // 6 + 1)) if rng.random() < 0.5 else 0
            src = np.roll(np.roll(image, int(w * rng.uniform(0.05, 0.5)) * rng.choice([-1, 1]), axis=1), dy, axis=0)
            out[row:end] = src[row:end]
        elif kind == 2:
            out[row:end] = image[row - 1]
        else:
            block = int(rng.choice([8, 16]))
            garbage = rng.integers(0, 256, ((end - row) // block + 1, w // block + 1, 3)).astype(np.uint8)
            garbage = cv2.resize(garbage, (garbage.shape[1] * block, garbage.shape[0] * block),
                                 interpolation=cv2.INTER_NEAREST)[: end - row, :w]
            out[row:end] = (garbage * rng.uniform(0.3, 1.0)).astype(np.uint8)
        if _row_jump(out, row) >= 3.0:
            return out
    return out


def camera_train_fault(image: np.ndarray, fault: str, rng: np.random.Generator, other: np.ndarray,
                       shadow_ok: float = 0.4, shadow_fault: float = 0.4, tear_more: float = 0.5,
                       grey: float = 0.05, jitter: float = 0.5) -> np.ndarray:
    """camera_fault for training. The benign changes are applied to the clean frame first, with the same odds
    whatever the fault, so that none of them tells the classes apart: a gain of 0.8-1.2 and a lift of +-10
    (`jitter`), a cast shadow (`shadow_ok` for 'ok', `shadow_fault` for the others), greyscale (a mono camera).
    (camera_fault gives every 'ok' sample a gain change and no faulted one: a model trained on it learned that an
    untouched frame is suspicious, and called unseen clean frames harmful.) `tear_more` of the tearing samples
    come from _tear_more. Mirroring is left to the training's random views."""
    base = _gain(image, rng.uniform(0.8, 1.2), rng.uniform(-10, 10)) if rng.random() < jitter else image
    if rng.random() < (shadow_ok if fault == "ok" else shadow_fault):
        base = cast_shadow(base, rng)
    if rng.random() < grey:
        base = cv2.cvtColor(cv2.cvtColor(base, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if fault == "ok":
        return base
    if fault == "tearing" and rng.random() < tear_more:
        return _tear_more(base, rng, other)
    return camera_fault(base, fault, rng, other)

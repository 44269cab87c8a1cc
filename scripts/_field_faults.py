"""The field fault set: what real cameras and LiDARs do wrong, applied to real frames (see _field_data.py).

Camera: lens contamination (water drops, mud, smear), partial and full occlusion, colour faults (a dead channel,
swapped channels, raw Bayer passed through undemosaiced), tearing and packet loss, frozen/repeated frames,
exposure runaway (both ways), blur, sensor noise, compression damage. LiDAR: blocked and missing sectors, lost
rings, frozen/repeated scans, geometry broken by a calibration or driver fault, clutter/crosstalk, dropouts,
scattered points, non-finite values.

`TRAINED` lists the fault kinds the shipped proxy models were trained on (scripts/_train_data.py); every other
kind here is one no model has seen, which is what leave-one-fault-type-out asks for.
"""

from __future__ import annotations

import cv2
import numpy as np
from _train_data import _occlude, _tear, camera_fault, lidar_fault

CAMERA_FIELD_FAULTS = ("blur", "noise", "overexposed", "underexposed", "occluded", "tearing", "compression",
                       "water_drops", "mud", "smear", "black", "channel_dead", "channel_swap", "raw_bayer",
                       "packet_loss", "frozen")
LIDAR_FIELD_FAULTS = ("sparse", "sector_loss", "noise", "nonfinite", "lost_rings", "blocked_sector", "frozen",
                      "calibration_tilt", "driver_garbage", "crosstalk", "empty")
TRAINED = {"camera": {"blur", "noise", "overexposed", "underexposed", "occluded", "tearing", "compression"},
           "lidar": {"sparse", "sector_loss", "noise", "nonfinite", "lost_rings"}}


def _blobs(image: np.ndarray, rng: np.random.Generator, count: tuple[int, int], size: tuple[float, float]
           ) -> np.ndarray:
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(*count))):
        r = int(rng.uniform(*size) * w)
        cv2.circle(mask, (int(rng.integers(0, w)), int(rng.integers(0, h))), max(2, r), 1.0, -1)
    return mask


def water_drops(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Drops on the lens: many round areas where the scene is strongly blurred (out-of-focus refraction)."""
    mask = cv2.GaussianBlur(_blobs(image, rng, (25, 60), (0.02, 0.07)), (0, 0), 2)[..., None]
    blurred = cv2.GaussianBlur(image, (0, 0), image.shape[1] / 40)
    return (image * (1 - mask) + blurred * mask).astype(np.uint8)


def mud(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Opaque brown splashes over part of the view (partial soiling)."""
    mask = cv2.GaussianBlur(_blobs(image, rng, (4, 10), (0.05, 0.14)), (0, 0), 4)[..., None]
    colour = np.array([30, 50, 70], np.float32) * rng.uniform(0.6, 1.4)
    return np.clip(image * (1 - 0.97 * mask) + colour * 0.97 * mask, 0, 255).astype(np.uint8)


def smear(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A greasy smear: a large soft area of low contrast and haze over 30-60% of the lens."""
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (int(w * rng.uniform(0.3, 0.7)), int(h * rng.uniform(0.3, 0.7))),
                (int(w * rng.uniform(0.3, 0.5)), int(h * rng.uniform(0.3, 0.5))), float(rng.uniform(0, 180)),
                0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), w / 15)[..., None]
    hazed = cv2.GaussianBlur(image, (0, 0), w / 60) * 0.5 + 0.5 * float(image.mean())
    return (image * (1 - mask) + hazed * mask).astype(np.uint8)


def raw_bayer(image: np.ndarray) -> np.ndarray:
    """The driver passes the raw RGGB mosaic through as if it were a picture (demosaicing skipped)."""
    mosaic = np.zeros(image.shape[:2], np.uint8)
    mosaic[0::2, 0::2] = image[0::2, 0::2, 2]
    mosaic[0::2, 1::2] = image[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = image[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = image[1::2, 1::2, 0]
    return cv2.cvtColor(mosaic, cv2.COLOR_GRAY2BGR)


def packet_loss(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lost packets of a network camera: runs of 16-pixel macroblocks replaced by grey/green decoder fill."""
    out = image.copy()
    h, w = image.shape[:2]
    fill = np.array(rng.choice([[128, 128, 128], [0, 135, 0]]), np.uint8)
    for _ in range(int(rng.integers(3, 8))):
        y = int(rng.integers(0, max(1, h // 16))) * 16
        x = int(rng.integers(0, max(1, w // 16))) * 16
        out[y:y + 16, x:] = fill
        out[y + 16:y + 16 * int(rng.integers(1, 4)), :] = fill
    return out


def camera_field_fault(image: np.ndarray, fault: str, rng: np.random.Generator, other: np.ndarray) -> np.ndarray:
    """`image` (BGR) with `fault`; 'frozen' is the caller's (the same bytes again)."""
    if fault in TRAINED["camera"]:
        if fault == "occluded":
            return _occlude(image, rng)
        if fault == "tearing":
            return _tear(image, rng, other)
        return camera_fault(image, fault, rng, other)
    if fault == "water_drops":
        return water_drops(image, rng)
    if fault == "mud":
        return mud(image, rng)
    if fault == "smear":
        return smear(image, rng)
    if fault == "black":
        return np.clip(rng.normal(2, 1, image.shape), 0, 255).astype(np.uint8)
    if fault == "channel_dead":
        out = image.copy()
        out[..., int(rng.integers(0, 3))] = 0
        return out
    if fault == "channel_swap":
        return image[..., ::-1].copy()
    if fault == "raw_bayer":
        return raw_bayer(image)
    if fault == "packet_loss":
        return packet_loss(image, rng)
    raise ValueError(fault)


def _start_in_view(points: np.ndarray, rng: np.random.Generator) -> float:
    """An azimuth (degrees) where the sensor sees: that of a random return. A sector fault drawn anywhere on the
    circle would fall, for a forward-looking unit (a Hesai AT128 sees 120 degrees), mostly where it sees nothing."""
    if len(points) == 0:
        return float(rng.uniform(-180, 180))
    x, y = points[int(rng.integers(0, len(points))), :2]
    return float(np.degrees(np.arctan2(y, x)))


def lidar_field_fault(points: np.ndarray, fault: str, rng: np.random.Generator) -> np.ndarray:
    """`points` (Nx4) with `fault`; 'frozen' is the caller's (the same scan again). A sector fault begins where the
    sensor sees (`sector_loss` as in the training data otherwise: 50-200 degrees of returns gone)."""
    if fault == "sector_loss":
        return lidar_fault(points, fault, rng, start=_start_in_view(points, rng))
    if fault in TRAINED["lidar"]:
        return lidar_fault(points, fault, rng)
    out = points.copy()
    if fault == "blocked_sector":  # mud or a bag on the window: a sector's returns all come from a few cm away
        az = np.degrees(np.arctan2(out[:, 1], out[:, 0]))
        start, width = _start_in_view(out, rng), rng.uniform(60, 180)
        hit = ((az - start) % 360) < width
        r = np.linalg.norm(out[hit, :3], axis=1, keepdims=True)
        out[hit, :3] *= rng.uniform(0.05, 0.3, (int(hit.sum()), 1)) / np.maximum(r, 1e-3)
        return out
    if fault == "calibration_tilt":  # a loose mount or wrong extrinsics: the whole scan pitched by 8-20 degrees
        a = np.radians(rng.uniform(8, 20)) * rng.choice([-1, 1])
        c, s = np.cos(a), np.sin(a)
        x, z = out[:, 0].copy(), out[:, 2].copy()
        out[:, 0], out[:, 2] = c * x + s * z, -s * x + c * z
        return out
    if fault == "driver_garbage":  # a driver bug: coordinates scaled wrong (mm read as m) for part of the scan
        hit = rng.random(len(out)) < rng.uniform(0.3, 0.8)
        out[hit, :3] *= np.float32(rng.choice([10.0, 100.0, 1000.0]))
        return out
    if fault == "crosstalk":  # another LiDAR's pulses: many spurious returns scattered through the near field
        n = int(len(out) * rng.uniform(0.3, 0.8))
        direction = rng.normal(0, 1, (n, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        ghost = direction * rng.uniform(0.5, 30.0, (n, 1))
        extra = np.concatenate([ghost, rng.random((n, 1))], axis=1).astype(np.float32)
        # interleaved with the real returns in scan order, as the ghost pulses arrive between real ones
        return np.insert(out, np.sort(rng.integers(0, len(out) + 1, n)), extra, axis=0)
    if fault == "empty":
        return out[:0]
    raise ValueError(fault)

"""Cheap image-quality checks for camera frames: each returns signals, never raises on odd content."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from agent.config.model import CameraScoring
from agent.scoring.memory import unit

TILE_GRID = 8  # 8x8 tiles for occlusion / soiling
DESCRIPTOR_SIZE = (32, 16)  # width, height of the grey thumbnail descriptor
HISTORY = 20  # healthy frames remembered per sensor to know what "normal" looks like
ABSOLUTE_FLAT_FRACTION = 0.6  # with no baseline yet, only a mostly dead image counts as occluded
# Immerkaer's noise-estimation kernel: the difference of two Laplacians, blind to flat areas and linear ramps.
# White noise of sigma s gives a response of std 6 s; the median over the image ignores the few real edges.
NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
NOISE_SCALE = 1.0 / (0.6745 * 6.0)
# Tearing: a straight seam across the width (or down the height: the part below a tear shifted sideways), one or
# two pixels wide, that the rows (columns) just beside it do not have.
SEAM_MIN_STEP = 12.0  # grey levels: smaller row-to-row steps are texture
SEAM_ISOLATION = 2.5  # the step must exceed this many times the column's steps just above and below it (+2)
SEAM_RATIO_SPREAD = 0.25  # |log brightness ratio - the seam's median| beyond this is not one shadow's darkening
SEAM_EDGE = 0.08  # rows (columns) this close to the image's edge are left out (a car's hood makes a seam there)
SEAM_FLAT_MIN_HEIGHT = 0.15  # a one-colour band below a seam at least this tall is decoder fill


@dataclass(frozen=True, slots=True)
class CameraSignals:
    sharpness: float
    mean: float
    std: float
    clipped_dark: float
    clipped_bright: float
    flat_tiles: float
    noise: float  # estimated pixel noise sigma, grey levels at analysis width
    seam: float  # share of columns with an isolated step at the strongest horizontal seam
    seam_mixed: float  # share of columns whose step there is not the seam's common brightness ratio
    flat_below: bool  # the rows below that seam are one flat colour (neither black nor white)
    vseam: float  # the same two for the strongest vertical seam (share of rows)
    vseam_mixed: float
    tile_std: np.ndarray  # TILE_GRID x TILE_GRID texture per tile, for occlusion against the baseline
    grey: np.ndarray  # analysis-size grey image, for frozen-frame comparison
    descriptor: np.ndarray  # unit vector, for redundancy

    def as_dict(self) -> dict[str, float]:
        return {
            "sharpness": round(self.sharpness, 3),
            "mean": round(self.mean, 3),
            "std": round(self.std, 3),
            "clipped_dark": round(self.clipped_dark, 4),
            "clipped_bright": round(self.clipped_bright, 4),
            "flat_tiles": round(self.flat_tiles, 4),
            "noise": round(self.noise, 3),
            "seam": round(self.seam, 4),
            "seam_mixed": round(self.seam_mixed, 4),
            "vseam": round(self.vseam, 4),
            "vseam_mixed": round(self.vseam_mixed, 4),
        }


def analysis_greys(image: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The grey image at about `width`: area-averaged (for the checks) and nearest-row (for the seam check: an
    area resize spreads a one-row seam over rows that a sharp real edge also spans)."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    h, w = grey.shape
    if w <= width:
        return grey, grey
    size = (width, max(1, round(h * width / w)))
    return (cv2.resize(grey, size, interpolation=cv2.INTER_AREA),
            cv2.resize(grey, size, interpolation=cv2.INTER_NEAREST))


def _tile_stats(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = grey.shape
    th, tw = max(1, h // TILE_GRID), max(1, w // TILE_GRID)
    tiles = grey[: th * TILE_GRID, : tw * TILE_GRID].reshape(TILE_GRID, th, TILE_GRID, tw).astype(np.float32)
    return tiles.std(axis=(1, 3)), tiles.mean(axis=(1, 3))


def seam(grey: np.ndarray) -> tuple[float, float, bool]:
    """The strongest horizontal seam of a uint8 grey image: (share of columns with an isolated step there,
    share whose step is off the seam's median brightness ratio, whether the rows below are one flat colour).

    Steps are taken across two rows (row r+1 minus row r-1): a reduced JPEG decode spreads a one-row seam of the
    full image over two rows. A shadow edge or the horizon also steps across much of the width, but a shadow
    darkens every column by about one ratio and few real edges are that sharp everywhere; a torn frame steps
    every column to unrelated content (or to decoder fill)."""
    h = grey.shape[0]
    if h < 16:
        return 0.0, 0.0, False
    size = cv2.absdiff(grey[2:], grey[:-2]).astype(np.int16)  # size[k]: the step from row k to row k + 2
    mid = size[2:-2]
    # mid > ISOLATION * near + 2, in integers
    strong = (mid > SEAM_MIN_STEP) & (2 * mid > int(2 * SEAM_ISOLATION) * np.maximum(size[:-4], size[4:]) + 4)
    share = strong.mean(axis=1)
    margin = max(1, int(h * SEAM_EDGE))
    share[:margin] = 0.0
    share[len(share) - margin:] = 0.0
    i = int(share.argmax())
    top, cols = i + 2, strong[i]  # the seam steps from row `top` to row `top + 2`
    if cols.sum() < 3:
        return float(share[i]), 0.0, False
    ratio = np.log((grey[top + 2] + 4.0) / (grey[top] + 4.0))
    mixed = float((cols & (np.abs(ratio - np.median(ratio[cols])) > SEAM_RATIO_SPREAD)).mean())
    below = grey[top + 4:]
    flat = (len(below) >= SEAM_FLAT_MIN_HEIGHT * h and float(np.median(below.std(axis=1))) < 1.5
            and 8.0 < float(below.mean()) < 247.0)
    return float(share[i]), mixed, bool(flat)


def measure(grey: np.ndarray, seam_grey: np.ndarray | None = None) -> CameraSignals:
    """Signals of an analysis-size grey image; `seam_grey`: the same picture nearest-row resized (see
    analysis_greys), `grey` itself when not given."""
    g = grey.astype(np.float32)
    lap = cv2.Laplacian(grey, cv2.CV_32F)
    thumb = cv2.resize(grey, DESCRIPTOR_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
    centred = thumb - thumb.mean()
    tile_std, tile_mean = _tile_stats(grey)
    # Flat (no texture) and dark or washed-out tiles: what a covered or soiled lens looks like.
    flat = (tile_std < 4.0) & ((tile_mean < 50.0) | (tile_mean > 230.0))
    response = cv2.filter2D(g, -1, NOISE_KERNEL)[1:-1, 1:-1]
    sg = grey if seam_grey is None else seam_grey
    # Every other column is enough for the shares along a horizontal seam, at half the cost (a vertical seam has
    # too few rows to spare: subsampled, clean frames came within 0.005 of the threshold).
    seam_share, seam_mixed, flat_below = seam(np.ascontiguousarray(sg[:, ::2]))
    vseam_share, vseam_mixed, _ = seam(np.ascontiguousarray(sg.T))
    return CameraSignals(
        sharpness=float(lap.var()),
        mean=float(g.mean()),
        std=float(g.std()),
        clipped_dark=float(np.mean(grey <= 5)),
        clipped_bright=float(np.mean(grey >= 250)),
        flat_tiles=float(flat.mean()),
        noise=float(np.median(np.abs(response))) * NOISE_SCALE if response.size else 0.0,
        seam=seam_share,
        seam_mixed=seam_mixed,
        flat_below=flat_below,
        vseam=vseam_share,
        vseam_mixed=vseam_mixed,
        tile_std=tile_std,
        grey=grey,
        descriptor=unit(centred),
    )


class CameraBaseline:
    """What a healthy frame of each camera looks like: median sharpness and per-tile texture of recent frames.

    Night scenes are dark and flat in large parts, so absolute thresholds alone would call them occluded or
    blurred; a sudden loss of texture against the camera's own recent frames is what a smudge or defocus does.
    """

    def __init__(self) -> None:
        self._sharpness: dict[str, deque[float]] = {}
        self._tiles: dict[str, deque[np.ndarray]] = {}

    def update(self, sensor: str, s: CameraSignals) -> None:
        self._sharpness.setdefault(sensor, deque(maxlen=HISTORY)).append(s.sharpness)
        self._tiles.setdefault(sensor, deque(maxlen=HISTORY)).append(s.tile_std)

    def typical(self, sensor: str) -> tuple[float, np.ndarray] | None:
        if not self._sharpness.get(sensor):
            return None
        return float(np.median(self._sharpness[sensor])), np.median(np.stack(self._tiles[sensor]), axis=0)


def _occluded(s: CameraSignals, cfg: CameraScoring, typical: tuple[float, np.ndarray] | None) -> bool:
    if s.flat_tiles >= ABSOLUTE_FLAT_FRACTION:
        return True
    if typical is None:
        return False
    base = typical[1]
    lost = (base > 10.0) & (s.tile_std < np.maximum(4.0, 0.25 * base))
    return float(lost.mean()) >= cfg.occluded_min_fraction


def _torn(s: CameraSignals, cfg: CameraScoring) -> bool:
    across = s.seam >= cfg.tearing_min_seam and (s.seam_mixed >= cfg.tearing_min_mixed or s.flat_below)
    return across or (s.vseam >= cfg.tearing_min_seam and s.vseam_mixed >= cfg.tearing_min_mixed)


def faults(s: CameraSignals, cfg: CameraScoring, typical: tuple[float, np.ndarray] | None = None) -> list[str]:
    """Names of the faults these signals show, most telling first."""
    found: list[str] = []
    if s.mean <= cfg.dark_max_mean or s.clipped_dark >= cfg.dark_clipped_max_fraction:
        found.append("underexposed")
    if s.mean >= cfg.bright_min_mean or s.clipped_bright >= cfg.bright_clipped_max_fraction:
        found.append("overexposed")
    if s.std <= cfg.uniform_max_std:
        found.append("uniform")
    if _torn(s, cfg):
        found.append("tearing")
    if "uniform" not in found and _occluded(s, cfg, typical):
        found.append("occluded")
    if s.noise > cfg.noise_max_sigma:
        found.append("noisy")
    # Blur is meaningless on a uniform or black image; report only the root cause there.
    if not found and (
        s.sharpness < cfg.blur_min_sharpness
        or (typical is not None and s.sharpness < cfg.blur_min_ratio * typical[0])
    ):
        found.append("blur")
    return found


def frozen(previous: np.ndarray | None, current: np.ndarray, cfg: CameraScoring) -> bool:
    # At full analysis resolution real sensor noise alone moves the mean difference well above the threshold,
    # even when nothing in the scene moves; only a stuck sensor (or a repeated buffer) repeats itself.
    if previous is None or previous.shape != current.shape:
        return False
    diff = cv2.absdiff(previous, current)
    return float(diff.mean()) <= cfg.frozen_max_diff

"""What a healthy frame of each camera looks like: medians of its recent healthy frames with the same view, and its
brightness level across views. Kept per sensor by the heuristic scorer, read by camera_checks."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from agent.scoring import camera_motion
from agent.scoring.camera_signals import CameraSignals

HISTORY = 20  # healthy frames remembered per sensor to know what "normal" looks like
TYPICAL_EVERY = 4  # with a full history, its medians are recomputed after this many healthy frames
LEVEL_MIN_FRAMES = 3  # healthy frames before a camera's brightness level counts across views
LEVEL_MAX_SPREAD = 4.0  # ... and its brightest of them at most this many times its darkest (recordings: 1.0-2.9;
# a folder of unrelated stills as one stream: 8.3)
SEAM_MOVE_ROWS = 3  # rows a seam of the view moves between frames (a bump, braking), at analysis size
# Until a view has VSEAM_MIN_FRAMES healthy frames, its strongest vertical seam is taken to be at least VSEAM_PRIOR
# (as its usual break is held to camera_motion.BREAK_PRIOR): an upright edge of the first frame may be the strongest
# of the view (CamVid at dusk: 0.47 and 0.40, the only valid frames of the recordings with such a seam mixed enough
# to look torn, each called torn by a scorer started at it or a few frames before it).
VSEAM_PRIOR = 0.4
VSEAM_MIN_FRAMES = 5


@dataclass(frozen=True, slots=True)
class CameraTypical:
    """Medians over a camera's recent healthy frames."""

    sharpness: float
    tiles: np.ndarray
    mean: float
    noise: float
    structure: float
    saturation: float
    channel_share: np.ndarray  # each channel's share of the mean brightness
    blue_red: float  # log(B / R)
    tile_sharp: np.ndarray
    blockiness: float
    flat_rows: float
    flat_area: float
    tile_blue_red: np.ndarray | None = None  # per tile median of log(B / R)
    tile_mean: np.ndarray | None = None  # per tile median brightness
    grid_spectrum: np.ndarray | None = None  # median block-grid spectrum (a JPEG source's own 8-pixel grid)
    tile_flat: np.ndarray | None = None  # per tile median share of textureless pixels
    seam_rows: np.ndarray | None = None  # per row, the usual share of columns stepping there (or a few rows off)
    seam_excess: float = 0.0  # how far above seam_rows the camera's own recent healthy frames reached
    vseam: float = 0.0  # the strongest vertical seam (share of rows) of its recent healthy frames, or the prior
    speckle: float = 0.0  # median share of pixels standing out of their neighbourhood


def blue_red(channels: tuple[float, float, float]) -> float:
    return float(np.log((channels[0] + 4.0) / (channels[2] + 4.0)))


class CameraBaseline:
    """What a healthy frame of each camera looks like: medians of its recent healthy frames.

    Night, fog and snow change every absolute figure (brightness, texture, noise, sharpness), so a camera is
    judged against itself: a sudden departure from its own recent frames, with the same scene in view, is what a
    smudge, a defocus, a gain fault or a failing sensor does; a steady dark or grey stream is a condition.
    """

    def __init__(self) -> None:
        self._history: dict[str, deque[CameraSignals]] = {}
        self._cache: dict[str, tuple[int, CameraTypical]] = {}  # sensor -> (updates when computed, medians)
        self._updates: dict[str, int] = {}
        # Brightness of recent healthy frames whatever the view: a camera's exposure control holds its level
        # across views (valid recordings: 0.49-1.39 of their running median), so a new view keeps it.
        self._levels: dict[str, deque[float]] = {}
        # How much worse the lower rows of its recent healthy frames followed the frame before them (camera_motion).
        self._breaks: dict[str, deque[float]] = {}

    def update(self, sensor: str, s: CameraSignals) -> None:
        rows = self._history.setdefault(sensor, deque(maxlen=HISTORY))
        if rows:
            rows[-1].scratch.clear()  # what checks derived from the last healthy frame: only the newest needs it
        rows.append(s)
        if "break" in s.scratch:
            self._breaks.setdefault(sensor, deque(maxlen=HISTORY)).append(s.scratch["break"])
        self._updates[sensor] = self._updates.get(sensor, 0) + 1
        self._levels.setdefault(sensor, deque(maxlen=HISTORY)).append(s.mean)

    def level(self, sensor: str) -> float | None:
        """The median brightness of the camera's recent healthy frames across views (a scene cut keeps it), where
        it held steady: unrelated pictures in one stream (stills from many cars) have no level."""
        levels = self._levels.get(sensor)
        if levels is None or len(levels) < LEVEL_MIN_FRAMES:
            return None
        low, high = max(min(levels), 8.0), max(max(levels), 8.0)
        return float(np.median(levels)) if high <= LEVEL_MAX_SPREAD * low else None

    def last(self, sensor: str) -> CameraSignals | None:
        """The camera's most recent healthy frame."""
        rows = self._history.get(sensor)
        return rows[-1] if rows else None

    def reset(self, sensor: str) -> None:
        """A new view: its medians start again (the camera's brightness level is kept)."""
        self._history.pop(sensor, None)
        self._cache.pop(sensor, None)
        self._breaks.pop(sensor, None)

    def usual_break(self, sensor: str) -> float:
        """The most that the camera's recent healthy frames with this view broke from the frame before them below
        some row. Until BREAK_MIN_FRAMES of them are measured, at least BREAK_PRIOR."""
        breaks = self._breaks.get(sensor)
        if breaks is not None and len(breaks) >= camera_motion.BREAK_MIN_FRAMES:
            return max(breaks)
        return max(camera_motion.BREAK_PRIOR, max(breaks) if breaks else 0.0)

    def typical(self, sensor: str) -> CameraTypical | None:
        """The medians, recomputed after every TYPICAL_EVERY healthy frames once the history is full (a median of
        20 moves little in 4 frames; recomputing it for every frame was a tenth of a camera frame's cost)."""
        rows = self._history.get(sensor)
        if not rows:
            return None
        updates = self._updates.get(sensor, 0)
        cached = self._cache.get(sensor)
        if cached is not None and updates - cached[0] < (TYPICAL_EVERY if len(rows) == HISTORY else 1):
            return cached[1]
        typical = self._compute(rows)
        self._cache[sensor] = (updates, typical)
        return typical

    @staticmethod
    def _compute(rows: deque[CameraSignals]) -> CameraTypical:
        # One median over a table of the scalars: ten np.median calls cost ten times as much for 20 rows.
        (sharpness, mean, noise, structure, saturation, blockiness, flat_row_share, flat_area, speckle,
         *channels) = np.median(np.array([(r.sharpness, r.mean, r.noise, r.structure, r.saturation, r.blockiness,
                                           r.flat_rows, r.flat_area, r.speckle, *r.channels) for r in rows]),
                                axis=0).tolist()
        shares = np.array(channels)
        return CameraTypical(
            sharpness=sharpness,
            tiles=np.median(np.stack([r.tile_std for r in rows]), axis=0),
            mean=mean,
            noise=noise,
            structure=structure,
            saturation=saturation,
            channel_share=shares / max(float(shares.mean()), 1e-6),
            blue_red=blue_red((channels[0], channels[1], channels[2])),
            tile_sharp=np.median(np.stack([r.tile_sharp for r in rows if r.tile_sharp is not None]), axis=0),
            blockiness=blockiness,
            flat_rows=flat_row_share,
            flat_area=flat_area,
            tile_blue_red=_tile_median([r.tile_blue_red for r in rows]),
            tile_mean=_tile_median([r.tile_mean for r in rows]),
            tile_flat=_tile_median([r.tile_flat for r in rows]),
            grid_spectrum=_tile_median([r.grid_spectrum for r in rows]),
            vseam=max(max(r.vseam for r in rows), VSEAM_PRIOR if len(rows) < VSEAM_MIN_FRAMES else 0.0),
            speckle=speckle,
            **_usual_seams(rows),
        )


def _usual_seams(rows: deque[CameraSignals]) -> dict[str, Any]:
    """Where this camera's views step sharply (a hood, the horizon, lane edges), each row widened by the few rows
    a bump or a pitch moves them, and the most its own recent frames rose above that (rain, a wiper, passing
    trucks: a camera whose views change a lot is held to more)."""
    profiles = [r.seam_rows for r in rows if r.seam_rows is not None]
    if len(profiles) < len(rows) or len({p.shape for p in profiles}) != 1:
        return {}
    usual = cv2.dilate(np.median(np.stack(profiles), axis=0).astype(np.float32)[:, None],
                       np.ones((2 * SEAM_MOVE_ROWS + 1, 1), np.uint8)).ravel()
    return {"seam_rows": usual, "seam_excess": max(float(np.max(p - usual)) for p in profiles)}


def _tile_median(tiles: list[np.ndarray | None]) -> np.ndarray | None:
    return None if any(t is None for t in tiles) else np.median(np.stack(tiles), axis=0)  # type: ignore[arg-type]

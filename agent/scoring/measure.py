"""The history-free part of the heuristic checks: a frame's signals, measured from its pixels or points alone.

This is where a camera frame's cost lies (the JPEG decode and the image statistics, about 90% of its scoring
time) and it needs nothing but the frame and its config, so it can run anywhere: in the scoring thread
(`LocalMeasurer`, the default) or in another process (the daemon's `MeasureProcesses`), with the same functions
and so the same signals. Everything that reads a sensor's history stays in the scorer.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from agent.config.model import LidarScoring
from agent.config.sensors import SensorModel
from agent.frame import Encoding, Frame
from agent.scoring import camera_signals, lidar_checks
from agent.sources.decode import decode_grey_bytes, image_of, stated_width


def camera_signals_of(frame: Frame, width: int) -> camera_signals.CameraSignals:
    """Decode (reduced to about `width` where the JPEG allows) and measure; DecodeError for a broken image."""
    image = image_of(frame, max_width=width)
    # One grey conversion at the decoded size serves the analysis greys and, where needed, the block grid.
    full = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    grey, seam_grey = camera_signals.analysis_greys(full, width)
    return camera_signals.measure(grey, seam_grey, image, block_grey=_block_grey(frame, full, grey, width))


def _block_grey(frame: Frame, full: np.ndarray, grey: np.ndarray, width: int) -> np.ndarray | None:
    """The grey picture at a size where a block grid (JPEG's 8 pixels, pixelation) keeps its strength, or None
    where the analysis picture keeps it (a 1280-px JPEG decoded at 320, a 1280-px array area-averaged by 4).

    The decoded picture where the analysis resize would blur the grid away (a 1600-px frame decoded at 400 for
    320, a 1242-px PNG). A JPEG that a quarter-size decode cannot serve is decoded at half size, where the grid is
    faint (KITTI's damaged frames measured 1.33-2.07 against 1.23-1.34 valid): its grid is taken from a whole grey
    decode (2.27-3.30 against 1.05-1.16). That decode costs about what the reduced one does (1.4 ms for a KITTI
    1242 x 375 frame: such a frame's measurement 3.8 -> 5.3 ms); a frame 1280 px wide or wider never pays it.
    Only the grid: the other signals keep the reduced decode, whose colours a full decode's chroma upsampling
    would shift (a dead channel is no longer exactly zero)."""
    full_width = stated_width(frame) or 0
    if frame.array is None and frame.encoding is Encoding.JPEG and 2 * width <= full_width < 4 * width:
        whole = decode_grey_bytes(frame.payload or b"")
        if whole is not None:
            return whole
    factor = full.shape[1] / grey.shape[1]
    return full if factor > 1 and factor not in (2.0, 4.0, 8.0) else None  # by 2, 4 or 8 the grid stays (4, 2, 1 px)


def lidar_signals_of(points: np.ndarray, cfg: LidarScoring, model: SensorModel | None) -> lidar_checks.LidarSignals:
    return lidar_checks.measure(points, cfg, model)


class Measurer(Protocol):
    def camera(self, frame: Frame, width: int) -> camera_signals.CameraSignals: ...

    def lidar(self, points: np.ndarray, cfg: LidarScoring, model: SensorModel | None) -> lidar_checks.LidarSignals:
        ...


class LocalMeasurer:
    """Measures in the calling thread."""

    def camera(self, frame: Frame, width: int) -> camera_signals.CameraSignals:
        return camera_signals_of(frame, width)

    def lidar(self, points: np.ndarray, cfg: LidarScoring, model: SensorModel | None) -> lidar_checks.LidarSignals:
        return lidar_signals_of(points, cfg, model)

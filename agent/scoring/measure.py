"""The history-free part of the heuristic checks: a frame's signals, measured from its pixels or points alone.

This is where a camera frame's cost lies (the JPEG decode and the image statistics, about 90% of its scoring
time) and it needs nothing but the frame and its config, so it can run anywhere: in the scoring thread
(`LocalMeasurer`, the default) or in another process (the daemon's `MeasureProcesses`), with the same functions
and so the same signals. Everything that reads a sensor's history stays in the scorer.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from agent.config.model import LidarScoring
from agent.config.sensors import SensorModel
from agent.frame import Frame
from agent.scoring import camera_signals, lidar_checks
from agent.sources.decode import image_of


def camera_signals_of(frame: Frame, width: int) -> camera_signals.CameraSignals:
    """Decode (reduced to about `width` where the JPEG allows) and measure; DecodeError for a broken image."""
    image = image_of(frame, max_width=width)
    grey, seam_grey = camera_signals.analysis_greys(image, width)
    return camera_signals.measure(grey, seam_grey, image)


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

"""Per-frame features the baselines need, taken in the same pass that scores the recording.

- Reducto-style frame differencing (Li et al., SIGCOMM 2020) compares each frame with the last one it sent, on a
  small grey image: the `pixel` feature is the fraction of pixels whose blurred luma changed by more than a
  fixed amount, the `edge` feature the fraction of Canny edge pixels that changed. LiDAR scans get the same
  treatment on a bird's-eye occupancy image.
- Uncertainty-only sampling (as active-learning samplers do) ranks frames by the proxy model's uncertainty: the
  entropy of the camera scene head; for LiDAR, whose model has no scene head, closeness of the fault head to its
  decision threshold (1 - |2p - 1|, Roboflow's close_to_threshold idea).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from agent.config.model import AgentConfig
from agent.errors import ConfigError, DecodeError
from agent.frame import Frame, Modality
from agent.sources.decode import image_of, points_of

log = logging.getLogger(__name__)

THUMB_SIZE = (96, 54)  # width, height of the differencing image (16:9 like most cameras)
BEV_CELLS = 64
BEV_RANGE_M = 40.0
PIXEL_DELTA = 21  # luma change that counts as a changed pixel (Reducto's default pixel threshold)


@dataclass(slots=True)
class Features:
    grey: np.ndarray | None  # blurred small grey image (camera) or occupancy image (LiDAR), uint8
    edges: np.ndarray | None  # Canny edges of `grey`, bool
    uncertainty: float | None


def _camera_images(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    image = image_of(frame, max_width=THUMB_SIZE[0] * 2)
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, THUMB_SIZE, interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (5, 5), 0), cv2.Canny(small, 100, 200) > 0


def _occupancy(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xyz = points[:, :3]
    ok = np.isfinite(xyz).all(axis=1)
    hist, _, _ = np.histogram2d(xyz[ok, 0], xyz[ok, 1], bins=BEV_CELLS,
                                range=[[-BEV_RANGE_M, BEV_RANGE_M], [-BEV_RANGE_M, BEV_RANGE_M]])
    grey = np.clip(np.log1p(hist) * 40.0, 0, 255).astype(np.uint8)
    return grey, grey > 0


class FeatureExtractor:
    """Differencing images and model uncertainty per frame; the models are loaded lazily, and only once."""

    def __init__(self, config: AgentConfig, with_model: bool = True) -> None:
        self._config = config
        self._with_model = with_model
        self._models: tuple | None = None

    def _load(self) -> tuple | None:
        if self._models is None and self._with_model:
            from agent.model.proxy_model import CameraModel, LidarModel  # onnxruntime only when asked for

            cfg = self._config.model
            try:
                self._models = (CameraModel(cfg.camera, cfg), LidarModel(cfg.lidar, cfg))
            except ConfigError as exc:
                log.warning("uncertainty baseline unavailable: %s", exc)
                self._with_model = False
        return self._models

    def __call__(self, frame: Frame) -> Features:
        try:
            if frame.modality is Modality.CAMERA:
                return self._camera(frame)
            return self._lidar(frame)
        except (DecodeError, ValueError, cv2.error):
            return Features(None, None, None)  # an undecodable frame: no baseline can keep a useful copy of it

    def _camera(self, frame: Frame) -> Features:
        grey, edges = _camera_images(frame)
        uncertainty = None
        models = self._load()
        if models is not None:
            camera = models[0]
            h, w = camera.spec.input_size
            image = image_of(frame, max_width=w * 2)
            small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
            out = camera.run(camera.inputs([small]))[0]
            uncertainty = out.entropy
        return Features(grey, edges, uncertainty)

    def _lidar(self, frame: Frame) -> Features:
        points = points_of(frame)
        grey, edges = _occupancy(points)
        uncertainty = None
        models = self._load()
        if models is not None:
            lidar = models[1]
            bev, _ = lidar.bev(points)
            p = lidar.run(bev[None])[0].harmful
            uncertainty = 1.0 - abs(2.0 * p - 1.0)
        return Features(grey, edges, uncertainty)


def pixel_change(a: np.ndarray, b: np.ndarray) -> float:
    """Reducto's pixel feature: fraction of pixels whose (blurred) value changed by more than PIXEL_DELTA."""
    return float(np.mean(cv2.absdiff(a, b) > PIXEL_DELTA))


def edge_change(a: np.ndarray, b: np.ndarray) -> float:
    """Reducto's edge feature: fraction of pixels that are an edge in one frame and not in the other."""
    return float(np.mean(a != b))

"""The first scorer: image/scan quality checks plus descriptor redundancy against recently kept frames."""

from __future__ import annotations

import hashlib

import numpy as np

from agent.config.model import ScoringConfig
from agent.errors import DecodeError
from agent.frame import Frame, Modality
from agent.scoring import camera_checks, lidar_checks
from agent.scoring.base import Label, Verdict
from agent.scoring.memory import DescriptorMemory
from agent.scoring.usefulness import Pending, resolve
from agent.sources.decode import image_of, points_of


class HeuristicScorer:
    """Per-frame verdicts from cheap signals; stateful per sensor (previous frame, kept memory, baselines)."""

    name = "heuristic"

    def __init__(self, config: ScoringConfig) -> None:
        self._cfg = config
        self._memory = DescriptorMemory(config.memory_size)
        self._previous_grey: dict[str, np.ndarray] = {}
        self._previous_digest: dict[str, bytes] = {}
        self._lidar_baseline = lidar_checks.LidarBaseline()
        self._camera_baseline = camera_checks.CameraBaseline()

    def score(self, frame: Frame) -> Verdict:
        return self.complete(frame, self.assess(frame))

    def complete(self, frame: Frame, assessed: Verdict | Pending) -> Verdict:
        """Finish an assessed frame against what this scorer has been told was kept so far."""
        return resolve(assessed, lambda descriptor: self._memory.nearest(frame.sensor, descriptor))

    def assess(self, frame: Frame) -> Verdict | Pending:
        """Everything but the distance to the kept memory: a harmful Verdict, or a Pending one (see usefulness)."""
        try:
            if frame.modality is Modality.CAMERA:
                return self._score_camera(frame)
            return self._score_lidar(frame)
        except DecodeError:
            return Verdict(Label.HARMFUL, 0.0, ("undecodable",))

    def remember(self, frame: Frame, verdict: Verdict) -> None:
        if verdict.descriptor is not None and verdict.label is not Label.HARMFUL:
            self._memory.add(frame.sensor, verdict.descriptor)

    def _score_camera(self, frame: Frame) -> Verdict | Pending:
        cfg = self._cfg.camera
        digest = hashlib.blake2b(frame.payload, digest_size=16).digest() if frame.payload else b""
        repeated = bool(digest) and self._previous_digest.get(frame.sensor) == digest
        image = image_of(frame, max_width=cfg.analysis_width)
        grey, seam_grey = camera_checks.analysis_greys(image, cfg.analysis_width)
        signals = camera_checks.measure(grey, seam_grey)
        found = camera_checks.faults(signals, cfg, self._camera_baseline.typical(frame.sensor))
        if repeated or camera_checks.frozen(self._previous_grey.get(frame.sensor), grey, cfg):
            found.insert(0, "frozen")
        self._previous_grey[frame.sensor] = grey
        self._previous_digest[frame.sensor] = digest
        if not found:
            self._camera_baseline.update(frame.sensor, signals)
        return self._verdict(found, signals.descriptor, signals.as_dict(), cfg.redundant_max_distance)

    def _score_lidar(self, frame: Frame) -> Verdict | Pending:
        cfg = self._cfg.lidar
        signals = lidar_checks.measure(points_of(frame), cfg)
        found = lidar_checks.faults(signals, cfg, self._lidar_baseline.typical(frame.sensor))
        if not found:
            self._lidar_baseline.update(frame.sensor, signals)
        return self._verdict(found, signals.descriptor, signals.as_dict(), cfg.redundant_max_distance)

    @staticmethod
    def _verdict(found: list[str], descriptor: np.ndarray | None, signals: dict[str, float], thr: float
                 ) -> Verdict | Pending:
        if found or descriptor is None:
            return Verdict(Label.HARMFUL, 0.0, tuple(found) or ("empty",), descriptor, signals)
        return Pending(descriptor, signals, thr)

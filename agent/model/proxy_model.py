"""The shipped proxy models (camera, LiDAR) and a user's own model, each wrapping a ModelRuntime.

Each turns preprocessed inputs into ProxyOutput rows and times its stages (preprocess / inference /
postprocess) in the runtime's StageTimer, so benchmarks and the agent report the same numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from agent.config.model_cfg import ByoModelConfig, ModelConfig, ProxyModelSpec
from agent.errors import ConfigError
from agent.model.calibration import DistanceCalibration
from agent.model.preprocess import BevBuilder, ScanStats, normalise
from agent.model.runtime import ModelRuntime
from agent.model.scaled_bev import INPUT_KIND, ScaledBevBuilder
from agent.model.signals import binary_uncertainty, entropy_margin, softmax


@dataclass(slots=True)
class ProxyOutput:
    embedding: np.ndarray
    harmful: float  # 1 - p(ok) of the fault head
    fault: str  # the most likely fault class (other than ok)
    ood: float  # distance to the nearest training centroid over the calibrated 99th percentile
    entropy: float | None = None
    margin: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


def _runtime(spec: ProxyModelSpec, cfg: ModelConfig, modality: str) -> ModelRuntime:
    runtime = ModelRuntime(spec.path, cfg.providers, cfg.intra_op_threads, cfg.inter_op_threads, cfg.warmup_runs)
    assert runtime.metadata is not None
    runtime.metadata.check(modality=modality, version=spec.version, input_size=spec.input_size, source=spec.path)
    return runtime


class ProxyModel:
    """One shipped proxy model: run() on a batch of model inputs -> ProxyOutput per row."""

    def __init__(self, spec: ProxyModelSpec, cfg: ModelConfig, modality: str) -> None:
        self.spec = spec
        self.runtime = _runtime(spec, cfg, modality)
        meta = self.runtime.metadata
        assert meta is not None
        self.meta = meta
        self.timer = self.runtime.timer
        self._centroids = np.asarray(meta.ood_centroids, np.float32) if meta.ood_centroids else None
        self._faults = meta.fault_classes
        self.embedding_dim = int(self.runtime.session.get_outputs()[0].shape[-1])
        self.calibration = DistanceCalibration.from_metadata(meta.extra, spec.path)

    def run(self, batch: np.ndarray) -> list[ProxyOutput]:
        out = self.runtime.run(batch)
        started = time.perf_counter()
        rows = [self._row(out, i) for i in range(batch.shape[0])]
        self.timer.record("postprocess", time.perf_counter() - started)
        return rows

    def _row(self, out: dict[str, np.ndarray], i: int) -> ProxyOutput:
        embedding = out["embedding"][i]
        probs = out["fault_probs"][i]
        fault = self._faults[1 + int(np.argmax(probs[1:]))] if len(self._faults) > 1 else "fault"
        ood = 0.0
        if self._centroids is not None and self.meta.ood_threshold > 0:
            ood = (1.0 - float(np.max(self._centroids @ embedding))) / self.meta.ood_threshold
        result = ProxyOutput(embedding, float(1.0 - probs[0]), fault, ood)
        if "scene_probs" in out:
            result.entropy, result.margin = entropy_margin(out["scene_probs"][i])
        return result


class CameraModel(ProxyModel):
    def __init__(self, spec: ProxyModelSpec, cfg: ModelConfig) -> None:
        super().__init__(spec, cfg, "camera")
        self._mean, self._std = self.meta.mean, self.meta.std

    def inputs(self, images: list[np.ndarray]) -> np.ndarray:
        """HxWx3 BGR uint8 images already at the model's input size -> normalised NCHW batch."""
        started = time.perf_counter()
        batch = normalise(np.stack(images), self._mean, self._std)
        self.timer.record("normalise", time.perf_counter() - started)
        return batch


class LidarModel(ProxyModel):
    def __init__(self, spec: ProxyModelSpec, cfg: ModelConfig, sectors: int = 36) -> None:
        super().__init__(spec, cfg, "lidar")
        kind = self.meta.extra.get("lidar_input", "bev")
        if kind not in ("bev", INPUT_KIND):
            raise ConfigError(f"{spec.path}: unknown edgesift.lidar_input {kind!r} (bev or {INPUT_KIND})")
        # A model of the scan in its own units (lidar-proxy-3) or the fixed HDL-64E view (versions 1 and 2).
        self._bev = (ScaledBevBuilder if kind == INPUT_KIND else BevBuilder)(spec.input_size[0], sectors)

    def bev(self, points: np.ndarray) -> tuple[np.ndarray, ScanStats]:
        started = time.perf_counter()
        result = self._bev(points)
        self.timer.record("preprocess", time.perf_counter() - started)
        return result


class ByoModel:
    """A user's ONNX camera classifier or detector, whose mapped outputs give an uncertainty signal."""

    def __init__(self, cfg: ByoModelConfig, model: ModelConfig) -> None:
        self.cfg = cfg
        self.runtime = ModelRuntime(cfg.path, model.providers, model.intra_op_threads, model.inter_op_threads,
                                    model.warmup_runs, require_metadata=False)
        wanted = {"classifier": [cfg.logits_output or cfg.probs_output], "detector": [cfg.scores_output]}[cfg.kind]
        if not wanted[0]:
            raise ConfigError(f"model.byo: a {cfg.kind} needs "
                              + ("logits_output or probs_output" if cfg.kind == "classifier" else "scores_output"))
        missing = [n for n in wanted if n not in self.runtime.output_names]
        if missing:
            names = self.runtime.output_names
            raise ConfigError(f"model.byo: {cfg.path} has no output {missing[0]!r} (it has {names})")
        mean, std = np.asarray(cfg.mean, np.float32), np.asarray(cfg.std, np.float32)
        if cfg.channel_order == "bgr":
            self._mean, self._std = tuple(mean), tuple(std)
        else:  # images arrive BGR: flip the normalisation instead of the pixels, and the pixels after
            self._mean, self._std = tuple(mean[::-1]), tuple(std[::-1])
        self.timer = self.runtime.timer

    def uncertainty(self, image: np.ndarray) -> dict[str, float]:
        """Signals for one BGR image (any size): byo_entropy/byo_margin or byo_box_uncertainty/byo_boxes."""
        started = time.perf_counter()
        h, w = self.cfg.input_size
        small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        batch = normalise(small[None], self._mean, self._std)
        if self.cfg.channel_order == "rgb":
            batch = np.ascontiguousarray(batch[:, ::-1])
        self.timer.record("preprocess", time.perf_counter() - started)
        out = self.runtime.run(batch)
        if self.cfg.kind == "classifier":
            probs = softmax(out[self.cfg.logits_output][0]) if self.cfg.logits_output else out[self.cfg.probs_output][0]
            entropy, margin = entropy_margin(np.asarray(probs).ravel())
            return {"byo_entropy": round(entropy, 4), "byo_margin": round(margin, 4)}
        scores = np.asarray(out[self.cfg.scores_output][0], np.float32)
        conf = scores.max(axis=-1) if scores.ndim > 1 else scores
        boxes = conf[conf >= self.cfg.min_box_score]
        return {"byo_box_uncertainty": round(binary_uncertainty(boxes), 4), "byo_boxes": float(len(boxes))}

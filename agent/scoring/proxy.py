"""The model-based scorer: ONNX proxy models for usefulness (embedding novelty, fleet memory, targets,
uncertainty) and a fault head, behind the heuristic's physical checks (each sensor against its own history and
its sensor model). Every verdict names the signal(s) that decided it:

- harmful: the checks' reasons (`frozen`, `blind`, `nonfinite`, `lost_rings`, ...: see agent.scoring.heuristic),
  or `fault_<class>` (fault head, trusted only in its domain: an embedding far from everything the model was trained
  on is unfamiliar, not broken);
- useless: `redundant` (near a recently kept frame of this sensor) or `redundant_fleet` (near a fleet exemplar);
- helpful: `novel`, plus `out_of_domain` (unfamiliar to the model: ranked up, never harmful by itself),
  `uncertain` (in-domain and the scene head is unsure) and `target` (close to what the backend asked for).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from agent.config.model import ScoringConfig
from agent.config.model_cfg import ModelConfig, ProxyModelSpec
from agent.errors import ConfigError, DecodeError
from agent.frame import Frame, Modality
from agent.model.preprocess import decode_width
from agent.model.proxy_model import ByoModel, CameraModel, LidarModel, ProxyModel, ProxyOutput
from agent.model.signals import EmbeddingBank, load_embeddings, unit_rows
from agent.scoring.base import Label, Verdict
from agent.scoring.committee import Committee
from agent.scoring.heuristic import HeuristicScorer
from agent.scoring.memory import DescriptorMemory
from agent.scoring.trust import unfamiliar, with_out_of_domain
from agent.scoring.usefulness import Pending, finite, resolve
from agent.sources.decode import decode_image_bytes, image_of, points_of

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A frame the checks passed, ready for its model: input, signals so far, the checks' rare-condition boosts."""

    x: np.ndarray
    signals: dict[str, float]
    boosts: tuple[tuple[str, float], ...]


class ProxyScorer:
    name = "proxy"

    def __init__(self, scoring: ScoringConfig, model: ModelConfig) -> None:
        self._scoring, self._cfg = scoring, model
        self.camera = CameraModel(model.camera, model)
        self.lidar = LidarModel(model.lidar, model, scoring.lidar.sector_count)
        self.byo = ByoModel(model.byo, model) if model.byo.path else None
        self._memory = DescriptorMemory(scoring.memory_size)
        self._fleet = {m: self._bank(spec.exemplars, mdl) for m, spec, mdl in self._models()}
        self._targets = {m: self._target_bank(spec, mdl) for m, spec, mdl in self._models()}
        self._checks = HeuristicScorer(scoring)
        self.committee = Committee(model)

    def _models(self) -> list[tuple[Modality, ProxyModelSpec, ProxyModel]]:
        return [(Modality.CAMERA, self._cfg.camera, self.camera), (Modality.LIDAR, self._cfg.lidar, self.lidar)]

    @staticmethod
    def _bank(paths: Sequence[str], model: ProxyModel) -> EmbeddingBank:
        rows = [load_embeddings(p, model.embedding_dim) for p in paths]
        return EmbeddingBank(np.concatenate(rows) if rows else None)

    def _target_bank(self, spec: ProxyModelSpec, model: ProxyModel) -> EmbeddingBank:
        rows = []
        for path in spec.targets:
            if not path.lower().endswith(IMAGE_SUFFIXES):
                rows.append(load_embeddings(path, model.embedding_dim))
                continue
            if model is not self.camera:
                raise ConfigError(f"target {path}: image targets are for the camera model only")
            rows.append(unit_rows(self.embed_image_file(path)))
        return EmbeddingBank(np.concatenate(rows) if rows else None)

    def embed_image_file(self, path: str) -> np.ndarray:
        try:
            image = decode_image_bytes(Path(path).read_bytes())
        except (OSError, DecodeError) as exc:
            raise ConfigError(f"target image {path}: {exc}") from exc
        h, w = self._cfg.camera.input_size
        small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        return self.camera.run(self.camera.inputs([small]))[0].embedding

    # -- the Scorer protocol -------------------------------------------------------------------------------------

    def score(self, frame: Frame) -> Verdict:
        return self.score_batch([frame])[0]

    def remember(self, frame: Frame, verdict: Verdict) -> None:
        if verdict.descriptor is not None and verdict.label is not Label.HARMFUL:
            self._memory.add(frame.sensor, verdict.descriptor)

    def score_batch(self, frames: Sequence[Frame]) -> list[Verdict]:
        """Verdicts for frames of any sensors; each modality's frames go through its model as one batch."""
        return [self.complete(f, a) for f, a in zip(frames, self.assess_batch(frames), strict=True)]

    def complete(self, frame: Frame, assessed: Verdict | Pending) -> Verdict:
        """Finish an assessed frame against what this scorer has been told was kept so far."""
        return resolve(assessed, lambda descriptor: self._memory.nearest(frame.sensor, descriptor))

    def assess(self, frame: Frame) -> Verdict | Pending:
        return self.assess_batch([frame])[0]

    def assess_batch(self, frames: Sequence[Frame]) -> list[Verdict | Pending]:
        """Everything but the distance to the kept memory (see agent.scoring.usefulness), batched per model."""
        verdicts: list[Verdict | Pending | None] = [None] * len(frames)
        pending: dict[Modality, list[tuple[int, Prepared]]] = {m: [] for m in Modality}
        for i, frame in enumerate(frames):
            try:
                early, item = self._prepare(frame)
            except DecodeError:
                early, item = Verdict(Label.HARMFUL, 0.0, ("undecodable",)), None
            if early is not None:
                verdicts[i] = early
            elif item is not None:
                pending[frame.modality].append((i, item))
        for modality, items in pending.items():
            if not items:
                continue
            model = self.camera if modality is Modality.CAMERA else self.lidar
            batch = self.camera.inputs([p.x for _, p in items]) if modality is Modality.CAMERA else np.stack(
                [p.x for _, p in items])
            outs = model.run(batch)
            spreads = (self.committee.spreads([p.x for _, p in items], outs)
                       if modality is Modality.CAMERA and self.committee else [None] * len(items))
            for (i, prepared), out, spread in zip(items, outs, spreads, strict=True):
                boosts = prepared.boosts
                if spread is not None:
                    prepared.signals["committee_spread"] = spread
                    boosts = (*boosts, *self.committee.boosts(spread))
                verdicts[i] = self._verdict(frames[i], out, prepared.signals, boosts)
        return [v for v in verdicts if v is not None]

    # -- per modality --------------------------------------------------------------------------------------------

    def _prepare(self, frame: Frame) -> tuple[Verdict | None, Prepared | None]:
        # The physical checks first (each sensor against its own history and model, the vehicle's other sensors):
        # a fault they see needs no model, and a frame out of the model's domain has only their evidence to go on.
        checked = self._checks.assess(frame)
        if isinstance(checked, Verdict):
            return checked, None
        x, signals = self._prepare_camera(frame) if frame.modality is Modality.CAMERA else self._prepare_lidar(frame)
        return None, Prepared(x, {**checked.signals, **signals}, checked.boosts)

    def _prepare_camera(self, frame: Frame) -> tuple[np.ndarray, dict[str, float]]:
        with self.camera.timer.stage("preprocess"):
            size = self._cfg.camera.input_size
            # Decode once, at the smallest reduced scale that the wider of the two models needs.
            width = max(decode_width(frame, size), decode_width(frame, self._cfg.byo.input_size) if self.byo else 0)
            full = image_of(frame, max_width=width)
            small = cv2.resize(full, size[::-1], interpolation=cv2.INTER_AREA) if full.shape[:2] != size else full
        signals: dict[str, float] = {}
        if self.byo is not None:
            signals.update(self.byo.uncertainty(full))
        return small, signals

    def _prepare_lidar(self, frame: Frame) -> tuple[np.ndarray, dict[str, float]]:
        bev, stats = self.lidar.bev(points_of(frame))
        signals = {"points": float(stats.points), "nonfinite_fraction": round(stats.nonfinite_fraction, 5),
                   "empty_sectors": float(stats.empty_sectors)}
        return bev, signals

    # -- the decision --------------------------------------------------------------------------------------------

    def _verdict(self, frame: Frame, out: ProxyOutput, signals: dict[str, float],
                 rare: tuple[tuple[str, float], ...] = ()) -> Verdict | Pending:
        cfg = self._cfg
        camera = frame.modality is Modality.CAMERA
        spec, model = (cfg.camera, self.camera) if camera else (cfg.lidar, self.lidar)
        emb = out.embedding
        signals.update({"p_harmful": round(out.harmful, 4), "ood": round(out.ood, 4)})
        strange = unfamiliar(out, frame, self._scoring, cfg)
        if out.harmful >= spec.harmful_min_prob and not strange:
            return Verdict(Label.HARMFUL, 0.0, (f"fault_{out.fault}",), emb, signals)
        calibrate = model.calibration
        fleet = calibrate(self._fleet[frame.modality].nearest(emb))
        uncertainty = self._uncertainty(out, signals)
        boosts = list(with_out_of_domain(rare, self._scoring) if strange else rare)
        if uncertainty is not None and uncertainty >= cfg.uncertain_min_entropy and out.ood < 1.0:
            boosts.append(("uncertain", cfg.uncertainty_boost))  # unsure while in-domain: informative, not junk
        target = calibrate(self._targets[frame.modality].nearest(emb))
        signals["target_distance"] = finite(target)
        if target <= spec.target_max_distance:
            boosts.append(("target", spec.target_boost))
        return Pending(emb, signals, spec.redundant_max_distance, fleet, tuple(boosts), calibrate)

    def _uncertainty(self, out: ProxyOutput, signals: dict[str, float]) -> float | None:
        own = out.entropy
        if own is not None:
            signals.update({"entropy": round(own, 4), "margin": round(out.margin or 0.0, 4)})
        byo = signals.get("byo_entropy", signals.get("byo_box_uncertainty"))
        if self.byo is not None and self._cfg.byo.mode == "instead":
            return byo
        values = [v for v in (own, byo) if v is not None]
        return max(values) if values else None

    def timings(self) -> dict[str, dict[str, dict[str, float]]]:
        out = {"camera": self.camera.timer.summary(), "lidar": self.lidar.timer.summary()}
        if self.byo is not None:
            out["byo"] = self.byo.timer.summary()
        return out


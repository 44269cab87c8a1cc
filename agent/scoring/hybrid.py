"""The heuristic checks joined by the proxy models' fault heads, trusted only when they are sure.

The heuristic checks miss some faults that the fault heads learned (tears its seam check cannot see, partial
soiling, JPEG and pixelation damage); the heads alone, at their default threshold, flag more clean frames than
the checks do. Here a frame the checks pass is harmful only when the fault head's probability reaches
`scoring.model_fault_min_prob` (0.8 by default: 0.6, chosen on frames of the model's own training recordings,
called 6% of valid frames from recordings it never saw harmful). Redundancy, novelty and everything else
stay the heuristic's. The heads are trusted only in their domain: on a frame far from everything the model was
trained on (`model.ood_trust_ratio`), their opinion is no evidence of a fault, and the frame is `out_of_domain`,
a candidate for helpful.
"""

from __future__ import annotations

from agent.config.model import ScoringConfig
from agent.config.model_cfg import ModelConfig
from agent.errors import DecodeError
from agent.frame import Frame, Modality
from agent.model.preprocess import camera_image
from agent.model.proxy_model import CameraModel, LidarModel
from agent.scoring.base import Label, Verdict
from agent.scoring.committee import Committee
from agent.scoring.heuristic import HeuristicScorer
from agent.scoring.trust import unfamiliar, with_out_of_domain
from agent.scoring.usefulness import Pending
from agent.sources.decode import points_of


class HybridScorer(HeuristicScorer):
    name = "hybrid"

    def __init__(self, scoring: ScoringConfig, model: ModelConfig) -> None:
        super().__init__(scoring)
        self._min_prob = scoring.model_fault_min_prob
        self._model_cfg = model
        self.camera = CameraModel(model.camera, model)
        self.lidar = LidarModel(model.lidar, model, scoring.lidar.sector_count)
        self.committee = Committee(model)

    def assess(self, frame: Frame) -> Verdict | Pending:
        first = super().assess(frame)
        if isinstance(first, Verdict):
            return first
        try:
            if frame.modality is Modality.CAMERA:
                size = self.camera.spec.input_size
                image = camera_image(frame, size)
                out = self.camera.run(self.camera.inputs([image]))[0]
                spread = self.committee.spreads([image], [out])[0] if self.committee else None
            else:
                bev, _ = self.lidar.bev(points_of(frame))
                out = self.lidar.run(bev[None])[0]
                spread = None
        except DecodeError:
            return Verdict(Label.HARMFUL, 0.0, ("undecodable",), first.descriptor, first.signals)
        signals = {**first.signals, "p_harmful": round(out.harmful, 4), "ood": round(out.ood, 4)}
        strange = unfamiliar(out, frame, self._cfg, self._model_cfg)
        if out.harmful >= self._min_prob and not strange:
            return Verdict(Label.HARMFUL, 0.0, (f"fault_{out.fault}",), first.descriptor, signals)
        boosts = first.boosts
        if spread is not None:
            signals["committee_spread"] = spread
            boosts = (*boosts, *self.committee.boosts(spread))
        if strange:
            boosts = with_out_of_domain(boosts, self._cfg)
        return Pending(first.descriptor, signals, first.threshold, boosts=boosts)

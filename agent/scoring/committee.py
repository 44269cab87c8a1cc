"""Query by committee: several camera models vote on each frame; where they disagree, a model would learn.

A disagreement is not harm: the physical checks run first (a fault they see makes the frame harmful whatever the
models say), so a frame that reaches the committee is valid, and a dispute among its members marks it as
informative (reason `disagreement`), the way active learning picks frames to label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agent.config.model_cfg import ModelConfig
from agent.errors import ConfigError
from agent.model.proxy_model import CameraModel, ProxyOutput


class Committee:
    def __init__(self, cfg: ModelConfig) -> None:
        self.members = [CameraModel(spec, cfg) for spec in cfg.committee]
        for member in self.members:
            if member.spec.input_size != cfg.camera.input_size:
                raise ConfigError(f"model.committee: {member.spec.path} takes {member.spec.input_size}, the camera "
                                  f"model {cfg.camera.input_size}; members must share the camera model's input size")
        self.min_spread = cfg.committee_min_disagreement
        self.boost = cfg.committee_boost

    def __bool__(self) -> bool:
        return bool(self.members)

    def spreads(self, images: Sequence[np.ndarray], own: Sequence[ProxyOutput]) -> list[float]:
        """Per image (at the camera model's input size): max - min of every voter's fault probability."""
        votes = [[o.harmful for o in own]]
        votes += [[o.harmful for o in m.run(m.inputs(list(images)))] for m in self.members]
        table = np.array(votes)
        return [round(float(v), 4) for v in table.max(axis=0) - table.min(axis=0)]

    def boosts(self, spread: float) -> tuple[tuple[str, float], ...]:
        return (("disagreement", self.boost),) if spread >= self.min_spread else ()

"""When a model's fault head has a say on a frame: inside its domain, on a sensor model it learnt.

Out of either, the frame is unfamiliar, not broken: only the physical checks can call it harmful, and it is a
candidate for helpful (reason `out_of_domain`). Shared by the proxy and hybrid scorers.
"""

from __future__ import annotations

from agent.config.model import ScoringConfig
from agent.config.model_cfg import ModelConfig, ProxyModelSpec
from agent.frame import Frame, Modality
from agent.model.proxy_model import ProxyOutput

Boosts = tuple[tuple[str, float], ...]


def frame_sensor_model(scoring: ScoringConfig, frame: Frame) -> str | None:
    """The frame's sensor model: set in scoring.sensors, else as its source reports it (KITTI: the HDL-64E)."""
    return scoring.for_sensor(frame.sensor).model or frame.meta.get("sensor_model")


def head_trusted(spec: ProxyModelSpec, sensor_model: str | None) -> bool:
    """Whether a model's fault head has a say on a frame of this sensor model (its trusted_sensor_models)."""
    return not spec.trusted_sensor_models or sensor_model in spec.trusted_sensor_models


def unfamiliar(out: ProxyOutput, frame: Frame, scoring: ScoringConfig, model: ModelConfig) -> bool:
    """Out of the model's domain (ood at or over model.ood_trust_ratio) or from a sensor model it did not learn."""
    spec = model.camera if frame.modality is Modality.CAMERA else model.lidar
    far = model.ood_trust_ratio > 0 and out.ood >= model.ood_trust_ratio
    return far or not head_trusted(spec, frame_sensor_model(scoring, frame))


def with_out_of_domain(boosts: Boosts, scoring: ScoringConfig) -> Boosts:
    """`boosts` plus the out_of_domain one, unless the frame already carries the checks' `rare` boost."""
    if not scoring.rare_boost or any(name == "rare" for name, _ in boosts):
        return boosts
    return (*boosts, ("out_of_domain", scoring.rare_boost))

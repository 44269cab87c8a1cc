"""Config of the vehicle's sensor health alerts (agent/health.py): per modality, a harmful-rate window."""

from __future__ import annotations

from pydantic import Field, model_validator

from agent.config.base import StrictModel


class HealthRule(StrictModel):
    window_s: float = Field(60.0, gt=0.0, le=86_400.0, description="Frames of the last window_s seconds (frame "
                            "time) count towards a sensor's harmful rate.")
    min_frames: int = Field(10, ge=1, le=100_000, description="A window with fewer frames raises nothing.")
    raise_rate: float = Field(0.5, gt=0.0, le=1.0, description="Harmful rate at or above which an alert is raised.")
    clear_rate: float = Field(0.2, ge=0.0, lt=1.0, description="Harmful rate at or below which it is cleared (below "
                              "raise_rate, so that a sensor on the edge does not flap).")

    @model_validator(mode="after")
    def _clear_below_raise(self) -> HealthRule:
        if self.clear_rate >= self.raise_rate:
            raise ValueError("clear_rate must be below raise_rate")
        return self


class HealthConfig(StrictModel):
    enabled: bool = Field(True, description="Watch each sensor's harmful rate and raise alerts.")
    camera: HealthRule = HealthRule()
    lidar: HealthRule = HealthRule(min_frames=5)

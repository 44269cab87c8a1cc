"""Config sections for remote configuration over MQTT (extended by the remote-config work)."""

from __future__ import annotations

from pydantic import Field

from agent.config.base import StrictModel


class RemoteConfig(StrictModel):
    enabled: bool = Field(False, description="Accept configuration updates on the config/set topic.")
    groups: list[str] = Field(default_factory=list, max_length=32, description="Fleet groups this vehicle is in.")

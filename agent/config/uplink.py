"""Config sections for the MQTT uplink (extended by the uplink work; kept strict like the rest)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent.config.base import StrictModel


class UplinkConfig(StrictModel):
    enabled: bool = Field(False, description="Stream kept frames to the broker.")
    broker: str = Field("mqtt://127.0.0.1:1883", max_length=2048, description="Broker URL: mqtt:// or mqtts://.")
    topic_prefix: str = Field("edgesift", min_length=1, max_length=128, description="First topic level.")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version; 3.1.1 only as a fallback.")

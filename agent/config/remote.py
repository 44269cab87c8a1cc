"""Config sections for remote configuration over MQTT: where updates come from, how big, who signs, guardrails."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from agent.config.base import StrictModel

_GROUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class GuardrailsConfig(StrictModel):
    """Bounds a newly accepted remote config must keep the agent within, or it is rolled back."""

    enabled: bool = Field(False, description="Watch the keep rate after each accepted remote config.")
    keep_rate_min: float = Field(
        0.0, ge=0.0, le=1.0, description="Lowest acceptable fraction of frames kept over the window."
    )
    keep_rate_max: float = Field(
        1.0, ge=0.0, le=1.0, description="Highest acceptable fraction of frames kept over the window."
    )
    window_frames: int = Field(
        500, ge=0, le=10_000_000, description="The window closes after this many decisions (0 = no frame limit)."
    )
    window_s: float = Field(
        300.0, ge=0.0, le=604_800.0, description="The window closes this many seconds (frame time) after the first "
        "decision under the new config, once min_frames were seen (0 = no time limit)."
    )
    min_frames: int = Field(
        20, ge=1, le=10_000_000, description="A time-closed window needs at least this many decisions; fewer keeps "
        "it open (a keep rate over a handful of frames is noise)."
    )

    @model_validator(mode="after")
    def _bounds_make_sense(self) -> GuardrailsConfig:
        if self.keep_rate_min > self.keep_rate_max:
            raise ValueError("keep_rate_min must not exceed keep_rate_max")
        if self.window_frames == 0 and self.window_s == 0:
            raise ValueError("window_frames and window_s cannot both be 0 (the window would never close)")
        return self


class RemoteConfig(StrictModel):
    enabled: bool = Field(False, description="Accept configuration updates on the config/set topic.")
    groups: list[str] = Field(default_factory=list, max_length=32, description="Fleet groups this vehicle is in.")
    state_dir: str = Field(
        "state", min_length=1, max_length=4096, description="Folder where the last remote config is persisted "
        "(relative to the working folder)."
    )
    max_message_bytes: int = Field(
        65_536, ge=1024, le=262_144, description="config/set messages larger than this are rejected unparsed."
    )
    public_key: str = Field(
        "", max_length=4096, description="Fleet Ed25519 public key (PEM or raw base64); when set, only configs "
        "signed with the matching private key are accepted."
    )
    queue_size: int = Field(
        4, ge=1, le=1024, description="Updates waiting to be applied; beyond it the oldest waiting one is dropped "
        "(reported superseded), and a burst is applied newest version first."
    )
    max_version_jump: int = Field(
        1_000_000, ge=1, le=2**53, description="A remote update may raise the version by at most this much (a "
        "signed administrative reset may set any version)."
    )
    targets_dir: str = Field(
        "targets", min_length=1, max_length=4096, description="The only folder remote targets / exemplars are "
        "read from (they are given as bare file names)."
    )
    guardrails: GuardrailsConfig = GuardrailsConfig()

    @field_validator("groups")
    @classmethod
    def _groups_are_topic_safe(cls, value: list[str]) -> list[str]:
        # A group name becomes an MQTT topic level: no wildcards, slashes or spaces.
        for name in value:
            if not _GROUP_RE.match(name):
                raise ValueError(f"group {name!r} must be 1-64 letters, digits, '_', '.' or '-'")
        if len(set(value)) != len(value):
            raise ValueError("groups must not repeat")
        return value

    @field_validator("public_key")
    @classmethod
    def _public_key_parses(cls, value: str) -> str:
        if value.strip():
            from agent.remote.signing import load_public_key  # deferred: cryptography only when a key is set

            load_public_key(value)  # raises ValueError with the reason
        return value

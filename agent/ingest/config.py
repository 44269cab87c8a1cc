"""Settings of the reference cloud receiver (`edgesift ingest`): the broker connection plus batching and bounds."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from agent.config.uplink import ConnectionConfig

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class IngestConfig(ConnectionConfig):
    group: str = Field("edgesift-ingest", description="Shared-subscription group: workers in one group split the "
                       "frames between them.")
    client_id: str = Field("edgesift-ingest", min_length=1, max_length=128, description="MQTT client id; keep it "
                           "stable across restarts (the persistent session is keyed on it) and unique per worker.")
    shared: bool = Field(True, description="Subscribe to frames through $share/<group>/ (MQTT 5 shared "
                         "subscription); False for brokers without them (then run a single worker).")
    session_expiry_s: int = Field(
        7 * 86_400, ge=0, le=4_294_967_295, description="How long the broker queues frames for a stopped ingest."
    )
    receipts: bool = Field(True, description="After each commit, publish <prefix>/<vehicle>/receipts listing the "
                           "frames stored, so vehicles (uplink.delete_on: receipt) delete them only then.")
    batch_max: int = Field(
        256, ge=1, le=100_000, description="Messages per group commit: their acks wait until the batch is durable."
    )
    batch_ms: float = Field(20.0, ge=0.0, le=60_000.0, description="Longest a message waits for its group commit.")
    max_partial_mb: float = Field(
        256.0, gt=0.0, le=1_000_000.0, description="Chunks of incomplete frames held; beyond it the longest-waiting "
        "partial frames are abandoned (counted)."
    )
    reassembly_timeout_s: float = Field(
        300.0, gt=0.0, le=30 * 86_400.0, description="Partial frames whose first chunk is older are abandoned "
        "(counted)."
    )

    db: str | None = Field(None, max_length=4096, description="The index: a postgresql:// URL (workers on several "
                           "machines share it), a SQLite file, or None for <out>/index.sqlite3.")
    segment_mb: float = Field(512.0, gt=0.0, le=1_000_000.0, description="An MCAP segment is closed and the next "
                              "one started once it holds this many MB.")
    segment_s: float = Field(3600.0, gt=0.0, le=30 * 86_400.0, description="... or once it is this old.")

    @field_validator("group")
    @classmethod
    def _group_is_topic_safe(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("must be 1-64 letters, digits, '_', '.' or '-'")
        return value

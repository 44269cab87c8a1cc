"""What the ingest keeps of the vehicles' own messages for the fleet page: status (online/offline, with the Last
Will), stats, config acks and sensor alerts, written into the index in the same batch as the frames."""

from __future__ import annotations

import json
from typing import Any

from agent.ingest.store import IngestIndex
from agent.remote.topics import StateReport
from agent.uplink import wire

MAX_MESSAGE_BYTES = 65_536
ALERTS_AREA = "status/alerts/"


def area_of(topic: str, prefix: str, vehicle: str) -> str:
    """The topic below `<prefix>/<vehicle>/`; WireError for anything the ingest does not record."""
    area = topic[len(prefix) + len(vehicle) + 2 :]
    if area not in ("status", "stats", "config/state") and not area.startswith(ALERTS_AREA):
        raise wire.WireError(f"unexpected topic {topic[:200]!r}")
    return area


def record(index: IngestIndex, state: Any, vehicle: str, area: str, payload: bytes, now_ns: int) -> str:
    """Store one vehicle message (the caller opened the batch); returns the counter it counts under."""
    if area == "status":
        state.status = payload[:32].decode("utf-8", "replace")
        index.set_status(vehicle, state.status, now_ns)
        return "status_messages"
    if area == "stats":
        state.stats = json_object(payload, "stats")
        index.set_stats(vehicle, state.stats, now_ns)
        return "stats_messages"
    if area == "config/state":
        report = StateReport.from_payload(payload[:MAX_MESSAGE_BYTES])
        if report is None:
            raise wire.WireError("config state is not a state report")
        index.add_config_state(vehicle, report, now_ns)
        return "config_states"
    if payload:  # an empty retained message clears the topic: nothing to record
        index.upsert_alert(vehicle, alert(json_object(payload, "alert")), now_ns)
    return "alert_messages"


def json_object(payload: bytes, what: str) -> dict[str, Any]:
    if len(payload) > MAX_MESSAGE_BYTES:
        raise wire.WireError(f"{what} message of {len(payload)} bytes")
    try:
        doc = json.loads(payload)
    except ValueError as exc:
        raise wire.WireError(f"{what} message is not JSON: {exc}") from exc
    return doc if isinstance(doc, dict) else {}


def alert(doc: dict[str, Any]) -> dict[str, Any]:
    """A vehicle's alert message (agent/health.py writes them), checked enough to be stored."""
    try:
        out = {"sensor": str(doc["sensor"])[:64], "modality": str(doc["modality"])[:16],
               "reason": str(doc["reason"])[:64], "message": str(doc["message"])[:300],
               "raised_ns": int(doc["raised_ns"]), "harmful_rate": float(doc["harmful_rate"]),
               "state": str(doc["state"])}  # fmt: skip
        if out["state"] == "cleared":
            out["cleared_ns"] = int(doc["cleared_ns"])
    except (KeyError, TypeError, ValueError) as exc:
        raise wire.WireError(f"alert message without a valid {exc}") from exc
    return out

"""Topic names of the remote-config channel and the retained config/state report.

<prefix>/<vehicle>/config/set        fleet -> one vehicle (config document or signed envelope)
<prefix>/group/<group>/config/set    fleet -> every vehicle in the group
<prefix>/<vehicle>/config/state      vehicle -> fleet, retained: the result of the last update (StateReport)
<prefix>/<vehicle>/status            vehicle -> fleet, retained: "online" / "offline" (published by the uplink)
<prefix>/<vehicle>/stats             vehicle -> fleet: JSON counters (published by the uplink)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

GROUP_LEVEL = "group"  # reserved second topic level: a vehicle may not be called "group"


def vehicle_set(prefix: str, vehicle: str) -> str:
    return f"{prefix}/{vehicle}/config/set"


def group_set(prefix: str, group: str) -> str:
    return f"{prefix}/{GROUP_LEVEL}/{group}/config/set"


def config_state(prefix: str, vehicle: str) -> str:
    return f"{prefix}/{vehicle}/config/state"


def status(prefix: str, vehicle: str) -> str:
    return f"{prefix}/{vehicle}/status"


def stats(prefix: str, vehicle: str) -> str:
    return f"{prefix}/{vehicle}/stats"


def vehicle_of(topic: str, prefix: str) -> str | None:
    """The vehicle level of a per-vehicle topic (None for group topics and foreign prefixes)."""
    parts = topic.split("/")
    head = prefix.split("/")
    if parts[: len(head)] != head or len(parts) <= len(head) or parts[len(head)] == GROUP_LEVEL:
        return None
    return parts[len(head)]


@dataclass(frozen=True)
class StateReport:
    """What a vehicle did with a config update (Azure PnP ack: ac/av/ad -> status/version/error)."""

    status: str  # accepted | rejected | rolled_back
    version: int  # the version running now
    requested_version: int | None
    error: str | None
    t: float  # unix seconds
    request_id: str | None = None
    via: str = "vehicle"  # vehicle | group/<name> | startup | guardrails

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_payload(cls, payload: bytes) -> StateReport | None:
        try:
            doc: Any = json.loads(payload)
            if not isinstance(doc, dict):
                return None
            known = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__}  # newer senders may add keys
            return cls(**known)
        except (ValueError, TypeError):
            return None

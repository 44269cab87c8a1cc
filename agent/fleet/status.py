"""Fleet overview from the broker: online state, running config version and latest stats of each vehicle."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from agent.fleet.collect import Received, TopicCollector
from agent.remote import topics
from agent.remote.mqttconn import BrokerSettings, connected
from agent.remote.topics import StateReport

MAX_STATS_CHARS = 160


@dataclass
class VehicleStatus:
    vehicle: str
    online: str = "unknown"  # online | offline | unknown (no retained status seen)
    config: StateReport | None = None
    stats: dict[str, Any] | None = None
    seen: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        state = self.config
        return {
            "vehicle": self.vehicle, "online": self.online,
            "version": state.version if state else None,
            "config_status": state.status if state else None,
            "config_error": state.error if state else None,
            "stats": self.stats,
        }

    def line(self) -> str:
        state = self.config
        version = f"v{state.version} ({state.status})" if state else "v? (no config state)"
        stats = json.dumps(self.stats, sort_keys=True, separators=(",", ":")) if self.stats is not None else "-"
        if len(stats) > MAX_STATS_CHARS:
            stats = stats[: MAX_STATS_CHARS - 3] + "..."
        return f"{self.vehicle:<20} {self.online:<8} {version:<24} stats={stats}"


def fold(messages: list[Received], prefix: str) -> dict[str, VehicleStatus]:
    """Turn collected status / config/state / stats messages into one record per vehicle (latest wins)."""
    out: dict[str, VehicleStatus] = {}
    for message in messages:
        vehicle = topics.vehicle_of(message.topic, prefix)
        if vehicle is None:
            continue
        record = out.setdefault(vehicle, VehicleStatus(vehicle))
        area = message.topic[len(prefix) + len(vehicle) + 2:]
        if area == "status":
            record.online = message.payload.decode("utf-8", "replace").strip()[:16] or "unknown"
        elif area == "config/state":
            record.config = StateReport.from_payload(message.payload) or record.config
        elif area == "stats":
            record.stats = _json_object(message.payload)
        record.seen.add(area)
    return out


def _json_object(payload: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else {"value": doc}


def collect_status(
    settings: BrokerSettings, *, prefix: str = "edgesift", window: float = 2.0, timeout: float = 10.0
) -> list[VehicleStatus]:
    """Listen for `window` seconds (retained status and state arrive at once; stats as they are published)."""
    filters = [topics.status(prefix, "+"), topics.config_state(prefix, "+"), topics.stats(prefix, "+")]
    with connected(settings, timeout=timeout) as client:
        collector = TopicCollector(client, filters).start(timeout)
        time.sleep(window)
        messages = collector.messages()
    return [record for _name, record in sorted(fold(messages, prefix).items())]

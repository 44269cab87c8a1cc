"""Helpers for the remote-config tests: vehicles (store + manager) on a real broker, and a config/state watcher."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from agent.config import AgentConfig
from agent.fleet.collect import TopicCollector
from agent.fleet.push import publish_qos1
from agent.remote import BrokerSettings, ConfigStore, RemoteConfigManager, StateReport
from agent.remote.mqttconn import connected

TIMEOUT = 10.0


def vehicle_config(vehicle: str, state_dir: Path, **remote: Any) -> AgentConfig:
    doc: dict[str, Any] = {"version": 5, "vehicle_id": vehicle,
                           "remote": {"enabled": True, "state_dir": str(state_dir), **remote}}
    return AgentConfig.model_validate(doc)


@dataclass
class Vehicle:
    store: ConfigStore
    manager: RemoteConfigManager
    watcher: StateWatcher

    @property
    def name(self) -> str:
        return self.manager.vehicle

    def send(self, payload: bytes | dict[str, Any], topic: str | None = None) -> StateReport:
        """Publish to this vehicle's config/set (or topic) and return the report it publishes in answer."""
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.watcher.mark()
        publish(self.watcher.collector.client, topic or f"edgesift/{self.name}/config/set", raw)
        return self.watcher.next()


class StateWatcher:
    """Collects one vehicle's config/state reports; `next()` returns the first report after a mark."""

    def __init__(self, client: mqtt.Client, vehicle: str, prefix: str = "edgesift") -> None:
        self.topic = f"{prefix}/{vehicle}/config/state"
        self.collector = TopicCollector(client, [self.topic]).start(TIMEOUT)
        self._mark = 0

    def _live(self) -> list[Any]:
        # Retained copies from an earlier run arrive first on subscribe: only live reports count.
        return [m for m in self.collector.messages() if not m.retained]

    def reports(self) -> list[StateReport]:
        out = []
        for message in self._live():
            report = StateReport.from_payload(message.payload)
            assert report is not None, message.payload
            out.append(report)
        return out

    def mark(self) -> None:
        self._mark = len(self._live())

    def next(self, timeout: float = TIMEOUT) -> StateReport:
        """The first live report that arrived after the last mark() (then marks past it)."""
        index = self._mark
        found = self.collector.wait_count(lambda m: not m.retained, index + 1, timeout)
        assert len(found) > index, f"no config/state report on {self.topic} within {timeout} s"
        self._mark = index + 1
        report = StateReport.from_payload(found[index].payload)
        assert report is not None
        return report


@contextlib.contextmanager
def watcher_client(url: str, **options: Any) -> Iterator[mqtt.Client]:
    with connected(BrokerSettings.from_url(url, **options), timeout=TIMEOUT) as client:
        yield client


@contextlib.contextmanager
def running_vehicle(
    url: str, config: AgentConfig, watcher_options: dict[str, Any] | None = None, **options: Any
) -> Iterator[Vehicle]:
    """A store opened from config (and its state dir) plus a started manager with its own connection.

    The watcher (which also publishes the test's updates) connects with watcher_options, or the same options.
    """
    store = ConfigStore.open(config)
    settings = BrokerSettings.from_url(url, **options)
    manager = RemoteConfigManager.with_own_client(store, settings)
    with watcher_client(url, **(options if watcher_options is None else watcher_options)) as client:
        watcher = StateWatcher(client, config.vehicle_id)
        manager.start()
        try:
            birth = watcher.next()  # subscriptions are active once the startup report is out (same connection)
            assert birth.via == "startup", birth
            yield Vehicle(store, manager, watcher)
        finally:
            manager.stop()


def envelope(config: dict[str, Any], request_id: str | None = None, signature: str | None = None) -> bytes:
    doc: dict[str, Any] = {"config": config}
    if request_id is not None:
        doc["id"] = request_id
    if signature is not None:
        doc["signature"] = signature
    return json.dumps(doc).encode()


def publish(client: mqtt.Client, topic: str, payload: bytes) -> None:
    publish_qos1(client, topic, payload, TIMEOUT)

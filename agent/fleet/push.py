"""Push a config document to one vehicle or a group and wait for the vehicles' config/state answers."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from agent.config import parse_config
from agent.config.safe_yaml import load_yaml
from agent.errors import ConfigError
from agent.fleet.collect import Received, TopicCollector
from agent.remote import topics
from agent.remote.mqttconn import BrokerError, BrokerSettings, connected
from agent.remote.signing import load_private_key_file, signed_envelope
from agent.remote.topics import StateReport


@dataclass(frozen=True)
class Target:
    vehicle: str | None = None
    group: str | None = None

    def set_topic(self, prefix: str) -> str:
        if self.vehicle:
            return topics.vehicle_set(prefix, self.vehicle)
        assert self.group is not None
        return topics.group_set(prefix, self.group)

    def state_filter(self, prefix: str) -> str:
        return topics.config_state(prefix, self.vehicle or "+")

    def __str__(self) -> str:
        return self.vehicle or f"group {self.group}"

    @property
    def address(self) -> str:
        """How a signed envelope names it (checked by the vehicle)."""
        return f"vehicle:{self.vehicle}" if self.vehicle else f"group:{self.group}"


@dataclass(frozen=True)
class PushOutcome:
    target: Target
    request_id: str
    requested_version: int
    answers: dict[str, StateReport]  # vehicle -> its report for this request

    @property
    def ok(self) -> bool:
        return bool(self.answers) and all(r.status == "accepted" for r in self.answers.values())

    def summary(self) -> str:
        if not self.answers:
            return f"{self.target}: no answer to version {self.requested_version}"
        parts = [_describe(vehicle, r) for vehicle, r in sorted(self.answers.items())]
        if self.target.vehicle:
            return parts[0]
        accepted = sum(r.status == "accepted" for r in self.answers.values())
        return f"{self.target}: {len(self.answers)} answered, {accepted} accepted: " + "; ".join(parts)


def _describe(vehicle: str, report: StateReport) -> str:
    text = f"{vehicle} {report.status} (running version {report.version}, requested {report.requested_version})"
    return f"{text}: {report.error}" if report.error else text


def load_document(path: str | Path) -> dict[str, Any]:
    """Read a (partial) config file, validate it like the agent will, and return it as written."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {p}: {exc}") from exc
    config, issues = parse_config(text, str(p))
    if config is None:
        raise ConfigError(f"{p} is invalid: " + "; ".join(str(i) for i in issues))
    doc = load_yaml(text) or {}  # parse_config accepted it, so it is within the loader's bounds
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ConfigError(f"{p} must set an integer version (higher than the vehicle's)")
    return doc


def build_envelope(doc: dict[str, Any], request_id: str, sign_key: str | Path | None = None, *,
                   target: Target | None = None, valid_s: float = 3600.0, reset: bool = False) -> bytes:
    """The config/set payload. Signed ones name their target and expire after valid_s (both signed)."""
    envelope: dict[str, Any] = {"config": doc, "id": request_id}
    if sign_key is not None:
        try:
            key = load_private_key_file(sign_key)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load signing key {sign_key}: {exc}") from exc
        if target is None:
            raise ConfigError("a signed config needs its target (vehicle or group)")
        envelope = signed_envelope(key, doc, target=target.address, not_after=int(time.time() + valid_s),
                                   reset=reset, request_id=request_id)
    elif reset:
        raise ConfigError("an administrative reset must be signed (--sign-key)")
    return json.dumps(envelope, separators=(",", ":")).encode("utf-8")


def push_config(
    settings: BrokerSettings, target: Target, doc: dict[str, Any], *, prefix: str = "edgesift",
    sign_key: str | Path | None = None, timeout: float = 10.0, retain: bool = False, expect: int = 0,
    valid_s: float = 3600.0, reset: bool = False,
) -> PushOutcome:
    """Publish doc (QoS 1) and collect the answers carrying our request id.

    A vehicle push returns at its first answer; a group push waits for `expect` answers, or the whole timeout.
    """
    request_id = uuid.uuid4().hex
    payload = build_envelope(doc, request_id, sign_key, target=target, valid_s=valid_s, reset=reset)
    with connected(settings, timeout=timeout) as client:
        collector = TopicCollector(client, [target.state_filter(prefix)]).start(timeout)
        publish_qos1(client, target.set_topic(prefix), payload, timeout, retain=retain)
        wanted = 1 if target.vehicle else expect
        deadline = time.monotonic() + timeout
        if wanted:
            collector.wait_count(lambda m: _matches(m, request_id), wanted, timeout)
        else:
            time.sleep(max(0.0, deadline - time.monotonic()))
        answers = _answers(collector.messages(), request_id, prefix)
    return PushOutcome(target, request_id, doc["version"], answers)


def _matches(message: Received, request_id: str) -> bool:
    report = StateReport.from_payload(message.payload)
    return report is not None and report.request_id == request_id


def _answers(messages: list[Received], request_id: str, prefix: str) -> dict[str, StateReport]:
    out: dict[str, StateReport] = {}
    for message in messages:
        report = StateReport.from_payload(message.payload)
        vehicle = topics.vehicle_of(message.topic, prefix)
        if report is not None and vehicle and report.request_id == request_id:
            out[vehicle] = report  # the latest answer wins (a vehicle answers once per request)
    return out


def publish_qos1(client: mqtt.Client, topic: str, payload: bytes, timeout: float, retain: bool = False) -> None:
    """Publish and wait for the PUBACK; raise BrokerError when it does not come or refuses (MQTT 5 reason code)."""
    acks: dict[int, Any] = {}
    client.on_publish = lambda _c, _u, mid, reason, _p: acks.__setitem__(mid, reason)
    info = client.publish(topic, payload, qos=1, retain=retain)
    try:
        info.wait_for_publish(timeout)
    except (ValueError, RuntimeError) as exc:
        raise BrokerError(f"cannot publish to {topic}: {exc}") from exc
    if not info.is_published():
        raise BrokerError(f"the broker did not acknowledge the publish to {topic} in {timeout:g} s")
    reason = acks.get(info.mid)
    if reason is not None and reason.is_failure:
        raise BrokerError(f"the broker refused the publish to {topic}: {reason}")

"""Remote configuration over MQTT: a versioned, validated, persisted, guard-railed config store and its manager."""

from agent.remote.guardrails import Guardrails, GuardrailVerdict
from agent.remote.manager import RemoteConfigManager, RemoteCounters
from agent.remote.mqttconn import BrokerError, BrokerSettings
from agent.remote.persist import ConfigPersister, StartupConfig, startup_config
from agent.remote.store import ApplyResult, ApplyStatus, ConfigStore
from agent.remote.topics import StateReport

__all__ = [
    "ApplyResult",
    "ApplyStatus",
    "BrokerError",
    "BrokerSettings",
    "ConfigPersister",
    "ConfigStore",
    "GuardrailVerdict",
    "Guardrails",
    "RemoteConfigManager",
    "RemoteCounters",
    "StartupConfig",
    "StateReport",
    "startup_config",
]

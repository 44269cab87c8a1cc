"""RemoteConfigManager: receive config updates over MQTT, apply them through the ConfigStore, report the result.

Threads: paho's network thread only copies each message into a bounded queue (overflow: drop the oldest waiting
one and report it `rejected` as superseded, counted in `dropped_busy`); one worker thread decodes, validates and
applies, so a slow subscriber never stalls the connection. What waits is applied newest version first, so a burst
coalesces to its newest valid version (the older ones are then stale). Guardrail verdicts arrive through
`observe()` on the caller's (pipeline) thread and may roll back there. Nothing here raises into paho: every
failure becomes a state report.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from agent.config import AgentConfig
from agent.config.load import issues_from_validation
from agent.errors import ConfigError
from agent.remote import topics
from agent.remote.guardrails import Guardrails, GuardrailVerdict
from agent.remote.hardening import Refused, check_restart_only, check_version, localise_file_lists
from agent.remote.merge import deep_merge, protected_changes
from agent.remote.message import Addressee, ConfigRequest, MessageRejected, decode_config_message, parse_json_object
from agent.remote.mqttconn import BrokerSettings, make_client
from agent.remote.signing import load_public_key
from agent.remote.store import ApplyResult, ConfigStore
from agent.remote.topics import StateReport

logger = logging.getLogger(__name__)

MAX_ISSUES_REPORTED = 5


@dataclass
class RemoteCounters:
    received: int = 0
    accepted: int = 0
    rejected: int = 0
    rolled_back: int = 0
    dropped_busy: int = 0  # queue full: newest update dropped and reported rejected
    ignored_retained: int = 0  # a retained update already applied, re-delivered on subscribe
    ignored_empty: int = 0  # empty payloads: how MQTT clears a retained push, not an update
    observe_skipped: int = 0  # decisions not counted because an update was being applied

    def snapshot(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class _Incoming:
    topic: str
    payload: bytes
    retained: bool


class RemoteConfigManager:
    """Owns the config/set subscriptions of one vehicle and the config/state report.

    Give it a paho client the daemon already uses (then call `on_connect()` from the daemon's on_connect so the
    subscriptions are renewed on every reconnect), or build one with `with_own_client()`.
    """

    OVERFLOW = "drop_oldest"

    def __init__(
        self, client: mqtt.Client, store: ConfigStore, *, clock: Callable[[], float] = time.time,
        settings: BrokerSettings | None = None,
    ) -> None:
        config = store.current
        if config.vehicle_id == topics.GROUP_LEVEL:
            raise ConfigError(f"vehicle_id {topics.GROUP_LEVEL!r} is reserved for group topics")
        self.client, self.store = client, store
        self.prefix, self.vehicle = config.uplink.topic_prefix, config.vehicle_id
        self.counters = RemoteCounters()
        self._clock = clock
        self._settings = settings  # set only when this manager owns the connection
        self._groups = tuple(config.remote.groups)
        self._queue: queue.Queue[_Incoming | None] = queue.Queue(maxsize=config.remote.queue_size)
        self._guard_lock = threading.Lock()  # order: guard lock, then the store's lock
        self._monitor = Guardrails(config.remote.guardrails)
        self._last_good: AgentConfig | None = None
        self._judged: tuple[int, str | None] = (config.version, None)
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._unsubscribe_store: Callable[[], None] | None = None
        self._birth_sent = False

    @classmethod
    def from_store(cls, store: ConfigStore, client: mqtt.Client | None = None, **kwargs: Any) -> RemoteConfigManager:
        """Share `client` when given, else connect on our own with the uplink's broker settings."""
        if client is not None:
            return cls(client, store, **kwargs)
        return cls.with_own_client(store, BrokerSettings.from_connection(store.current.uplink), **kwargs)

    @classmethod
    def with_own_client(
        cls, store: ConfigStore, settings: BrokerSettings, client_id: str | None = None, **kwargs: Any
    ) -> RemoteConfigManager:
        client = make_client(settings, client_id or f"edgesift-{store.current.vehicle_id}-remote")
        return cls(client, store, settings=settings, **kwargs)

    # --- lifecycle -------------------------------------------------------------------------------------------

    def set_topics(self) -> list[str]:
        groups = (topics.group_set(self.prefix, g) for g in self._groups)
        return [topics.vehicle_set(self.prefix, self.vehicle), *groups]

    @property
    def state_topic(self) -> str:
        return topics.config_state(self.prefix, self.vehicle)

    def start(self) -> None:
        self._unsubscribe_store = self.store.subscribe(self._on_config_change, name="remote-manager")
        for topic in self.set_topics():
            self.client.message_callback_add(topic, self._on_message)
        self._worker = threading.Thread(target=self._run, name="remote-config", daemon=True)
        self._worker.start()
        if self._settings is not None:
            self.client.suppress_exceptions = True
            self.client.on_connect = self._on_own_connect
            self.client.connect_async(self._settings.host, self._settings.port, keepalive=30)
            self.client.loop_start()
        elif self.client.is_connected():
            self.on_connect()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):  # when full, the worker sees the stop event within its poll interval
            self._queue.put_nowait(None)
        if self._worker is not None:
            self._worker.join(timeout)
        for topic in self.set_topics():
            self.client.message_callback_remove(topic)
        if self._unsubscribe_store is not None:
            self._unsubscribe_store()
        if self._settings is not None:
            self.client.disconnect()
            self.client.loop_stop()

    def on_connect(self) -> None:
        """(Re)subscribe; the first time, also publish the running version so `fleet status` can show it."""
        self.client.subscribe([(topic, 1) for topic in self.set_topics()])
        if not self._birth_sent:
            self._birth_sent = True
            version = self.store.current.version
            self._publish_state(StateReport("accepted", version, version, None, self._clock(), via="startup"))

    def _on_own_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            logger.warning("broker refused the remote-config connection: %s", reason)
            return
        self.on_connect()

    # --- receiving -------------------------------------------------------------------------------------------

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        """Runs on paho's thread: copy and queue, nothing else; never raises."""
        try:
            self.counters.received += 1
            incoming = _Incoming(message.topic, bytes(message.payload), bool(message.retain))
            while True:
                try:
                    self._queue.put_nowait(incoming)
                    break
                except queue.Full:
                    with contextlib.suppress(queue.Empty):  # the worker may have taken it meanwhile
                        oldest = self._queue.get_nowait()
                        if oldest is not None:
                            self._superseded(oldest)
        except Exception:
            logger.exception("could not queue a config message on %s", getattr(message, "topic", "?"))

    def _superseded(self, item: _Incoming) -> None:
        self.counters.dropped_busy += 1
        error = f"superseded: {self._queue.maxsize} updates were waiting and a newer one arrived"
        version, request_id = _peek(item.payload)
        self._publish_state(self._report("rejected", version, error, request_id, self._via(item.topic)))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [item]
            with contextlib.suppress(queue.Empty):
                while len(batch) <= self._queue.maxsize:
                    batch.append(self._queue.get_nowait())
            if None in batch:
                break
            # Newest version first: in a burst it is the one that wins, the older ones are then stale.
            batch.sort(key=lambda i: _peek(i.payload)[0] or -1, reverse=True)  # type: ignore[union-attr]
            for one in batch:
                assert one is not None
                self.handle_message(one.topic, one.payload, one.retained)

    def handle_message(self, topic: str, payload: bytes, retained: bool = False) -> StateReport | None:
        """Decode, validate, apply and report one config/set message (the worker calls this; tests may too)."""
        via = self._via(topic)
        try:
            # Held for the whole update, so a guardrail rollback cannot slip in between reading the current config
            # and swapping in the one merged onto it.
            with self._guard_lock:
                report = self._process(payload, via, retained)
        except Exception as exc:  # a bug must still end as a reported rejection, never kill the worker
            logger.exception("config message on %s failed", topic)
            report = self._report("rejected", None, f"internal error: {type(exc).__name__}: {exc}", None, via)
        if report is not None:
            self._publish_state(report)
        return report

    def _process(self, payload: bytes, via: str, retained: bool) -> StateReport | None:
        if not payload:
            self.counters.ignored_empty += 1
            return None
        current = self.store.current
        try:
            group = via[len("group/"):] if via.startswith("group/") else None
            request = decode_config_message(
                payload, max_bytes=current.remote.max_message_bytes, public_key=self._public_key(current),
                reader=Addressee(self.vehicle, group, self._clock()),
            )
            if retained and request.version <= self.store.version_floor:
                # A retained push we already applied (or refused as old), delivered again on resubscribe.
                self.counters.ignored_retained += 1
                return None
            new = self._build(current, request)
        except MessageRejected as exc:
            logger.warning("config update rejected (%s): version %s: %s", via, exc.requested_version, exc.reason)
            return self._report("rejected", exc.requested_version, exc.reason, exc.request_id, via)
        result = self.store.apply(new, reset=request.reset)
        if result.ok:
            self._arm(current, request)
        return self._report_result(result, request.request_id, via)

    def _build(self, current: AgentConfig, request: ConfigRequest) -> AgentConfig:
        """The config the request asks for, merged onto the current one; MessageRejected when it may not run."""
        ids: dict[str, Any] = {"request_id": request.request_id, "requested_version": request.version}
        current_doc = current.model_dump(mode="json")
        try:
            check_version(request.version, self.store.version_floor, current.remote.max_version_jump, request.reset)
            document = localise_file_lists(current_doc, request.document, current.remote.targets_dir)
        except Refused as exc:
            raise MessageRejected(str(exc), **ids) from None
        try:
            new = AgentConfig.model_validate(deep_merge(current_doc, document))
        except ValidationError as exc:
            issues = issues_from_validation(exc)
            detail = "; ".join(str(i) for i in issues[:MAX_ISSUES_REPORTED])
            more = f" (+{len(issues) - MAX_ISSUES_REPORTED} more)" if len(issues) > MAX_ISSUES_REPORTED else ""
            raise MessageRejected(f"invalid config: {detail}{more}", **ids) from None
        new_doc = new.model_dump(mode="json")
        changed = protected_changes(current_doc, new_doc)
        if changed:
            raise MessageRejected(f"not remotely changeable: {', '.join(changed)}", **ids)
        try:
            check_restart_only(current_doc, new_doc)
        except Refused as exc:
            raise MessageRejected(str(exc), **ids) from None
        return new

    def _public_key(self, config: AgentConfig) -> Ed25519PublicKey | None:
        text = config.remote.public_key.strip()
        if not text:
            return None
        if text not in self._keys:
            self._keys = {text: load_public_key(text)}  # validated with the config, so this parses
        return self._keys[text]

    # --- guardrails ------------------------------------------------------------------------------------------

    def _arm(self, previous: AgentConfig, request: ConfigRequest) -> None:
        """After an accepted update (guard lock held): judge it against the last config known to be good."""
        if not self._monitor.armed or self._last_good is None:
            self._last_good = previous  # an update on top of one still being judged keeps the older good one
        # The last good config's bounds judge the new one: an update cannot loosen its own check.
        settings = self._last_good.remote.guardrails
        if settings.enabled:
            self._monitor.arm(settings)
            self._judged = (request.version, request.request_id)
        else:
            self._monitor.disarm()
            self._last_good = None

    def observe(self, kept: bool, t_ns: int) -> GuardrailVerdict | None:
        """Feed one keep/drop decision; may roll back (running subscribers on this thread). Cheap when idle."""
        if not self._monitor.armed:
            return None
        return self._guarded(lambda: self._monitor.observe(kept, t_ns))

    def tick(self, t_ns: int) -> GuardrailVerdict | None:
        """Close a time window when no decisions arrive (call periodically with the frame clock)."""
        if not self._monitor.armed:
            return None
        return self._guarded(lambda: self._monitor.check(t_ns))

    def _guarded(self, step: Callable[[], GuardrailVerdict | None]) -> GuardrailVerdict | None:
        # Never block the pipeline behind an update being applied: skip (and count) this decision instead.
        if not self._guard_lock.acquire(blocking=False):
            self.counters.observe_skipped += 1
            return None
        try:
            verdict = step()
            if verdict is not None:
                self._settle(verdict)
            return verdict
        finally:
            self._guard_lock.release()

    def _settle(self, verdict: GuardrailVerdict) -> None:
        last_good, self._last_good = self._last_good, None
        version, request_id = self._judged
        if verdict.ok or last_good is None:
            logger.info("config version %d passed its guardrails: %s", version, verdict.reason)
            return
        logger.warning("config version %d broke its guardrails, rolling back: %s", version, verdict.reason)
        result = self.store.apply(last_good, force=True)
        error = f"guardrail: {verdict.reason}"
        if not result.ok:
            error += f"; rollback failed: {result.error}"
        self.counters.rolled_back += 1
        current = self.store.current.version
        self._publish_state(StateReport("rolled_back", current, version, error, self._clock(), request_id,
                                        "guardrails"))

    # --- reporting -------------------------------------------------------------------------------------------

    def _report(
        self, status: str, requested: int | None, error: str | None, request_id: str | None, via: str
    ) -> StateReport:
        if status == "rejected":
            self.counters.rejected += 1
        return StateReport(status, self.store.current.version, requested, error, self._clock(), request_id, via)

    def report_local(self, result: ApplyResult) -> None:
        """A local change (SIGHUP reload of the file) went through the store: tell the fleet what now runs, so that
        `fleet status` does not keep showing the version before the reload."""
        if result.ok:
            self._publish_state(self._report_result(result, None, "local"))

    def _report_result(self, result: ApplyResult, request_id: str | None, via: str) -> StateReport:
        status = result.status.value
        if status == "accepted":
            self.counters.accepted += 1
            logger.info("config update accepted (%s): version %d now runs", via, result.requested_version)
        else:
            if status == "rolled_back":
                self.counters.rolled_back += 1
            logger.warning("config update %s (%s): version %s: %s", status.replace("_", " "), via,
                           result.requested_version, result.error)
        return self._report(status, result.requested_version, result.error, request_id, via)

    def _publish_state(self, report: StateReport) -> None:
        try:
            self.client.publish(self.state_topic, report.to_json(), qos=1, retain=True)
        except Exception:
            logger.exception("could not publish config state %s", report.status)

    def _via(self, topic: str) -> str:
        group_prefix = f"{self.prefix}/{topics.GROUP_LEVEL}/"
        if topic.startswith(group_prefix):
            return "group/" + topic[len(group_prefix):].split("/", 1)[0]
        return "vehicle"

    # --- group membership changes ----------------------------------------------------------------------------

    def _on_config_change(self, new: AgentConfig, _old: AgentConfig) -> None:
        groups = tuple(new.remote.groups)
        if groups == self._groups:
            return
        before = set(self.set_topics())
        self._groups = groups
        after = set(self.set_topics())
        for topic in sorted(before - after):
            self.client.message_callback_remove(topic)
            self.client.unsubscribe(topic)
        added = sorted(after - before)
        for topic in added:
            self.client.message_callback_add(topic, self._on_message)
        if added and self.client.is_connected():
            self.client.subscribe([(topic, 1) for topic in added])


def _peek(payload: bytes) -> tuple[int | None, str | None]:
    """(version, request id) of a queued message, for ordering and for reports; (None, None) when unreadable."""
    try:
        doc = parse_json_object(payload, 1 << 20)
    except MessageRejected:
        return None, None
    config = doc.get("config", doc)
    version = config.get("version") if isinstance(config, dict) else None
    request_id = doc.get("id") if isinstance(doc.get("id"), str) else None
    return (version if isinstance(version, int) and not isinstance(version, bool) else None), request_id

"""Process plumbing of the daemon: logging format, systemd notifications, and the uplink's daemon extensions."""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import paho.mqtt.client as mqtt

from agent.uplink import wire
from agent.uplink.uplink import Uplink

OUTBOX_SIZE = 1024

log = logging.getLogger(__name__)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg (and exc when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
               "msg": record.getMessage()}
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, separators=(",", ":"))


def setup_logging(fmt: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class SystemdNotifier:
    """sd_notify READY / WATCHDOG / STOPPING / STATUS; a no-op when NOTIFY_SOCKET is unset (not under systemd)."""

    def __init__(self) -> None:
        self._notifier: Any = None
        if os.environ.get("NOTIFY_SOCKET"):
            import sdnotify

            self._notifier = sdnotify.SystemdNotifier()
        usec = os.environ.get("WATCHDOG_USEC", "")
        self.watchdog_interval_s = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else 0.0
        self._last_ping = 0.0

    @property
    def active(self) -> bool:
        return self._notifier is not None

    def notify(self, message: str) -> None:
        if self._notifier is not None:
            self._notifier.notify(message)

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def ping(self, healthy: bool) -> None:
        """WATCHDOG=1 at half of WatchdogSec, only while the daemon is healthy (a hung scorer gets restarted)."""
        now = time.monotonic()
        if healthy and self.active and now - self._last_ping >= max(self.watchdog_interval_s, 0.5):
            self.notify("WATCHDOG=1")
            self._last_ping = now

    def stopping(self) -> None:
        self.notify("STOPPING=1")


class DaemonUplink(Uplink):
    """The uplink plus what the daemon needs: daemon stats in the stats message, and on_connect hooks (remote)."""

    def __init__(self, *args: Any, extra_stats: Callable[[], dict[str, Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.extra_stats = extra_stats
        self.connect_hooks: list[Callable[[], None]] = []
        # retained side messages (sensor alerts), sent by the uplink thread; a full outbox drops the oldest
        self._outbox: deque[tuple[str, bytes]] = deque(maxlen=OUTBOX_SIZE)
        self.outbox_dropped = 0

    def post(self, topic: str, payload: bytes) -> None:
        """Publish a retained QoS 1 message from the uplink thread (paho queues it while offline)."""
        if len(self._outbox) == self._outbox.maxlen:
            self.outbox_dropped += 1
        self._outbox.append((topic, payload))
        self.notify()

    @property
    def client(self) -> mqtt.Client | None:
        return self._client

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        super()._on_connect(client, userdata, flags, reason, properties)
        if reason.is_failure:
            return
        for hook in self.connect_hooks:
            try:
                hook()
            except Exception:  # noqa: PERF203 - a failing hook must not stop the others
                log.exception("on_connect hook failed")

    def stop(self, drain_timeout: float = 0.0) -> Any:
        self._flush_outbox()  # alerts raised just before the stop still go out (paho sends them before offline)
        return super().stop(drain_timeout)

    def _flush_outbox(self) -> None:
        while self._outbox and self._client is not None:
            topic, payload = self._outbox.popleft()
            self._table.ignore(self._client.publish(topic, payload, qos=1, retain=True).mid)

    def _maybe_publish_stats(self) -> None:
        self._flush_outbox()
        if self.config.stats_interval_s <= 0 or self._clock() < self._next_stats or self._client is None:
            return
        self._next_stats = self._clock() + self.config.stats_interval_s
        doc: dict[str, Any] = {"vehicle": self.vehicle_id, "t_ns": time.time_ns(), "uplink": asdict(self.stats())}
        try:
            doc["spool"] = asdict(self.spool.stats())
            if self.extra_stats is not None:
                doc["daemon"] = self.extra_stats()
        except Exception as exc:  # closed under us, or a stats bug: send the uplink counters alone
            log.debug("stats: %s", exc)
        topic = wire.stats_topic(self.config.topic_prefix, self.vehicle_id)
        info = self._client.publish(topic, json.dumps(doc, separators=(",", ":")).encode(), qos=1)
        self._table.ignore(info.mid)

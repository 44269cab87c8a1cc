"""Collect the messages of a few topic filters on a connected client, and wait for one that matches."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from agent.remote.mqttconn import BrokerError


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retained: bool
    t: float  # monotonic seconds at arrival


class TopicCollector:
    """Subscribes to `filters` and keeps what arrives: bounded, the oldest dropped first (counted in `dropped`).

    Owns the client's on_message and on_subscribe callbacks while in use: meant for short-lived tools and tests.
    """

    def __init__(self, client: mqtt.Client, filters: Sequence[str], max_messages: int = 10_000) -> None:
        self.client = client
        self.filters = list(filters)
        self.dropped = 0
        self._messages: deque[Received] = deque(maxlen=max_messages)
        self._cond = threading.Condition()
        self._subacked: set[int] = set()
        self.refused: list[str] = []  # filters the broker refused in its SUBACK (e.g. ACL: not authorized)
        self._mid: int | None = None

    def start(self, timeout: float = 10.0) -> TopicCollector:
        """Subscribe and wait for the SUBACK, so nothing published afterwards can be missed."""
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        with self._cond:
            _rc, mid = self.client.subscribe([(f, 1) for f in self.filters])
            self._mid = mid
            if not self._cond.wait_for(lambda: mid in self._subacked, timeout):
                raise BrokerError(f"no SUBACK for {', '.join(self.filters)} in {timeout:g} s")
        return self

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, reasons: list[Any], _p: Any) -> None:
        with self._cond:
            if mid == self._mid:
                self.refused = [f for f, r in zip(self.filters, reasons, strict=False) if r.is_failure]
            self._subacked.add(mid)
            self._cond.notify_all()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        item = Received(message.topic, bytes(message.payload), bool(message.retain), time.monotonic())
        with self._cond:
            if len(self._messages) == self._messages.maxlen:
                self.dropped += 1
            self._messages.append(item)
            self._cond.notify_all()

    def messages(self) -> list[Received]:
        with self._cond:
            return list(self._messages)

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float) -> Received | None:
        """The first collected message (already here or arriving within timeout) that satisfies predicate."""
        found: list[Received] = []

        def match() -> bool:
            found[:] = [m for m in self._messages if predicate(m)][:1]
            return bool(found)

        with self._cond:
            self._cond.wait_for(match, timeout)
        return found[0] if found else None

    def wait_count(self, predicate: Callable[[Received], bool], count: int, timeout: float) -> list[Received]:
        """Wait until `count` messages satisfy predicate (or timeout); return those collected."""
        with self._cond:
            self._cond.wait_for(lambda: sum(map(predicate, self._messages)) >= count, timeout)
            return [m for m in self._messages if predicate(m)]

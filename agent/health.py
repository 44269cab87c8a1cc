"""Sensor health: a sensor whose harmful rate over a window crosses a threshold raises an alert, with the reason
that dominates its harmful frames ("camera image_02: occluded 92% of frames since 10:42:07 UTC").

Fed with decision records (daemon and replay alike), in each sensor's frame-time order. Windows are by frame
time, so a replay reports the same alerts the vehicle would have raised. Raise and clear thresholds differ
(hysteresis): a sensor on the edge does not flap. Each state change is one event: logged once, counted in
Prometheus, and (daemon) published retained on `<prefix>/<vehicle>/status/alerts/<sensor>`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any

from agent.config.health import HealthConfig, HealthRule

log = logging.getLogger(__name__)

MAX_WINDOW_FRAMES = 100_000  # per sensor; beyond it the oldest leave the window early (counted)
MAX_EVENTS = 10_000  # kept for reports; older ones are dropped (counted)
RAISED, CLEARED = "raised", "cleared"


@dataclass
class Alert:
    sensor: str
    modality: str
    reason: str  # the reason most of the window's harmful frames share when raised
    reason_share: float  # share of the window's frames with that reason
    harmful_rate: float
    raised_ns: int  # frame time of the first harmful frame of the window that raised it
    state: str = RAISED
    cleared_ns: int | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def payload(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()


def _clock_text(t_ns: int) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(t_ns / 1e9))


class _Window:
    def __init__(self, rule: HealthRule) -> None:
        self.rule = rule
        self.frames: deque[tuple[int, tuple[str, ...]]] = deque()  # (t_ns, reasons when harmful else ())
        self.harmful = 0
        self.reasons: Counter[str] = Counter()  # harmful frames in the window per reason

    def add(self, t_ns: int, reasons: tuple[str, ...]) -> bool:
        """Add a frame, drop what left the window; True when a frame left early because the window was full."""
        self.frames.append((t_ns, reasons))
        if reasons:
            self.harmful += 1
            self.reasons.update(reasons)
        horizon = t_ns - int(self.rule.window_s * 1e9)
        overflow = False
        while self.frames and (self.frames[0][0] < horizon or len(self.frames) > MAX_WINDOW_FRAMES):
            overflow = overflow or self.frames[0][0] >= horizon
            _t, old = self.frames.popleft()
            if old:
                self.harmful -= 1
                self.reasons.subtract(old)
        return overflow

    @property
    def rate(self) -> float:
        return self.harmful / len(self.frames) if self.frames else 0.0

    def first_with(self, reason: str) -> int:
        return next((t for t, reasons in self.frames if reason in reasons), self.frames[-1][0])


class SensorHealth:
    """observe(record) -> the alert events it caused; open_alerts(); events (for reports); counters."""

    def __init__(self, config: HealthConfig, metrics_registry: Any = None) -> None:
        self.config = config
        self._windows: dict[str, _Window] = {}
        self._open: dict[str, Alert] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self.counters: Counter[str] = Counter()
        self._metrics = _metrics(metrics_registry) if metrics_registry is not None else None
        self._lock = threading.Lock()  # the daemon's scoring threads share one monitor

    def observe(self, record: dict[str, Any]) -> list[Alert]:
        with self._lock:
            return self._observe(record)

    def configure(self, config: HealthConfig) -> None:
        """New thresholds (a config update): windows start again, open alerts stay open until they clear."""
        if config != self.config:
            self.config = config
            self._windows.clear()

    def _observe(self, record: dict[str, Any]) -> list[Alert]:
        if not self.config.enabled:
            return []
        sensor, modality = record["sensor"], record["modality"]
        rule: HealthRule | None = getattr(self.config, modality, None)
        if rule is None:
            return []
        window = self._windows.get(sensor)
        if window is None:
            window = self._windows[sensor] = _Window(rule)
        harmful = record.get("verdict") == "harmful"
        reasons = tuple(str(r) for r in record.get("reasons") or ["unknown"]) if harmful else ()
        if window.add(int(record["t_ns"]), reasons):
            self.counters["window_overflow"] += 1
        if len(window.frames) < rule.min_frames:
            return []
        alert = self._open.get(sensor)
        if alert is None and window.rate >= rule.raise_rate:
            return [self._raise(sensor, modality, window)]
        if alert is not None and window.rate <= rule.clear_rate:
            return [self._clear(alert, int(record["t_ns"]))]
        return []

    def open_alerts(self) -> list[Alert]:
        with self._lock:
            return list(self._open.values())

    def _raise(self, sensor: str, modality: str, window: _Window) -> Alert:
        reason, count = window.reasons.most_common(1)[0]
        share = count / len(window.frames)
        since = window.first_with(reason)
        alert = Alert(sensor, modality, reason, round(share, 4), round(window.rate, 4), since,
                      message=f"{modality} {sensor}: {reason} {share:.0%} of frames since {_clock_text(since)}")
        self._open[sensor] = alert
        self._event(alert)
        log.warning("event=sensor_alert state=raised sensor=%s reason=%s harmful_rate=%.2f message=%r",
                    sensor, reason, window.rate, alert.message)
        return alert

    def _clear(self, alert: Alert, t_ns: int) -> Alert:
        del self._open[alert.sensor]
        alert.state, alert.cleared_ns = CLEARED, t_ns
        alert.message += f"; cleared at {_clock_text(t_ns)}"
        self._event(alert)
        log.info("event=sensor_alert state=cleared sensor=%s reason=%s", alert.sensor, alert.reason)
        return alert

    def _event(self, alert: Alert) -> None:
        if len(self.events) == self.events.maxlen:
            self.counters["events_dropped"] += 1
        self.events.append(alert.to_dict())
        self.counters[alert.state] += 1
        if self._metrics is not None:
            events, open_gauge = self._metrics
            events.labels(alert.sensor, alert.reason, alert.state).inc()
            open_gauge.labels(alert.sensor).set(1 if alert.state == RAISED else 0)


def _metrics(registry: Any) -> tuple[Any, Any]:
    from prometheus_client import Counter as PCounter
    from prometheus_client import Gauge

    events = PCounter("edgesift_sensor_alerts", "Sensor health alerts raised / cleared",
                      ["sensor", "reason", "state"], registry=registry)
    open_gauge = Gauge("edgesift_sensor_alert_open", "1 while the sensor has an open health alert", ["sensor"],
                       registry=registry)
    return events, open_gauge


def alert_topic(prefix: str, vehicle: str, sensor: str) -> str:
    return f"{prefix}/{vehicle}/status/alerts/{sensor}"

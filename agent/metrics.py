"""Daemon metrics: one Prometheus registry (scraped on /metrics) that also gives the JSON for the MQTT stats topic."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, Info, start_http_server
from prometheus_client import Counter as PCounter

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Counters and gauges of one daemon; also keeps plain totals so `snapshot()` is cheap and JSON-ready."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.frames_in = PCounter("edgesift_frames_in", "Frames read from sources", ["sensor"], registry=r)
        self.decisions = PCounter("edgesift_decisions", "Frames decided", ["sensor", "kept", "rule"], registry=r)
        self.shed = PCounter("edgesift_frames_shed", "Frames shed by a full queue", ["sensor"], registry=r)
        self.revoked = PCounter("edgesift_frames_revoked", "Kept frames later evicted or displaced", ["rule"],
                                registry=r)
        self.skips = PCounter("edgesift_source_skips", "Unreadable source items", ["sensor", "reason"], registry=r)
        self.restarts = PCounter("edgesift_worker_restarts", "Source workers restarted", ["sensor"], registry=r)
        self.measure_failures = PCounter("edgesift_measure_failures", "Frames whose measuring process died or "
                                         "hung (recorded error:scoring; the process is replaced)", ["cause"],
                                         registry=r)
        self.measured_ahead = PCounter("edgesift_frames_measured_ahead", "Camera frames sent to a measuring "
                                       "process before their turn (sent), or not for want of a free one (no_process)",
                                       ["result"], registry=r)
        self.reloads = PCounter("edgesift_config_reloads", "Config reloads (SIGHUP)", ["result"], registry=r)
        self.failed = Gauge("edgesift_sensor_failed", "1 when the sensor gave up after too many restarts",
                            ["sensor"], registry=r)
        self.queue_depth = Gauge("edgesift_queue_depth", "Frames waiting for the scorer", ["sensor"], registry=r)
        self.latency = Histogram("edgesift_decision_latency_seconds", "Capture-to-decision latency",
                                 ["sensor"], buckets=_LATENCY_BUCKETS, registry=r)
        self.inference = Histogram("edgesift_inference_seconds", "Scoring time per frame", ["modality"],
                                   buckets=_LATENCY_BUCKETS, registry=r)
        self.spool_frames = Gauge("edgesift_spool_frames", "Frames in the spool", registry=r)
        self.spool_bytes = Gauge("edgesift_spool_bytes", "Blob bytes in the spool", registry=r)
        self.spool_evicted = Gauge("edgesift_spool_evicted_frames", "Frames evicted from the spool (total)",
                                   registry=r)
        self.uplink_lag = Gauge("edgesift_uplink_lag_seconds", "Age of the oldest unacknowledged frame", registry=r)
        self.uplink_in_flight = Gauge("edgesift_uplink_in_flight", "Frames published, not yet acked", registry=r)
        self.uplink_acked = Gauge("edgesift_uplink_acked_frames", "Frames acked by the broker (total)", registry=r)
        self.uplink_awaiting = Gauge("edgesift_uplink_awaiting_receipt", "Frames acked by the broker, kept until the "
                                     "ingest's receipt", registry=r)
        self.uplink_receipted = Gauge("edgesift_uplink_receipted_frames", "Frames deleted on the ingest's receipt "
                                      "(total)", registry=r)
        self.snippet = Gauge("edgesift_snippet", "Snippet keeper counters", ["counter"], registry=r)
        self.info = Info("edgesift_scorer", "Scorer and execution providers in use", registry=r)
        self._lock = threading.Lock()
        self._totals: Counter[str] = Counter()
        self._server: Any = None

    # ---- updates (scoring / source threads)

    def frame_in(self, sensor: str) -> None:
        self.frames_in.labels(sensor).inc()
        self._add(f"in.{sensor}")

    def decided(self, record: dict[str, Any], latency_s: float, score_s: float) -> None:
        sensor, kept, rule = record["sensor"], record["kept"], record["rule"]
        self.decisions.labels(sensor, "true" if kept else "false", rule).inc()
        self.latency.labels(sensor).observe(latency_s)
        self.inference.labels(record["modality"]).observe(score_s)
        self._add(f"{'kept' if kept else 'dropped'}.{sensor}")
        self._add(f"rule.{rule}")

    def shed_one(self, sensor: str) -> None:
        self.shed.labels(sensor).inc()
        self._add(f"shed.{sensor}")

    def restarted(self, sensor: str) -> None:
        self.restarts.labels(sensor).inc()
        self._add(f"restarts.{sensor}")

    def set_info(self, **fields: str) -> None:
        self.info.info(fields)
        with self._lock:
            self._info = dict(fields)

    def _add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._totals[key] += n

    # ---- export

    def serve(self, host: str, port: int) -> int:
        """Start the /metrics HTTP endpoint (daemon thread); returns the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        return int(server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def snapshot(self) -> dict[str, Any]:
        """The counters as nested JSON: {"in": {sensor: n}, "kept": ..., "shed": ..., "rule": ...}."""
        with self._lock:
            out: dict[str, Any] = {"info": dict(getattr(self, "_info", {}))}
            for key, value in self._totals.items():
                group, name = key.split(".", 1)
                out.setdefault(group, {})[name] = value
        return out

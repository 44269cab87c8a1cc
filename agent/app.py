"""`edgesift run`: the one place where the daemon's parts are built, started and stopped.

    sources (one thread each, supervised) -> FrameHub (bounded lanes, shed + count) -> scoring thread:
        FramePipeline (score -> decide -> spool) -> SnippetKeeper (extra keeps) -> uplink.notify()
    main thread: signals (TERM/INT stop, HUP reload), housekeeping tick (watchdog, gauges, guardrails, sd_notify)

Config changes (SIGHUP or remote) go through ConfigStore.apply; `_on_config` rebuilds the policy, scorer and
snippet keeper and swaps them in between two frames. Sources, queues, spool and uplink keep their start-up
settings (a change there is logged as needing a restart).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

from agent.config import AgentConfig, validate_file
from agent.daemon.hub import FrameHub
from agent.daemon.lifecycle import DaemonUplink, SystemdNotifier
from agent.daemon.live import lane_modalities, lanes_of, make_source
from agent.daemon.measure_procs import MeasureProcesses
from agent.daemon.snippets import SnippetKeeper, store_snippet
from agent.daemon.workers import ScoringLoop, SourceFactory, SourceWorker
from agent.errors import ConfigError
from agent.frame import Frame, Modality
from agent.health import SensorHealth, alert_topic
from agent.metrics import Metrics
from agent.pipeline import FramePipeline
from agent.policy import Policy
from agent.processes import opencv_one_thread
from agent.remote.merge import LOCAL_ONLY, RESTART_ONLY, protected_changes
from agent.remote.store import ApplyResult, ConfigStore
from agent.scoring.base import Scorer, Verdict
from agent.scoring.factory import make_scorer
from agent.spool import Spool

log = logging.getLogger(__name__)

EXIT_OK = 0


class TimedScorer:
    """Wraps the scorer to time the expensive, history-free part of a verdict (`prescore` -> the scorer's `assess`)
    apart from the decision; the part that reads the memory of kept frames (`complete`) runs inside
    pipeline.process, in the sensor's decision order (sensors are sharded over the scoring threads), as in replay.
    """

    def __init__(self, inner: Scorer) -> None:
        self.inner = inner
        self.name = inner.name
        self._split = callable(getattr(inner, "assess", None)) and callable(getattr(inner, "complete", None))
        self._local = threading.local()

    def prescore(self, frame: Frame) -> float:
        started = time.perf_counter()
        inner: Any = self.inner
        self._local.pending = (frame, inner.assess(frame) if self._split else inner.score(frame))
        return time.perf_counter() - started

    def score(self, frame: Frame) -> Verdict:
        pending = getattr(self._local, "pending", None)
        self._local.pending = None
        if pending is None or pending[0] is not frame:
            return self.inner.score(frame)
        inner: Any = self.inner
        return inner.complete(frame, pending[1]) if self._split else pending[1]

    def remember(self, frame: Frame, verdict: Verdict) -> None:
        self.inner.remember(frame, verdict)


def _providers(scorer: Scorer) -> str:
    found = []
    for part in ("camera", "lidar"):
        runtime = getattr(getattr(scorer, part, None), "runtime", None)
        found.extend(getattr(runtime, "active_providers", []) or [])
    return ",".join(dict.fromkeys(found)) or "python"


def _dump(config: AgentConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")


class App:
    def __init__(
        self, config: AgentConfig, config_path: str | None = None, *, source_factory: SourceFactory = make_source
    ) -> None:
        self.config_path = config_path
        self.store = ConfigStore.open(config) if config.remote.enabled else ConfigStore(config)
        if protected_changes(_dump(self.store.current), _dump(config), LOCAL_ONLY):
            # A newer persisted remote config won at start-up: its sources / daemon sections still come from the file.
            self.store.apply(self.store.current.model_copy(update={k: getattr(config, k) for k in LOCAL_ONLY}),
                             force=True)
        cfg = self._boot = self.store.current
        self.metrics = Metrics()
        self.health = SensorHealth(cfg.health, self.metrics.registry)
        self.hub = FrameHub(on_shed=self.metrics.shed_one)
        self.spool = Spool.open(Path(cfg.spool.path), cfg.spool)
        self.measure: MeasureProcesses | None = None
        if cfg.daemon.measure_processes:
            sent_ahead = {True: self.metrics.measured_ahead.labels("sent"),
                          False: self.metrics.measured_ahead.labels("no_process")}
            self.measure = MeasureProcesses(cfg.daemon.measure_processes, cfg.daemon.measure_timeout_s,
                                            lambda cause: self.metrics.measure_failures.labels(cause).inc(),
                                            lambda sent: sent_ahead[sent].inc())
        self.scorer = self._timed(make_scorer(cfg))
        self.pipeline = FramePipeline(self.scorer, Policy(cfg.policy), self.spool)
        self.snippets = SnippetKeeper(cfg.snippets)
        self.workers = []
        for source in cfg.sources:
            for lane in lanes_of(source):
                self.hub.add_lane(lane, source.queue_size, source.overflow)
            self.workers.append(SourceWorker(source, self.hub, self.metrics, cfg.daemon.watchdog, source_factory))
        self.uplink: DaemonUplink | None = None
        if cfg.uplink.enabled:
            self.uplink = DaemonUplink(self.spool, cfg.uplink, cfg.vehicle_id, scorer=self.scorer.name,
                                       extra_stats=self.metrics.snapshot)
        self.remote: Any = None
        shards = cfg.daemon.scoring_threads
        # Measuring ahead keeps a process per scoring thread while the thread has frames: only with enough of them.
        ahead = self._ahead if self.measure is not None and cfg.daemon.measure_processes >= shards else None
        self.scoring = [ScoringLoop(self.hub, self._handle, k, shards, ahead) for k in range(shards)]
        self.notifier = SystemdNotifier()
        self.metrics_port = 0
        self._snip_lock = threading.Lock()  # the snippet keeper is shared by the scoring threads
        self._log_lock = threading.Lock()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._spool_closed = False
        self._decisions = open(cfg.daemon.decisions_path, "a", encoding="utf-8") if cfg.daemon.decisions_path \
            else None  # noqa: SIM115 - closed in shutdown()
        self._delay_s = cfg.daemon.debug_score_delay_ms / 1000.0

    # ---- start / run / stop

    def start(self) -> None:
        cfg = self.store.current
        opencv_one_thread()
        self.metrics.set_info(scorer=self.scorer.name, providers=_providers(self.scorer.inner),
                              vehicle=cfg.vehicle_id, version=str(cfg.version))
        if cfg.daemon.metrics_port:
            self.metrics_port = self.metrics.serve(cfg.daemon.metrics_host, cfg.daemon.metrics_port)
            log.info("event=metrics_listening port=%d", self.metrics_port)
        if self.uplink is not None:
            self.uplink.start()
        if cfg.remote.enabled:
            self._start_remote()
        self.store.subscribe(self._on_config, name="daemon")
        if self.measure is not None:
            self.measure.start()
        for loop in self.scoring:
            loop.start()
        for worker in self.workers:
            worker.start()
        log.info("event=started vehicle=%s sources=%d scorer=%s uplink=%s", cfg.vehicle_id, len(self.workers),
                 self.scorer.name, "on" if self.uplink else "off")
        if not self.workers:
            log.warning("event=no_sources (the daemon only streams what is already in the spool)")
        self._warn_unmatched(cfg)
        self.notifier.ready(f"{len(self.workers)} sources")

    def _warn_unmatched(self, cfg: AgentConfig) -> None:
        if not cfg.sources:
            return
        lanes = {lane: m for source in cfg.sources for lane, m in lane_modalities(source).items()}
        cameras = [lane for lane, m in lanes.items() if m is Modality.CAMERA]
        lidars = [lane for lane, m in lanes.items() if m is Modality.LIDAR]
        for key in cfg.scoring.unmatched(cameras, lidars):
            log.warning("event=sensor_settings_unmatched key=%s cameras=%s lidars=%s (scoring.sensors.%s applies "
                        "to no sensor of its kind on this vehicle; a folder source of kind auto names its scans "
                        "<name>_lidar, or set its kind: lidar)", key, ",".join(cameras), ",".join(lidars), key)

    def _start_remote(self) -> None:
        from agent.remote.manager import RemoteConfigManager

        client = self.uplink.client if self.uplink is not None else None
        self.remote = RemoteConfigManager.from_store(self.store, client)
        if self.uplink is not None:
            self.uplink.connect_hooks.append(self.remote.on_connect)
        self.remote.start()

    def run(self) -> int:
        """Start, then serve until SIGTERM/SIGINT; returns the exit code. Must run on the main thread."""
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        signal.signal(signal.SIGINT, lambda *_: self.request_stop())
        signal.signal(signal.SIGHUP, lambda *_: self._reload.set())
        self.start()
        return self.serve()

    def serve(self) -> int:
        tick = self.store.current.daemon.tick_s
        while not self._stop.wait(tick):
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
            self.tick()
        return self.shutdown()

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    def tick(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            worker.check(now)
        for sensor, depth in self.hub.depths().items():
            self.metrics.queue_depth.labels(sensor).set(depth)
        stats = self.spool.stats()
        self.metrics.spool_frames.set(stats.frames)
        self.metrics.spool_bytes.set(stats.bytes)
        self.metrics.spool_evicted.set(stats.evicted_frames)
        if self.uplink is not None:
            up = self.uplink.stats()
            self.metrics.uplink_lag.set(up.lag_s)
            self.metrics.uplink_in_flight.set(up.in_flight)
            self.metrics.uplink_acked.set(up.acked)
            self.metrics.uplink_awaiting.set(up.awaiting_receipt)
            self.metrics.uplink_receipted.set(up.receipted)
        for name, value in vars(self.snippets.stats).items():
            self.metrics.snippet.labels(name).set(value)
        if self.remote is not None:
            self.remote.tick(time.time_ns())
        hang = self.store.current.daemon.watchdog.hang_s
        self.notifier.ping(healthy=all(now - loop.heartbeat < hang for loop in self.scoring))

    def shutdown(self) -> int:
        """Stop sources, score what is queued, stop the uplink (offline), close the spool; bounded in time."""
        cfg = self.store.current.daemon
        deadline = time.monotonic() + cfg.shutdown_timeout_s
        self.notifier.stopping()
        log.info("event=stopping pending=%d", self.hub.pending())
        for worker in self.workers:
            worker.signal_stop()
        for worker in self.workers:
            worker.stop(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
        stop_by = time.monotonic() + max(0.1, (deadline - time.monotonic()) * 0.5)
        drained = all([loop.stop(timeout=max(0.1, stop_by - time.monotonic())) for loop in self.scoring])
        if self.measure is not None:
            self.measure.close()
        if self.remote is not None:
            self.remote.stop(timeout=1.0)
        if self.uplink is not None:
            drain = max(0.0, min(2.0, deadline - time.monotonic() - 3.0))
            up = self.uplink.stop(drain_timeout=drain)
            log.info("event=uplink_stopped acked=%d in_flight=%d spool_frames=%d", up.acked, up.in_flight,
                     up.spool_frames)
        self._spool_closed = True  # a scoring thread abandoned at the deadline stops before its next frame
        self.spool.close()
        with self._log_lock:
            if self._decisions is not None:
                self._decisions.close()
                self._decisions = None
        self.metrics.close()
        log.info("event=stopped drained=%s shed=%s", drained, json.dumps(self.hub.shed()))
        return EXIT_OK

    # ---- the scoring thread

    def _timed(self, scorer: Scorer) -> TimedScorer:
        if self.measure is not None and hasattr(scorer, "measurer"):
            scorer.measurer = self.measure  # the heuristic checks (and the hybrid's) measure in those processes
        return TimedScorer(scorer)

    def _ahead(self, frame: Frame) -> None:
        scorer: Any = self.pipeline.scorer  # a config change swaps in a new one: ask the one in use now
        measure_ahead = getattr(getattr(scorer, "inner", scorer), "measure_ahead", None)
        if callable(measure_ahead):
            measure_ahead(frame)

    def _handle(self, frame: Frame) -> None:
        if self._delay_s:
            time.sleep(self._delay_s)
        pipeline = self.pipeline  # a config change swaps in a new one; this frame finishes with the old
        if self._spool_closed:
            return
        # Sensors are sharded over the scoring threads and the scorer, policy and spool keep per-sensor state (the
        # spool locks its own), so the threads run the pipeline side by side; OpenCV, NumPy and fsync release the GIL.
        scorer = pipeline.scorer
        score_s = scorer.prescore(frame) if isinstance(scorer, TimedScorer) else 0.0
        outcome = pipeline.process(frame)
        with self._snip_lock:
            keeps = self.snippets.offer(frame, outcome)
        extra = [store_snippet(self.spool, scorer, keep) for keep in keeps]
        records = [outcome.record, *extra]
        self._log_decisions(records, outcome.revoked)
        latency = max(0.0, (time.time_ns() - frame.t_ns) / 1e9)
        self.metrics.decided(outcome.record, latency, score_s)
        for rule in outcome.revoked.values():
            self.metrics.revoked.labels(rule).inc()
        for record in extra:
            self.metrics.decided(record, latency, 0.0)
        for alert in self.health.observe(outcome.record):
            if self.uplink is not None:
                cfg = self.store.current
                self.uplink.post(alert_topic(cfg.uplink.topic_prefix, cfg.vehicle_id, alert.sensor), alert.payload())
        if self.uplink is not None and any(r["kept"] for r in records):
            self.uplink.notify()
        if self.remote is not None:
            self.remote.observe(bool(outcome.record["kept"]), frame.t_ns)

    def _log_decisions(self, records: list[dict[str, Any]], revoked: dict[str, str]) -> None:
        if self._decisions is None:
            return
        lines = [json.dumps({k: v for k, v in r.items() if k != "signals"}, separators=(",", ":")) for r in records]
        lines += [json.dumps({"frame_id": fid, "revoked": rule}) for fid, rule in revoked.items()]
        with self._log_lock:
            if self._decisions is not None:
                self._decisions.write("\n".join(lines) + "\n")
                self._decisions.flush()

    # ---- configuration changes

    def reload(self) -> ApplyResult | None:
        """SIGHUP: re-read the config file; apply it whole through the ConfigStore, or keep the running one."""
        if self.config_path is None:
            return None
        config, issues = validate_file(self.config_path)
        if config is None:
            for issue in issues:
                log.error("event=reload_rejected file=%s issue=%r", self.config_path, str(issue))
            self.metrics.reloads.labels("invalid").inc()
            return None
        if config == self.store.current:
            log.info("event=reload status=unchanged version=%d", config.version)
            self.metrics.reloads.labels("unchanged").inc()
            return None
        locked = protected_changes(_dump(self.store.current), _dump(config), RESTART_ONLY)
        if locked:
            log.error("event=reload_rejected file=%s reason=restart_needed keys=%s", self.config_path, locked)
            self.metrics.reloads.labels("restart_needed").inc()
            return None
        result = self.store.apply(config)
        self.metrics.reloads.labels(result.status.value).inc()
        if self.remote is not None:
            self.remote.report_local(result)
        log.log(logging.INFO if result.ok else logging.ERROR, "event=reload status=%s version=%s error=%r",
                result.status.value, result.requested_version, result.error)
        return result

    def _on_config(self, new: AgentConfig, old: AgentConfig) -> None:
        local = protected_changes(_dump(self._boot), _dump(new), LOCAL_ONLY)
        if local:  # raising makes the store refuse the whole update (reported rolled_back to a remote sender)
            raise ConfigError(f"{', '.join(local)} can only change in the local file, with a restart")
        policy = Policy(new.policy) if new.policy != old.policy else None
        scorer = self._timed(make_scorer(new)) if (new.scoring, new.model) != (old.scoring, old.model) else None
        snippets = SnippetKeeper(new.snippets) if new.snippets != old.snippets else None
        current = self.pipeline
        if policy is not None or scorer is not None:
            self.pipeline = FramePipeline(scorer or current.scorer, policy or current.policy, self.spool)
            self.scorer = self.pipeline.scorer
        self.health.configure(new.health)
        if new.scoring.sensors != old.scoring.sensors:
            self._warn_unmatched(new)
        if snippets is not None:
            with self._snip_lock:
                self.snippets = snippets
        if _dump(new)["uplink"] != _dump(old)["uplink"]:
            log.warning("event=config_needs_restart section=uplink (the running uplink keeps its settings)")
        self.metrics.set_info(scorer=self.pipeline.scorer.name, providers=_providers(self.scorer.inner),
                              vehicle=new.vehicle_id, version=str(new.version))

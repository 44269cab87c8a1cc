"""Worker threads: one per live source (supervised: restarted with backoff, then marked failed) and the scorer.

A source worker that raises is restarted after a delay that doubles from backoff_min_s up to backoff_max_s; one
whose heartbeat is older than hang_s is abandoned (a thread cannot be killed: it is told to stop and whatever it
still produces is discarded) and restarted the same way. More than max_restarts restarts within
restart_window_s marks the sensor failed: it is reported (metric + log) and the other sensors keep running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from agent.config.daemon import SourceConfig, WatchdogConfig
from agent.daemon.hub import FrameHub
from agent.daemon.live import LiveSource, SourceFinished, make_source
from agent.frame import Frame, Skip
from agent.metrics import Metrics

log = logging.getLogger(__name__)

SourceFactory = Callable[[SourceConfig], LiveSource]


class SourceWorker:
    """Runs one LiveSource in a thread; `check()` (called by the supervisor tick) restarts or fails it."""

    def __init__(
        self, config: SourceConfig, hub: FrameHub, metrics: Metrics, watchdog: WatchdogConfig,
        factory: SourceFactory = make_source,
    ) -> None:  # fmt: skip
        self.config = config
        self.sensor = config.name
        self.state = "stopped"  # running | restarting | finished | failed | stopped
        self.error: str | None = None
        self.heartbeat = time.monotonic()
        self.restarts = 0
        self.source: LiveSource | None = None
        self._hub, self._metrics, self._wd, self._factory = hub, metrics, watchdog, factory
        self._recent: deque[float] = deque()
        self._restart_at = 0.0
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._opened = threading.Event()

    def start(self) -> None:
        stop = threading.Event()
        self._stop, self.state, self.heartbeat = stop, "running", time.monotonic()
        self._opened.clear()
        self._thread = threading.Thread(target=self._run, args=(stop,), name=f"source-{self.sensor}", daemon=True)
        self._thread.start()

    def wait_open(self, timeout: float) -> bool:
        return self._opened.wait(timeout)

    def signal_stop(self) -> None:
        """Ask the thread to stop without waiting (stop() then joins)."""
        if self._stop is not None:
            self._stop.set()

    def stop(self, timeout: float = 2.0) -> None:
        self.signal_stop()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.state in ("running", "restarting"):
            self.state = "stopped"

    def _run(self, stop: threading.Event) -> None:
        source = self._factory(self.config)
        self.source = source
        try:
            source.open()
            self._opened.set()
            while not stop.is_set():
                self.heartbeat = time.monotonic()
                item = source.read()
                if item is None or stop.is_set():
                    continue
                if isinstance(item, Skip):
                    self._metrics.skips.labels(self.sensor, item.reason).inc()
                    continue
                self._deliver(item)
        except SourceFinished:
            log.info("source=%s event=finished", self.sensor)
            self.state = "finished"
        except Exception as exc:
            if not stop.is_set():
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("source=%s event=died error=%r", self.sensor, self.error)
                self.state = "dead"
        finally:
            try:
                source.close()
            except Exception:
                log.exception("source=%s event=close_failed", self.sensor)

    def _deliver(self, frame: Frame) -> None:
        self._metrics.frame_in(self.sensor)
        self._hub.put(frame)

    def check(self, now: float) -> None:
        """Supervisor step: restart a dead or hung worker after its backoff, or give up on it."""
        if self.state == "running" and now - self.heartbeat > self._wd.hang_s:
            self.error = f"no heartbeat for {now - self.heartbeat:.1f} s"
            log.warning("source=%s event=hung", self.sensor)
            if self._stop is not None:
                self._stop.set()
            self.state = "dead"
        if self.state == "dead":
            self._schedule(now)
        elif self.state == "restarting" and now >= self._restart_at:
            log.info("source=%s event=restart attempt=%d", self.sensor, self.restarts)
            self.start()

    def _schedule(self, now: float) -> None:
        while self._recent and now - self._recent[0] > self._wd.restart_window_s:
            self._recent.popleft()
        if len(self._recent) >= self._wd.max_restarts:
            self.state = "failed"
            self._metrics.failed.labels(self.sensor).set(1)
            log.error("source=%s event=failed restarts=%d window_s=%s error=%r", self.sensor, len(self._recent),
                      self._wd.restart_window_s, self.error)
            return
        delay = min(self._wd.backoff_min_s * 2 ** len(self._recent), self._wd.backoff_max_s)
        self._recent.append(now)
        self.restarts += 1
        self._metrics.restarted(self.sensor)
        self._restart_at = now + delay
        self.state = "restarting"


class ScoringLoop:
    """The scoring thread: takes frames fairly from the hub and hands each to `handle` until stopped and drained.
    With `ahead`, the frame after the one being handled is taken first and given to `ahead` (its history-free
    measuring starts elsewhere while this one is judged): one frame a thread held out of its queue."""

    def __init__(self, hub: FrameHub, handle: Callable[[Frame], None], shard: int = 0, shards: int = 1,
                 ahead: Callable[[Frame], None] | None = None) -> None:
        self._hub, self._handle, self._shard, self._shards = hub, handle, shard, shards
        self._ahead = ahead
        self.heartbeat = time.monotonic()
        self.errors = 0
        self._stop = threading.Event()
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"scoring-{shard}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        following: Frame | None = None
        while not self._abandon.is_set():
            self.heartbeat = time.monotonic()
            frame = following if following is not None else self._hub.take(0.2, self._shard, self._shards)
            following = None
            if frame is None:
                if self._stop.is_set():
                    return  # stopped and drained
                continue
            if self._ahead is not None:
                following = self._hub.take(0.0, self._shard, self._shards)
                if following is not None:
                    try:
                        self._ahead(following)
                    except Exception:
                        log.exception("scoring: measuring ahead %s/%d failed", following.sensor, following.seq)
            try:
                self._handle(frame)
            except Exception:
                self.errors += 1
                log.exception("scoring: frame %s/%d failed", frame.sensor, frame.seq)

    def stop(self, timeout: float) -> bool:
        """Finish the queued frames within `timeout`; True when drained, False when some were abandoned."""
        self._stop.set()
        self._hub.wake()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abandon.set()
            self._thread.join(1.0)
            return False
        return True

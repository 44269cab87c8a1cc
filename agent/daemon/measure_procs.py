"""Measuring frames in other processes, for the daemon's scoring threads (`daemon.measure_processes`).

With 8 cameras at 30 fps a frame's decode and image statistics are most of the daemon's CPU. In the scoring
threads they share one interpreter lock with the sources, the policy and the spool; here each scoring thread
hands them to a process of its own and waits (the wait releases the lock), so they run on every core. The
processes run the same functions as the scoring thread would (agent.scoring.measure), so the signals, and the
decisions, are the same. What reads a sensor's history stays in the scorer, in the daemon's process.

A process that dies on a frame (a decoder crash on a hostile image) or takes longer than `timeout_s` is killed:
that frame's scoring fails with MeasureError (the pipeline records it as `error:scoring`), the failure is
counted, and a fresh process takes the next frame.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from agent.config.model import LidarScoring
from agent.config.sensors import SensorModel
from agent.frame import Frame
from agent.processes import fork_server
from agent.scoring.camera_signals import CameraSignals
from agent.scoring.lidar_checks import LidarSignals

log = logging.getLogger(__name__)

_PRELOAD = ["agent.scoring.measure"]


class MeasureError(RuntimeError):
    """A measuring process died or hung on this frame."""


def _serve(conn: Connection) -> None:
    """A measuring process: answer (ok, signals or exception) to each (kind, args) until told to stop."""
    from agent.processes import opencv_one_thread
    from agent.scoring.measure import camera_signals_of, lidar_signals_of

    opencv_one_thread()  # the processes are the parallelism
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the daemon stops us
    work: dict[str, Callable[..., Any]] = {"camera": camera_signals_of, "lidar": lidar_signals_of,
                                           "ping": lambda: None}
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return  # the daemon is gone
        if request is None:
            return
        kind, args = request
        try:
            answer: tuple[bool, Any] = (True, work[kind](*args))
        except Exception as exc:
            answer = (False, exc)
        try:
            conn.send(answer)
        except Exception as exc:  # an exception that does not pickle: its text is enough
            conn.send((False, RuntimeError(f"{type(answer[1]).__name__}: {answer[1]}; unsendable: {exc}")))


class _Worker:
    def __init__(self, context: Any, index: int) -> None:
        self._context, self._index = context, index
        self._process: Any = None
        self._conn: Connection | None = None

    def start(self) -> None:
        if self._process is not None and self._process.is_alive() and self._conn is not None:
            return
        self.stop(0.0)
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(child,), name=f"edgesift-measure-{self._index}",
                                        daemon=True)
        process.start()
        child.close()
        self._process, self._conn = process, parent

    def call(self, request: tuple[str, tuple[Any, ...]], timeout_s: float) -> Any:
        self.start()
        assert self._conn is not None
        try:
            self._conn.send(request)
        except OSError:  # died between frames (killed from outside): not this frame's doing, so one retry
            self.stop(0.0)
            self.start()
            assert self._conn is not None
            self._conn.send(request)
        if not self._conn.poll(timeout_s):
            self.stop(0.0)
            raise MeasureError(f"measuring took over {timeout_s:g} s (process killed; the next frame gets a new one)")
        try:
            ok, value = self._conn.recv()
        except (EOFError, OSError):
            code = self._process.exitcode if self._process is not None else None
            self.stop(0.0)
            raise MeasureError(f"the measuring process died on this frame (exit code {code})") from None
        if ok:
            return value
        raise value

    def ready(self, timeout_s: float) -> None:
        try:
            self.call(("ping", ()), timeout_s)
        except MeasureError as exc:  # its first frame will start another
            log.warning("event=measure_start_failed error=%r", str(exc))

    def stop(self, timeout_s: float) -> None:
        conn, process = self._conn, self._process
        self._conn = self._process = None
        if conn is not None:
            try:
                if timeout_s > 0:
                    conn.send(None)
            except OSError:
                pass
            conn.close()
        if process is not None:
            process.join(timeout_s)
            if process.is_alive():
                process.kill()
                process.join(1.0)


class MeasureProcesses:
    """`count` measuring processes shared by the scoring threads; a thread borrows one per frame (with as many
    processes as scoring threads, no thread ever waits for one)."""

    def __init__(self, count: int, timeout_s: float, on_failure: Callable[[str], None] | None = None) -> None:
        context = fork_server(_PRELOAD)
        self._workers = [_Worker(context, k) for k in range(count)]
        self._idle: queue.Queue[_Worker] = queue.Queue(maxsize=count)  # holds only these workers: never overflows
        for worker in self._workers:
            self._idle.put(worker)
        self._timeout_s = timeout_s
        self._on_failure = on_failure
        self._closed = False
        self._count_lock = threading.Lock()
        self.failures = 0

    def start(self) -> None:
        """Start every process and wait until each answers (at most the timeout): sources started before would
        queue a backlog of frames while the processes import, which the scorer then has to catch up on."""
        for worker in self._workers:
            worker.start()
        for worker in self._workers:
            worker.ready(self._timeout_s)

    def camera(self, frame: Frame, width: int) -> CameraSignals:
        result: CameraSignals = self._call(("camera", (frame, width)))
        return result

    def lidar(self, points: np.ndarray, cfg: LidarScoring, model: SensorModel | None) -> LidarSignals:
        result: LidarSignals = self._call(("lidar", (points, cfg, model)))
        return result

    def _call(self, request: tuple[str, tuple[Any, ...]]) -> Any:
        if self._closed:  # a scoring thread abandoned at shutdown must not start new processes
            raise MeasureError("the measuring processes are closed (the daemon is stopping)")
        worker = self._idle.get()
        try:
            return worker.call(request, self._timeout_s)
        except MeasureError as exc:
            with self._count_lock:
                self.failures += 1
            log.warning("event=measure_failed error=%r", str(exc))
            if self._on_failure is not None:
                self._on_failure("hung" if "took over" in str(exc) else "died")
            raise
        finally:
            self._idle.put(worker)

    def close(self, timeout_s: float = 2.0) -> None:
        self._closed = True
        for worker in self._workers:
            worker.stop(timeout_s)

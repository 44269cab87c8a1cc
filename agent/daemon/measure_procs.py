"""Measuring frames in other processes, for the daemon's scoring threads (`daemon.measure_processes`).

With 8 cameras at 30 fps a frame's decode and image statistics are most of the daemon's CPU. In the scoring
threads they share one interpreter lock with the sources, the policy and the spool; here each scoring thread
hands them to a process of its own and waits (the wait releases the lock), so they run on every core. The
processes run the same functions as the scoring thread would (agent.scoring.measure), so the signals, and the
decisions, are the same. What reads a sensor's history stays in the scorer, in the daemon's process.

A process that dies on a frame (a decoder crash on a hostile image) or takes longer than `timeout_s` is killed:
that frame's scoring fails with MeasureError (the pipeline records it as `error:scoring`), the failure is
counted, and a fresh process takes the next frame.

Measuring ahead (`ahead`): a scoring thread that already has its next camera frame sends it to its process before
it judges the current one, so the process measures while the thread runs the checks, the policy and the spool
(otherwise each waits for the other: with 8 cameras the processes sat idle 40% of the time while frames were
shed). A thread then keeps its process while it has frames ahead, so this is only for as many processes as
scoring threads; the answers come back in the order asked, and a frame measured ahead but lost with its process
is measured again when its turn comes.
"""

from __future__ import annotations

import logging
import queue
import signal
import socket
import threading
from collections import deque
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
# Room in the socket to a measuring process for a frame sent ahead while it still measures the last one: with
# Linux's default (212 KB, counted with overhead) a 140 KB 720p JPEG waited there the 5 ms until the process read
# it. The kernel caps the request at net.core.wmem_max (by default room for frames up to about 200 KB).
SEND_BUFFER = 4 << 20


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


def _widen(conn: Connection, size: int) -> None:
    """Ask for a send buffer of `size` bytes on a Pipe end (a Unix socket pair; anything else is left as it is)."""
    try:
        sock = socket.socket(fileno=conn.fileno())
    except OSError:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    except OSError:
        pass
    finally:
        sock.detach()


class _Worker:
    def __init__(self, context: Any, index: int) -> None:
        self._context, self._index = context, index
        self._process: Any = None
        self._conn: Connection | None = None
        # Requests sent and not yet answered, in the order sent (key, request: which keeps the key's frame alive),
        # and answers received for a later turn; at most the frame ahead and the one being judged.
        self._asked: deque[tuple[Any, tuple[str, tuple[Any, ...]]]] = deque()
        self._answers: dict[Any, tuple[bool, Any]] = {}

    def start(self) -> None:
        if self._process is not None and self._process.is_alive() and self._conn is not None:
            return
        self.stop(0.0)
        parent, child = self._context.Pipe()
        _widen(parent, SEND_BUFFER)
        process = self._context.Process(target=_serve, args=(child,), name=f"edgesift-measure-{self._index}",
                                        daemon=True)
        process.start()
        child.close()
        self._process, self._conn = process, parent

    def forget(self, frame_id: int | None = None, keep: int = 0) -> None:
        """Drop received answers nobody will claim: those for `frame_id` (a frame measured ahead at another width
        than it was then judged at: a config change), and the oldest beyond `keep` outstanding in all (a frame
        measured ahead and judged by a scorer that does not measure: the scorer was swapped)."""
        for key in [k for k in self._answers if isinstance(k, tuple) and k[0] == frame_id]:
            del self._answers[key]
        while len(self._asked) + len(self._answers) > keep and self._answers:
            del self._answers[next(iter(self._answers))]

    def asked(self, key: Any) -> bool:
        return key in self._answers or any(k == key for k, _ in self._asked)

    @property
    def busy(self) -> bool:
        return bool(self._asked or self._answers)

    def ask(self, request: tuple[str, tuple[Any, ...]], key: Any) -> None:
        """Send `request` without waiting for its answer (`answer(key)` collects it)."""
        self.start()
        assert self._conn is not None
        try:
            self._conn.send(request)
        except OSError:  # died between frames (killed from outside): not this frame's doing, so one retry
            self.stop(0.0)
            self.start()
            assert self._conn is not None
            self._conn.send(request)
        self._asked.append((key, request))

    def answer(self, key: Any, timeout_s: float) -> Any:
        """The answer to the request sent under `key`, reading the earlier ones first (kept for their turn). A
        process that dies or hangs on an earlier request fails that one in its turn; this and the later ones are
        asked again of a new process."""
        while key not in self._answers:
            if not self._asked or self._conn is None:
                raise MeasureError("the measuring process was replaced before it answered")
            try:
                reply = self._receive(timeout_s)
            except MeasureError as exc:
                failed, rest, received = self._asked.popleft()[0], list(self._asked), dict(self._answers)
                self.stop(0.0)
                if failed == key:
                    raise
                self.start()  # before the answers are put back: starting clears what a dead process left
                self._answers.update(received)
                self._answers[failed] = (False, exc)
                for later, request in rest:
                    self.ask(request, later)
                continue
            self._answers[self._asked.popleft()[0]] = reply
        ok, value = self._answers.pop(key)
        if ok:
            return value
        raise value

    def _receive(self, timeout_s: float) -> tuple[bool, Any]:
        assert self._conn is not None
        if not self._conn.poll(timeout_s):
            raise MeasureError(f"measuring took over {timeout_s:g} s (process killed; the next frame gets a new one)")
        try:
            reply: tuple[bool, Any] = self._conn.recv()
        except (EOFError, OSError):
            code = self._process.exitcode if self._process is not None else None
            raise MeasureError(f"the measuring process died on this frame (exit code {code})") from None
        return reply

    def call(self, request: tuple[str, tuple[Any, ...]], timeout_s: float) -> Any:
        key = object()
        self.ask(request, key)
        return self.answer(key, timeout_s)

    def ready(self, timeout_s: float) -> None:
        try:
            self.call(("ping", ()), timeout_s)
        except MeasureError as exc:  # its first frame will start another
            log.warning("event=measure_start_failed error=%r", str(exc))

    def stop(self, timeout_s: float) -> None:
        conn, process = self._conn, self._process
        self._conn = self._process = None
        self._asked.clear()  # what it was asked dies with it: those frames are measured again in their turn
        self._answers.clear()
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
    processes as scoring threads, no thread ever waits for one), or keeps one while it measures ahead."""

    def __init__(self, count: int, timeout_s: float, on_failure: Callable[[str], None] | None = None,
                 on_ahead: Callable[[bool], None] | None = None) -> None:
        context = fork_server(_PRELOAD)
        self._workers = [_Worker(context, k) for k in range(count)]
        self._idle: queue.Queue[_Worker] = queue.Queue(maxsize=count)  # holds only these workers: never overflows
        for worker in self._workers:
            self._idle.put(worker)
        self._held: dict[int, _Worker] = {}  # scoring thread -> the process it keeps while it measures ahead
        self._timeout_s = timeout_s
        self._on_failure = on_failure
        self._on_ahead = on_ahead  # told True for a frame sent ahead, False for one kept for its turn
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

    def ahead(self, frame: Frame, width: int) -> None:
        """Start measuring the calling thread's next camera frame; `camera(frame, width)` collects it. Only for
        as many processes as scoring threads (a thread keeps its process while it has frames ahead)."""
        if self._closed:
            return
        thread = threading.get_ident()
        worker = self._held.get(thread)
        if worker is None:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                if self._on_ahead is not None:
                    self._on_ahead(False)
                return
            self._held[thread] = worker
        try:
            worker.ask(("camera", (frame, width)), (id(frame), width))
        except OSError:  # could not even restart it: the frame is measured (and fails) in its turn
            self._release(thread, worker)
            return
        worker.forget(keep=2)  # the frame being judged and this one
        if self._on_ahead is not None:
            self._on_ahead(True)

    def camera(self, frame: Frame, width: int) -> CameraSignals:
        result: CameraSignals = self._call(("camera", (frame, width)), (id(frame), width))
        return result

    def lidar(self, points: np.ndarray, cfg: LidarScoring, model: SensorModel | None) -> LidarSignals:
        result: LidarSignals = self._call(("lidar", (points, cfg, model)))
        return result

    def _call(self, request: tuple[str, tuple[Any, ...]], key: Any = None) -> Any:
        if self._closed:  # a scoring thread abandoned at shutdown must not start new processes
            raise MeasureError("the measuring processes are closed (the daemon is stopping)")
        thread = threading.get_ident()
        worker = self._held.get(thread)
        held = worker is not None
        if worker is None:
            worker = self._idle.get()
        try:
            if held and key is not None and worker.asked(key):
                return worker.answer(key, self._timeout_s)
            result = worker.call(request, self._timeout_s)
            if held and key is not None:
                worker.forget(key[0], keep=2)
            return result
        except MeasureError as exc:
            with self._count_lock:
                self.failures += 1
            log.warning("event=measure_failed error=%r", str(exc))
            if self._on_failure is not None:
                self._on_failure("hung" if "took over" in str(exc) else "died")
            raise
        finally:
            if not held:
                self._idle.put(worker)
            elif not worker.busy:
                self._release(thread, worker)

    def _release(self, thread: int, worker: _Worker) -> None:
        self._held.pop(thread, None)
        self._idle.put(worker)

    def close(self, timeout_s: float = 2.0) -> None:
        self._closed = True
        for worker in self._workers:
            worker.stop(timeout_s)

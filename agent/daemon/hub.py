"""Bounded per-sensor frame queues and the fair round-robin taker the scoring thread reads from.

A source thread never blocks on the scorer: when its queue is full the configured overflow rule sheds one frame
(`drop_oldest`: the oldest waiting frame, so the scorer sees the freshest data; `drop_newest`: the one being
offered) and counts it per sensor. Memory is bounded by the sum of the queue sizes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from agent.frame import Frame

ShedHook = Callable[[str], None]


class _Lane:
    __slots__ = ("frames", "maxsize", "overflow", "shard_key", "shed")

    def __init__(self, maxsize: int, overflow: str) -> None:
        self.frames: deque[Frame] = deque()
        self.maxsize = maxsize
        self.overflow = overflow
        self.shed = 0
        self.shard_key = -1  # set by the lane's first frame: the number of lanes that had a frame before it


class FrameHub:
    """One bounded lane per sensor; `take()` serves the lanes in turn so a busy sensor cannot starve the others."""

    def __init__(self, on_shed: ShedHook | None = None) -> None:
        self._lanes: dict[str, _Lane] = {}
        self._order: list[str] = []
        self._next: dict[int, int] = {}  # shard -> lane position to look at first
        self._active = 0  # lanes that have had a frame
        self._cond = threading.Condition()
        self._on_shed = on_shed

    def add_lane(self, sensor: str, maxsize: int, overflow: str = "drop_oldest") -> None:
        with self._cond:
            if sensor not in self._lanes:
                self._lanes[sensor] = _Lane(maxsize, overflow)
                self._order.append(sensor)

    def put(self, frame: Frame) -> bool:
        """Queue `frame`; False when it was the one shed (drop_newest on a full lane)."""
        shed = accepted = False
        with self._cond:
            lane = self._lanes[frame.sensor]
            if lane.shard_key < 0:
                # Lanes are spread over the scoring threads in the order they start to carry frames, so a lane
                # that never does (an image folder's scan lane) does not leave a thread idle.
                lane.shard_key = self._active
                self._active += 1
            if len(lane.frames) >= lane.maxsize:
                lane.shed += 1
                shed = True
                if lane.overflow == "drop_oldest":
                    lane.frames.popleft()
            if not shed or lane.overflow == "drop_oldest":
                lane.frames.append(frame)
                accepted = True
                self._cond.notify_all()  # the thread that serves this lane may not be the first waiter
        if shed and self._on_shed is not None:
            self._on_shed(frame.sensor)
        return accepted

    def take(self, timeout: float, shard: int = 0, shards: int = 1) -> Frame | None:
        """The next frame, round-robin over sensors; None after `timeout` seconds without one.

        With several scoring threads, thread `shard` of `shards` serves the lanes whose shard key (their rank by
        first frame) modulo `shards` is `shard`: a sensor's frames stay on one thread, in order (scorers keep
        per-sensor history).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                frame = self._pop_fair(shard, shards)
                if frame is not None:
                    return frame
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def _pop_fair(self, shard: int, shards: int) -> Frame | None:
        n = len(self._order)
        start = self._next.get(shard, 0)
        for i in range(n):
            position = (start + i) % n
            lane = self._lanes[self._order[position]]
            if lane.frames and lane.shard_key % shards == shard:
                self._next[shard] = position + 1
                return lane.frames.popleft()
        return None

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return sum(len(lane.frames) for lane in self._lanes.values())

    def depths(self) -> dict[str, int]:
        with self._cond:
            return {sensor: len(lane.frames) for sensor, lane in self._lanes.items()}

    def shed(self) -> dict[str, int]:
        with self._cond:
            return {sensor: lane.shed for sensor, lane in self._lanes.items()}

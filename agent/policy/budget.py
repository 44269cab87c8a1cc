"""Per-sensor budgets over a sliding window that keep the highest-scoring frames when over budget."""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field

WINDOW_NS = 60_000_000_000


@dataclass(slots=True)
class _Kept:
    t_ns: int
    score: float
    nbytes: int
    key: str
    alive: bool = True


@dataclass(frozen=True, slots=True)
class Offer:
    accept: bool
    displaced: tuple[str, ...] = ()


@dataclass
class WindowBudget:
    """At most `max_frames` frames and `max_bytes` bytes kept in any `window_ns` (0 = unlimited).

    When a frame does not fit, frames kept earlier in the window that score strictly lower are displaced,
    lowest first, if that makes room; otherwise the new frame is refused. So, over each window, the budget ends
    up holding the highest-scoring frames seen, without waiting for the window to end.
    """

    max_frames: int = 0
    max_bytes: int = 0
    window_ns: int = WINDOW_NS
    _window: deque[_Kept] = field(default_factory=deque)
    _frames: int = 0
    _bytes: int = 0

    def offer(self, t_ns: int, score: float, nbytes: int, key: str, force: bool = False) -> Offer:
        """Ask to keep a frame; `force` keeps it regardless (coverage), still counting it against the budget."""
        self._expire(t_ns)
        if force or self._fits(1, nbytes):
            self._add(_Kept(t_ns, score, nbytes, key))
            return Offer(True)
        victims = self._victims(score, nbytes)
        if victims is None:
            return Offer(False)
        for victim in victims:
            victim.alive = False
            self._frames -= 1
            self._bytes -= victim.nbytes
        self._add(_Kept(t_ns, score, nbytes, key))
        return Offer(True, tuple(v.key for v in victims))

    def _fits(self, frames: int, nbytes: int, freed_frames: int = 0, freed_bytes: int = 0) -> bool:
        ok_frames = not self.max_frames or self._frames - freed_frames + frames <= self.max_frames
        ok_bytes = not self.max_bytes or self._bytes - freed_bytes + nbytes <= self.max_bytes
        return ok_frames and ok_bytes

    def _victims(self, score: float, nbytes: int) -> list[_Kept] | None:
        lower = [k for k in self._window if k.alive and k.score < score]
        chosen: list[_Kept] = []
        freed_bytes = 0
        for victim in heapq.nsmallest(len(lower), lower, key=lambda k: (k.score, k.t_ns)):
            chosen.append(victim)
            freed_bytes += victim.nbytes
            if self._fits(1, nbytes, len(chosen), freed_bytes):
                return chosen
        return None

    def _add(self, kept: _Kept) -> None:
        self._window.append(kept)
        self._frames += 1
        self._bytes += kept.nbytes

    def _expire(self, t_ns: int) -> None:
        while self._window and self._window[0].t_ns <= t_ns - self.window_ns:
            old = self._window.popleft()
            if old.alive:
                self._frames -= 1
                self._bytes -= old.nbytes

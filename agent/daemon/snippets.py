"""Time-synced snippets: around a strong trigger frame, keep every sensor's frames from pre_s before to post_s after.

`SnippetKeeper` is fed each (frame, outcome) after the policy decided, in processing order, and returns the frames
to keep in addition, each with the trigger that keeps it. Frames the policy dropped wait in a pre-trigger ring
buffer bounded by time (pre_s plus a little slack for sensors that arrive late) and by memory (buffer_mb); a frame
pushed out by the memory bound while still young enough to be wanted is counted in `overflow`. Windows that
overlap are merged; a frame in a merged window is credited to the nearest trigger that covers it. The class does
no I/O, so the daemon and replay share it and the tests drive it with hand-made outcomes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from agent.config.daemon import SnippetConfig
from agent.frame import Frame
from agent.pipeline import Outcome
from agent.scoring.base import Label, Scorer, Verdict
from agent.spool import Spool

RULE_SNIPPET = "keep:snippet"
NS = 1_000_000_000
_LATE_SLACK_NS = NS // 2  # frames of another sensor may reach the scorer this much later than their time


@dataclass(frozen=True, slots=True)
class SnippetKeep:
    frame: Frame
    verdict: Verdict
    frame_id: str
    trigger: str  # frame id of the trigger frame


def snippet_record(keep: SnippetKeep, stored: bool) -> dict[str, object]:
    """The decision record of a frame kept by a snippet (rule keep:snippet, with the trigger's frame id)."""
    frame, verdict = keep.frame, keep.verdict
    return {
        "sensor": frame.sensor, "modality": frame.modality.value, "seq": frame.seq, "t_ns": frame.t_ns,
        "verdict": verdict.label.value, "score": round(float(verdict.score), 4), "kept": stored,
        "reasons": list(verdict.reasons), "rule": RULE_SNIPPET if stored else "drop:spool_full",
        "bytes": frame.nbytes, "frame_id": keep.frame_id, "trigger": keep.trigger, "signals": verdict.signals,
    }


def store_snippet(spool: Spool, scorer: Scorer, keep: SnippetKeep) -> dict[str, object]:
    """Put a snippet frame in the spool; returns its decision record (kept False when the spool refused it)."""
    result = spool.put(keep.frame, keep.verdict, RULE_SNIPPET, frame_id=keep.frame_id)
    if result.stored:
        scorer.remember(keep.frame, keep.verdict)
    return snippet_record(keep, result.stored)


@dataclass(slots=True)
class _Window:
    start: int
    end: int
    triggers: list[tuple[int, str]] = field(default_factory=list)  # (t_ns, trigger frame id)

    def trigger_for(self, t_ns: int) -> str:
        return min(self.triggers, key=lambda trig: abs(trig[0] - t_ns))[1]


@dataclass(slots=True)
class _Held:
    frame: Frame
    verdict: Verdict
    frame_id: str
    size: int


@dataclass
class SnippetStats:
    triggers: int = 0
    windows: int = 0
    kept: int = 0
    overflow: int = 0  # frames pushed out of the ring buffer by its memory bound before pre_s had passed
    buffered_frames: int = 0
    buffered_bytes: int = 0


def _held_size(frame: Frame) -> int:
    size = len(frame.payload) if frame.payload is not None else 0
    if frame.array is not None and frame.payload is None:
        size += frame.array.nbytes
    return size or frame.nbytes


class SnippetKeeper:
    def __init__(self, config: SnippetConfig) -> None:
        self.config = config
        self.stats = SnippetStats()
        self._pre = round(config.pre_s * NS)
        self._post = round(config.post_s * NS)
        self._max_bytes = int(config.buffer_mb * 2**20)
        self._ring: deque[_Held] = deque()
        self._windows: list[_Window] = []
        self._newest = 0

    def offer(self, frame: Frame, outcome: Outcome) -> list[SnippetKeep]:
        """Frames to keep in addition to the policy's decisions, now that `frame` was decided."""
        if not self.config.enabled:
            return []
        record = outcome.record
        self._newest = max(self._newest, frame.t_ns)
        out: list[SnippetKeep] = []
        kept = bool(record["kept"])
        if not kept and self._wanted(frame.sensor):
            window = self._window_at(frame.t_ns)
            if window is not None:
                out.append(SnippetKeep(frame, outcome.verdict, record["frame_id"], window.trigger_for(frame.t_ns)))
                kept = True
        if self._is_trigger(frame, outcome):
            window = self._open(frame.t_ns, record["frame_id"])
            if not kept:  # the trigger itself, refused by the policy (budget): the snippet keeps it
                out.append(SnippetKeep(frame, outcome.verdict, record["frame_id"], record["frame_id"]))
                kept = True
            out.extend(self._from_ring(window))
        if not kept and self._wanted(frame.sensor):
            self._hold(_Held(frame, outcome.verdict, record["frame_id"], _held_size(frame)))
        self._expire()
        self.stats.kept += len(out)
        return out

    # ---- triggers and windows

    def _is_trigger(self, frame: Frame, outcome: Outcome) -> bool:
        sensors = self.config.trigger_sensors
        return (
            outcome.verdict.label is Label.HELPFUL
            and float(outcome.verdict.score) >= self.config.trigger_min_score
            and (not sensors or frame.sensor in sensors)
        )

    def _wanted(self, sensor: str) -> bool:
        return not self.config.sensors or sensor in self.config.sensors

    def _window_at(self, t_ns: int) -> _Window | None:
        for window in self._windows:
            if window.start <= t_ns <= window.end:
                return window
        return None

    def _open(self, t_ns: int, trigger: str) -> _Window:
        self.stats.triggers += 1
        start, end = t_ns - self._pre, t_ns + self._post
        for window in self._windows:
            if start <= window.end and window.start <= end:  # overlaps: merge
                window.start, window.end = min(window.start, start), max(window.end, end)
                window.triggers.append((t_ns, trigger))
                return window
        window = _Window(start, end, [(t_ns, trigger)])
        self._windows.append(window)
        self.stats.windows += 1
        return window

    def _from_ring(self, window: _Window) -> list[SnippetKeep]:
        taken, left = [], deque()
        for held in self._ring:
            t = held.frame.t_ns
            if window.start <= t <= window.end:
                taken.append(SnippetKeep(held.frame, held.verdict, held.frame_id, window.trigger_for(t)))
                self.stats.buffered_bytes -= held.size
            else:
                left.append(held)
        self._ring = left
        self.stats.buffered_frames = len(left)
        return taken

    # ---- the ring buffer

    def _hold(self, held: _Held) -> None:
        self._ring.append(held)
        self.stats.buffered_bytes += held.size
        while self._ring and self.stats.buffered_bytes > self._max_bytes:
            victim = self._ring.popleft()
            self.stats.buffered_bytes -= victim.size
            if victim.frame.t_ns >= self._newest - self._pre:
                self.stats.overflow += 1
        self.stats.buffered_frames = len(self._ring)

    def _expire(self) -> None:
        horizon = self._newest - self._pre - _LATE_SLACK_NS
        while self._ring and self._ring[0].frame.t_ns < horizon:
            self.stats.buffered_bytes -= self._ring.popleft().size
        self.stats.buffered_frames = len(self._ring)
        self._windows = [w for w in self._windows if w.end >= self._newest - _LATE_SLACK_NS]

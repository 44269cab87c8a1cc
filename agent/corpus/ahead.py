"""Inside one drive: assess frames ahead in threads, finish them in order.

A verdict comes in two steps (agent.scoring.usefulness): `assess` (decode, checks, model) reads only the frame
and its own sensor's earlier frames; `complete`, the policy, the spool and the snippets read what was kept so
far and must run in decision order. `assess_ahead` runs `assess` up to `window` frames ahead of the decision,
each sensor on one lane thread (its frames stay in order, as in the daemon's sharded scoring threads), and the
wrapped scorer's `score` finishes the frame that was assessed ahead. So a drive's decisions are exactly those of
an inline run; OpenCV, NumPy and ONNX Runtime release the GIL, so the lanes overlap with the ordered part.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from agent.frame import Frame, Item
from agent.scoring.base import Scorer, Verdict
from agent.scoring.usefulness import Pending

DEFAULT_WINDOW = 32  # frames held ahead of the decision (bounds memory: a window of decoded frames)


class AheadScorer:
    """Scorer whose `score` completes the verdict assessed ahead for that very frame (inline when there is none)."""

    def __init__(self, inner: Scorer) -> None:
        self.inner: Any = inner  # a SplitScorer: assess / complete
        self.name = inner.name
        self._ahead: dict[int, tuple[Frame, Future[Verdict | Pending]]] = {}

    def submit(self, frame: Frame, lane: ThreadPoolExecutor) -> None:
        self._ahead[id(frame)] = (frame, lane.submit(self.inner.assess, frame))

    def score(self, frame: Frame) -> Verdict:
        held = self._ahead.pop(id(frame), None)
        if held is None or held[0] is not frame:
            return self.inner.score(frame)
        return self.inner.complete(frame, held[1].result())

    def remember(self, frame: Frame, verdict: Verdict) -> None:
        self.inner.remember(frame, verdict)


def splittable(scorer: Scorer) -> bool:
    return callable(getattr(scorer, "assess", None)) and callable(getattr(scorer, "complete", None))


def assess_ahead(
    scorer: Scorer, items: Iterable[Item], threads: int, window: int = DEFAULT_WINDOW
) -> tuple[Scorer, Iterator[Item]]:
    """(scorer to decide with, items to decide on): with `threads` > 1, frames are assessed ahead on lanes."""
    if threads <= 1 or not splittable(scorer):
        return scorer, iter(items)
    ahead = AheadScorer(scorer)
    return ahead, _run_ahead(ahead, items, threads, max(1, window))


def _run_ahead(ahead: AheadScorer, items: Iterable[Item], threads: int, window: int) -> Iterator[Item]:
    lanes = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"assess-{k}") for k in range(threads)]
    lane_of: dict[str, ThreadPoolExecutor] = {}
    held: deque[Item] = deque()  # bounded by `window`: the source is read no further ahead than that
    try:
        for item in items:
            if isinstance(item, Frame):
                lane = lane_of.setdefault(item.sensor, lanes[len(lane_of) % len(lanes)])
                ahead.submit(item, lane)
            held.append(item)
            if len(held) >= window:
                yield held.popleft()
        while held:
            yield held.popleft()
    finally:
        for lane in lanes:
            lane.shutdown(wait=True, cancel_futures=True)

"""The scorer seam: anything that turns a Frame into a Verdict (heuristics now, the ONNX proxy model later)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from agent.frame import Frame

if TYPE_CHECKING:
    from agent.scoring.usefulness import Pending


class Label(str, enum.Enum):
    HELPFUL = "helpful"
    USELESS = "useless"
    HARMFUL = "harmful"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a scorer thinks of one frame.

    `score` is the frame's value in [0, 1] (harmful frames score 0): the policy's thresholds, the budget and the
    spool's eviction order all use it. `reasons` are machine-readable names of the signals that decided the label
    (e.g. "blur", "redundant", "novel"). `descriptor` is the L2-normalised vector used for redundancy, kept in the
    scorer's memory when the policy keeps the frame.
    """

    label: Label
    score: float
    reasons: tuple[str, ...]
    descriptor: np.ndarray | None = field(default=None, repr=False, compare=False)
    signals: dict[str, float] = field(default_factory=dict, compare=False)


class Scorer(Protocol):
    name: str

    def score(self, frame: Frame) -> Verdict:
        """Judge one frame. Must not raise on bad frame content: faults are harmful verdicts."""
        ...

    def remember(self, frame: Frame, verdict: Verdict) -> None:
        """Called for every frame the policy keeps, so redundancy is measured against what was kept."""
        ...


class SplitScorer(Scorer, Protocol):
    """A scorer whose verdict comes in two steps (see agent.scoring.usefulness): `assess` needs only the frame and
    may run in parallel; `complete` reads the memory of kept frames and runs in decision order."""

    def assess(self, frame: Frame) -> Verdict | Pending: ...

    def complete(self, frame: Frame, assessed: Verdict | Pending) -> Verdict: ...

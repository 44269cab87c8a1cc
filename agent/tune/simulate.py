"""Replay cached verdicts through the real policy for one setting: the keep/drop decision a replay would make.

The history-dependent part of a verdict (distance to the kept memory) and the policy (thresholds, coverage,
budgets with displacement) are re-run with the agent's own code (finish, DescriptorMemory, Policy), so a sweep
row is what `edgesift replay` with that setting would keep, minus the spool's size budget and snippet windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.config.model import BudgetConfig, ModalityPolicy, PolicyConfig
from agent.frame import Modality
from agent.policy import Policy, rules
from agent.scoring.base import Label, Verdict
from agent.scoring.memory import DescriptorMemory
from agent.scoring.usefulness import finish
from agent.tune.cache import CachedFrame

LABEL_CODE = {Label.HELPFUL: 0, Label.USELESS: 1, Label.HARMFUL: 2}


@dataclass(frozen=True, slots=True)
class Knobs:
    """One modality's tunable setting."""

    redundant_max_distance: float
    keep_min_score: float = 0.0
    coverage_every_s: float = 0.0
    frames_per_min: int = 0
    mb_per_min: float = 0.0
    keep_harmful: bool = False

    def policy(self) -> ModalityPolicy:
        return ModalityPolicy(
            keep_min_score=self.keep_min_score, keep_harmful=self.keep_harmful,
            coverage_every_s=self.coverage_every_s,
            budget=BudgetConfig(frames_per_min=self.frames_per_min, mb_per_min=self.mb_per_min),
        )

    def as_dict(self) -> dict[str, float | int | bool]:
        return {"redundant_max_distance": round(self.redundant_max_distance, 5),
                "keep_min_score": self.keep_min_score, "coverage_every_s": self.coverage_every_s,
                "frames_per_min": self.frames_per_min, "mb_per_min": round(self.mb_per_min, 4),
                "keep_harmful": self.keep_harmful}


@dataclass(slots=True)
class Outcome:
    """Per frame of the simulated modality (same order as the indices given): kept, verdict code, rule."""

    kept: np.ndarray  # bool
    verdict: np.ndarray  # int8, LABEL_CODE
    rules: list[str]


def simulate(frames: list[CachedFrame], indices: list[int], knobs: Knobs, memory_size: int) -> Outcome:
    """Run one modality's frames (time order) through finish + Policy with `knobs`."""
    modality = frames[indices[0]].frame.modality if indices else Modality.CAMERA
    side = knobs.policy()
    policy = Policy(PolicyConfig(camera=side, lidar=side))
    memory = DescriptorMemory(memory_size)
    n = len(indices)
    kept = np.zeros(n, dtype=bool)
    verdicts = np.zeros(n, dtype=np.int8)
    rule_of: list[str] = [""] * n
    for j, i in enumerate(indices):
        cached = frames[i]
        frame = cached.frame
        if frame.modality is not modality:
            raise ValueError("simulate() takes one modality at a time")
        assessed = cached.assessed
        if isinstance(assessed, Verdict):
            verdict = assessed
        else:
            verdict = finish(assessed, memory.nearest(frame.sensor, assessed.descriptor),
                             knobs.redundant_max_distance)
        verdicts[j] = LABEL_CODE[verdict.label]
        decision = policy.decide(frame, verdict, str(j), frame.nbytes)
        for victim in decision.displaced:
            kept[int(victim)] = False
            rule_of[int(victim)] = rules.DROP_DISPLACED
        rule_of[j] = decision.rule
        if decision.keep:
            kept[j] = True
            if verdict.descriptor is not None and verdict.label is not Label.HARMFUL:
                memory.add(frame.sensor, verdict.descriptor)
    return Outcome(kept, verdicts, rule_of)

"""The last step of every verdict: distance to what was kept -> useless or helpful, with a score.

Scorers split a verdict in two. `assess` does the expensive, history-independent part (decode, checks, model)
and returns either a final Verdict (harmful) or a Pending one; `finish` adds the one signal that depends on which
frames the policy kept (the distance to the sensor's memory of kept descriptors). The daemon and replay run both
steps per frame; `edgesift tune` caches the Pending verdicts and re-runs only `finish` and the policy per setting,
so a sweep gives exactly the verdicts a replay with that setting would give, without re-running the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from agent.scoring.base import Label, Verdict

NOVELTY_SPAN = 4.0  # a frame this many redundancy-thresholds away from anything kept scores NOVEL_MAX
# Novelty alone tops out below 1 so that boosts (rare condition, out of domain, uncertain, target) rank a novel
# frame above an equally novel ordinary one: a budget full of novel frames keeps the rare ones first.
NOVEL_MAX = 0.85


@dataclass(frozen=True, slots=True)
class Pending:
    """A verdict waiting for its distance to the kept memory.

    `threshold` is the redundancy distance (config units); `fleet_distance` the (calibrated) distance to the
    fleet exemplars (None: the scorer has no fleet memory); `boosts` are (reason, score added) pairs a helpful
    frame gets (uncertain, target); `calibrate` maps a raw embedding distance onto the config's scale.
    """

    descriptor: np.ndarray = field(repr=False)
    signals: dict[str, float]
    threshold: float
    fleet_distance: float | None = None
    boosts: tuple[tuple[str, float], ...] = ()
    calibrate: Callable[[float], float] | None = field(default=None, repr=False)


def usefulness(distance: float, threshold: float) -> tuple[Label, float, str]:
    """Map the distance to the nearest kept descriptor to a label, a score in [0, 1] and a reason."""
    if math.isinf(distance):
        return Label.HELPFUL, NOVEL_MAX, "novel"
    if distance <= threshold:
        return Label.USELESS, round(0.5 * distance / threshold, 4) if threshold > 0 else 0.0, "redundant"
    excess = (distance - threshold) / max(threshold * NOVELTY_SPAN, 1e-9)
    return Label.HELPFUL, round(0.5 + (NOVEL_MAX - 0.5) * min(1.0, excess), 4), "novel"


def finite(value: float) -> float:
    """A distance for a JSON signal: rounded, -1 for 'nothing to compare with'."""
    return round(value, 5) if not math.isinf(value) else -1.0


def finish(pending: Pending, recent: float, threshold: float | None = None) -> Verdict:
    """The verdict for a pending frame whose raw distance to the sensor's kept memory is `recent` (inf: empty).

    `threshold` overrides the pending one (a tune sweep varies it without re-assessing).
    """
    thr = pending.threshold if threshold is None else threshold
    if pending.calibrate is not None and not math.isinf(recent):
        recent = pending.calibrate(recent)
    fleet = math.inf if pending.fleet_distance is None else pending.fleet_distance
    label, score, reason = usefulness(min(recent, fleet), thr)
    if reason == "redundant" and fleet < recent:
        reason = "redundant_fleet"
    signals = {**pending.signals, "distance": finite(recent)}
    if pending.fleet_distance is not None:
        signals["fleet_distance"] = finite(fleet)
    if label is Label.USELESS:
        return Verdict(label, score, (reason,), pending.descriptor, signals)
    reasons = (reason, *(name for name, _ in pending.boosts))
    score += sum(boost for _, boost in pending.boosts)
    return Verdict(label, round(min(1.0, score), 4), reasons, pending.descriptor, signals)


def resolve(assessed: Verdict | Pending, nearest: Callable[[np.ndarray], float]) -> Verdict:
    """Finish `assessed` against a memory lookup (`nearest(descriptor)` -> raw distance), or pass a Verdict on."""
    if isinstance(assessed, Verdict):
        return assessed
    return finish(assessed, nearest(assessed.descriptor))

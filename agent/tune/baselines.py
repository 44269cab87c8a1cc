"""Baselines at equal budget: each method keeps the same number of frames of each modality as ours does.

- keep-all: every frame (the reference, not at equal budget);
- uniform: every k-th frame of each sensor, evenly spread;
- reducto-pixel / reducto-edge: frame differencing against the last kept frame of the sensor (features in
  agent.tune.features); the difference threshold is searched so that the method keeps the budget;
- uncertainty: the frames the proxy model is least sure about, highest first (active-learning style).
None of the baselines knows about faults: that is the point of comparing them with a filter that does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from agent.frame import Modality
from agent.tune.cache import ScoreCache
from agent.tune.features import edge_change, pixel_change

Selector = Callable[[ScoreCache, list[int], int], np.ndarray]
SEARCH_STEPS = 24


def _by_sensor(cache: ScoreCache, idx: list[int]) -> dict[str, list[int]]:
    """Positions (into idx) of each sensor's frames."""
    out: dict[str, list[int]] = {}
    for j, i in enumerate(idx):
        out.setdefault(cache.frames[i].frame.sensor, []).append(j)
    return out


def uniform(cache: ScoreCache, idx: list[int], budget: int) -> np.ndarray:
    kept = np.zeros(len(idx), dtype=bool)
    if budget <= 0 or not idx:
        return kept
    for positions in _by_sensor(cache, idx).values():
        share = round(budget * len(positions) / len(idx))
        if share > 0:
            picks = np.unique(np.linspace(0, len(positions) - 1, min(share, len(positions))).round().astype(int))
            kept[np.asarray(positions)[picks]] = True
    return kept


def _differencing(cache: ScoreCache, idx: list[int], threshold: float, edges: bool) -> np.ndarray:
    kept = np.zeros(len(idx), dtype=bool)
    for positions in _by_sensor(cache, idx).values():
        last = None
        for j in positions:
            feats = cache.frames[idx[j]].features
            image = feats.edges if edges else feats.grey
            if image is None:
                continue  # undecodable: nothing to send
            if last is None or (edge_change if edges else pixel_change)(last, image) > threshold:
                kept[j] = True
                last = image
    return kept


def reducto(edges: bool) -> Selector:
    """Search the difference threshold (the count kept falls as it rises) for the largest count <= budget."""

    def select(cache: ScoreCache, idx: list[int], budget: int) -> np.ndarray:
        lo, hi = 0.0, 1.0
        best = _differencing(cache, idx, hi, edges)
        if int(best.sum()) > budget:
            return best  # even the strictest threshold keeps each sensor's first frame
        for _ in range(SEARCH_STEPS):
            mid = (lo + hi) / 2
            kept = _differencing(cache, idx, mid, edges)
            if int(kept.sum()) <= budget:
                best, hi = kept, mid
            else:
                lo = mid
        return best

    return select


def uncertainty(cache: ScoreCache, idx: list[int], budget: int) -> np.ndarray:
    values = np.array([cache.frames[i].features.uncertainty for i in idx], dtype=object)
    known = np.array([v is not None for v in values])
    score = np.where(known, np.array([v if v is not None else -1.0 for v in values], dtype=np.float64), -1.0)
    kept = np.zeros(len(idx), dtype=bool)
    if budget > 0 and known.any():
        order = np.argsort(-score, kind="stable")[: min(budget, int(known.sum()))]
        kept[order] = True
    return kept


def keep_all(cache: ScoreCache, idx: list[int], budget: int) -> np.ndarray:
    return np.ones(len(idx), dtype=bool)


METHODS: dict[str, Selector] = {
    "keep-all": keep_all,
    "uniform": uniform,
    "reducto-pixel": reducto(edges=False),
    "reducto-edge": reducto(edges=True),
    "uncertainty": uncertainty,
}


def run_baselines(cache: ScoreCache, budgets: dict[Modality, int]) -> dict[str, np.ndarray]:
    """Kept flags over all cached frames per method, each modality held to its budget."""
    out = {}
    for name, select in METHODS.items():
        kept = np.zeros(len(cache.frames), dtype=bool)
        for modality, budget in budgets.items():
            idx = cache.of(modality)
            if idx:
                kept[idx] = select(cache, idx, budget)
        out[name] = kept
    return out

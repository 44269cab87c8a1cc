"""Sweep the policy's thresholds and budgets over cached verdicts, and pick the setting that meets a budget.

Camera and LiDAR frames never interact in the policy (memory, coverage and budgets are per sensor), so each
modality is swept on its own and a whole-config setting is a (camera, lidar) pair whose figures add up.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from agent.config.model import AgentConfig
from agent.frame import Modality
from agent.tune.cache import ScoreCache
from agent.tune.labels import UNKNOWN, rates
from agent.tune.simulate import Knobs, Outcome, simulate

THRESHOLD_FACTORS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)
MIN_SCORES = (0.0, 0.6, 0.75, 0.9)
BUDGET_SHARES = (1.0, 0.8, 0.6)  # of the per-sensor MB/min that meets a target exactly


@dataclass
class Row:
    modality: str
    knobs: Knobs
    outcome: Outcome = field(repr=False)
    metrics: dict[str, Any]
    counts: dict[str, int]  # additive across modalities: kept, bytes, helpful, harmful_kept, frames, truth totals


@dataclass(frozen=True)
class Target:
    mb_per_hour: float | None = None
    keep_rate: float | None = None

    @property
    def given(self) -> bool:
        return self.mb_per_hour is not None or self.keep_rate is not None


def base_knobs(config: AgentConfig, scorer: str, modality: Modality) -> Knobs:
    """The setting of `config` for one modality (the redundancy threshold lives where the scorer reads it)."""
    camera = modality is Modality.CAMERA
    if scorer == "proxy":
        thr = (config.model.camera if camera else config.model.lidar).redundant_max_distance
    else:
        thr = (config.scoring.camera if camera else config.scoring.lidar).redundant_max_distance
    side = config.policy.camera if camera else config.policy.lidar
    return Knobs(thr, side.keep_min_score, side.coverage_every_s, side.budget.frames_per_min,
                 side.budget.mb_per_min, side.keep_harmful)


def grid(base: Knobs, budget_mb_per_min: list[float]) -> list[Knobs]:
    """Thresholds x minimum scores x coverage on/off, unbudgeted; plus budgeted variants when a target is given."""
    coverages = sorted({0.0, base.coverage_every_s})
    settings = {base}
    for factor, min_score, coverage in itertools.product(THRESHOLD_FACTORS, MIN_SCORES, coverages):
        thr = min(2.0, base.redundant_max_distance * factor)
        settings.add(replace(base, redundant_max_distance=thr, keep_min_score=min_score, coverage_every_s=coverage,
                             frames_per_min=0, mb_per_min=0.0))
    for mb, factor, coverage in itertools.product(budget_mb_per_min, (1.0, 1.5), coverages):
        settings.add(replace(base, redundant_max_distance=min(2.0, base.redundant_max_distance * factor),
                             keep_min_score=0.0, coverage_every_s=coverage, frames_per_min=0, mb_per_min=mb))
    return sorted(settings, key=lambda k: (k.mb_per_min, k.redundant_max_distance, k.keep_min_score,
                                            k.coverage_every_s))


def budget_candidates(cache: ScoreCache, modality: Modality, target: Target) -> list[float]:
    """Per-sensor MB/min budgets that would put this modality at or under the target on its own share."""
    if target.mb_per_hour is None:
        return []
    idx = cache.of(modality)
    if not idx:
        return []
    share = sum(cache.frames[i].frame.nbytes for i in idx) / max(1, sum(c.frame.nbytes for c in cache.frames))
    per_sensor = target.mb_per_hour * share / 60.0 / cache.sensors_at_once(modality)
    return [round(max(0.001, per_sensor * s), 4) for s in BUDGET_SHARES]


def sweep_modality(
    cache: ScoreCache, modality: Modality, settings: list[Knobs], truth: np.ndarray, memory_size: int
) -> list[Row]:
    idx = cache.of(modality)
    if not idx:
        return []
    nbytes = np.array([cache.frames[i].frame.nbytes for i in idx], dtype=np.int64)
    labels = truth[idx]
    rows = []
    for knobs in settings:
        outcome = simulate(cache.frames, idx, knobs, memory_size)
        metrics = rates(outcome.kept, labels, nbytes, cache.duration_s)
        metrics["by_verdict_kept"] = {name: int((outcome.kept & (outcome.verdict == code)).sum())
                                      for code, name in enumerate(("helpful", "useless", "harmful"))}
        rows.append(Row(modality.value, knobs, outcome, metrics, _counts(outcome, labels, nbytes)))
    return rows


def _counts(outcome: Outcome, labels: np.ndarray, nbytes: np.ndarray) -> dict[str, int]:
    kept = outcome.kept
    return {
        "frames": int(kept.size), "kept": int(kept.sum()), "bytes": int(nbytes[kept].sum()),
        "verdict_helpful": int((kept & (outcome.verdict == 0)).sum()),
        "helpful": int((kept & (labels == 0)).sum()), "helpful_total": int((labels == 0).sum()),
        "harmful_dropped": int((~kept & (labels == 2)).sum()), "harmful_total": int((labels == 2).sum()),
    }


@dataclass
class Combined:
    camera: Row | None
    lidar: Row | None
    metrics: dict[str, Any]
    kept: np.ndarray = field(repr=False)  # over all cached frames


def combine(cache: ScoreCache, truth: np.ndarray, camera: Row | None, lidar: Row | None) -> Combined:
    kept = np.zeros(len(cache.frames), dtype=bool)
    for row, modality in ((camera, Modality.CAMERA), (lidar, Modality.LIDAR)):
        if row is not None:
            kept[cache.of(modality)] = row.outcome.kept
    nbytes = np.array([c.frame.nbytes for c in cache.frames], dtype=np.int64)
    return Combined(camera, lidar, rates(kept, truth, nbytes, cache.duration_s), kept)


def _pair(a: Row | None, b: Row | None, duration_s: float) -> tuple[dict[str, int], float, float]:
    counts: dict[str, int] = {}
    for row in (a, b):
        for key, value in (row.counts if row is not None else {}).items():
            counts[key] = counts.get(key, 0) + value
    mb_per_hour = counts.get("bytes", 0) / 1e6 * 3600.0 / duration_s
    keep_rate = counts.get("kept", 0) / max(1, counts.get("frames", 0))
    return counts, mb_per_hour, keep_rate


def _merit(counts: dict[str, int]) -> tuple[float, ...]:
    """Best helpful-kept rate (labels) or most helpful-verdict frames kept (no labels); then most harmful
    caught; then fewest bytes."""
    if counts.get("helpful_total", 0):
        primary = counts["helpful"] / counts["helpful_total"]
    else:
        primary = float(counts.get("verdict_helpful", 0))
    caught = counts["harmful_dropped"] / counts["harmful_total"] if counts.get("harmful_total", 0) else 0.0
    return (primary, caught, -counts.get("bytes", 0))


def suggest(
    cache: ScoreCache, truth: np.ndarray, cameras: list[Row], lidars: list[Row], target: Target
) -> tuple[Combined | None, int]:
    """The (camera, lidar) pair meeting the target with the best merit, and how many pairs were compared."""
    pairs = list(itertools.product(cameras or [None], lidars or [None]))
    duration = cache.duration_s
    best: tuple[tuple[float, ...], Row | None, Row | None] | None = None
    for cam, lid in pairs:
        counts, mb_per_hour, keep_rate = _pair(cam, lid, duration)
        if target.mb_per_hour is not None and mb_per_hour > target.mb_per_hour:
            continue
        if target.keep_rate is not None and keep_rate > target.keep_rate:
            continue
        merit = _merit(counts)
        if best is None or merit > best[0]:
            best = (merit, cam, lid)
    if best is None:
        return None, len(pairs)
    return combine(cache, truth, best[1], best[2]), len(pairs)


def known(truth: np.ndarray) -> bool:
    return bool((truth != UNKNOWN).any())

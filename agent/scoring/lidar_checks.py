"""Cheap validity checks for LiDAR scans: point count, NaN/inf, impossible ranges, missing sectors and rings."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from agent.config.model import LidarScoring
from agent.scoring.memory import unit

BEV_CELLS = 32
BEV_HALF_M = 40.0
HISTORY = 20  # healthy scans remembered per sensor to know what "normal" looks like
# Sector, ring and layout statistics are robust on a strided subsample; only the validity counts need every point.
STATS_POINTS = 30_000
ROUGHNESS_POINTS = 8192  # a contiguous run of points, in the driver's scan order


@dataclass(frozen=True, slots=True)
class LidarSignals:
    points: int
    valid: int
    nonfinite: float
    impossible: float
    empty_run: int  # longest circular run of empty azimuth sectors
    elevation_span: float  # degrees between the 1st and 99th elevation percentiles
    descriptor: np.ndarray | None
    roughness: float = 0.0  # median distance between consecutive valid points in scan order (m)

    def as_dict(self) -> dict[str, float]:
        return {
            "points": float(self.points),
            "valid": float(self.valid),
            "nonfinite": round(self.nonfinite, 5),
            "impossible": round(self.impossible, 5),
            "empty_run": float(self.empty_run),
            "elevation_span": round(self.elevation_span, 3),
            "roughness": round(self.roughness, 4),
        }


def _longest_circular_run(empty: np.ndarray) -> int:
    if empty.all():
        return int(empty.size)
    doubled = np.concatenate([empty, empty]).astype(np.int8)
    best = run = 0
    for v in doubled:
        run = run + 1 if v else 0
        best = max(best, run)
    return min(best, int(empty.size))


def _bev_descriptor(xyz: np.ndarray) -> np.ndarray:
    # Log-occupancy of a coarse bird's-eye-view grid: stable under sensor noise, moves when the scene does.
    cells = ((xyz[:, :2] + BEV_HALF_M) * (BEV_CELLS / (2 * BEV_HALF_M))).astype(np.int64)
    inside = ((cells >= 0) & (cells < BEV_CELLS)).all(axis=1)
    flat = cells[inside, 0] * BEV_CELLS + cells[inside, 1]
    hist = np.bincount(flat, minlength=BEV_CELLS * BEV_CELLS).astype(np.float32)
    return unit(np.log1p(hist))


def _roughness(xyz: np.ndarray, returned: np.ndarray) -> float:
    """Median step between consecutive returns in the middle of the scan. Along a ring, neighbours lie a few
    centimetres apart; points scattered by interference jump by metres. Drivers that interleave lasers give
    larger steps, which is why the check compares with the sensor's own history."""
    index = np.flatnonzero(returned)
    mid = index.size // 2
    run = xyz[index[max(0, mid - ROUGHNESS_POINTS // 2): mid + ROUGHNESS_POINTS // 2]]
    if run.shape[0] < 2:
        return 0.0
    return float(np.median(np.linalg.norm(np.diff(run, axis=0), axis=1)))


def measure(points: np.ndarray, cfg: LidarScoring) -> LidarSignals:
    n = int(points.shape[0])
    if n == 0:
        return LidarSignals(0, 0, 0.0, 0.0, cfg.sector_count, 0.0, None)
    xyz = points[:, :3]
    with np.errstate(invalid="ignore", over="ignore"):
        r2 = np.einsum("ij,ij->i", xyz, xyz)  # NaN/inf in any coordinate makes r2 non-finite: one pass for both
    finite = np.isfinite(r2)
    impossible = finite & (r2 > cfg.max_range_m**2)
    returned = finite & (r2 > 0.05**2) & ~impossible  # exact zeros are "no return" in many drivers, not points
    n_valid = int(np.count_nonzero(returned))
    nonfinite = float(1.0 - np.count_nonzero(finite) / n)
    if n_valid == 0:
        return LidarSignals(n, 0, nonfinite, float(impossible.sum() / n), cfg.sector_count, 0.0, None)
    stats = xyz[np.flatnonzero(returned)[:: max(1, n_valid // STATS_POINTS)]]
    azimuth = (np.degrees(np.arctan2(stats[:, 1], stats[:, 0])) + 360.0) % 360.0
    counts = np.bincount((azimuth * cfg.sector_count / 360.0).astype(np.int64) % cfg.sector_count,
                         minlength=cfg.sector_count)
    elevation = np.degrees(np.arctan2(stats[:, 2], np.hypot(stats[:, 0], stats[:, 1])))
    lo, hi = np.percentile(elevation, [1.0, 99.0])
    return LidarSignals(
        points=n,
        valid=n_valid,
        nonfinite=nonfinite,
        impossible=float(impossible.sum() / n),
        empty_run=_longest_circular_run(counts == 0),
        elevation_span=float(hi - lo),
        descriptor=_bev_descriptor(stats),
        roughness=_roughness(xyz, returned),
    )


class LidarBaseline:
    """What a healthy scan of each sensor looks like (median of recent healthy scans)."""

    def __init__(self) -> None:
        self._spans: dict[str, deque[float]] = {}
        self._valid: dict[str, deque[int]] = {}
        self._rough: dict[str, deque[float]] = {}

    def update(self, sensor: str, s: LidarSignals) -> None:
        self._spans.setdefault(sensor, deque(maxlen=HISTORY)).append(s.elevation_span)
        self._valid.setdefault(sensor, deque(maxlen=HISTORY)).append(s.valid)
        self._rough.setdefault(sensor, deque(maxlen=HISTORY)).append(s.roughness)

    def typical(self, sensor: str) -> tuple[float, float, float] | None:
        """Median elevation span, valid point count and roughness of recent healthy scans."""
        spans = self._spans.get(sensor)
        if not spans:
            return None
        return (float(np.median(spans)), float(np.median(self._valid[sensor])),
                float(np.median(self._rough[sensor])))


def faults(s: LidarSignals, cfg: LidarScoring, typical: tuple[float, float, float] | None) -> list[str]:
    found: list[str] = []
    if s.nonfinite > cfg.max_nonfinite_fraction:
        found.append("nonfinite")
    if s.impossible > cfg.max_impossible_fraction:
        found.append("impossible_range")
    if s.valid < cfg.min_points:
        found.append("few_points")
    if s.valid and s.empty_run > cfg.max_empty_sectors:
        found.append("missing_sector")
    if typical and s.valid:
        span, valid, rough = typical
        if span > 0 and s.elevation_span < cfg.min_ring_coverage * span:
            found.append("lost_rings")
        if "few_points" not in found and valid > 0 and s.valid < cfg.min_points_ratio * valid:
            found.append("sparse")
        if not found and rough > 0 and s.roughness > cfg.noise_max_ratio * rough:
            found.append("noisy")  # dropouts also lengthen the steps: report only the root cause there
    return found

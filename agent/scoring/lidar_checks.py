"""Cheap validity checks for LiDAR scans: point count, NaN/inf, impossible ranges, missing sectors and rings."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from agent.config.model import LidarScoring
from agent.config.sensors import SensorModel
from agent.scoring.memory import unit

BEV_CELLS = 32
BEV_HALF_M = 40.0
HISTORY = 20  # healthy scans remembered per sensor to know what "normal" looks like
# Sector, ring and layout statistics are robust on a strided subsample; only the validity counts need every point.
STATS_POINTS = 30_000
ROUGHNESS_POINTS = 4096  # a contiguous run of points, in the driver's scan order
ROUGHNESS_LAGS = (1, 16, 32, 40, 64, 128, 256)  # 1: ring-ordered clouds; else the lasers of one firing
ROUGHNESS_PROBE = 1024 + 256
SCATTER_POINTS = 4096
SCATTER_RANGE_M = 30.0
SCATTER_VOXEL_M = 0.3
SCATTER_RATIO = 1.5  # alone-in-voxel share above this multiple of the sensor's usual (and SCATTER_MIN_RISE above it)
SCATTER_MIN_RISE = 0.03
# ... or the share of returns with a neighbour fell below this multiple of the sensor's usual: the same relative
# change for a sparse unit (a Hesai or a VLS-128, half its returns alone at 30 cm), whose alone-share cannot grow 1.5x.
NEIGHBOURED_MIN_RATIO = 0.7


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
    near: float = 0.0  # share of returns within the near field (something on or at the sensor)
    coverage: float = 1.0  # share of azimuth sectors with returns beyond the near field
    far_sectors: np.ndarray | None = None  # per sector: returns beyond the near field
    low_elevation: float = 0.0  # 1st percentile of elevation (degrees)
    tilt: tuple[float, float] = (0.0, 0.0)  # ground pitch and roll (degrees)
    scatter: float = 0.0  # share of near returns alone in their voxel
    beam_low: tuple[float, ...] = (np.nan,) * 4  # lowest elevation ahead, behind, left, right (degrees; NaN: unseen)

    def as_dict(self) -> dict[str, float]:
        return {
            "points": float(self.points),
            "valid": float(self.valid),
            "nonfinite": round(self.nonfinite, 5),
            "impossible": round(self.impossible, 5),
            "empty_run": float(self.empty_run),
            "elevation_span": round(self.elevation_span, 3),
            "roughness": round(self.roughness, 4),
            "near": round(self.near, 4),
            "coverage": round(self.coverage, 4),
            "scatter": round(self.scatter, 4),
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
    x, y = cells[:, 0], cells[:, 1]  # column by column: NumPy's .all(axis=1) over 2 is slow
    inside = (x >= 0) & (x < BEV_CELLS) & (y >= 0) & (y < BEV_CELLS)
    flat = (x * BEV_CELLS + y)[inside]
    hist = np.bincount(flat, minlength=BEV_CELLS * BEV_CELLS).astype(np.float32)
    return unit(np.log1p(hist))


def _roughness(xyz: np.ndarray, returned: np.ndarray) -> float:
    """Median step between a return and the same laser's next return, in the middle of the scan. Along a ring,
    neighbours lie a few centimetres apart; points scattered by interference jump by metres. Drivers interleave
    their lasers (16, 32, 64, 128 a firing, twice with dual returns), so the step is taken at the lag, among the
    usual beam counts, where it is smallest: the lag at which consecutive points are the same laser's."""
    index = np.flatnonzero(returned)
    mid = index.size // 2
    run = xyz[index[max(0, mid - ROUGHNESS_POINTS // 2): mid + ROUGHNESS_POINTS // 2]]
    # The lag is picked on the first 1024 points of the run, the step measured on all of it at that lag.
    probe = run[:ROUGHNESS_PROBE]
    lags = [lag for lag in ROUGHNESS_LAGS if probe.shape[0] > 4 * lag]
    if not lags:
        return 0.0
    lag = min(lags, key=lambda k: float(np.median(np.linalg.norm(probe[k:] - probe[:-k], axis=1))))
    return float(np.median(np.linalg.norm(run[lag:] - run[:-lag], axis=1)))


def _scatter(stats: np.ndarray, r2: np.ndarray) -> float:
    """Share of returns within 30 m alone in their 30 cm voxel. Real returns lie on surfaces, beside other
    returns; points scattered by interference, a failing unit or another LiDAR's pulses sit alone. Independent of
    the order a driver writes its points in (unlike the step along the scan)."""
    near = stats[r2 < SCATTER_RANGE_M**2]  # r2: the points' squared ranges
    near = near[:: max(1, near.shape[0] // SCATTER_POINTS)]
    if near.shape[0] < 100:
        return 0.0
    v = np.floor(near / SCATTER_VOXEL_M).astype(np.int64)
    key = np.sort((v[:, 0] * 73_856_093) ^ (v[:, 1] * 19_349_663) ^ (v[:, 2] * 83_492_791))
    differs = np.diff(key) != 0
    alone = np.concatenate([[True], differs]) & np.concatenate([differs, [True]])
    return float(alone.mean())


def _low(z: np.ndarray) -> float:
    """The 10th percentile of `z` (a partition, not a sort)."""
    k = int(0.1 * (z.size - 1))
    return float(np.partition(z, k)[k])


def _tilt(stats: np.ndarray) -> tuple[float, float]:
    """Pitch and roll of the ground as this sensor sees it (degrees): the low returns 8-25 m ahead against behind,
    left against right. A level mount sees the same balance scan after scan; a loose mount or a wrong
    extrinsic calibration does not. 0 where a side has too few returns to tell."""
    flat = np.hypot(stats[:, 0], stats[:, 1])
    band = stats[(flat > 8.0) & (flat < 25.0)]
    out = []
    for axis in (0, 1):
        pos, neg = band[band[:, axis] > 0, 2], band[band[:, axis] < 0, 2]
        if pos.size < 50 or neg.size < 50:
            out.append(0.0)
            continue
        out.append(float(np.degrees(np.arctan2(_low(pos) - _low(neg), 2 * 16.0))))
    return out[0], out[1]


def _beam_low(stats: np.ndarray, elevation: np.ndarray) -> tuple[float, ...]:
    """The lowest elevation (2nd percentile, degrees) of the returns ahead, behind, left and right (90-degree
    cones); NaN where a cone holds too few returns. These are the sensor's lowest beams as its driver places them:
    at the same angles scan after scan, whatever the scene and however near it is (indoors, a side unit, where the
    ground 8-25 m away that `_tilt` needs is not seen). A cloud pitched or rolled by a wrong extrinsic calibration
    raises them on one side and lowers them on the other."""
    x, y = stats[:, 0], stats[:, 1]
    out = []
    for cone in (x > np.abs(y), -x > np.abs(y), y > np.abs(x), -y > np.abs(x)):
        e = elevation[cone]
        k = int(0.02 * (e.size - 1))
        out.append(float(np.partition(e, k)[k]) if e.size >= 50 else np.nan)
    return tuple(out)


def _beams_turned(now: tuple[float, ...], usual: tuple[float, ...]) -> float:
    """Degrees by which the cloud turned about the lateral or forward axis against the sensor's usual beams: half
    the change of the ahead/behind (left/right) difference; from one side alone where the sensor sees only it."""
    worst = 0.0
    for pos, neg in ((0, 1), (2, 3)):
        n, u = np.array([now[pos], now[neg]]), np.array([usual[pos], usual[neg]])
        if np.isfinite(n).all() and np.isfinite(u).all():
            worst = max(worst, abs((n[0] - n[1]) - (u[0] - u[1])) / 2)
        elif (np.isfinite(n) == np.isfinite(u)).all() and np.isfinite(n).any():
            side = np.isfinite(n)
            worst = max(worst, float(np.abs(n[side] - u[side]).max()))
    return worst


def measure(points: np.ndarray, cfg: LidarScoring, model: SensorModel | None = None) -> LidarSignals:
    n = int(points.shape[0])
    if n == 0:
        return LidarSignals(0, 0, 0.0, 0.0, cfg.sector_count, 0.0, None)
    xyz = points[:, :3]
    with np.errstate(invalid="ignore", over="ignore"):
        r2 = np.einsum("ij,ij->i", xyz, xyz)  # NaN/inf in any coordinate makes r2 non-finite: one pass for both
    finite = np.isfinite(r2)
    max_range = model.max_range_m if model else cfg.max_range_m
    impossible = finite & (r2 > max_range**2)
    returned = finite & (r2 > 0.05**2) & ~impossible  # exact zeros are "no return" in many drivers, not points
    n_valid = int(np.count_nonzero(returned))
    nonfinite = float(1.0 - np.count_nonzero(finite) / n)
    if n_valid == 0:
        return LidarSignals(n, 0, nonfinite, float(impossible.sum() / n), cfg.sector_count, 0.0, None)
    stats = xyz[np.flatnonzero(returned)[:: max(1, n_valid // STATS_POINTS)]]
    near_field = model.near_field_m if model else 1.0
    near = float(np.count_nonzero(returned & (r2 < near_field**2)) / n_valid)
    azimuth = (np.degrees(np.arctan2(stats[:, 1], stats[:, 0])) + 360.0) % 360.0
    sector = (azimuth * cfg.sector_count / 360.0).astype(np.int64) % cfg.sector_count
    counts = np.bincount(sector, minlength=cfg.sector_count)
    stats_r2 = np.einsum("ij,ij->i", stats, stats)
    far = stats_r2 >= near_field**2
    far_sectors = np.bincount(sector[far], minlength=cfg.sector_count)
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
        near=near,
        coverage=float(np.count_nonzero(far_sectors) / cfg.sector_count),
        far_sectors=far_sectors,
        low_elevation=float(lo),
        tilt=_tilt(stats),
        scatter=_scatter(stats, stats_r2),
        beam_low=_beam_low(stats, elevation),
    )


@dataclass(frozen=True, slots=True)
class LidarTypical:
    """Medians over a LiDAR's recent healthy scans."""

    span: float
    valid: float
    roughness: float
    seen_sectors: np.ndarray  # share of recent scans with returns beyond the near field, per sector
    tilt: tuple[float, float]
    scatter: float
    beam_low: tuple[float, ...]


class LidarBaseline:
    """What a healthy scan of each sensor looks like (medians of its recent healthy scans)."""

    def __init__(self) -> None:
        self._history: dict[str, deque[LidarSignals]] = {}

    def update(self, sensor: str, s: LidarSignals) -> None:
        self._history.setdefault(sensor, deque(maxlen=HISTORY)).append(s)

    def typical(self, sensor: str) -> LidarTypical | None:
        rows = self._history.get(sensor)
        if not rows:
            return None
        sectors = [r.far_sectors > 0 for r in rows if r.far_sectors is not None]
        return LidarTypical(
            span=float(np.median([r.elevation_span for r in rows])),
            valid=float(np.median([r.valid for r in rows])),
            roughness=float(np.median([r.roughness for r in rows])),
            seen_sectors=np.mean(sectors, axis=0) if sectors else np.zeros(0),
            tilt=(float(np.median([r.tilt[0] for r in rows])), float(np.median([r.tilt[1] for r in rows]))),
            scatter=float(np.median([r.scatter for r in rows])),
            beam_low=tuple(_median_seen([r.beam_low[k] for r in rows]) for k in range(4)),
        )


def _median_seen(values: list[float]) -> float:
    seen = [v for v in values if np.isfinite(v)]
    return float(np.median(seen)) if len(seen) * 2 > len(values) else np.nan  # a side seen in most recent scans


def _missing_sector(s: LidarSignals, cfg: LidarScoring, typical: LidarTypical | None) -> bool:
    """A run of sectors that this sensor usually sees beyond its near field and now does not (lost packets, a
    blocked window). Judged against the sensor itself: a forward-looking unit, a reduced cloud or a side unit
    sees only part of the circle, and always the same part."""
    if typical is None or s.far_sectors is None or typical.seen_sectors.size != s.far_sectors.size:
        return False
    gone = (s.far_sectors == 0) & (typical.seen_sectors >= 0.8)
    return _longest_circular_run(gone) > cfg.max_empty_sectors


def faults(s: LidarSignals, cfg: LidarScoring, typical: LidarTypical | None, model: SensorModel | None = None,
           partial: bool = False) -> list[str]:
    """Names of the faults a scan shows. Absolute limits are physical (non-finite values, ranges beyond the
    model's reach, returns on the window, a spinning unit covering under half its circle, the ground missing
    from a model's lower beams); everything else is against the sensor's own recent healthy scans. `partial`:
    the source saw the capture stop mid-rotation (Frame.meta PARTIAL_ROTATION), the root cause of what is
    missing from the scan."""
    found: list[str] = ["incomplete"] if partial else []
    if s.nonfinite > cfg.max_nonfinite_fraction:
        found.append("nonfinite")
    if s.impossible > cfg.max_impossible_fraction:
        found.append("impossible_range")
    if s.valid < cfg.min_points:
        found.append("few_points")
    if s.valid and s.near >= cfg.blocked_min_fraction:
        found.append("blocked")
    if s.valid and not partial:
        if model is not None and model.spinning and s.coverage < cfg.incomplete_min_coverage:
            found.append("incomplete")
        elif _missing_sector(s, cfg, typical):
            found.append("missing_sector")
    if s.valid and model is not None and (s.low_elevation - model.elevation_deg[0]) > (
            cfg.lost_rings_max_gap * model.vertical_fov):
        found.append("lost_rings")
    if typical and s.valid:
        if "lost_rings" not in found and typical.span > 0 and s.elevation_span < cfg.min_ring_coverage * typical.span:
            found.append("lost_rings")
        if "few_points" not in found and not partial and typical.valid > 0 and (
                s.valid < cfg.min_points_ratio * typical.valid):
            found.append("sparse")
        ground = max(abs(s.tilt[0] - typical.tilt[0]), abs(s.tilt[1] - typical.tilt[1]))
        if not found and max(ground, _beams_turned(s.beam_low, typical.beam_low)) > cfg.tilt_max_deg:
            found.append("geometry")  # the ground tilted (a loose mount) or the beams turned (wrong extrinsics)
        scattered = (s.scatter > max(SCATTER_RATIO * typical.scatter, typical.scatter + SCATTER_MIN_RISE)
                     or 1.0 - s.scatter < NEIGHBOURED_MIN_RATIO * (1.0 - typical.scatter))
        rough = typical.roughness > 0 and s.roughness > cfg.noise_max_ratio * typical.roughness
        if not found and (scattered or rough):
            found.append("noisy")  # dropouts also lengthen the steps: report only the root cause there
    return found

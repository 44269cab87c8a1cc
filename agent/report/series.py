"""One pass over the decision records: thinned timeline points per sensor and score histograms per modality.

Memory is bounded whatever the drive length: each sensor keeps at most `max_points` ordinary points plus at
most `max_points` kept or harmful ones (all of those unless there are more than that), thinned evenly.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.report.summary import VERDICTS, primary_reason

DEFAULT_MAX_POINTS = 3000
HISTOGRAM_BINS = 20


@dataclass(frozen=True, slots=True)
class Point:
    t_ns: int
    score: float
    verdict: str
    kept: bool
    seq: int
    rule: str
    reason: str


@dataclass(slots=True)
class _Thinned:
    """Evenly thinned points by stride doubling: at most `capacity` held, spread over the whole stream."""

    capacity: int
    stride: int = 1
    seen: int = 0
    items: list[tuple[int, Point]] = field(default_factory=list)

    def add(self, point: Point) -> None:
        if self.seen % self.stride == 0:
            self.items.append((self.seen, point))
            while len(self.items) > self.capacity:
                self.stride *= 2
                self.items = [(i, p) for i, p in self.items if i % self.stride == 0]
        self.seen += 1

    def points(self) -> list[Point]:
        return [p for _, p in self.items]


@dataclass(slots=True)
class SensorSeries:
    """The timeline of one sensor: thinned points and how many frames they stand for."""

    modality: str
    ordinary: _Thinned
    important: _Thinned  # kept or harmful frames

    @property
    def frames(self) -> int:
        return self.ordinary.seen + self.important.seen

    def points(self) -> list[Point]:
        """Ordinary points first, then kept, then harmful, so that the important ones are drawn on top."""
        important = sorted(self.important.points(), key=lambda p: p.verdict == "harmful")
        return self.ordinary.points() + important


@dataclass(slots=True)
class Series:
    sensors: dict[str, SensorSeries] = field(default_factory=dict)
    histograms: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # modality -> verdict -> bins
    groups: Counter[tuple[bool, str]] = field(default_factory=Counter)  # (kept, primary reason) -> frames
    t_min: int | None = None
    t_max: int | None = None
    records: int = 0


def _score_of(record: Mapping[str, Any]) -> float:
    score = record.get("score")
    if not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score):
        return 0.0
    return min(1.0, max(0.0, float(score)))


def _point_of(record: Mapping[str, Any]) -> Point:
    t_ns = record.get("t_ns")
    seq = record.get("seq")
    return Point(
        t_ns=t_ns if isinstance(t_ns, int) else 0,
        score=_score_of(record),
        verdict=str(record.get("verdict", "unknown")),
        kept=bool(record.get("kept", False)),
        seq=seq if isinstance(seq, int) else -1,
        rule=str(record.get("rule", "")),
        reason=primary_reason(record),
    )


def _bin_of(score: float, bins: int) -> int:
    return min(bins - 1, int(score * bins))


def collect(
    records: Iterable[Mapping[str, Any]], max_points: int = DEFAULT_MAX_POINTS, bins: int = HISTOGRAM_BINS
) -> Series:
    """Read the records once and return what the charts need."""
    out = Series()
    cap = max(1, max_points)
    for record in records:
        point = _point_of(record)
        sensor = str(record.get("sensor", "?"))
        modality = str(record.get("modality", "?"))
        series = out.sensors.get(sensor)
        if series is None:
            series = out.sensors[sensor] = SensorSeries(modality, _Thinned(cap), _Thinned(cap))
        (series.important if point.kept or point.verdict == "harmful" else series.ordinary).add(point)
        hist = out.histograms.setdefault(modality, {v: [0] * bins for v in VERDICTS})
        hist.setdefault(point.verdict, [0] * bins)[_bin_of(point.score, bins)] += 1
        if isinstance(record.get("t_ns"), int):
            out.t_min = point.t_ns if out.t_min is None else min(out.t_min, point.t_ns)
            out.t_max = point.t_ns if out.t_max is None else max(out.t_max, point.t_ns)
        out.groups[(point.kept, point.reason)] += 1
        out.records += 1
    out.sensors = dict(sorted(out.sensors.items()))
    out.histograms = dict(sorted(out.histograms.items()))
    return out

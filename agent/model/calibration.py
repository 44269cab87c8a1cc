"""Distance calibration: one scale for redundancy thresholds across model versions.

Embedding distances mean different things for different models (a retrained model spreads or squeezes its
embedding space), so a `redundant_max_distance` written for one version would keep a different share of frames
with the next. Each model therefore carries, in its ONNX metadata (`edgesift.distance_calibration`), the
quantiles of its raw distances between consecutive frames of a reference drive, and the same quantiles on the
canonical scale that configs are written in (the first shipped model's). A raw distance is mapped through the
piecewise-linear quantile map, so a threshold keeps about the same share of frames whichever model computes it
(scripts/calibrate_model.py writes the table; docs/tune.md explains it).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass

import numpy as np

from agent.errors import ConfigError

KEY = "distance_calibration"


@dataclass(frozen=True)
class DistanceCalibration:
    raw: tuple[float, ...] = ()  # this model's distance quantiles on the reference drive (increasing)
    canonical: tuple[float, ...] = ()  # the same quantiles on the config scale
    reference: str = ""

    @property
    def identity(self) -> bool:
        """No table, or the model's own scale (raw == canonical): distances pass through bit for bit."""
        return not self.raw or self.raw == self.canonical

    def __call__(self, distance: float) -> float:
        if self.identity or math.isinf(distance):
            return distance
        raw, can = self.raw, self.canonical
        if distance <= raw[0]:  # through the origin below the first knot: 0 stays 0
            return distance * can[0] / raw[0] if raw[0] > 0 else can[0]
        if distance >= raw[-1]:  # the last segment's slope beyond the last knot
            span = raw[-1] - raw[-2]
            slope = (can[-1] - can[-2]) / span if span > 0 else 1.0
            return can[-1] + (distance - raw[-1]) * slope
        return float(np.interp(distance, raw, can))

    @classmethod
    def from_metadata(cls, extra: dict[str, str], source: str) -> DistanceCalibration:
        """The table in a model's edgesift metadata (`extra` keys without the prefix); identity when absent."""
        text = extra.get(KEY)
        if not text:
            return cls()
        try:
            data = json.loads(text)
            raw = tuple(float(x) for x in data["raw"])
            can = tuple(float(x) for x in data["canonical"])
            reference = str(data.get("reference", ""))
        except (ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{source}: malformed edgesift.{KEY} ({exc})") from exc
        problems = []
        if len(raw) < 2 or len(raw) != len(can):
            problems.append("needs two or more raw and canonical quantiles of equal count")
        elif not all(math.isfinite(x) and x >= 0 for x in raw + can):
            problems.append("quantiles must be finite and >= 0")
        elif any(b <= a for a, b in itertools.pairwise(raw)) or any(b < a for a, b in itertools.pairwise(can)):
            problems.append("quantiles must increase")
        if problems:
            raise ConfigError(f"{source}: edgesift.{KEY}: {problems[0]}")
        return cls(raw, can, reference)

    def to_metadata(self) -> str:
        return json.dumps({"raw": list(self.raw), "canonical": list(self.canonical), "reference": self.reference})

"""Per-stage latency statistics (preprocess / inference / postprocess) over a bounded window."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


class StageTimer:
    """Keeps the last `window` durations of each named stage; summary() gives count, mean, p50 and p95 in ms."""

    def __init__(self, window: int = 2048) -> None:
        self._window = window
        self._samples: dict[str, deque[float]] = {}
        self._counts: dict[str, int] = {}

    def record(self, stage: str, seconds: float) -> None:
        self._samples.setdefault(stage, deque(maxlen=self._window)).append(seconds)
        self._counts[stage] = self._counts.get(stage, 0) + 1

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.record(name, time.perf_counter() - started)

    def summary(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for stage, samples in self._samples.items():
            ms = np.asarray(samples, dtype=np.float64) * 1000.0
            out[stage] = {
                "count": float(self._counts[stage]),
                "mean_ms": round(float(ms.mean()), 4),
                "p50_ms": round(float(np.percentile(ms, 50)), 4),
                "p95_ms": round(float(np.percentile(ms, 95)), 4),
            }
        return out

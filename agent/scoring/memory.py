"""Bounded per-sensor memory of L2-normalised descriptors, for redundancy and novelty."""

from __future__ import annotations

import math
from collections import deque

import numpy as np


class DescriptorMemory:
    """The last `size` kept descriptors of each sensor; answers 'how far is this from anything kept?'."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._rows: dict[str, deque[np.ndarray]] = {}
        self._matrix: dict[str, np.ndarray | None] = {}

    def nearest(self, sensor: str, descriptor: np.ndarray) -> float:
        """Euclidean distance (0..2 for unit vectors) to the nearest remembered descriptor; inf when empty."""
        matrix = self._matrix.get(sensor)
        if matrix is None:
            rows = self._rows.get(sensor)
            if not rows:
                return math.inf
            matrix = np.stack(rows)
            self._matrix[sensor] = matrix
        best = float(np.max(matrix @ descriptor))
        return math.sqrt(max(0.0, 2.0 - 2.0 * best))

    def add(self, sensor: str, descriptor: np.ndarray) -> None:
        self._rows.setdefault(sensor, deque(maxlen=self._size)).append(descriptor)
        self._matrix[sensor] = None  # rebuilt lazily on the next query

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._rows.values())


def unit(vector: np.ndarray) -> np.ndarray:
    v = vector.astype(np.float32).ravel()
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v

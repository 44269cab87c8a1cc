"""Signals derived from model outputs: uncertainty (entropy, margin), out-of-domain distance, embedding banks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from agent.errors import ConfigError


def entropy_margin(probs: np.ndarray) -> tuple[float, float]:
    """Normalised entropy (0 = certain, 1 = uniform) and top-1 minus top-2 margin of one probability vector."""
    p = np.clip(probs.astype(np.float64), 1e-12, 1.0)
    p = p / p.sum()
    if p.size < 2:
        return 0.0, 1.0
    entropy = float(-(p * np.log(p)).sum() / math.log(p.size))
    top = np.partition(p, -2)[-2:]
    return entropy, float(top[1] - top[0])


def binary_uncertainty(scores: np.ndarray) -> float:
    """Mean binary entropy (bits, 0..1) of detector confidences: boxes near 0.5 are the ones a model is unsure of."""
    if scores.size == 0:
        return 0.0
    s = np.clip(scores.astype(np.float64), 1e-6, 1 - 1e-6)
    return float((-(s * np.log2(s) + (1 - s) * np.log2(1 - s))).mean())


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class EmbeddingBank:
    """A fixed set of unit embeddings (fleet exemplars or targets): distance from a query to the nearest one."""

    def __init__(self, rows: np.ndarray | None = None) -> None:
        self.rows = rows if rows is not None and len(rows) else None

    def nearest(self, embedding: np.ndarray) -> float:
        if self.rows is None:
            return math.inf
        best = float(np.max(self.rows @ embedding))
        return math.sqrt(max(0.0, 2.0 - 2.0 * best))

    def __len__(self) -> int:
        return 0 if self.rows is None else len(self.rows)


def unit_rows(rows: np.ndarray) -> np.ndarray:
    rows = np.atleast_2d(rows.astype(np.float32))
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


def load_embeddings(path: str, dim: int) -> np.ndarray:
    """Rows of a .npy file as unit vectors; a ConfigError when it is missing or of the wrong width."""
    file = Path(path)
    try:
        rows = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"embedding file {path}: {exc}") from exc
    rows = np.atleast_2d(rows)
    if rows.ndim != 2 or rows.shape[1] != dim:
        raise ConfigError(f"embedding file {path}: shape {list(rows.shape)}, the model's embeddings have {dim} values")
    return unit_rows(rows)

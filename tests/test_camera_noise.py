"""Impulse noise (salt and pepper), which the noise estimate's median does not see, against the camera's own
share of pixels standing out of their neighbourhood (camera_checks._speckled)."""

from __future__ import annotations

import numpy as np
import pytest
from camera_support import jpeg as _jpeg
from camera_support import judge as _judge
from camera_support import night, sample_images

from agent.config.model import ScoringConfig
from agent.scoring import camera_checks
from agent.scoring.base import Label
from agent.scoring.heuristic import HeuristicScorer


def _salt_and_pepper(image: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    out = image.copy()
    hit = rng.random(image.shape[:2]) < amount
    out[hit] = np.where(rng.random((int(hit.sum()), 1)) < 0.5, 0, 255).astype(np.uint8)
    return out


@pytest.mark.parametrize("check_on", [True, False])
def test_salt_and_pepper_on_a_dark_stream_is_noise(check_on: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # A dark, grainy stream (the sample drive at night): 3% of its pixels gone black or white barely moves the
    # median of the noise estimate; the share of pixels standing out of their neighbourhood jumps.
    if not check_on:
        monkeypatch.setattr(camera_checks, "SPECKLE_RATIO", 1e9)
    rng = np.random.default_rng(2)
    frames = [night(image, rng) for image in sample_images(9)]
    scorer = HeuristicScorer(ScoringConfig())
    for seq, image in enumerate(frames[:8]):
        assert _judge(scorer, _jpeg(image, seq=seq)).label is not Label.HARMFUL, seq
    verdict = scorer.score(_jpeg(_salt_and_pepper(frames[8], 0.03, np.random.default_rng(0)), seq=8))
    assert (verdict.label is Label.HARMFUL and "noisy" in verdict.reasons) is check_on, verdict.reasons

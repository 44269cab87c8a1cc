"""A cover over most of a view that was mostly flat already (a gated NIR camera at night) is a cover, not a new
scene (camera_checks.COVER_TEXTURE_LEFT)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from camera_support import jpeg as _jpeg
from camera_support import judge as _judge

from agent.config.model import ScoringConfig
from agent.scoring import camera_checks
from agent.scoring.base import Label
from agent.scoring.heuristic import HeuristicScorer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


def _gated(shared_data: Path) -> np.ndarray:
    from _field_data import _fit, _tiff_8bit  # as the field evaluation reads it: 10 bits to 8, 640 px wide

    return _fit(_tiff_8bit(sorted((shared_data / "camera/dense_stf_examples_germany_sweden").glob("gated*.tiff"))[0],
                           False))


@pytest.mark.shared
@pytest.mark.parametrize("rule_on", [True, False])
def test_a_dark_cover_over_most_of_a_gated_nir_view_is_occlusion(rule_on: bool, shared_data: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # About 75% of this night view is flat already: a cover over most of the rest adds under the 0.3 of flat area
    # a busier view gains, and looked like a new scene (no baseline: absolute limits only, and it passed).
    if not rule_on:
        monkeypatch.setattr(camera_checks, "COVER_TEXTURE_LEFT", 0.0)
    from _train_data import _occlude

    image = _gated(shared_data)
    rng = np.random.default_rng(0)
    scorer = HeuristicScorer(ScoringConfig())
    for seq in range(3):  # the same view with its own sensor noise: valid
        noisy = np.clip(image + rng.normal(0, 1.0, image.shape), 0, 255).astype(np.uint8)
        assert _judge(scorer, _jpeg(noisy, seq=seq)).label is not Label.HARMFUL
    covered = _occlude(image, np.random.default_rng(42))  # blobs over most of the view
    verdict = scorer.score(_jpeg(covered, seq=3))
    assert (verdict.label is Label.HARMFUL and "occluded" in verdict.reasons) is rule_on, verdict.reasons

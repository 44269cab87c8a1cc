"""The default heuristic scorer ranks unfamiliar scenes up by sampling the camera model (scoring.
rank_unfamiliar_every_s): a rain drive from a country the models never saw is `out_of_domain` and scores higher,
the KITTI drive they learnt is not, and no verdict changes. Before, the checks' rare conditions flagged none of the
rain frames, and none reached the top 10% of the field evaluation's frames by score."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import sample_frames, score_in_order

from agent.config.model import ScoringConfig
from agent.config.model_cfg import ModelConfig
from agent.frame import Encoding, Frame, Modality
from agent.scoring.base import Label, Verdict
from agent.scoring.heuristic import HeuristicScorer


def _run(frames: list[Frame], every_s: float) -> list[Verdict]:
    return score_in_order(HeuristicScorer(ScoringConfig(rank_unfamiliar_every_s=every_s), ModelConfig()), frames)


@pytest.mark.shared
def test_a_rain_drive_is_ranked_up_by_a_sampled_model_and_no_verdict_changes(shared_data: Path) -> None:
    files = sorted((shared_data / "camera" / "rain_singapore_nturain_rb2").glob("*.jpg"))[:25]
    frames = [Frame("cam_rain", Modality.CAMERA, i * 100_000_000, i, len(data), str(p), Encoding.JPEG, data)
              for i, (p, data) in enumerate((p, p.read_bytes()) for p in files)]  # 10 Hz: 2.5 s
    plain, ranked = _run(frames, 0.0), _run(frames, 1.0)
    assert [v.label for v in plain] == [v.label for v in ranked]
    helpful = [(a, b) for a, b in zip(plain, ranked, strict=True) if b.label is Label.HELPFUL]
    assert helpful and all("out_of_domain" in b.reasons and "out_of_domain" not in a.reasons for a, b in helpful)
    assert all(b.score >= a.score for a, b in helpful) and any(b.score > a.score for a, b in helpful)
    # the model ran on one frame a second: frames 0, 10 and 20
    assert [i for i, v in enumerate(ranked) if "ood" in v.signals] == [0, 10, 20]


def test_the_drive_the_models_learnt_is_not_out_of_their_domain() -> None:
    frames = sample_frames("camera")
    sampled, off = _run(frames, 0.1), _run(frames, 0.0)  # the model on every frame of the 10 Hz drive
    assert all("ood" in v.signals for v in sampled if v.label is not Label.HARMFUL)
    assert [v.label for v in sampled] == [v.label for v in off]
    assert not any("out_of_domain" in v.reasons for v in sampled)
    assert [v.score for v in sampled] == [v.score for v in off]

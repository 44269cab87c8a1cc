"""ProxyScorer on real frames of the sample drive, faults applied to real frames, fleet memory, targets, a
bring-your-own ONNX model, and replay with `scoring.kind: proxy` end to end."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import sample_frames, score_in_order
from model_support import tiny_classifier

from agent.config import AgentConfig
from agent.config.model import ScoringConfig
from agent.config.model_cfg import ByoModelConfig, ModelConfig
from agent.errors import ConfigError
from agent.frame import Encoding, Frame, Modality
from agent.replay.runner import run_replay
from agent.scoring.base import Label
from agent.scoring.factory import make_scorer
from agent.scoring.heuristic import HeuristicScorer
from agent.scoring.proxy import ProxyScorer
from agent.scoring.usefulness import NOVEL_MAX


@cache
def _scorer_config() -> tuple[ScoringConfig, ModelConfig]:
    return ScoringConfig(kind="proxy"), ModelConfig()


def _scorer(**model_changes) -> ProxyScorer:
    scoring, model = _scorer_config()
    return ProxyScorer(scoring, model.model_copy(update=model_changes))


def _jpeg(image: np.ndarray, seq: int, sensor: str = "cam") -> Frame:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    h, w = image.shape[:2]
    return Frame(sensor, Modality.CAMERA, seq * 100_000_000, seq, len(data), "test", Encoding.JPEG, data.tobytes(),
                 meta={"width": str(w), "height": str(h)})


def _image(index: int) -> np.ndarray:
    payload = sample_frames("camera")[index].payload
    assert payload is not None
    return cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)


def test_sample_drive_camera_faults_are_harmful_with_named_reasons() -> None:
    verdicts = score_in_order(_scorer(), sample_frames("camera"))
    harmful = {i: v.reasons[0] for i, v in enumerate(verdicts) if v.label is Label.HARMFUL}
    assert harmful.get(19) == "frozen"  # an exact repeat: the deterministic check, not the model
    for index in (8, 13, 18, 24):  # blurred (sigma 6 px at 1242 px), occluded, over-exposed, under-exposed
        assert index in harmful, (index, harmful)  # by the physical checks or the fault head
    clean = [i for i in range(30) if i not in (8, 13, 18, 19, 24)]
    assert sum(i in harmful for i in clean) <= 2, harmful
    for v in verdicts:
        assert v.reasons and 0.0 <= v.score <= 1.0
        if v.label is not Label.HARMFUL:
            assert "p_harmful" in v.signals and "ood" in v.signals and "entropy" in v.signals


def test_sample_drive_lidar_faults_are_harmful() -> None:
    verdicts = score_in_order(_scorer(), sample_frames("lidar"))
    harmful = {i: v.reasons for i, v in enumerate(verdicts) if v.label is Label.HARMFUL}
    assert "missing_sector" in harmful.get(5, ())  # KITTI 10: azimuth 30-120 degrees removed
    assert "nonfinite" in harmful.get(10, ())  # KITTI 20: 2% NaN
    assert 15 in harmful  # KITTI 77: truncated in the source, the lower rings missing
    assert not set(harmful) - {5, 10, 15}, harmful


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("overexposed", ("overexposed", "fault_")),
        ("underexposed", ("underexposed", "fault_")),
        ("occluded", ("occluded", "fault_")),
        ("noise", ("noisy", "fault_")),
        ("undecodable", ("undecodable",)),
    ],
)
def test_faults_applied_to_real_frames(fault: str, expected: tuple[str, ...]) -> None:
    """Each fault after a clean frame of the same camera: heavy faults are also far from the model's domain, where
    its fault head is not trusted; the physical checks (against the camera's own recent frame) catch them."""
    image = _image(27)
    rng = np.random.default_rng(0)
    if fault == "overexposed":
        bad = np.clip(image.astype(np.float32) * 5 + 40, 0, 255).astype(np.uint8)
    elif fault == "underexposed":
        bad = (image * 0.05).astype(np.uint8)
    elif fault == "occluded":
        bad = image.copy()
        bad[int(bad.shape[0] * 0.35):] //= 12
    elif fault == "noise":
        # At the scale the model sees (320 px wide): per-pixel noise of a full-resolution frame is averaged away
        # by the reduced decode and the resize to 128 px, a known blind spot (models/camera_proxy.md).
        small = cv2.resize(image, (320, 97), interpolation=cv2.INTER_AREA)
        bad = np.clip(small + rng.normal(0, 60, small.shape), 0, 255).astype(np.uint8)  # ~ImageNet-C severity 4
    else:
        bad = image
    frame = _jpeg(bad, 1)
    if fault == "undecodable":
        frame.payload = frame.payload[: len(frame.payload) // 2]
    scorer = _scorer()
    clean = image if fault != "noise" else cv2.resize(image, (320, 97), interpolation=cv2.INTER_AREA)
    assert scorer.score(_jpeg(clean, 0)).label is not Label.HARMFUL
    verdict = scorer.score(frame)
    assert verdict.label is Label.HARMFUL
    assert verdict.reasons[0].startswith(expected), verdict


def test_lidar_faults_on_a_real_scan_after_normal_scans() -> None:
    scorer = _scorer()
    scans = sample_frames("lidar")[:4]
    assert all(v.label is not Label.HARMFUL for v in score_in_order(scorer, scans))
    points = sample_frames("lidar")[4].array
    rng = np.random.default_rng(1)
    sparse = points[rng.random(len(points)) < 0.4]
    lidar = scans[0]
    frame = Frame(lidar.sensor, Modality.LIDAR, 0, 9, 0, "test", Encoding.RAW, None, sparse)
    assert scorer.score(frame).reasons[0] == "sparse"
    noisy = points.copy()
    noisy[:, :3] += rng.normal(0, 1.0, (len(points), 3)).astype(np.float32)
    frame = Frame(lidar.sensor, Modality.LIDAR, 0, 10, 0, "test", Encoding.RAW, None, noisy)
    verdict = scorer.score(frame)
    assert verdict.label is Label.HARMFUL and verdict.reasons[0].startswith(("fault_", "noisy")), verdict


def test_redundant_novel_and_fleet_exemplars(tmp_path: Path) -> None:
    scorer = _scorer()
    first = scorer.score(_jpeg(_image(25), 1))
    assert first.label is Label.HELPFUL and first.reasons[0] == "novel" and first.score == NOVEL_MAX
    scorer.remember(_jpeg(_image(25), 1), first)
    again = scorer.score(_jpeg(np.clip(_image(25).astype(np.int16) + 3, 0, 255).astype(np.uint8), 2))
    assert again.label is Label.USELESS and again.reasons == ("redundant",)
    other = scorer.score(_jpeg(_image(0), 3, sensor="cam2"))
    assert other.label is Label.HELPFUL  # another sensor's memory is its own
    np.save(tmp_path / "fleet.npy", first.descriptor[None])
    fleet_cfg = ModelConfig().camera.model_copy(update={"exemplars": [str(tmp_path / "fleet.npy")]})
    fleet = _scorer(camera=fleet_cfg).score(_jpeg(_image(25), 1))
    assert fleet.label is Label.USELESS and fleet.reasons == ("redundant_fleet",)
    np.save(tmp_path / "wide.npy", np.ones((2, 7), np.float32))
    with pytest.raises(ConfigError, match="embeddings have 64 values"):
        _scorer(camera=fleet_cfg.model_copy(update={"exemplars": [str(tmp_path / "wide.npy")]}))


def test_targets_from_an_image_file_boost_frames_like_it(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "wanted.jpg"), _image(26))
    spec = ModelConfig().camera.model_copy(update={"targets": [str(tmp_path / "wanted.jpg")]})
    scorer = _scorer(camera=spec)
    like = scorer.score(_jpeg(_image(26), 1))
    assert "target" in like.reasons and like.signals["target_distance"] <= spec.target_max_distance
    unlike = scorer.score(_jpeg(cv2.flip(_image(3), 0), 1, sensor="other"))
    assert "target" not in unlike.reasons


@pytest.mark.parametrize("kind", ["classifier", "detector"])
def test_bring_your_own_model_drives_the_uncertainty_signal(tmp_path: Path, kind: str) -> None:
    path = tiny_classifier(tmp_path / "byo.onnx", detector=kind == "detector")
    outputs = {"logits_output": "logits"} if kind == "classifier" else {"scores_output": "scores"}
    byo = ByoModelConfig(path=str(path), kind=kind, input_size=(32, 32), mode="instead", **outputs)
    scorer = _scorer(byo=byo, uncertain_min_entropy=0.0)
    verdict = scorer.score(_jpeg(_image(28), 1))
    key = "byo_entropy" if kind == "classifier" else "byo_box_uncertainty"
    assert key in verdict.signals and "uncertain" in verdict.reasons
    assert "byo" in scorer.timings()
    with pytest.raises(ConfigError, match="has no output 'probs'"):
        _scorer(byo=ByoModelConfig(path=str(path), kind="classifier", probs_output="probs"))


def test_batching_across_sensors_gives_the_same_verdicts() -> None:
    frames = [*sample_frames("camera")[20:24], *sample_frames("lidar")[11:13]]
    single = [_scorer().score(f) for f in frames]
    batched = _scorer().score_batch(frames)
    for a, b in zip(single, batched, strict=True):
        assert a.label == b.label and a.reasons == b.reasons
        assert abs(a.signals.get("p_harmful", 0) - b.signals.get("p_harmful", 0)) < 0.02


def test_factory_and_replay_with_the_proxy_scorer(sample_drive: Path, tmp_path: Path) -> None:
    assert isinstance(make_scorer(AgentConfig()), HeuristicScorer)
    config = AgentConfig.model_validate({"scoring": {"kind": "proxy"}})
    result = run_replay([str(sample_drive)], tmp_path / "out", config, progress=False)
    assert result["scorer"] == "proxy"
    records = [json.loads(line) for line in (tmp_path / "out" / "decisions.jsonl").read_text().splitlines()]
    assert len(records) == 47
    assert all(r["reasons"] for r in records)
    verdicts = {r["verdict"] for r in records}
    assert verdicts >= {"harmful", "helpful"}

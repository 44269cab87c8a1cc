"""The heuristic scorer on real frames: real faults, faults applied to real frames, and clean frames."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from conftest import sample_frames, score_in_order

from agent.config.model import ScoringConfig
from agent.frame import Encoding, Frame, Modality
from agent.scoring import camera_checks, measure
from agent.scoring.base import Label
from agent.scoring.heuristic import HeuristicScorer

# Frames of the sample drive given synthetic faults by scripts/make_sample_drive.py (index = KITTI frame number).
CAMERA_FAULTS = {8: "blur", 13: "occluded", 18: "overexposed", 19: "frozen", 24: "underexposed"}
LIDAR_FAULTS = {10: "missing_sector", 20: "nonfinite", 77: "lost_rings"}  # 77: truncated at the source


def _kitti_index(frame: Frame) -> int:
    return (frame.t_ns - 1_317_000_000_000_000_000) // 100_000_000


def _run(frames: list[Frame]) -> list:
    return score_in_order(HeuristicScorer(ScoringConfig()), frames)


@pytest.mark.parametrize(("kind", "faults"), [("camera", CAMERA_FAULTS), ("lidar", LIDAR_FAULTS)])
def test_sample_drive_faults_are_harmful_and_clean_frames_are_not(kind: str, faults: dict[int, str]) -> None:
    frames = sample_frames(kind)
    verdicts = _run(frames)
    for frame, verdict in zip(frames, verdicts, strict=True):
        idx = _kitti_index(frame)
        if idx in faults:
            assert verdict.label is Label.HARMFUL, (idx, verdict)
            assert verdict.reasons[0] == faults[idx], (idx, verdict.reasons)
            assert verdict.score == 0.0
        else:
            assert verdict.label is not Label.HARMFUL, (idx, verdict)
            assert 0.0 <= verdict.score <= 1.0


@pytest.mark.shared
def test_kitti_frame_77_truncated_scan_is_harmful_after_normal_scans(shared_data) -> None:
    base = shared_data / "kitti/2011_09_26"
    paths = sorted((base / "udacity_sfnd_sync/velodyne_points/data").glob("*.bin"))[:5]
    paths.append(base / "udacity_sfnd_partial_frame77/velodyne_points/data/0000000077.bin")
    frames = [
        Frame("velo", Modality.LIDAR, i, i, p.stat().st_size, str(p), Encoding.XYZI_F32, None,
              np.fromfile(p, dtype="<f4").reshape(-1, 4))
        for i, p in enumerate(paths)
    ]
    verdicts = _run(frames)
    assert all(v.label is not Label.HARMFUL for v in verdicts[:5])
    assert verdicts[5].label is Label.HARMFUL
    assert {"lost_rings", "sparse"} <= set(verdicts[5].reasons)


def _camera(image: np.ndarray, seq: int = 0, sensor: str = "cam") -> Frame:
    data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
    return Frame(sensor, Modality.CAMERA, seq, seq, len(data), "test", Encoding.JPEG, data,
                 meta={"width": str(image.shape[1])})


def _real_image(i: int = 0) -> np.ndarray:
    frame = sample_frames("camera")[i]
    return cv2.imdecode(np.frombuffer(frame.payload, np.uint8), cv2.IMREAD_COLOR)


def test_truncated_jpeg_is_harmful_not_a_crash() -> None:
    good = sample_frames("camera")[0]
    cut = dataclasses.replace(good, payload=good.payload[: len(good.payload) // 2])
    verdict = HeuristicScorer(ScoringConfig()).score(cut)
    assert verdict.label is Label.HARMFUL and verdict.reasons == ("undecodable",)


def test_uniform_grey_frame_is_harmful() -> None:
    flat = np.full_like(_real_image(), 128)
    verdict = HeuristicScorer(ScoringConfig()).score(_camera(flat))
    assert verdict.label is Label.HARMFUL and verdict.reasons[0] == "uniform"


def test_near_duplicate_with_sensor_noise_is_useless_and_new_scene_is_helpful() -> None:
    rng = np.random.default_rng(0)
    image = _real_image(0)
    scorer = HeuristicScorer(ScoringConfig())
    first = scorer.score(_camera(image, 0))
    assert first.label is Label.HELPFUL and first.reasons == ("novel",)
    scorer.remember(_camera(image, 0), first)
    noisy = np.clip(image.astype(np.int16) + rng.normal(0, 2.0, image.shape).astype(np.int16), 0, 255).astype(np.uint8)
    second = scorer.score(_camera(noisy, 1))
    assert second.label is Label.USELESS and second.reasons == ("redundant",)
    assert second.score < 0.5
    flipped = np.ascontiguousarray(image[:, ::-1])  # the same street seen the other way: a different view
    third = scorer.score(_camera(flipped, 2))
    assert third.label is Label.HELPFUL and third.score > 0.5


def _scan(points: np.ndarray, seq: int = 0) -> Frame:
    return Frame("velo", Modality.LIDAR, seq, seq, points.nbytes, "test", Encoding.XYZI_F32, None, points)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("empty", "few_points"),
        ("sparse_random", "sparse"),
        ("impossible", "impossible_range"),
        ("all_nan", "nonfinite"),
    ],
)
def test_lidar_faults_applied_to_a_real_scan(fault: str, reason: str) -> None:
    points = sample_frames("lidar")[0].array.copy()
    rng = np.random.default_rng(1)
    if fault == "empty":
        points = points[:0]
    elif fault == "sparse_random":
        points = points[rng.choice(len(points), 5_000, replace=False)]
    elif fault == "impossible":
        rows = rng.choice(len(points), len(points) // 20, replace=False)
        points[rows, :3] *= 1000.0
    elif fault == "all_nan":
        points[:, :3] = np.nan
    scorer = HeuristicScorer(ScoringConfig())
    if fault == "sparse_random":  # fewer points than usual is judged against the sensor's own healthy scans
        scorer.score(_scan(sample_frames("lidar")[0].array))
    verdict = scorer.score(_scan(points, 1))
    assert verdict.label is Label.HARMFUL
    assert reason in verdict.reasons


@pytest.mark.shared
def test_real_stills_night_snow_and_nuscenes_are_not_harmful(shared_data) -> None:
    paths = sorted((shared_data / "camera/bdd100k_yolop").glob("*.jpg"))
    paths += sorted((shared_data / "nuscenes").glob("*/*.jpg"))
    for path in paths:
        data = path.read_bytes()
        frame = Frame(path.stem, Modality.CAMERA, 0, 0, len(data), str(path), Encoding.JPEG, data)
        verdict = HeuristicScorer(ScoringConfig()).score(frame)
        assert verdict.label is not Label.HARMFUL, (path.name, verdict)


@pytest.mark.parametrize("sigma", [45.0, 60.0])  # heavy noise: at analysis width (~4x smaller) it is ~10
def test_heavy_pixel_noise_on_a_real_frame_is_noisy_and_mild_noise_is_not(sigma: float) -> None:
    image = _real_image(3)
    rng = np.random.default_rng(2)
    scorer = HeuristicScorer(ScoringConfig())

    def noisy(s: float) -> np.ndarray:
        return np.clip(image + rng.normal(0, s, image.shape), 0, 255).astype(np.uint8)

    mild = scorer.score(_camera(noisy(3.0), 0))  # ordinary sensor noise
    assert mild.label is not Label.HARMFUL and mild.signals["noise"] < 4.0, mild
    heavy = scorer.score(_camera(noisy(sigma), 1))
    assert heavy.label is Label.HARMFUL and "noisy" in heavy.reasons, heavy


def test_scattered_points_are_noisy_against_the_sensors_own_history() -> None:
    scans = [f.array for f in sample_frames("lidar")[:4]]
    rng = np.random.default_rng(3)
    scorer = HeuristicScorer(ScoringConfig())
    for seq, points in enumerate(scans[:3]):  # healthy history, each with 1-2 cm range noise
        jitter = points.copy()
        jitter[:, :3] += rng.normal(0, 0.015, (len(points), 3)).astype(np.float32)
        assert scorer.score(_scan(jitter, seq)).label is not Label.HARMFUL
    scattered = scans[3].copy()
    hit = rng.random(len(scattered)) < 0.5
    scattered[hit, :3] += rng.normal(0, 0.5, (int(hit.sum()), 3)).astype(np.float32)
    verdict = scorer.score(_scan(scattered, 3))
    assert verdict.label is Label.HARMFUL and verdict.reasons == ("noisy",), verdict


@pytest.mark.parametrize("kind", ["camera", "lidar"])
def test_hybrid_keeps_the_checks_and_adds_the_fault_head_only_when_sure(kind: str) -> None:
    from agent.config.model_cfg import ModelConfig
    from agent.scoring.hybrid import HybridScorer

    frames = sample_frames(kind)
    faults = CAMERA_FAULTS if kind == "camera" else LIDAR_FAULTS

    # The sample drive's scans are KITTI's HDL-64E, the one LiDAR the shipped LiDAR models learnt (and trust).
    sensors = {"*": {"model": "velodyne-hdl64"}} if kind == "lidar" else {}

    def run(min_prob: float) -> list:
        config = ScoringConfig.model_validate({"model_fault_min_prob": min_prob, "sensors": sensors})
        return score_in_order(HybridScorer(config, ModelConfig()), frames)

    default, never, always = run(ScoringConfig().model_fault_min_prob), run(1.0), run(0.0)
    heuristic = _run(frames)
    assert [v.label for v in never] == [v.label for v in heuristic]  # a head that is never sure changes nothing
    for frame, d, a, h in zip(frames, default, always, heuristic, strict=True):
        idx = _kitti_index(frame)
        assert d.label is (Label.HARMFUL if idx in faults else h.label), (idx, d)  # no false harmful at the default
        assert a.label is Label.HARMFUL  # at 0 the head calls everything the checks pass a fault
        if h.label is not Label.HARMFUL:
            assert a.reasons[0].startswith("fault_") and "p_harmful" in a.signals


def _torn(image: np.ndarray, kind: str) -> np.ndarray:
    """A tear 30% down a real frame (on the road, further down, a sideways shift of asphalt is invisible)."""
    out = image.copy()
    h, w = image.shape[:2]
    row = int(h * 0.3)
    if kind == "misplaced rows":  # below the tear: the picture from elsewhere in the buffer
        out[row:] = np.roll(np.roll(image, w // 3, axis=1), -h // 6, axis=0)[row:]
    elif kind == "shifted sideways":
        out[row:] = np.roll(image, w // 3, axis=1)[row:]
    else:  # decoder fill: the rest of the frame one colour
        out[row:] = (0, 128, 0)
    return out


@pytest.mark.parametrize("kind", ["misplaced rows", "shifted sideways", "fill"])
def test_a_torn_real_frame_is_tearing_and_a_hard_shadow_edge_is_not(kind: str) -> None:
    scorer = HeuristicScorer(ScoringConfig())
    for index in (0, 12, 21):  # clean frames of the sample drive (18 is its over-exposed one)
        image = _real_image(index)
        shadowed = image.copy()
        shadowed[image.shape[0] // 2:] = (shadowed[image.shape[0] // 2:] * 0.5).astype(np.uint8)  # one sharp row
        for seq, clean in enumerate((image, shadowed)):
            verdict = scorer.score(_camera(clean, 10 * index + seq))
            assert verdict.label is not Label.HARMFUL, verdict
            assert max(verdict.signals["seam_mixed"], verdict.signals["vseam_mixed"]) < 0.25, verdict
        torn = scorer.score(_camera(_torn(image, kind), 10 * index + 5))
        assert torn.label is Label.HARMFUL and "tearing" in torn.reasons, (index, torn)


@pytest.mark.shared
def test_a_car_driving_out_of_tree_shadows_at_full_resolution_is_not_occluded(shared_data) -> None:
    # The Udacity test video at its own 1280 x 720: the road grows textureless frame by frame as the shadows end
    # (+0.003-0.006 of the picture a frame), which crossed the new-flat-area limit against the camera's median.
    capture = cv2.VideoCapture(str(shared_data / "video" / "udacity_vehicle_detection_test_video.mp4"))
    scorer = HeuristicScorer(ScoringConfig())
    harmful = []
    for seq in range(38):
        ok, image = capture.read()
        assert ok
        frame = Frame("front", Modality.CAMERA, 10**9 + seq * 40_000_000, seq, image.nbytes, "video", array=image)
        verdict = scorer.score(frame)
        if verdict.label is Label.HARMFUL:
            harmful.append((seq, verdict.reasons))
        else:
            scorer.remember(frame, verdict)
    assert harmful == []
    # Mud that lands at once is still occluded (test_unfamiliar: field faults on real frames after clean ones).


@pytest.mark.shared
def test_a_tear_low_on_the_road_is_caught_against_the_cameras_own_seams(shared_data) -> None:
    # A sideways shift 65% down a highway view: the lane markings break at a row where this camera's frames have no
    # seam, on too few columns for the absolute check (which must allow the seams real views have).
    capture = cv2.VideoCapture(str(shared_data / "video" / "udacity_lanelines_solidWhiteRight.mp4"))
    images = []
    for _ in range(160):
        ok, image = capture.read()
        assert ok
        images.append(cv2.resize(image, (640, 360), interpolation=cv2.INTER_AREA))
    cfg = ScoringConfig()
    for at in (45, 60, 75, 90, 150):
        scorer = HeuristicScorer(cfg)
        for seq in range(at - 25, at):
            verdict = scorer.score(_camera(images[seq], seq))
            assert verdict.label is not Label.HARMFUL, (seq, verdict)
            scorer.remember(_camera(images[seq], seq), verdict)
        torn = images[at].copy()
        torn[234:] = np.roll(images[at][234:], 160, axis=1)
        absolute = camera_checks.faults(measure.camera_signals_of(_camera(torn, at), cfg.camera.analysis_width),
                                        cfg.camera)
        verdict = scorer.score(_camera(torn, at))
        assert "tearing" not in absolute, (at, absolute)
        assert verdict.label is Label.HARMFUL and "tearing" in verdict.reasons, (at, verdict)


def test_an_exposure_runaway_just_after_the_view_changed_is_judged_against_the_cameras_level() -> None:
    # A dusk-dark stream; then a new view (the picture turned over: a scene cut, so no same-view median) with the
    # gain tripled. Exposure is the camera's, not the view's: its recent frames' brightness still holds.
    cfg = ScoringConfig()

    def dim(image: np.ndarray, gain: float) -> np.ndarray:
        return np.clip(image.astype(np.float32) * gain, 0, 255).astype(np.uint8)

    for gain, harmful in ((1.3, False), (3.0, True), (5.0, True)):
        scorer = HeuristicScorer(cfg)
        for seq in range(8):
            frame = _camera(dim(_real_image(seq), 0.35), seq)
            verdict = scorer.score(frame)
            assert verdict.label is not Label.HARMFUL, verdict
            scorer.remember(frame, verdict)
        new_view = dim(_real_image(9)[::-1].copy(), 0.35 * gain)
        before = measure.camera_signals_of(_camera(dim(_real_image(7), 0.35), 7), cfg.camera.analysis_width)
        after = measure.camera_signals_of(_camera(new_view, 9), cfg.camera.analysis_width)
        assert camera_checks.scene_cut(after, before, cfg.camera) or not harmful
        verdict = scorer.score(_camera(new_view, 9))
        assert (verdict.label is Label.HARMFUL and "overexposed" in verdict.reasons) is harmful, (gain, verdict)

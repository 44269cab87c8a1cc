"""Benchmark the proxy-model decision path on one core and print JSON.

Camera: real 720p frames (BDD100K stills and the Udacity vehicle-detection video, JPEG q90) -- full JPEG decode
alone vs the whole decision path (reduced decode -> model -> verdict). LiDAR: real KITTI HDL-64 scans (~114k
points) through the whole path. INT8 vs FP32 for both models, batching across sensors, stage timings, peak RSS.

    python scripts/bench_model.py [--seconds 2 --rounds 5] > models/bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agent.config.model import ScoringConfig
from agent.config.model_cfg import ModelConfig
from agent.frame import Encoding, Frame, Modality
from agent.scoring.base import Label
from agent.scoring.proxy import ProxyScorer

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def camera_frames() -> list[Frame]:
    images = [cv2.imread(str(p)) for p in sorted((SHARED / "camera" / "bdd100k_yolop").glob("*.jpg"))]
    cap = cv2.VideoCapture(str(SHARED / "video" / "udacity_vehicle_detection_test_video.mp4"))
    while len(images) < 44:
        ok, frame = cap.read()
        if not ok:
            break
        images.append(frame)
    frames = []
    for i, image in enumerate(images):
        assert image.shape[:2] == (720, 1280)
        data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        frames.append(Frame("cam", Modality.CAMERA, i * 10**8, i, len(data), "bench", Encoding.JPEG, data,
                            meta={"width": "1280", "height": "720"}))
    return frames


def lidar_frames() -> list[Frame]:
    folder = SHARED / "kitti" / "2011_09_26" / "udacity_sfnd_sync" / "velodyne_points" / "data"
    scans = [np.fromfile(p, np.float32).reshape(-1, 4) for p in sorted(folder.glob("*.bin"))]
    return [Frame("velo", Modality.LIDAR, i * 10**8, i, s.nbytes, "bench", Encoding.RAW, None, s)
            for i, s in enumerate(scans)]


def rate(fn, items: list, seconds: float) -> float:
    """Items per second, cycling through `items` for about `seconds` (after one warm-up pass)."""
    for item in items:
        fn(item)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for item in items:
            fn(item)
        done += len(items)
    return done / (time.perf_counter() - started)


def decision(scorer: ProxyScorer):
    def step(frame: Frame) -> None:
        verdict = scorer.score(frame)
        if verdict.label is not Label.HARMFUL:
            scorer.remember(frame, verdict)
    return step


def scorer_for(precision: str) -> ProxyScorer:
    cfg = ModelConfig()
    # The configured (INT8) files and their FP32 twins beside them.
    cam = cfg.camera.model_copy(update={"path": cfg.camera.path.replace("_int8", f"_{precision}")})
    lid = cfg.lidar.model_copy(update={"path": cfg.lidar.path.replace("_int8", f"_{precision}")})
    return ProxyScorer(ScoringConfig(kind="proxy"), cfg.model_copy(update={"camera": cam, "lidar": lid}))


def model_only(scorer: ProxyScorer, seconds: float) -> dict[str, float]:
    cam = np.zeros((1, 3, *scorer.camera.spec.input_size), np.float32)
    lid = np.zeros((1, 4, *scorer.lidar.spec.input_size), np.float32)
    return {"camera_inferences_per_s": round(rate(lambda _: scorer.camera.runtime.run(cam), [0] * 50, seconds), 1),
            "lidar_inferences_per_s": round(rate(lambda _: scorer.lidar.runtime.run(lid), [0] * 50, seconds), 1)}


def int8_over_fp32_by_batch(scorers: dict[str, ProxyScorer], seconds: float, rounds: int) -> dict[str, dict]:
    """Inference alone, INT8 rate over FP32 rate per batch size (median of alternating rounds): whether the
    integer kernels pay once the fixed per-run and per-op costs are spread over more frames."""
    out: dict[str, dict] = {}
    for modality in ("camera", "lidar"):
        for batch in (1, 8, 32):
            ratios = []
            for _ in range(rounds):
                fps = {}
                for precision, scorer in scorers.items():
                    model = getattr(scorer, modality)
                    x = np.zeros((batch, model.runtime.input_shape()[1], *model.spec.input_size), np.float32)
                    fps[precision] = rate(lambda _, m=model, x=x: m.runtime.run(x), [0] * 20, seconds / 2) * batch
                ratios.append(fps["int8"] / fps["fp32"])
            out.setdefault(modality, {})[f"batch_{batch}"] = round(float(np.median(ratios)), 3)
    return out


def batching(scorer: ProxyScorer, batch: list[Frame], seconds: float) -> dict[str, float]:
    """Four camera frames (as from four sensors) one by one, or through the model as one batch."""
    single = rate(lambda _: [scorer.score(f) for f in batch], [0], seconds) * len(batch)
    batched = rate(lambda _: scorer.score_batch(batch), [0], seconds) * len(batch)
    return {"one_by_one": round(single, 1), "batched": round(batched, 1)}


def agreement(a: ProxyScorer, b: ProxyScorer, frames: list[Frame]) -> dict[str, float]:
    va, vb = [a.score(f) for f in frames], [b.score(f) for f in frames]
    same = np.mean([x.label == y.label for x, y in zip(va, vb, strict=True)])
    diff = [abs(x.signals.get("p_harmful", 0) - y.signals.get("p_harmful", 0)) for x, y in zip(va, vb, strict=True)]
    return {"label_agreement": round(float(same), 4), "p_harmful_mean_abs_diff": round(float(np.mean(diff)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core for everything below
    cv2.setNumThreads(1)
    cams, scans = camera_frames(), lidar_frames()
    # Consecutive frames are distinct real frames, so nothing short-cuts as frozen: the model runs on each one.
    out: dict = {"cpu": os.cpu_count(), "camera_frames": len(cams), "camera_size": "1280x720 JPEG q90",
                 "lidar_scans": len(scans), "lidar_points_mean": int(np.mean([len(f.array) for f in scans]))}
    scorers = {p: scorer_for(p) for p in ("int8", "fp32")}
    # The machine's speed drifts (shared CPU): alternate the measurements in rounds and take medians, so that
    # the decode-only baseline and each decision path are measured under the same conditions.
    rounds: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        rounds.setdefault("decode", []).append(
            rate(lambda f: cv2.imdecode(np.frombuffer(f.payload, np.uint8), cv2.IMREAD_COLOR), cams, args.seconds))
        for p, scorer in scorers.items():
            rounds.setdefault(f"{p}_camera", []).append(rate(decision(scorer), cams, args.seconds))
            rounds.setdefault(f"{p}_lidar", []).append(rate(decision(scorer), scans, args.seconds))
    decode = float(np.median(rounds["decode"]))
    out["camera_full_decode_fps"] = round(decode, 1)
    out["rounds"] = {k: [round(v, 1) for v in vs] for k, vs in rounds.items()}
    for precision, scorer in scorers.items():
        cam_fps = float(np.median(rounds[f"{precision}_camera"]))
        ratios = np.array(rounds[f"{precision}_camera"]) / np.array(rounds["decode"])
        out[precision] = {
            "camera_decision_fps": round(cam_fps, 1),
            "camera_ratio_vs_full_decode": round(float(np.median(ratios)), 3),
            "lidar_decision_scans_per_s": round(float(np.median(rounds[f"{precision}_lidar"])), 1),
            **model_only(scorer, args.seconds),
            "stages": scorer.timings(),
        }
        out[precision]["camera_4_sensors_fps"] = batching(scorer, cams[:4], args.seconds)
    for key in ("camera_decision_fps", "lidar_decision_scans_per_s", "camera_inferences_per_s",
                "lidar_inferences_per_s"):
        out.setdefault("int8_over_fp32", {})[key] = round(out["int8"][key] / out["fp32"][key], 3)
    out["int8_over_fp32_inference_by_batch"] = int8_over_fp32_by_batch(scorers, args.seconds, args.rounds)
    out["int8_vs_fp32_verdicts"] = {"camera": agreement(scorer_for("int8"), scorer_for("fp32"), cams),
                                   "lidar": agreement(scorer_for("int8"), scorer_for("fp32"), scans)}
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

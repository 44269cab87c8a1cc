"""Evaluate the proxy scorer against the heuristic scorer on held-out real frames and print JSON.

These held-out frames come from the recordings the models trained on (the in-domain check of the model cards).
What a fleet meets is other recordings: scripts/evaluate_field.py scores every recording in ../shared/data, held
out by recording and source, per source and condition, with the field fault set and the genuine faults
(`python scripts/evaluate.py --field` runs it).

Harmful detection: held-out frames (see scripts/_train_data.py for the split) clean and with each fault applied;
per fault type: recall (faulted frames judged harmful) and, per scorer, the false-harmful rate on the clean ones.
Redundancy: real sequences (the stop-and-go KITTI drive, two highway videos, KITTI scans) scored in order with
the pipeline's memory (kept = not harmful); the fraction judged useless, and re-encoded duplicates caught.

    python scripts/evaluate.py > evaluate.json        # needs ../shared/data and imagecorruptions (train extra)
    python scripts/evaluate.py --drive runs/eval/idle  # also: labelled drives from scripts/make_eval_drive.py

Labelled drives (--drive DIR holding drive.mcap + labels.jsonl, repeatable): each scorer's verdicts with the
default policy, per labelled class and per fault type: judged harmful (recall), not kept (caught), and the
false-harmful rate on frames labelled helpful or useless.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from _train_data import CAMERA_FAULTS, LIDAR_FAULTS, camera_fault, camera_split, kitti_scan77, kitti_scans, lidar_fault

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agent.config.model import ScoringConfig
from agent.config.model_cfg import ModelConfig
from agent.frame import Encoding, Frame, Modality
from agent.scoring.base import Label
from agent.scoring.heuristic import HeuristicScorer
from agent.scoring.hybrid import HybridScorer
from agent.scoring.proxy import ProxyScorer


def scorers() -> dict:
    return {"heuristic": HeuristicScorer(ScoringConfig()),
            "proxy": ProxyScorer(ScoringConfig(kind="proxy"), ModelConfig()),
            "hybrid": HybridScorer(ScoringConfig(kind="hybrid"), ModelConfig())}


def jpeg_frame(image: np.ndarray, sensor: str, seq: int, quality: int = 90) -> Frame:
    data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
    h, w = image.shape[:2]
    return Frame(sensor, Modality.CAMERA, seq * 10**8, seq, len(data), "eval", Encoding.JPEG, data,
                 meta={"width": str(w), "height": str(h)})


def scan_frame(points: np.ndarray, seq: int, sensor: str = "velo") -> Frame:
    return Frame(sensor, Modality.LIDAR, seq * 10**8, seq, points.nbytes, "eval", Encoding.RAW, None, points)


def judge(scorer, frame: Frame) -> bool:
    verdict = scorer.score(frame)
    if verdict.label is not Label.HARMFUL:
        scorer.remember(frame, verdict)
    return verdict.label is Label.HARMFUL


def summarise(hits: dict[str, list[bool]]) -> dict:
    out = {k: round(float(np.mean(v)), 4) for k, v in hits.items()}
    faults = [k for k in hits if k != "clean"]
    out["harmful_recall_all"] = round(float(np.mean([x for k in faults for x in hits[k]])), 4)
    out["false_harmful"] = out.pop("clean")
    out["frames"] = {k: len(v) for k, v in hits.items()}
    return out


def camera_harm(seed: int, frames: list[tuple[str, np.ndarray]] | None = None, scorers_: dict | None = None
                ) -> dict:
    """Clean frames: one stream per source (a camera per source, so per-sensor baselines and memory build up as
    on a car). Faults: one stream per (source, fault) in which each faulted frame follows its own clean frame,
    so that a fault one scorer misses (and learns as 'typical') does not bias its judgement of other faults.
    `frames`: the held-out camera frames unless given; `scorers_`: scorers() unless given."""
    test = camera_split()["test"] if frames is None else frames
    rng = np.random.default_rng(seed)
    np.random.seed(seed)  # imagecorruptions draws from numpy's global generator
    faulted = [{f: camera_fault(image, f, rng, test[(i + len(test) // 2) % len(test)][1])
                for f in CAMERA_FAULTS[1:]} for i, (_, image) in enumerate(test)]
    result = {}
    for name, scorer in (scorers() if scorers_ is None else scorers_).items():
        hits: dict[str, list[bool]] = {"clean": [], "frozen": [], **{f: [] for f in CAMERA_FAULTS[1:]}}
        for i, (source, image) in enumerate(test):
            hits["clean"].append(judge(scorer, jpeg_frame(image, source.split("/")[0], 2 * i)))
        for i, (source, image) in enumerate(test):
            sensor = source.split("/")[0]
            for fault in ("frozen", *CAMERA_FAULTS[1:]):
                judge(scorer, jpeg_frame(image, f"{sensor}#{fault}", 2 * i))
                bad = image if fault == "frozen" else faulted[i][fault]  # frozen: the same bytes again
                hits[fault].append(judge(scorer, jpeg_frame(bad, f"{sensor}#{fault}", 2 * i + 1)))
        result[name] = summarise(hits)
        result[name]["false_harmful_frames"] = [test[i][0] for i, hit in enumerate(hits["clean"]) if hit]
    return result


def lidar_harm(seed: int) -> dict:
    result = {}
    held_out = kitti_scans(range(20, 30))
    for name, scorer in scorers().items():
        rng = np.random.default_rng(seed)
        hits: dict[str, list[bool]] = {"clean": [], **{f: [] for f in LIDAR_FAULTS[1:]}, "kitti_77_truncated": []}
        for j, scan in enumerate(held_out):
            hits["clean"].append(judge(scorer, scan_frame(scan, j * 10)))
        for j, scan in enumerate(held_out):  # as for the camera: a stream per fault, each fault after its clean
            for fault in LIDAR_FAULTS[1:]:
                judge(scorer, scan_frame(scan, j * 10, f"velo#{fault}"))
                bad = lidar_fault(scan, fault, rng)
                hits[fault].append(judge(scorer, scan_frame(bad, j * 10 + 1, f"velo#{fault}")))
        hits["kitti_77_truncated"].append(judge(scorer, scan_frame(kitti_scan77(), 999)))
        result[name] = summarise(hits)
    return result


def sequences() -> dict[str, list[Frame]]:
    split = camera_split(video_step=1)
    frames = split["train"] + split["test"]
    out: dict[str, list[Frame]] = {}
    for tag in ("kitti", "udacity_lanelines_so", "udacity_vehicle_dete"):
        images = [im for name, im in frames if name.startswith(tag)]
        out[f"camera/{tag}"] = [jpeg_frame(im, tag, k) for k, im in enumerate(images)]
    out["lidar/kitti"] = [scan_frame(s, k) for k, s in enumerate(kitti_scans(range(30)))]
    return out


def redundancy() -> dict:
    result: dict = {}
    for seq_name, frames in sequences().items():
        for name, scorer in scorers().items():
            labels = []
            for frame in frames:
                verdict = scorer.score(frame)
                if verdict.label is not Label.HARMFUL:
                    scorer.remember(frame, verdict)
                labels.append(verdict.label.value)
            result.setdefault(seq_name, {})[name] = {
                k: round(labels.count(k) / len(labels), 4) for k in ("useless", "helpful", "harmful")}
        result[seq_name]["frames"] = len(frames)
    dup: dict = {}
    test = camera_split()["test"]
    for name, scorer in scorers().items():
        caught = []
        for i, (_, image) in enumerate(test):
            judge(scorer, jpeg_frame(image, f"dup{i}", 0))
            again = scorer.score(jpeg_frame(image, f"dup{i}", 1, quality=80))  # re-encoded, not byte-identical
            caught.append(again.label is not Label.HELPFUL)
        dup[name] = round(float(np.mean(caught)), 4)
    result["reencoded_duplicate_not_helpful"] = dup
    return result


def labelled_drive(folder: Path) -> dict:
    from agent.config.model import AgentConfig
    from agent.frame import Modality
    from agent.tune.cache import score_recording
    from agent.tune.labels import caught_by_fault, rates
    from agent.tune.runner import truth_of
    from agent.tune.simulate import simulate
    from agent.tune.sweep import base_knobs

    result: dict = {}
    for kind in ("heuristic", "proxy", "hybrid"):
        config = AgentConfig.model_validate({"scoring": {"kind": kind}})
        cache = score_recording([str(folder / "drive.mcap")], config, baselines=False, progress=False)
        truth, faults, _ = truth_of(cache, folder / "labels.jsonl")
        kept = np.zeros(len(cache.frames), dtype=bool)
        verdict = np.zeros(len(cache.frames), dtype=np.int8)
        for modality in Modality:
            idx = cache.of(modality)
            if idx:
                out = simulate(cache.frames, idx, base_knobs(config, kind, modality), config.scoring.memory_size)
                kept[idx], verdict[idx] = out.kept, out.verdict
        nbytes = np.array([c.frame.nbytes for c in cache.frames])
        judged = verdict == 2
        recall = {f: round(float(np.mean([judged[i] for i, g in enumerate(faults) if g == f])), 4)
                  for f in sorted({g for g in faults if g})}
        clean = (truth == 0) | (truth == 1)
        result[kind] = {**rates(kept, truth, nbytes, cache.duration_s), "harmful_recall_by_fault": recall,
                        "harmful_caught_by_fault": caught_by_fault(kept, faults),
                        "false_harmful": round(float(judged[clean].mean()), 4) if clean.any() else None}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drive", action="append", type=Path, default=[], help="labelled drive folder")
    parser.add_argument("--drives-only", action="store_true", help="skip the held-out frame evaluation")
    parser.add_argument("--field", action="store_true", help="the field evaluation (scripts/evaluate_field.py)")
    args = parser.parse_args()
    if args.field:
        from _field_eval import evaluate

        print(json.dumps(evaluate(max_items=10), indent=1))
        return
    out: dict = {}
    if not args.drives_only:
        out = {"camera_harmful": camera_harm(7), "lidar_harmful": lidar_harm(7), "redundancy": redundancy()}
    if args.drive:
        out["labelled_drives"] = {str(d): labelled_drive(d) for d in args.drive}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

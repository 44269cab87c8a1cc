"""Train camera-proxy-3 on every camera recording in ../shared/data, and one model per leave-sources-out fold.

    python scripts/train_camera_loso.py --out /tmp/cam3          # fold models + the final model (needs `train`)
    python scripts/evaluate_field.py --camera-folds /tmp/cam3 --kinds proxy hybrid   # each source, its fold's model

The recipe is camera-proxy-2's (scripts/train_camera.py: the student, the distillation from EfficientNet-Lite0, the
benign augmentations, the trained fault kinds); what changes is the data. Version 2 learnt KITTI, six BDD and six
nuScenes stills and two highway videos; version 3 learns every camera source of the field evaluation
(scripts/_field_data.py): dusk, rain, snow, winter, night, fisheye, NIR, raw Bayer, synthetic fog and night.

Leave-sources-out: the sources are grouped in folds (_field_data.CAMERA_FOLDS: recordings that share a vehicle, a
drive or frames stay together) and for each fold a model is trained on the other folds only. The field evaluation
scores each source with the model of its fold, so every figure it reports is for a recording that model never saw.
The final model (every fold) would be what ships, with the folds' figures as its held-out ones. Measured so, the
fault head did not transfer to unseen sources, and no version 3 ships (models/camera_proxy.md, "Version 3").

Frames scripts/evaluate.py holds out (KITTI 20-29, the last BDD and nuScenes stills, the last 20% of each highway
video) are never trained on, so that evaluation stays held out too. A source gives at most --cap frames, evenly
spaced; a source of a few stills is repeated (with new faults each time) to at least --min-frames samples of frames,
so that a single still of a new sensor is not drowned by a video.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _export import kmeans, run_onnx
from _field_data import CAMERA_FOLDS, camera_sources
from _train_data import _work
from train_camera import SCENES, build_samples, export_pair, head_metrics, teacher_features, to_input, train

VERSION = "camera-proxy-3"
SKIP = {"bdd_folder_one_stream"}  # the BDD stills again, as one stream
V2_AUGMENT = {"shadow_ok": 0.4, "shadow_fault": 0.4, "tear_more": 0.5, "grey": 0.05, "jitter": 0.5}


def evaluate_py_held_out(source: str, index: int, name: str, count: int) -> bool:
    """Whether scripts/evaluate.py holds this frame out (see _train_data.camera_split)."""
    if source.startswith("kitti_") and source != "kitti_object_day":
        return index >= 20
    if source in ("bdd_day", "bdd_night"):
        return name.startswith(("9aa9", "adb4"))  # the last two BDD stills by name
    if source == "nuscenes_day_6cams":
        return index >= count - 2
    if source.startswith("highway_video_"):
        return index >= int(count * 0.8)
    return False


def training_frames(cap: int, min_frames: int) -> list[tuple[str, str, np.ndarray]]:
    """(fold, source, frame at work width) for every frame trained on, repeats included."""
    fold_of = {s: fold for fold, names in CAMERA_FOLDS.items() for s in names}
    out = []
    for source in camera_sources():
        if source.name in SKIP:
            continue
        items = source.load()
        kept = [image for i, (name, image) in enumerate(items)
                if not evaluate_py_held_out(source.name, i, name, len(items))]
        if len(kept) > cap:
            kept = [kept[int(k)] for k in np.linspace(0, len(kept) - 1, cap)]
        repeats = max(1, -(-min_frames // len(kept)))
        out += [(fold_of[source.name], source.name, _work(image)) for image in kept * repeats]
    return out


def samples(frames: list[tuple[str, str, np.ndarray]], seed: int, cache: Path) -> dict[str, np.ndarray]:
    """build_samples over all frames (a tear may show any other frame below its row), with the teacher's
    features; cached in `cache`, since the teacher is most of the time and every fold uses the same samples."""
    if cache.exists():
        with cache.open("rb") as f:
            return pickle.load(f)  # our own cache file, written below
    np.random.seed(seed)  # imagecorruptions draws its noise from numpy's global generator
    data = build_samples([(s, image) for _, s, image in frames], per_fault=1, oks=7, seed=seed,
                         extra=("tearing", "compression"), augment=V2_AUGMENT, random_other=True)
    data["teacher"] = teacher_features(data["teacher_in"])
    del data["teacher_in"]
    data["fold"] = np.array([frames[b][0] for b in data["base"]])
    data["source"] = np.array([frames[b][1] for b in data["base"]])
    with cache.open("wb") as f:
        pickle.dump(data, f)
    return data


def subset(data: dict, keep: np.ndarray) -> dict:
    index = np.flatnonzero(keep)
    return {k: ([v[i] for i in index] if k == "work" else v[index]) for k, v in data.items()}


def scene_targets(data: dict, seed: int) -> np.ndarray:
    ok = data["fault"] == 0
    _, clusters = kmeans(data["teacher"][ok], SCENES, seed)
    scene = np.full(len(ok), -1, np.int64)
    scene[ok] = clusters
    return scene


def write(model, data: dict, prefix: Path, seed: int, note: str) -> dict:
    """FP32 and INT8 ONNX with edgesift metadata (train_camera.export_pair)."""
    fp32, int8 = prefix.with_name(prefix.name + "_fp32.onnx"), prefix.with_name(prefix.name + "_int8.onnx")
    meta = export_pair(model, to_input(data["x"]), data["fault"], fp32, int8, seed, VERSION,
                       f"scripts/train_camera_loso.py --seed {seed} ({note})")
    return {"fp32": fp32.name, "int8": int8.name, "ood_threshold": meta["ood_threshold"]}


def held_out_figures(path: Path, data: dict) -> dict:
    """The fault head alone on the held-out fold's samples: per source, and the OOD ratios of its clean ones."""
    import onnx

    outputs = run_onnx(path, to_input(data["x"]))
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    centroids = np.asarray(json.loads(meta["edgesift.ood_centroids"]), np.float32)
    threshold = float(meta["edgesift.ood_threshold"])
    ood = (1.0 - (outputs["embedding"] @ centroids.T).max(1)) / threshold
    out = {}
    for source in sorted(set(data["source"])):
        pick = data["source"] == source
        figures = head_metrics({k: v[pick] for k, v in outputs.items()}, data["fault"][pick], 0.5)
        clean = pick & (data["fault"] == 0)
        figures["ood_ratio_clean_median"] = round(float(np.median(ood[clean])), 3)
        figures["ood_clean_share_over_1"] = round(float((ood[clean] >= 1.0).mean()), 4)
        out[source] = figures
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the fold models, the final model, "
                        "folds.json and the sample cache")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--cap", type=int, default=30, help="frames per source at most")
    parser.add_argument("--min-frames", type=int, default=4, help="a source's frames repeated to at least this")
    parser.add_argument("--only", choices=("folds", "final", "both"), default="both")
    args = parser.parse_args()
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    frames = training_frames(args.cap, args.min_frames)
    data = samples(frames, args.seed, args.out / f"samples_seed{args.seed}_cap{args.cap}.pkl")
    print(f"{len(frames)} frames, {len(data['fault'])} samples, {time.time() - started:.0f}s", flush=True)
    report_path = args.out / "folds.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    report.update({"version": VERSION, "options": {k: str(v) for k, v in vars(args).items()},
                   "sources": {f: list(n) for f, n in CAMERA_FOLDS.items()},
                   "frames_per_source": {s: int((np.array([f[1] for f in frames]) == s).sum())
                                         for s in sorted({f[1] for f in frames})}})
    report.setdefault("folds", {})
    plan = [*(list(CAMERA_FOLDS) if args.only != "final" else []), *([None] if args.only != "folds" else [])]
    for fold in plan:
        keep = data["fold"] != fold if fold else np.ones(len(data["fault"]), bool)
        train_set = subset(data, keep)
        model = train(train_set, scene_targets(train_set, args.seed), args.epochs, args.seed, 2.0, 0.05)
        prefix = args.out / (f"fold_{fold}" if fold else "camera_proxy_v3")
        files = write(model, train_set, prefix, args.seed, f"without {fold}" if fold else "every source")
        entry = {**files, "train_samples": int(keep.sum()), "seconds_so_far": round(time.time() - started)}
        if fold:
            entry["held_out_head_int8"] = held_out_figures(args.out / files["int8"], subset(data, ~keep))
            report["folds"][fold] = entry
        else:
            report["final"] = entry
        report_path.write_text(json.dumps(report, indent=1) + "\n")
        print(f"{fold or 'final'} done, {time.time() - started:.0f}s", flush=True)


if __name__ == "__main__":
    sys.exit(main())

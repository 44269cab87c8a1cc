#!/usr/bin/env python3
"""Compute (and with --write, embed) a proxy model's distance calibration table.

The model is run, through the agent's own sources, preprocessing and runtime, over the frames of its modality in a
reference drive; the L2 distances between the embeddings of frames 1 to 5 apart on each sensor (--gaps; the agent
compares a frame with the last *kept* one, a few frames back at the usual thresholds, and consecutive frames alone
do not reach the distances of a 0.9 threshold) give this model's distance quantiles (`raw`). The same quantiles of
the --canonical model (the model whose scale configs are written in; default: the model itself, which gives the
identity table) on the same frames are `canonical`. The agent maps every raw distance through this piecewise-linear
quantile map before comparing it with a config threshold (agent/model/calibration.py), so a `redundant_max_distance`
keeps about the same share of frames whichever model version computes the distances.

    python scripts/calibrate_model.py models/lidar_proxy_int8.onnx --write
    python scripts/calibrate_model.py models/lidar_proxy_v2_int8.onnx --canonical models/lidar_proxy_int8.onnx --write

The default reference is the real recordings in ../shared/data that both proxy models' training held out (see
default_reference): a model spreads its own training frames further apart than unseen ones, by a factor that
differs between models, so a table computed on training frames would not describe what the agent sees on the road.
Only frames whose distances the agent would actually compare are used: frames the scorer calls harmful with
either model are left out (the deterministic checks: frozen camera frames; LiDAR scans with non-finite points, a
missing sector, sparse relative to the sensor's recent scans or with fewer than --min-points valid points; and
either model's fault head or out-of-domain gate at the config defaults). Both models therefore see exactly the
same pairs, and out-of-domain recordings (the HDL-32E pcaps look to both LiDAR models like an HDL-64E with lost
rings) do not bend the map with distances the agent never uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agent.config.model import InputsConfig, ScoringConfig
from agent.config.model_cfg import ModelConfig, ProxyModelSpec
from agent.frame import Frame, Modality
from agent.model.calibration import KEY, DistanceCalibration
from agent.model.metadata import PREFIX, ModelMetadata
from agent.model.preprocess import BevBuilder, decode_width
from agent.model.proxy_model import CameraModel, LidarModel, ProxyModel
from agent.sources import merge, open_inputs
from agent.sources.decode import image_of, points_of

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
KITTI = SHARED / "kitti" / "2011_09_26" / "udacity_sfnd_sync"
PROBS = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 .. 0.95
DECIMALS = 6
STEP = 10.0**-DECIMALS  # smallest gap between knots after rounding
BATCH = 32
GAPS = (1, 2, 3, 4, 5)  # frame pairs 1..5 usable frames apart on the same sensor


def split_reference(spec: str) -> tuple[str, int]:
    """'PATH' or 'PATH@N' (only each sensor's frames from sequence number N on) -> (path, N)."""
    path, sep, first = spec.rpartition("@")
    if sep and first.isdigit() and path:
        return path, int(first)
    return spec, 0


def _held_out_video_start(path: Path) -> int:
    """First frame of a video's held-out tail in the camera model's training split (scripts/_train_data.py)."""
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    return int(count * 0.8)


def default_reference(modality: str) -> list[str]:
    """The real recordings in ../shared/data a model of `modality` is calibrated on (see the model cards): the frames
    that both proxy models' training split holds out (KITTI frames 20-29, each video's last 20%), because a model
    spreads the frames it was trained on further apart than frames it has never seen, and not by the same factor as
    another model: a table computed on training frames does not describe what the agent sees on the road."""
    if modality == "lidar":
        return [f"{KITTI}@20", *(str(p) for p in sorted((SHARED / "pcap").glob("velodyne_*.pcap")))]
    videos = sorted((SHARED / "video").glob("*.mp4"))
    return [f"{KITTI}@20", *(f"{p}@{_held_out_video_start(p)}" for p in videos)]


def describe(specs: Sequence[str], modality: str, counts: Sequence[int], gaps: Sequence[int]) -> str:
    """A short, checkout-independent name of the reference frames (stored in the table's `reference` field)."""
    what = "scans" if modality == "lidar" else "frames"
    parts = []
    for spec, count in zip(specs, counts, strict=True):
        path, first = split_reference(spec)
        p = Path(path).resolve()
        try:
            name = str(p.relative_to(SHARED.resolve()))
        except ValueError:
            try:
                name = str(p.relative_to(ROOT))
            except ValueError:
                name = p.name
        parts.append(f"{name}{f' from frame {first}' if first else ''} ({count} usable)")
    apart = "consecutive" if list(gaps) == [1] else f"{', '.join(map(str, gaps))} apart"
    return f"{modality} {what} of {'; '.join(parts)}; pairs {apart}"


def load(path: str, modality: str) -> ProxyModel:
    meta = ModelMetadata.from_props({p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props},
                                    path)
    spec = ProxyModelSpec(path=path, version="", input_size=meta.input_size)
    cfg = ModelConfig(providers=["cpu"], warmup_runs=0)
    return CameraModel(spec, cfg) if modality == "camera" else LidarModel(spec, cfg, ScoringConfig().lidar.sector_count)


def modality_of(path: str) -> str:
    props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    modality = props.get(PREFIX + "modality")
    if modality not in ("camera", "lidar"):
        raise SystemExit(f"{path}: not an edgesift proxy model (edgesift.modality is {modality!r})")
    return modality


def usable_frames(specs: Sequence[str], modality: str, size: tuple[int, int], min_points: int,
                  skip_sensors: Sequence[str] = ()) -> Iterator[tuple[tuple[int, str], np.ndarray]]:
    """((input index, sensor), model input before batching) for every usable frame of `modality`, per input in
    time order. Frames before an input's first sequence number still feed the checks' history."""
    scoring = ScoringConfig()
    bev = BevBuilder(size[0], scoring.lidar.sector_count)
    for index, spec in enumerate(specs):
        path, first = split_reference(spec)
        previous: dict[str, np.ndarray] = {}
        history: dict[str, deque[int]] = {}
        for item in merge(open_inputs([path], InputsConfig())):
            if not isinstance(item, Frame) or item.modality.value != modality or item.sensor in skip_sensors:
                continue
            if item.modality is Modality.CAMERA:
                full = image_of(item, max_width=decode_width(item, size))
                small = cv2.resize(full, size[::-1], interpolation=cv2.INTER_AREA) if full.shape[:2] != size else full
                last = previous.get(item.sensor)
                previous[item.sensor] = small
                if last is not None and float(cv2.absdiff(last, small).mean()) <= scoring.camera.frozen_max_diff:
                    continue
                if item.seq >= first:
                    yield (index, item.sensor), small
                continue
            grid, stats = bev(points_of(item))
            recent = history.setdefault(item.sensor, deque(maxlen=32))
            typical = float(np.median(recent)) if len(recent) >= 3 else None
            if (stats.nonfinite_fraction > scoring.lidar.max_nonfinite_fraction or stats.valid < min_points
                    or (typical is not None and stats.valid < scoring.lidar.min_points_ratio * typical)
                    or stats.empty_sectors > scoring.lidar.max_empty_sectors):
                continue
            recent.append(stats.valid)
            if item.seq >= first:
                yield (index, item.sensor), grid


def embed(model: ProxyModel, frames: list[tuple[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, mask of the frames the scorer would not call harmful with this model at the defaults)."""
    defaults = ModelConfig()
    spec = defaults.camera if isinstance(model, CameraModel) else defaults.lidar
    rows, ok = [], []
    for i in range(0, len(frames), BATCH):
        chunk = [x for _, x in frames[i:i + BATCH]]
        batch = model.inputs(chunk) if isinstance(model, CameraModel) else np.stack(chunk)
        for out in model.run(batch):
            rows.append(out.embedding)
            ok.append(out.harmful < spec.harmful_min_prob and out.ood < defaults.ood_trust_ratio)
    return np.stack(rows).astype(np.float64), np.asarray(ok, bool)


def pair_distances(sensors: list[tuple[int, str]], keep: np.ndarray, emb: np.ndarray,
                   gaps: Sequence[int]) -> np.ndarray:
    """L2 distances between each kept frame and the kept frames `gap` positions later on the same sensor."""
    out = []
    for sensor in dict.fromkeys(sensors):
        idx = [i for i, s in enumerate(sensors) if s == sensor and keep[i]]
        for gap in gaps:
            out.extend(float(np.linalg.norm(emb[a] - emb[b])) for a, b in zip(idx, idx[gap:], strict=False))
    return np.asarray(out)


def knots(distances: np.ndarray, probs: Sequence[float]) -> list[float]:
    """Quantiles rounded to DECIMALS and nudged up where needed so that they strictly increase."""
    values = [round(float(q), DECIMALS) for q in np.quantile(distances, probs)]
    for i in range(1, len(values)):
        if values[i] <= values[i - 1]:
            values[i] = round(values[i - 1] + STEP, DECIMALS)
    return values


def calibrate(model_path: str, canonical_path: str | None, reference: Sequence[str] | None,
              probs: Sequence[float] = PROBS, min_points: int = 1000, gaps: Sequence[int] = GAPS) -> dict:
    modality = modality_of(model_path)
    if canonical_path and modality_of(canonical_path) != modality:
        raise SystemExit(f"{canonical_path}: a {modality_of(canonical_path)} model cannot be the canonical scale "
                         f"of a {modality} model")
    paths = list(reference or default_reference(modality))
    model = load(model_path, modality)
    canonical = load(canonical_path, modality) if canonical_path else None
    if canonical is not None and canonical.spec.input_size != model.spec.input_size:
        raise SystemExit("the model and the canonical model take different input sizes")
    # The default camera reference is KITTI's colour camera (image_02); its grey image_00 is left out.
    skip = ("image_00",) if reference is None and modality == "camera" else ()
    frames = list(usable_frames(paths, modality, model.spec.input_size, min_points, skip))
    if not frames:
        raise SystemExit(f"no usable {modality} frames in {paths}")
    sensors = [s for s, _ in frames]
    emb, keep = embed(model, frames)
    can_emb, can_keep = embed(canonical, frames) if canonical is not None else (emb, keep)
    keep &= can_keep  # the same frames for both models
    counts = [int(sum(k for (i, _), k in zip(sensors, keep, strict=True) if i == index)) for index in range(len(paths))]
    raw_d = pair_distances(sensors, keep, emb, gaps)
    if len(raw_d) < len(probs) + 1:
        raise SystemExit(f"only {len(raw_d)} distances from {paths}: too few for {len(probs)} quantiles")
    raw = knots(raw_d, probs)
    can_d = pair_distances(sensors, keep, can_emb, gaps) if canonical is not None else raw_d
    can = knots(can_d, probs) if canonical is not None else list(raw)
    table = DistanceCalibration(tuple(raw), tuple(can), describe(paths, modality, counts, gaps))
    DistanceCalibration.from_metadata({KEY: table.to_metadata()}, model_path)  # the agent must accept it
    return {
        "model": model_path, "canonical": canonical_path or model_path, "modality": modality,
        "reference": table.reference, "distances": len(raw_d), "probs": list(probs),
        "raw": list(raw), "canonical_quantiles": list(can), "identity": table.identity,
        "raw_range": [round(float(raw_d.min()), 5), round(float(raw_d.max()), 5)],
        "canonical_range": [round(float(can_d.min()), 5), round(float(can_d.max()), 5)],
        "metadata": table.to_metadata(),
    }


def write(path: str, value: str) -> None:
    """Set edgesift.distance_calibration in the ONNX file, keeping every other metadata entry and its order."""
    model = onnx.load(path)
    key = PREFIX + KEY
    for entry in model.metadata_props:
        if entry.key == key:
            entry.value = value
            break
    else:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="ONNX proxy model (camera or LiDAR)")
    parser.add_argument("--canonical", help="model whose distance scale configs are written in (default: MODEL)")
    parser.add_argument("--reference", nargs="+", metavar="INPUT",
                        help="inputs the agent reads (KITTI folder, MCAP, pcap, video...); PATH@N: each sensor's "
                        "frames from sequence number N on. Default: the real recordings in ../shared/data that the "
                        "models' training held out (LiDAR: KITTI scans 20-29, plus the Velodyne pcaps; camera: KITTI "
                        "image_02 frames 20-29 and the last 20%% of the two videos)")
    parser.add_argument("--min-points", type=int, default=1000,
                        help="LiDAR scans with fewer valid points are left out (default 1000; the agent's own "
                        "min_points is sensor-specific)")
    parser.add_argument("--gaps", type=int, nargs="+", default=list(GAPS), metavar="N",
                        help="pair each frame with the usable frame N later on its sensor (default: 1 2 3 4 5)")
    parser.add_argument("--write", action="store_true", help="store the table in MODEL's metadata")
    args = parser.parse_args()
    if any(g < 1 for g in args.gaps):
        parser.error("--gaps must be >= 1")
    result = calibrate(args.model, args.canonical, args.reference, min_points=args.min_points, gaps=args.gaps)
    if args.write:
        write(args.model, result["metadata"])
        result["written"] = f"{PREFIX}{KEY} in {args.model}"
    del result["metadata"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

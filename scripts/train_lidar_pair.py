"""An experiment: a LiDAR fault model that compares a scan with the same sensor's scan before it (lidar-pair-4).

    python scripts/train_lidar_pair.py --out /tmp/lpair        # needs the `train` extra; writes lidar_pair_folds.json

The camera's version of this (scripts/train_camera_pair.py) transferred to sources it never saw where a model of one
frame did not. Here the same for LiDAR. Version 3 (scripts/train_lidar_loso.py) took one scan in its own units and
called 64-97% of valid scans of an unseen sensor family harmful.

The input makes no assumption about the sensor. Both scans go onto one grid of elevation x azimuth, with the
elevation span taken from the earlier scan (its 1st-99th percentile). Per cell: whether it has returns, how many
(over the earlier scan's mean per occupied cell), and their mean log range (less the earlier scan's median); plus
the three differences. An 8-beam Ouster and a 128-beam Hesai fill the same grid.

Pairs: consecutive scans of each recording of the field evaluation (scripts/_field_data.py); a single scan is paired
with a copy turned by up to 2 degrees, with up to 3% of its returns dropped (the next scan of a standing sensor).
Each pair gives one clean sample and three faulted ones (the kinds the shipped models learnt); leave-sources-out by
sensor family (train_lidar_loso.fold_of). Every held-out pair is also judged by the shipped checks (a scorer fed
the recording's scans before it), and by "the checks or the model".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _field_data import lidar_sources
from _field_eval import frame_of, judge, make
from _field_faults import LIDAR_FIELD_FAULTS, TRAINED, lidar_field_fault
from train_camera_pair import compare, predict, train
from train_lidar_loso import fold_of

from agent.scoring.base import Label

GRID = (32, 180)  # elevation x azimuth cells
TRAINED_KINDS = tuple(sorted(TRAINED["lidar"]))
UNSEEN = tuple(k for k in LIDAR_FIELD_FAULTS if k not in TRAINED["lidar"] and k != "frozen")  # frozen: exact, checks'
HISTORY = 3  # scans of a recording the checks see before a pair


def next_scan(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A standing sensor's next scan: turned by up to 2 degrees, up to 3% of the returns missing."""
    a = np.radians(rng.uniform(-2, 2))
    c, s = np.cos(a), np.sin(a)
    out = points[rng.random(len(points)) >= rng.uniform(0, 0.03)].copy()
    x, y = out[:, 0].copy(), out[:, 1].copy()
    out[:, 0], out[:, 1] = c * x - s * y, s * x + c * y
    return out


def _cells(points: np.ndarray, span: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: the count of returns and their mean log range (finite returns beyond 5 cm)."""
    p = points[np.isfinite(points[:, :3]).all(1)].astype(np.float64)
    r = np.linalg.norm(p[:, :3], axis=1)
    p, r = p[r > 0.05], r[r > 0.05]
    elev = np.degrees(np.arctan2(p[:, 2], np.hypot(p[:, 0], p[:, 1])))
    az = np.degrees(np.arctan2(p[:, 1], p[:, 0]))
    e = np.clip(((elev - span[0]) / max(span[1] - span[0], 1e-3) * GRID[0]).astype(int), 0, GRID[0] - 1)
    a = ((az + 180.0) / 360.0 * GRID[1]).astype(int) % GRID[1]
    index = e * GRID[1] + a
    count = np.bincount(index, minlength=GRID[0] * GRID[1]).astype(np.float32)
    logr = np.bincount(index, weights=np.log(r), minlength=GRID[0] * GRID[1]).astype(np.float32)
    return count.reshape(GRID), (logr / np.maximum(count, 1)).reshape(GRID)


def features(earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
    """9 x 32 x 180: occupancy, density and relative log range of both scans on the earlier scan's grid, and their
    differences."""
    finite = earlier[np.isfinite(earlier[:, :3]).all(1)]
    elev = np.degrees(np.arctan2(finite[:, 2], np.hypot(finite[:, 0], finite[:, 1]))) if len(finite) else [0.0]
    span = (float(np.percentile(elev, 1)), float(np.percentile(elev, 99)))
    c0, l0 = _cells(earlier, span)
    c1, l1 = _cells(later, span)
    per_cell = max(float(c0[c0 > 0].mean()) if (c0 > 0).any() else 1.0, 1.0)
    centre = float(np.median(l0[c0 > 0])) if (c0 > 0).any() else 0.0
    planes = []
    for c, logr in ((c1, l1), (c0, l0)):
        planes += [(c > 0).astype(np.float32), c / per_cell, np.where(c > 0, logr - centre, 0.0)]
    planes += [planes[i] - planes[i + 3] for i in range(3)]
    return np.stack(planes).astype(np.float32)


def pairs(cap: int, rng: np.random.Generator) -> list[dict]:
    out = []
    for source in lidar_sources():
        scans = [points for _, points, *_ in source.load()]
        n = len(scans)
        if source.sequence and n > 1:
            picks = np.unique(np.linspace(1, n - 1, min(cap, n - 1)).round().astype(int))
            found = [(scans[j - 1], scans[j], True, scans[max(0, j - 1 - HISTORY):j - 1]) for j in picks]
        else:
            found = [(x, next_scan(x, rng), False, []) for _ in range(max(1, -(-6 // n))) for x in scans]
        out += [{"source": source, "fold": fold_of(source.name), "condition": source.condition, "earlier": a,
                 "later": b, "real": r, "history": h} for a, b, r, h in found]
    return out


def checks_call(t: dict, later: np.ndarray) -> bool:
    """The shipped checks on the newer scan, after the recording's scans before it and the earlier one."""
    source = t["source"]
    scorer = make("heuristic", source)
    for seq, points in enumerate([*t["history"], t["earlier"]]):
        judge(scorer, frame_of(source, points, "lidar", seq))
    return judge(scorer, frame_of(source, later, "lidar", len(t["history"]) + 1)).label is Label.HARMFUL


def samples(triples: list[dict], rng: np.random.Generator, kinds: tuple[str, ...], faulted: int,
            clean: bool = True, with_checks: bool = False) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Per pair a clean sample (with `clean`) and `faulted` ones, each with a kind drawn from `kinds`."""
    x, y, info = [], [], []
    for t in triples:
        draws = [None] * clean + [str(k) for k in rng.choice(kinds, faulted, replace=False)]
        for kind in draws:
            later = t["later"] if kind is None else lidar_field_fault(t["later"], kind, rng)
            x.append(features(t["earlier"], later))
            y.append(0.0 if kind is None else 1.0)
            info.append({"source": t["source"].name, "condition": t["condition"], "real": t["real"],
                         "kind": kind or "clean", **({"checks": checks_call(t, later)} if with_checks else {})})
    return np.stack(x), np.asarray(y, np.float32), info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for lidar_pair_folds.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--cap", type=int, default=30, help="pairs per recording at most")
    args = parser.parse_args()
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    started, rng = time.time(), np.random.default_rng(args.seed)
    triples = pairs(args.cap, rng)
    x, y, info = samples(triples, rng, TRAINED_KINDS, 3)
    folds = np.array([fold_of(i["source"]) for i in info])
    print(f"{len(triples)} pairs, {len(y)} training samples, {time.time() - started:.0f}s", flush=True)
    report: dict = {"experiment": "lidar-pair-4", "options": {k: str(v) for k, v in vars(args).items()},
                    "pairs_per_fold": {f: int(sum(t["fold"] == f for t in triples)) for f in sorted(set(folds))},
                    "folds": {}}
    for fold in sorted(set(folds)):
        model = train(x[folds != fold], y[folds != fold], args.epochs, args.seed)
        held = [t for t in triples if t["fold"] == fold]
        tx, tinfo = [], []
        for kind in ("clean", *TRAINED_KINDS, *UNSEEN):
            kx, _, ki = samples(held, rng, TRAINED_KINDS if kind == "clean" else (kind,),
                                0 if kind == "clean" else 1, clean=kind == "clean", with_checks=True)
            tx.append(kx)
            tinfo += ki
        report["folds"][fold] = compare(predict(model, np.concatenate(tx)), tinfo, TRAINED_KINDS, UNSEEN)
        report["folds"][fold]["seconds_so_far"] = round(time.time() - started)
        (args.out / "lidar_pair_folds.json").write_text(json.dumps(report, indent=1) + "\n")
        print(f"{fold} done, {time.time() - started:.0f}s", flush=True)


if __name__ == "__main__":
    sys.exit(main())

"""An experiment: a camera fault model that compares a frame with the same camera's previous frame (camera-pair-4).

    python scripts/train_camera_pair.py --out /tmp/pair        # needs the `train` extra; prints JSON, writes it too

Version 3 (scripts/train_camera_loso.py) judged one frame alone and learnt the look of its training sources: on a
source it never saw it called 18-82% of the clean frames harmful. The checks, which compare a camera with its own
history, hold on every unseen source. This model gets what the checks get: the frame and the camera's frame before
it, both scaled by the earlier frame's own per-channel mean and spread (so a dark night stream and a bright day
look alike to it), and their difference. It is asked only whether the new frame shows a fault.

Pairs: consecutive frames of every recording of the field evaluation (scripts/_field_data.py). A source of stills
has no frame before; its pair is the still and a slightly moved, re-lit copy of it (what the next frame of a
camera looks like). Each pair gives one clean sample and two faulted ones (the second frame with a fault kind the
shipped models were trained on, _field_faults.TRAINED; the kinds no model saw are only ever tested).

Leave-sources-out: one model per fold of _field_data.CAMERA_FOLDS, trained without the fold; the figures are that
model on the fold's pairs: clean pairs called harmful, split into real consecutive frames and stills, and recall
per fault kind (trained kinds and the field kinds it never saw), at two thresholds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from _field_data import CAMERA_FOLDS, camera_sources
from _field_faults import CAMERA_FIELD_FAULTS, TRAINED, camera_field_fault
from torch import nn

if TYPE_CHECKING:
    from collections.abc import Callable

SIZE = [128, 72]  # (width, height) the model sees; --width changes it
SKIP = {"bdd_folder_one_stream"}  # the BDD stills again, as one stream
UNSEEN = tuple(k for k in CAMERA_FIELD_FAULTS if k not in TRAINED["camera"] and k != "frozen")  # frozen: the checks'
TRAINED_KINDS = tuple(sorted(TRAINED["camera"]))
THRESHOLDS = (0.5, 0.9)
HISTORY = 5  # frames of a recording the checks see before a pair (--with-checks)


def next_still(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a camera's next frame of a still might look like: moved 0-3%, scaled up to 3%, re-lit by up to 6%."""
    h, w = image.shape[:2]
    scale = rng.uniform(1.0, 1.03)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, scale)
    m[:, 2] += rng.uniform(-0.03, 0.03, 2) * (w, h)
    moved = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    return np.clip(moved * rng.uniform(0.94, 1.06), 0, 255).astype(np.uint8)


def small(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, tuple(SIZE), interpolation=cv2.INTER_AREA)


def pairs(cap: int, rng: np.random.Generator, gap: int = 1) -> list[dict]:
    """Per source up to `cap` (earlier, later, other) frame triples: `other` is a frame of the same recording, for a
    tear; `real` says whether `earlier` is a frame of the recording before (False: a still and its moved copy).
    `earlier` is 1 to `gap` frames before `later`: a camera at a low frame rate, or one whose frames in between
    were dropped, moves further between two frames than a 30 fps one. `history`: up to HISTORY frames of the
    recording before `earlier`, for the checks (--with-checks)."""
    fold_of = {s: fold for fold, names in CAMERA_FOLDS.items() for s in names}
    out = []
    for source in camera_sources():
        if source.name in SKIP:
            continue
        images = [x for _, x in source.load()]
        n = len(images)
        if source.sequence and n > 1:
            picks = np.unique(np.linspace(1, n - 1, min(cap, n - 1)).round().astype(int))
            back = [j - int(rng.integers(1, min(gap, j) + 1)) for j in picks]
            triples = [(images[i], images[j], images[(j + n // 2) % n], True, images[max(0, i - HISTORY):i])
                       for i, j in zip(back, picks, strict=True)]
        else:
            repeats = max(1, -(-min(cap, 8) // n))
            triples = [(x, next_still(x, rng), images[(i + 1) % n], False, [])
                       for _ in range(repeats) for i, x in enumerate(images)]
        out += [{"source": source.name, "fold": fold_of[source.name], "condition": source.condition,
                 "earlier": a, "later": b, "other": o, "real": r, "history": h} for a, b, o, r, h in triples]
    return out


def features(earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
    """9 x H x W: both frames scaled by the earlier frame's per-channel mean and spread, and their difference."""
    a, b = small(earlier).astype(np.float32), small(later).astype(np.float32)
    mean = a.mean((0, 1), keepdims=True)
    spread = a.std((0, 1), keepdims=True) + 8.0  # + 8 grey levels: a flat dark frame is not blown up to noise
    a, b = (a - mean) / spread, (b - mean) / spread
    return np.concatenate([b, a, b - a], axis=2).transpose(2, 0, 1).astype(np.float32)


def samples(triples: list[dict], rng: np.random.Generator, kinds: tuple[str, ...], faulted: int,
            checks: Callable[[dict, np.ndarray], bool] | None = None, clean: bool = True
            ) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Per triple a clean sample (with `clean`) and `faulted` samples, each with a kind drawn from `kinds`; with
    `checks`, each sample's info says whether the checks call its newer frame harmful."""
    x, y, info = [], [], []
    for t in triples:
        draws = [None] * clean + [str(k) for k in rng.choice(kinds, faulted, replace=False)]
        for kind in draws:
            later = t["later"] if kind is None else camera_field_fault(t["later"], kind, rng, t["other"])
            if kind is not None and np.array_equal(later, t["later"]):
                continue  # a swap of red and blue on a grey camera changes nothing: no fault to catch
            x.append(features(t["earlier"], later))
            y.append(0.0 if kind is None else 1.0)
            info.append({"source": t["source"], "fold": t["fold"], "condition": t["condition"], "real": t["real"],
                         "kind": kind or "clean", **({"checks": checks(t, later)} if checks else {})})
    return np.stack(x), np.asarray(y, np.float32), info


class PairNet(nn.Module):
    """Four strided convolutions and a max+mean pool: a fault may cover a small part of the frame."""

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        layers, c = [], 9
        for out in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(c, out, 3, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            c = out
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(2 * c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.body(x)
        return self.head(torch.cat([z.amax((2, 3)), z.mean((2, 3))], 1)).squeeze(1)


def train(x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> PairNet:
    torch.manual_seed(seed)
    model, gen = PairNet(), np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), 2e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 4e-3, total_steps=epochs * (-(-len(x) // 64)))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    weight = torch.tensor((y == 0).sum() / max(1.0, (y == 1).sum()))  # clean and faulted count alike
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=weight)
    model.train()
    for _ in range(epochs):
        order = torch.from_numpy(gen.permutation(len(x)))
        for i in range(0, len(x), 64):
            batch = order[i:i + 64]
            xb = xt[batch]
            if gen.random() < 0.5:
                xb = xb.flip(3)  # a mirrored road is a road
            opt.zero_grad()
            loss_fn(model(xb), yt[batch]).backward()
            opt.step()
            sched.step()
    return model.eval()


def predict(model: PairNet, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(torch.cat([model(torch.from_numpy(x[i:i + 256])) for i in range(0, len(x), 256)])
                             ).numpy()


def figures(p: np.ndarray, info: list[dict]) -> dict:
    """Per source and per condition: clean pairs called harmful (real consecutive frames / stills) and recall per
    kind, at each threshold."""
    out: dict = {}
    for key in ("source", "condition"):
        for name in sorted({i[key] for i in info}):
            rows = [(q, i) for q, i in zip(p, info, strict=True) if i[key] == name]
            entry = {}
            for t in THRESHOLDS:
                clean_real = [q >= t for q, i in rows if i["kind"] == "clean" and i["real"]]
                clean_still = [q >= t for q, i in rows if i["kind"] == "clean" and not i["real"]]
                by_kind = {k: [q >= t for q, i in rows if i["kind"] == k] for k in (*TRAINED_KINDS, *UNSEEN)}
                trained = [h for k in TRAINED_KINDS for h in by_kind[k]]
                unseen = [h for k in UNSEEN for h in by_kind[k]]
                entry[str(t)] = {
                    "false_harmful_consecutive": _share(clean_real), "consecutive_pairs": len(clean_real),
                    "false_harmful_stills": _share(clean_still), "still_pairs": len(clean_still),
                    "recall_trained": _share(trained), "recall_unseen": _share(unseen),
                    "recall": {k: _share(v) for k, v in by_kind.items() if v}}
            out.setdefault(key, {})[name] = entry
    return out


def heuristic_checks() -> Callable[[dict, np.ndarray], bool]:
    """The shipped checks (scoring.kind heuristic) on a pair: a scorer fed the recording's frames before it, the
    earlier frame, then the newer one (for a still: the still, then its moved copy)."""
    from _field_eval import frame_of, judge, make

    from agent.scoring.base import Label

    sources = {s.name: s for s in camera_sources()}

    def call(t: dict, later: np.ndarray) -> bool:
        source = sources[t["source"]]
        scorer = make("heuristic", source)
        for seq, image in enumerate([*t["history"], t["earlier"]]):
            judge(scorer, frame_of(source, image, "cam", seq))
        return judge(scorer, frame_of(source, later, "cam", len(t["history"]) + 1)).label is Label.HARMFUL

    return call


def compare(p: np.ndarray, info: list[dict], trained: tuple[str, ...] = TRAINED_KINDS,
            unseen: tuple[str, ...] = UNSEEN) -> dict:
    """Per source and per condition: the checks alone, the pair model alone and either of them (at each threshold):
    clean pairs called harmful, and recall on the `trained` kinds, on the `unseen` ones and per kind."""
    methods: dict[str, Callable[[float, dict], bool]] = {"checks": lambda q, i: i["checks"]}
    for t in THRESHOLDS:
        methods[f"pair@{t}"] = lambda q, i, t=t: q >= t
        methods[f"either@{t}"] = lambda q, i, t=t: q >= t or i["checks"]
    out: dict = {}
    for key in ("source", "condition"):
        for name in sorted({i[key] for i in info}):
            rows = [(q, i) for q, i in zip(p, info, strict=True) if i[key] == name]
            entry = {}
            for method, call in methods.items():
                by_kind = {k: [call(q, i) for q, i in rows if i["kind"] == k] for k in ("clean", *trained, *unseen)}
                clean = by_kind.pop("clean")
                entry[method] = {
                    "false_harmful": _share(clean), "clean_pairs": len(clean),
                    "recall_trained": _share([h for k in trained for h in by_kind[k]]),
                    "recall_unseen": _share([h for k in unseen for h in by_kind[k]]),
                    "recall": {k: _share(v) for k, v in by_kind.items() if v}}
            out.setdefault(key, {})[name] = entry
    return out


def _share(hits: list[bool]) -> float | None:
    return round(float(np.mean(hits)), 4) if hits else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for pair_folds.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--cap", type=int, default=40, help="pairs per source at most")
    parser.add_argument("--faulted", type=int, default=2, help="faulted samples per training pair")
    parser.add_argument("--with-checks", action="store_true", help="also the shipped checks on every held-out "
                        "pair, and the checks or the model together (slow: a scorer per pair)")
    parser.add_argument("--width", type=int, default=128, help="model input width (height: 9/16 of it)")
    parser.add_argument("--gap", type=int, default=1, help="training pairs are 1 to this many frames apart")
    args = parser.parse_args()
    torch.set_num_threads(2)
    SIZE[:] = [args.width, round(args.width * 9 / 16)]
    args.out.mkdir(parents=True, exist_ok=True)
    started, rng = time.time(), np.random.default_rng(args.seed)
    np.random.seed(args.seed)  # imagecorruptions draws its noise from numpy's global generator
    triples = pairs(args.cap, rng)  # held-out figures: consecutive frames, as a stream has them
    train_triples = pairs(args.cap, rng, args.gap) if args.gap > 1 else triples
    x, y, info = samples(train_triples, rng, TRAINED_KINDS, args.faulted)
    folds = np.array([i["fold"] for i in info])
    print(f"{len(triples)} pairs, {len(y)} training samples, {time.time() - started:.0f}s", flush=True)
    report: dict = {"experiment": "camera-pair-4", "options": {k: str(v) for k, v in vars(args).items()},
                    "pairs_per_fold": {f: int(sum(t["fold"] == f for t in triples)) for f in CAMERA_FOLDS},
                    "folds": {}}
    for fold in CAMERA_FOLDS:
        model = train(x[folds != fold], y[folds != fold], args.epochs, args.seed)
        held = [t for t in triples if t["fold"] == fold]
        # every kind on every held-out pair: the trained ones and those no model saw
        tx, tinfo = [], []
        checks = heuristic_checks() if args.with_checks else None
        for kind in ("clean", *TRAINED_KINDS, *UNSEEN):
            kx, _, ki = samples(held, rng, TRAINED_KINDS if kind == "clean" else (kind,), 0 if kind == "clean" else 1,
                                checks, clean=kind == "clean")
            tx.append(kx)
            tinfo += ki
        p = predict(model, np.concatenate(tx))
        report["folds"][fold] = figures(p, tinfo)
        if checks:
            report["folds"][fold]["with_checks"] = compare(p, tinfo)
        report["folds"][fold]["seconds_so_far"] = round(time.time() - started)
        (args.out / "pair_folds.json").write_text(json.dumps(report, indent=1) + "\n")
        print(f"{fold} done, {time.time() - started:.0f}s", flush=True)
    print(json.dumps({f: {s: v["0.9"]["recall_trained"] for s, v in r["source"].items()}
                      for f, r in report["folds"].items()}))


if __name__ == "__main__":
    sys.exit(main())

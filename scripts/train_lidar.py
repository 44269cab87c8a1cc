"""Train the LiDAR proxy: a tiny CNN on a 64x64 bird's-eye view (agent.model.preprocess.BevBuilder, the same
code the agent runs) with a fault head (real KITTI scans with dropouts, sector loss, noise, NaN, lost rings) and
a contrastive embedding (two jittered views of one scan agree, other scans differ). Exports FP32 and INT8 ONNX.

    python scripts/train_lidar.py --seed 0        # ~1 min on 2 CPU cores; needs the `train` extra

Version 2 (models/lidar_proxy_v2_*.onnx: another seed, a 64-d embedding, InfoNCE temperature 0.2), then its
distance calibration onto version 1's scale (see models/lidar_proxy.md):

    python scripts/train_lidar.py --seed 1 --version 2 --embed-dim 64 --temperature 0.2 --out-prefix lidar_proxy_v2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _export import export, kmeans, latency_ms, quantize, run_onnx, set_metadata
from _train_data import LIDAR_FAULTS, kitti_scans, lidar_augment, lidar_fault
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agent.model.preprocess import BEV_CHANNELS, BevBuilder

GRID = 64
EMBED = 32


def block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class BevNet(nn.Module):
    """Three stride-2 3x3 convs (~2.4 M MACs at width 16): the LiDAR path must stay within a few ms per scan on
    one core. `width` is the first conv's channels (the others have twice as many)."""

    def __init__(self, width: int = 16, embed_dim: int = EMBED) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = block(BEV_CHANNELS, width), block(width, 2 * width), block(2 * width, 2 * width)
        self.embed = nn.Linear(width + 4 * width, embed_dim)
        self.fault = nn.Linear(width + 4 * width, len(LIDAR_FAULTS))

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        a = self.l1(x)
        c = self.l3(self.l2(a))
        return torch.cat([a.mean((2, 3)), c.mean((2, 3)), c.amax((2, 3))], 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return nn.functional.normalize(self.embed(h), dim=1), self.fault(h).softmax(1)


def build(scans: list[np.ndarray], oks: int, per_fault: int, seed: int, bev=None) -> dict[str, np.ndarray]:
    """`bev`: the view builder (default: the fixed HDL-64E view of versions 1 and 2)."""
    rng = np.random.default_rng(seed)
    bev = bev or BevBuilder(GRID)
    views, pairs, labels = [], [], []
    for scan in scans:
        for _ in range(oks):
            base = lidar_augment(scan, rng)
            views.append(bev(lidar_augment(base, rng, yaw_max=0.03))[0])
            pairs.append(bev(lidar_augment(base, rng, yaw_max=0.03))[0])
            labels.append(0)
        for k, fault in enumerate(LIDAR_FAULTS[1:], start=1):
            for _ in range(per_fault):
                views.append(bev(lidar_fault(lidar_augment(scan, rng), fault, rng))[0])
                pairs.append(views[-1])
                labels.append(k)
    return {"x": np.stack(views), "pair": np.stack(pairs), "fault": np.array(labels)}


def train(data: dict[str, np.ndarray], epochs: int, seed: int, width: int = 16, embed_dim: int = EMBED,
          temperature: float = 0.1) -> BevNet:
    torch.manual_seed(seed)
    model = BevNet(width, embed_dim)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    x, pair = torch.from_numpy(data["x"]), torch.from_numpy(data["pair"])
    fault = torch.from_numpy(data["fault"])
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), 64):
            idx = order[i:i + 64]
            h = model.trunk(torch.cat([x[idx], pair[idx]]))
            loss = nn.functional.cross_entropy(model.fault(h[: len(idx)]), fault[idx])
            clean = (fault[idx] == 0).nonzero().flatten()
            if len(clean) > 1:  # InfoNCE over the clean pairs of the batch
                e = nn.functional.normalize(model.embed(h), dim=1)
                a, b = e[clean], e[len(idx) + clean]
                logits = a @ b.T / temperature
                loss = loss + nn.functional.cross_entropy(logits, torch.arange(len(clean)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        print(f"epoch {epoch + 1}/{epochs} loss {total / len(x):.4f}", flush=True)
    return model.eval()


def metrics(outputs: dict[str, np.ndarray], fault: np.ndarray) -> dict:
    harm = 1.0 - outputs["fault_probs"][:, 0]
    bad = fault != 0
    return {"harmful_recall": round(float((harm[bad] >= 0.5).mean()), 4),
            "false_harmful": round(float((harm[~bad] >= 0.5).mean()), 4),
            "fault_accuracy": round(float((outputs["fault_probs"].argmax(1) == fault).mean()), 4),
            "recall_per_fault": {LIDAR_FAULTS[k]: round(float((harm[fault == k] >= 0.5).mean()), 4)
                                 for k in range(1, len(LIDAR_FAULTS))}}


def export_pair(model: BevNet, data: dict[str, np.ndarray], fp32: Path, int8: Path, seed: int, version: str,
                training: str, extra: dict[str, str]) -> dict:
    """FP32 and INT8 (QDQ) ONNX files of `model` with their edgesift metadata (plus `extra`); the OOD centroids and
    threshold come from the model's embeddings of the clean samples of `data` (its training set)."""
    outputs = ["embedding", "fault_probs"]
    export(model, torch.zeros(1, BEV_CHANNELS, GRID, GRID), fp32, outputs)
    emb = run_onnx(fp32, data["x"])["embedding"][data["fault"] == 0]
    centroids, _ = kmeans(emb, 12, seed)
    meta = {
        "model_version": version, "modality": "lidar", "input_size": f"{GRID}x{GRID}",
        "mean": [0.0] * BEV_CHANNELS, "std": [1.0] * BEV_CHANNELS, "outputs": outputs,
        "fault_classes": list(LIDAR_FAULTS), "scene_classes": [], **extra,
        "ood_centroids": np.round(centroids, 4).tolist(),
        "ood_threshold": f"{float(np.percentile(1.0 - (emb @ centroids.T).max(1), 99)):.5f}",
        "harmful_threshold": "0.5", "training": training,
    }
    set_metadata(fp32, {**meta, "quantization": "fp32"})
    rng = np.random.default_rng(seed)
    quantize(fp32, int8, data["x"][rng.choice(len(data["x"]), min(200, len(data["x"])), replace=False)], meta)
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "models")
    parser.add_argument("--version", default="1", help="model version: edgesift.model_version is lidar-proxy-VERSION")
    parser.add_argument("--width", type=int, default=16, help="channels of the first conv (then 2x, 2x)")
    parser.add_argument("--embed-dim", type=int, default=EMBED, help="embedding dimension")
    parser.add_argument("--temperature", type=float, default=0.1, help="InfoNCE temperature of the embedding loss")
    parser.add_argument("--out-prefix", default="lidar_proxy",
                        help="file names: PREFIX_fp32.onnx, PREFIX_int8.onnx, PREFIX.metrics.json")
    args = parser.parse_args()
    options = "".join(f" --{name.replace('_', '-')} {getattr(args, name)}" for name, default in (
        ("version", "1"), ("width", 16), ("embed_dim", EMBED), ("temperature", 0.1), ("out_prefix", "lidar_proxy"))
        if getattr(args, name) != default)
    torch.set_num_threads(2)
    started = time.time()
    train_set = build(kitti_scans(range(20)), oks=16, per_fault=4, seed=args.seed)
    test_set = build(kitti_scans(range(20, 30)), oks=8, per_fault=4, seed=args.seed + 1000)
    print(f"{len(train_set['x'])} train / {len(test_set['x'])} held-out BEVs, {time.time() - started:.0f}s", flush=True)
    model = train(train_set, args.epochs, args.seed, args.width, args.embed_dim, args.temperature)
    args.out.mkdir(parents=True, exist_ok=True)
    fp32, int8 = args.out / f"{args.out_prefix}_fp32.onnx", args.out / f"{args.out_prefix}_int8.onnx"
    export_pair(model, train_set, fp32, int8, args.seed, f"lidar-proxy-{args.version}",
                f"scripts/train_lidar.py --seed {args.seed}{options}",
                {"bev": "log-density ground/high, bright, nonfinite"})
    report = {"seconds": round(time.time() - started), "train_samples": len(train_set["x"]),
              "test_samples": len(test_set["x"])}
    for name, path in (("fp32", fp32), ("int8", int8)):
        report[name] = metrics(run_onnx(path, test_set["x"]), test_set["fault"])
        report[name]["latency_ms_batch1_1thread"] = round(latency_ms(path, test_set["x"][:1]), 4)
        report[name]["bytes"] = path.stat().st_size
    (args.out / f"{args.out_prefix}.metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

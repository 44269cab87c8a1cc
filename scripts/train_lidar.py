"""Train the LiDAR proxy: a tiny CNN on a 64x64 bird's-eye view (agent.model.preprocess.BevBuilder, the same
code the agent runs) with a fault head (real KITTI scans with dropouts, sector loss, noise, NaN, lost rings) and
a contrastive embedding (two jittered views of one scan agree, other scans differ). Exports FP32 and INT8 ONNX.

    python scripts/train_lidar.py --seed 0        # ~1 min on 2 CPU cores; needs the `train` extra
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
VERSION = "lidar-proxy-1"


def block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class BevNet(nn.Module):
    """Three stride-2 3x3 convs (~2.4 M MACs): the LiDAR path must stay within a few ms per scan on one core."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = block(BEV_CHANNELS, 16), block(16, 32), block(32, 32)
        self.embed = nn.Linear(16 + 64, EMBED)
        self.fault = nn.Linear(16 + 64, len(LIDAR_FAULTS))

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        a = self.l1(x)
        c = self.l3(self.l2(a))
        return torch.cat([a.mean((2, 3)), c.mean((2, 3)), c.amax((2, 3))], 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return nn.functional.normalize(self.embed(h), dim=1), self.fault(h).softmax(1)


def build(scans: list[np.ndarray], oks: int, per_fault: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    bev = BevBuilder(GRID)
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


def train(data: dict[str, np.ndarray], epochs: int, seed: int) -> BevNet:
    torch.manual_seed(seed)
    model = BevNet()
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
                logits = a @ b.T / 0.1
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "models")
    args = parser.parse_args()
    torch.set_num_threads(2)
    started = time.time()
    train_set = build(kitti_scans(range(20)), oks=16, per_fault=4, seed=args.seed)
    test_set = build(kitti_scans(range(20, 30)), oks=8, per_fault=4, seed=args.seed + 1000)
    print(f"{len(train_set['x'])} train / {len(test_set['x'])} held-out BEVs, {time.time() - started:.0f}s", flush=True)
    model = train(train_set, args.epochs, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    fp32, int8 = args.out / "lidar_proxy_fp32.onnx", args.out / "lidar_proxy_int8.onnx"
    outputs = ["embedding", "fault_probs"]
    export(model, torch.zeros(1, BEV_CHANNELS, GRID, GRID), fp32, outputs)
    emb = run_onnx(fp32, train_set["x"])["embedding"][train_set["fault"] == 0]
    centroids, _ = kmeans(emb, 12, args.seed)
    meta = {
        "model_version": VERSION, "modality": "lidar", "input_size": f"{GRID}x{GRID}",
        "mean": [0.0] * BEV_CHANNELS, "std": [1.0] * BEV_CHANNELS, "outputs": outputs,
        "fault_classes": list(LIDAR_FAULTS), "scene_classes": [], "bev": "log-density ground/high, bright, nonfinite",
        "ood_centroids": np.round(centroids, 4).tolist(),
        "ood_threshold": f"{float(np.percentile(1.0 - (emb @ centroids.T).max(1), 99)):.5f}",
        "harmful_threshold": "0.5", "training": f"scripts/train_lidar.py --seed {args.seed}",
    }
    set_metadata(fp32, {**meta, "quantization": "fp32"})
    rng = np.random.default_rng(args.seed)
    quantize(fp32, int8, train_set["x"][rng.choice(len(train_set["x"]), 200, replace=False)], meta)
    report = {"seconds": round(time.time() - started), "train_samples": len(train_set["x"]),
              "test_samples": len(test_set["x"])}
    for name, path in (("fp32", fp32), ("int8", int8)):
        report[name] = metrics(run_onnx(path, test_set["x"]), test_set["fault"])
        report[name]["latency_ms_batch1_1thread"] = round(latency_ms(path, test_set["x"][:1]), 4)
        report[name]["bytes"] = path.stat().st_size
    (args.out / "lidar_proxy.metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

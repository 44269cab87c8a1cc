#!/usr/bin/env python3
"""Benchmark `edgesift tune` on labelled evaluation drives and print JSON: the time to score and to sweep each
drive, and the baseline table at equal budget with the issue's targets checked.

    python scripts/bench_tune.py                                  # builds runs/eval/{idle,busy} when missing
    python scripts/bench_tune.py --drive DIR --scorer proxy --target-mb-per-hour 2000

Drives are built by scripts/make_eval_drive.py from ../shared/data (idle: 10 minutes, ~98% stationary as the
shared data holds little distinct driving; busy: shortened to ~20 s, 30% stationary); give --drive for others (a
folder holding drive.mcap and labels.jsonl).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from agent.config.model import AgentConfig  # noqa: E402
from agent.tune.runner import run_tune  # noqa: E402
from agent.tune.sweep import Target  # noqa: E402

# The shared recordings hold about 13.5 s of distinct driving at 2 Hz: the busy drive is shortened to keep 30% idle.
DEFAULT_DRIVES = {"idle": {"minutes": 10.0, "idle_fraction": 0.85},
                  "busy": {"minutes": 3.0, "idle_fraction": 0.3, "shorten": True}}
COLUMNS = ("kept", "keep_rate", "mb_per_hour", "bytes_dropped", "helpful_kept", "harmful_caught", "useless_dropped")


def ensure_drive(name: str, root: Path, seed: int) -> Path:
    out = root / name
    if not (out / "drive.mcap").is_file():
        from make_eval_drive import build_drive

        build_drive(out, source="shared", seed=seed, camera_hz=2.0, lidar_hz=2.0, **DEFAULT_DRIVES[name])
    return out


def checks(table: list[dict]) -> dict:
    ours, others = table[0], [r for r in table[1:] if r["method"] != "keep-all"]
    return {
        "harmful_caught_ge_0.95": (ours.get("harmful_caught") or 0) >= 0.95,
        "helpful_kept_ge_0.95": (ours.get("helpful_kept") or 0) >= 0.95,
        "bytes_dropped_ge_0.70": ours["bytes_dropped"] >= 0.70,
        "best_helpful_kept_at_equal_budget": all((ours.get("helpful_kept") or 0) > (r.get("helpful_kept") or 0)
                                                 for r in others),
    }


def bench(drive: Path, scorer: str, target: Target) -> dict:
    config = AgentConfig.model_validate({"scoring": {"kind": scorer}})
    with tempfile.TemporaryDirectory() as tmp:
        result = run_tune([str(drive / "drive.mcap")], Path(tmp), config, target, progress=False)
    table = [{"method": r["method"], **{k: r.get(k) for k in COLUMNS},
              "harmful_caught_by_fault": r.get("harmful_caught_by_fault")} for r in result["baselines"]]
    return {
        "drive": str(drive), "scorer": scorer, "frames": result["frames"], "duration_s": result["duration_s"],
        "timing": result["timing"], "current": {k: result["current"].get(k) for k in COLUMNS},
        "suggested": result["suggested"], "baselines": table, "targets": checks(table),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drive", action="append", type=Path, help="labelled drive folder (repeatable)")
    parser.add_argument("--root", type=Path, default=REPO / "runs" / "eval", help="where default drives are built")
    parser.add_argument("--scorer", action="append", choices=("heuristic", "proxy", "hybrid"))
    parser.add_argument("--target-mb-per-hour", type=float)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    drives = args.drive or [ensure_drive(name, args.root, args.seed) for name in DEFAULT_DRIVES]
    target = Target(args.target_mb_per_hour)
    runs = [bench(d, s, target) for d in drives for s in (args.scorer or ["heuristic"])]
    print(json.dumps({"runs": runs}, indent=1))


if __name__ == "__main__":
    main()

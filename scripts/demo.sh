#!/usr/bin/env bash
# Set up, then replay the bundled sample drive (real KITTI camera + LiDAR) through the default policy.
# No broker, GPU or network needed. Output: runs/demo/{decisions.jsonl,summary.json,kept.mcap,report.html}.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/edgesift replay data/sample_drive.mcap --out runs/demo "$@"

"""A small corpus of real drives for the corpus tests: the sample drive, a KITTI folder built from its frames, and
(when ../shared/data is beside the checkout) a KITTI drive, a dusk image sequence and a highway video from it."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import SAMPLE_DRIVE, SHARED_DATA, write_kitti_drive

from agent.config import load_config
from agent.config.model import AgentConfig

MAX_FRAMES = 30  # per drive: enough for redundancy, budgets and streaks to matter, short on 2 cores


def corpus_drives(root: Path) -> list[dict[str, object]]:
    kitti = write_kitti_drive(root / "kitti_from_sample", frames=range(12))
    drives: list[dict[str, object]] = [
        {"id": "sample", "vehicle": "kitti-car", "inputs": [str(SAMPLE_DRIVE)]},
        {"id": "kitti-png", "vehicle": "kitti-car", "inputs": [str(kitti)]},
    ]
    shared = {
        "kitti-sync": ("kitti-car", SHARED_DATA / "kitti/2011_09_26/udacity_sfnd_sync", None),
        "camvid-dusk": ("camvid-car", SHARED_DATA / "camera/dusk_uk_camvid_0001TP", "dusk"),
        "highway": ("udacity-car", SHARED_DATA / "video/udacity_lanelines_solidWhiteRight.mp4", None),
    }
    for drive_id, (vehicle, path, condition) in shared.items():
        if path.exists():
            drives.append({"id": drive_id, "vehicle": vehicle, "inputs": [str(path)], "condition": condition})
    return drives


def write_manifest(path: Path, drives: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in drives), encoding="utf-8")
    return path


def write_config(path: Path) -> Path:
    path.write_text(f"inputs:\n  max_frames: {MAX_FRAMES}\n", encoding="utf-8")
    return path


def corpus_files(root: Path) -> tuple[list[dict[str, object]], Path, Path]:
    """The corpus's drives, its manifest and its config file, written under root."""
    drives = corpus_drives(root)
    return drives, write_manifest(root / "m.jsonl", drives), write_config(root / "agent.yaml")


def corpus_config(path: Path) -> AgentConfig:
    return load_config(str(write_config(path)))


def decisions_of(out: Path) -> dict[str, bytes]:
    """Each replayed drive's decisions.jsonl, by drive id."""
    return {p.parent.name: p.read_bytes() for p in sorted((out / "drives").glob("*/decisions.jsonl"))}

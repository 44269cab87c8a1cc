"""scripts/make_eval_drive.py: labelled evaluation drives (real frames, stationary repeats, injected faults).

The fast test builds a half-minute drive from the shipped sample drive (no ../shared needed); the shared one builds
a minute from ../shared/data. Both check the labels against the MCAP and against `edgesift replay`'s decisions.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from agent.config.model import AgentConfig
from agent.replay.runner import run_replay
from agent.scoring import camera_checks
from agent.sources.decode import decode_image_bytes

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from _eval_drive_parts import CAMERA_FAULTS, LIDAR_FAULTS  # noqa: E402
from make_eval_drive import build_drive  # noqa: E402

# Fault types the heuristic scorer has a check for (it has none for image or point noise, nor for a tear that
# keeps texture): of these, most injected instances must be judged harmful.
HEURISTIC_CHECKS = {"camera": {"frozen", "overexposed", "underexposed", "occluded"},
                    "lidar": {"sparse", "sector_loss", "nonfinite", "lost_rings"}}
ANALYSIS_WIDTH = AgentConfig().scoring.camera.analysis_width


def _messages(path: Path) -> dict[str, list[tuple[int, int, bytes]]]:
    """topic -> [(log time, header stamp ns, payload bytes)] in file order."""
    out: dict[str, list[tuple[int, int, bytes]]] = {}
    with path.open("rb") as fh:
        reader = make_reader(fh, decoder_factories=[DecoderFactory()])
        for _schema, channel, message, ros in reader.iter_decoded_messages(log_time_order=False):
            stamp = ros.header.stamp.sec * 1_000_000_000 + ros.header.stamp.nanosec
            out.setdefault(channel.topic, []).append((message.log_time, stamp, bytes(ros.data)))
    return out


def _grey(jpeg: bytes, width: int) -> np.ndarray:
    """The frame as the camera checks see it (reduced decode, analysis-width grey)."""
    image = decode_image_bytes(jpeg, ANALYSIS_WIDTH, width)
    return camera_checks.analysis_greys(image, ANALYSIS_WIDTH)[0]


def check_drive(out: Path, replay_dir: Path) -> dict[str, float]:
    drive = json.loads((out / "drive.json").read_text())
    labels = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    messages = _messages(out / "drive.mcap")
    by_sensor: dict[str, list[dict]] = {}
    for row in labels:
        by_sensor.setdefault(row["sensor"], []).append(row)
    assert set(by_sensor) == set(drive["sensors"])
    payloads: dict[str, list[bytes]] = {}
    for sensor, rows in by_sensor.items():
        info = drive["sensors"][sensor]
        msgs = messages[info["topic"]]
        assert len(rows) == len(msgs) == info["frames"]
        assert [r["seq"] for r in rows] == list(range(len(rows)))
        assert [r["t_ns"] for r in rows] == [m[0] for m in msgs] == [m[1] for m in msgs]
        assert all(r["modality"] == info["modality"] for r in rows)
        payloads[sensor] = [m[2] for m in msgs]
    # Labels: harmful exactly where a fault is; every fault type present; helpful only while driving.
    assert all((r["label"] == "harmful") == (r["fault"] is not None) for r in labels)
    assert all(r["segment"] == "driving" for r in labels if r["label"] == "helpful")
    for modality, types in (("camera", CAMERA_FAULTS), ("lidar", LIDAR_FAULTS)):
        present = Counter(r["fault"] for r in labels if r["modality"] == modality and r["fault"])
        assert set(present) == set(types), (modality, present)
    assert drive["total"]["label"] == dict(Counter(r["label"] for r in labels))

    camera = next(s for s, i in drive["sensors"].items() if i["modality"] == "camera")
    lidar = next(s for s, i in drive["sensors"].items() if i["modality"] == "lidar")
    cam_rows, cam_data, width = by_sensor[camera], payloads[camera], drive["sensors"][camera]["size"][0]
    # Frozen faults are exact byte copies of the previous frame; stationary repeats differ (not frozen) but only
    # by sensor noise: clearly above the frozen threshold of 0.25 grey levels, far from a new view.
    for k, row in enumerate(cam_rows):
        if row["fault"] == "frozen":
            assert cam_data[k] == cam_data[k - 1]
    diffs, distances = [], []
    for k in range(1, len(cam_rows)):
        pair = cam_rows[k - 1: k + 1]
        if all(r["segment"] == "stationary" and r["label"] == "useless" for r in pair):
            assert cam_data[k] != cam_data[k - 1]
            a, b = _grey(cam_data[k - 1], width), _grey(cam_data[k], width)
            diffs.append(float(np.abs(a.astype(np.float32) - b).mean()))
            da, db = camera_checks.measure(a).descriptor, camera_checks.measure(b).descriptor
            distances.append(float(np.linalg.norm(da - db)))
    assert diffs, "no consecutive stationary camera frames"
    print(f"stationary camera pairs: {len(diffs)}, mean abs diff {min(diffs):.2f}-{max(diffs):.2f} grey levels, "
          f"descriptor distance max {max(distances):.4f}")
    assert min(diffs) > 0.35 and max(diffs) < 8.0
    assert max(distances) < 0.05
    lidar_rows, lidar_data = by_sensor[lidar], payloads[lidar]
    for k in range(1, len(lidar_rows)):
        if lidar_rows[k]["label"] == "useless":
            assert lidar_data[k] != lidar_data[k - 1]

    # The labels join `edgesift replay`'s decisions on (sensor, seq) with the same t_ns and bytes.
    run_replay([str(out / "drive.mcap")], replay_dir, AgentConfig(), progress=False)
    decisions = {(d["sensor"], d["seq"]): d for d in map(json.loads, (replay_dir / "decisions.jsonl").open())}
    assert set(decisions) == {(r["sensor"], r["seq"]) for r in labels}
    for row in labels:
        d = decisions[row["sensor"], row["seq"]]
        assert (d["t_ns"], d["bytes"], d["modality"]) == (row["t_ns"], row["bytes"], row["modality"])

    # The default heuristic scorer on the injected faults (printed per type; asserted where it has a check).
    figures: dict[str, float] = {}
    for modality in ("camera", "lidar"):
        rows = [(r, decisions[r["sensor"], r["seq"]]) for r in labels if r["modality"] == modality]
        per_type: dict[str, list[bool]] = {}
        for r, d in rows:
            if r["fault"]:
                per_type.setdefault(r["fault"], []).append(d["verdict"] == "harmful")
        checked = [hit for t, hits in per_type.items() if t in HEURISTIC_CHECKS[modality] for hit in hits]
        helpful = [d["kept"] for r, d in rows if r["label"] == "helpful"]
        figures[modality] = float(np.mean([h for hits in per_type.values() for h in hits]))
        print(f"{modality}: judged harmful {figures[modality]:.2f} of injected faults, "
              f"{np.mean(checked):.2f} of the types the heuristic checks; per type "
              f"{ {t: f'{sum(h)}/{len(h)}' for t, h in sorted(per_type.items())} }; "
              f"harmful dropped {np.mean([not d['kept'] for r, d in rows if r['fault']]):.2f}; "
              f"helpful kept {sum(helpful)}/{len(helpful)}")
        assert np.mean(checked) >= 0.8
        assert figures[modality] >= 0.5
        assert np.mean(helpful) >= 0.8
    return figures


def test_sample_eval_drive_labels_match_mcap_and_replay(tmp_path: Path) -> None:
    summary = build_drive(tmp_path / "drive", source="sample", minutes=0.5, idle_fraction=0.85, camera_hz=2.0,
                          lidar_hz=2.0, seed=3)
    assert summary["duration_s"] == 30.0
    assert summary["idle_fraction"]["actual"] >= 0.8
    check_drive(tmp_path / "drive", tmp_path / "replay")
    again = build_drive(tmp_path / "again", source="sample", minutes=0.5, idle_fraction=0.85, camera_hz=2.0,
                        lidar_hz=2.0, seed=3)
    if again["fault_impl"]["camera"] == summary["fault_impl"]["camera"]:  # deterministic from the seed
        assert (tmp_path / "again/labels.jsonl").read_bytes() == (tmp_path / "drive/labels.jsonl").read_bytes()


@pytest.mark.shared
@pytest.mark.slow
def test_shared_eval_drive_labels_match_mcap_and_replay(tmp_path: Path, shared_data: Path) -> None:
    summary = build_drive(tmp_path / "drive", source="shared", minutes=1.0, idle_fraction=0.85, camera_hz=2.0,
                          lidar_hz=2.0, seed=1, shared_dir=shared_data)
    assert summary["sensors"]["camera_front"]["size"] == [1280, 720]
    assert summary["total"]["segment"]["driving"] > 0
    check_drive(tmp_path / "drive", tmp_path / "replay")

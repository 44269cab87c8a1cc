"""`edgesift replay` end to end on the shipped sample drive, and on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import sample_frames
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from agent.config import AgentConfig
from agent.replay.runner import run_replay

# Harmful frames of the sample drive: (sensor, kitti frame number) -> first reason.
EXPECTED_HARMFUL = {
    ("kitti_camera_02", 8): "blur",
    ("kitti_camera_02", 13): "occluded",
    ("kitti_camera_02", 18): "overexposed",
    ("kitti_camera_02", 19): "frozen",
    ("kitti_camera_02", 24): "underexposed",
    ("kitti_velodyne", 10): "missing_sector",
    ("kitti_velodyne", 20): "nonfinite",
    ("kitti_velodyne", 77): "lost_rings",
}
T0 = 1_317_000_000_000_000_000


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=300)


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "decisions.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def replayed(sample_drive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("replay")
    res = _cli("replay", str(sample_drive), "--out", str(out), "-q")
    assert res.returncode == 0, res.stderr
    assert f"report: {out / 'report.html'}" in res.stdout
    return out


def test_decisions_cover_every_frame_in_order_with_the_right_verdicts(replayed: Path) -> None:
    records = _records(replayed)
    assert len(records) == 47
    for sensor in ("kitti_camera_02", "kitti_velodyne"):
        mine = [r for r in records if r["sensor"] == sensor]
        assert [r["seq"] for r in mine] == list(range(len(mine)))
        assert [r["t_ns"] for r in mine] == sorted(r["t_ns"] for r in mine)
    harmful = {(r["sensor"], (r["t_ns"] - T0) // 100_000_000): r["reasons"][0]
               for r in records if r["verdict"] == "harmful"}
    assert harmful == EXPECTED_HARMFUL
    for r in records:
        assert set(r) >= {"sensor", "modality", "seq", "t_ns", "verdict", "score", "kept", "reasons", "bytes"}
        assert r["kept"] == r["rule"].startswith("keep:")
        assert 0.0 <= r["score"] <= 1.0 and r["bytes"] > 0
        assert not (r["verdict"] == "harmful" and r["kept"])
    # the drive is slow stop-and-go traffic: the redundancy check must drop some near-duplicates of each sensor
    useless = Counter(r["sensor"] for r in records if r["verdict"] == "useless")
    assert useless["kitti_camera_02"] >= 3 and useless["kitti_velodyne"] >= 1


def test_summary_agrees_with_decisions(replayed: Path) -> None:
    records = _records(replayed)
    summary = json.loads((replayed / "summary.json").read_text())
    kept = [r for r in records if r["kept"]]
    assert summary["frames_in"] == len(records)
    assert summary["frames_kept"] == len(kept)
    assert summary["bytes_in"] == sum(r["bytes"] for r in records)
    assert summary["bytes_kept"] == sum(r["bytes"] for r in kept)
    assert summary["by_verdict"] == dict(Counter(r["verdict"] for r in records)) | {
        k: 0 for k in ("helpful", "useless", "harmful") if k not in Counter(r["verdict"] for r in records)}
    assert set(summary["by_sensor"]) == {"kitti_camera_02", "kitti_velodyne"}
    assert summary["by_reason"]["lost_rings"] == 1
    assert summary["skipped"]["count"] == 0
    assert summary["elapsed_s"] > 0 and summary["frames_per_s"] > 0
    assert summary["spool"]["frames"] == len(kept)


def test_kept_mcap_holds_exactly_the_kept_frames_and_every_decision(replayed: Path) -> None:
    records = _records(replayed)
    kept = {(r["sensor"], r["t_ns"]) for r in records if r["kept"]}
    frames, decisions = set(), []
    with (replayed / "kept.mcap").open("rb") as fh:
        reader = make_reader(fh)
        factory = DecoderFactory()
        for schema, channel, message in reader.iter_messages(log_time_order=True):
            if channel.topic == "/edgesift/decisions":
                assert channel.message_encoding == "json" and schema.encoding == "jsonschema"
                decisions.append(json.loads(message.data))
                continue
            ros = factory.decoder_for(channel.message_encoding, schema)(message.data)
            sensor = channel.topic.split("/")[2]
            frames.add((sensor, message.log_time))
            if schema.name == "sensor_msgs/msg/CompressedImage":
                assert cv2.imdecode(np.frombuffer(bytes(ros.data), np.uint8), cv2.IMREAD_COLOR) is not None
            else:
                assert schema.name == "sensor_msgs/msg/PointCloud2" and ros.point_step == 16
    assert frames == kept
    assert len(decisions) == len(records)


def test_report_is_self_contained(replayed: Path) -> None:
    html = (replayed / "report.html").read_text()
    assert "<svg" in html and "data:image/" in html
    assert 'src="http' not in html and 'href="http' not in html and "<script src" not in html


def test_replay_is_deterministic(sample_drive: Path, replayed: Path, tmp_path: Path) -> None:
    run_replay([str(sample_drive)], tmp_path, AgentConfig(), progress=False)
    assert _records(tmp_path) == _records(replayed)


def test_budget_keeps_the_highest_scores(sample_drive: Path, tmp_path: Path) -> None:
    config = AgentConfig.model_validate(
        {"policy": {"camera": {"coverage_every_s": 0, "budget": {"frames_per_min": 5}}}})
    run_replay([str(sample_drive)], tmp_path, config, progress=False)
    cams = [r for r in _records(tmp_path) if r["modality"] == "camera"]
    kept = [r for r in cams if r["kept"]]
    assert len(kept) == 5
    rules = Counter(r["rule"] for r in cams)
    assert rules["drop:over_budget"] + rules["drop:displaced"] > 0
    candidates = sorted((r["score"] for r in cams if r["verdict"] == "helpful"), reverse=True)
    assert sorted((r["score"] for r in kept), reverse=True) == candidates[:5]


def test_small_spool_evicts_lowest_scores_and_decisions_say_so(sample_drive: Path, tmp_path: Path) -> None:
    config = AgentConfig.model_validate({"spool": {"max_mb": 1.0}})
    summary = run_replay([str(sample_drive)], tmp_path, config, progress=False)
    records = _records(tmp_path)
    assert summary["spool"]["bytes"] <= 1_000_000
    assert summary["spool"]["evicted_frames"] + summary["spool"]["rejected_frames"] > 0
    rules = Counter(r["rule"] for r in records)
    assert rules["drop:evicted"] + rules["drop:spool_full"] > 0
    assert summary["frames_kept"] == summary["spool"]["frames"] == sum(r["kept"] for r in records)


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def test_bad_items_in_a_kitti_folder_are_counted_skips(tmp_path: Path) -> None:
    drive = tmp_path / "drive"
    (drive / "image_02" / "data").mkdir(parents=True)
    (drive / "velodyne_points" / "data").mkdir(parents=True)
    cams, scans = sample_frames("camera")[:4], sample_frames("lidar")[:4]
    for i, frame in enumerate(cams):
        data = _png(cv2.imdecode(np.frombuffer(frame.payload, np.uint8), cv2.IMREAD_COLOR))
        if i == 2:
            data = data[: len(data) // 2]  # truncated PNG
        (drive / "image_02" / "data" / f"{i:010d}.png").write_bytes(data)
    for i, frame in enumerate(scans):
        points = frame.array.copy()
        if i == 3:
            points[::10, :3] = np.nan  # NaN points: a valid file, a harmful scan
        data = points.astype("<f4").tobytes()
        if i == 1:
            data = data[:-7]  # not a whole number of 16-byte points
        (drive / "velodyne_points" / "data" / f"{i:010d}.bin").write_bytes(data)
    out = tmp_path / "out"
    res = _cli("replay", str(drive), "--out", str(out), "-q")
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped"]["count"] == 2
    assert summary["skipped"]["by_reason"] == {"decode_error": 1, "bad_size": 1}
    records = _records(out)
    assert len(records) == 6
    nan_scan = next(r for r in records if r["sensor"] == "velodyne" and r["seq"] == 3)
    assert nan_scan["verdict"] == "harmful" and "nonfinite" in nan_scan["reasons"]


def test_truncated_mcap_is_salvaged_and_reported(sample_drive: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.mcap"
    data = sample_drive.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    out = tmp_path / "out"
    res = _cli("replay", str(cut), "--out", str(out), "-q")
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped"]["by_reason"].get("corrupt_recording", 0) >= 1
    assert set(summary["skipped"]["by_reason"]) == {"corrupt_recording"}  # no garbage posing as a message
    assert 0 < summary["frames_in"] < 47


@pytest.mark.parametrize("case", ["missing", "empty_folder", "unknown_type", "not_mcap", "bad_config"])
def test_unusable_input_is_a_one_line_error(case: str, tmp_path: Path, sample_drive: Path) -> None:
    args = [str(tmp_path / "nope")]
    if case == "empty_folder":
        (tmp_path / "empty").mkdir()
        args = [str(tmp_path / "empty")]
    elif case == "unknown_type":
        (tmp_path / "notes.txt").write_text("hello")
        args = [str(tmp_path / "notes.txt")]
    elif case == "not_mcap":
        (tmp_path / "x.mcap").write_bytes(b"\x00" * 100)
        args = [str(tmp_path / "x.mcap")]
    elif case == "bad_config":
        (tmp_path / "c.yaml").write_text("scoring:\n  camera:\n    blur_min_sharpness: lots\n")
        args = [str(sample_drive), "--config", str(tmp_path / "c.yaml")]
    res = _cli("replay", *args, "--out", str(tmp_path / "out"), "-q")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgesift: error:"), res.stderr
    assert "Traceback" not in res.stderr


def test_several_inputs_are_merged(sample_drive: Path, tmp_path: Path) -> None:
    folder = tmp_path / "stills"
    folder.mkdir()
    for i, frame in enumerate(sample_frames("camera")[:3]):
        (folder / f"{i:03d}.jpg").write_bytes(frame.payload)
    run_replay([str(sample_drive), str(folder)], tmp_path / "out", AgentConfig(), progress=False)
    sensors = Counter(r["sensor"] for r in _records(tmp_path / "out"))
    assert sensors == {"kitti_camera_02": 31, "kitti_velodyne": 16, "stills": 3}

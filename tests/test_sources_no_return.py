"""Organized point clouds mark a beam that saw nothing with NaN (velodyne_pointcloud's organize_cloud, PCL's
organized PCD files). Such a placeholder is "no return", not a corrupt coordinate: a healthy LiDAR published that
way was called harmful (`nonfinite`) on every scan. Real KITTI scans from the sample drive."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.config import AgentConfig
from agent.replay.runner import run_replay
from agent.sources.points import read_points

try:
    from tests import _sources_fixtures as fx
except ImportError:
    import _sources_fixtures as fx  # type: ignore[no-redef]

T0 = 1_700_000_000_000_000_000
ROWS = 64


@pytest.fixture(scope="module")
def scans() -> list[np.ndarray]:
    msgs = fx.sample_messages("sensor_msgs/msg/PointCloud2", 5)
    return [np.frombuffer(bytes(m.data), dtype="<f4").reshape(-1, 4) for m in msgs]


def organized(points: np.ndarray) -> np.ndarray:
    """The scan as ROWS x columns, every fourth slot a beam that saw nothing (NaN), the returns in scan order."""
    slots = -(-len(points) * 4 // 3 // ROWS) * ROWS
    out = np.full((slots, 4), np.nan, np.float32)
    filled = np.flatnonzero(np.arange(slots) % 4 != 3)[: len(points)]
    out[filled] = points
    return out


def cloud(t_ns: int, points: np.ndarray, dense: bool) -> dict[str, Any]:
    """ROWS rows when the points fill them (an organized cloud), else one row."""
    return fx.pointcloud2(t_ns, points, ROWS if len(points) % ROWS == 0 else 1, dense)


def _replay(tmp_path: Path, name: str, clouds: list[np.ndarray], dense: bool) -> list[dict[str, Any]]:
    messages = [("/velodyne_points", "sensor_msgs/msg/PointCloud2", cloud(T0 + k * 10**8, c, dense), T0 + k * 10**8)
                for k, c in enumerate(clouds)]
    path = fx.write_mcap(tmp_path / f"{name}.mcap", messages)
    run_replay([str(path)], tmp_path / name, AgentConfig(), progress=False)
    return [json.loads(line) for line in (tmp_path / name / "decisions.jsonl").read_text().splitlines()]


def test_no_return_placeholders_of_an_organized_cloud_are_not_points(tmp_path: Path, scans: list[np.ndarray]) -> None:
    plain = _replay(tmp_path, "plain", scans, dense=True)
    placeholders = _replay(tmp_path, "organized", [organized(s) for s in scans], dense=False)
    assert [(r["verdict"], r["reasons"], r["signals"]) for r in placeholders] == [
        (r["verdict"], r["reasons"], r["signals"]) for r in plain]
    assert not any("nonfinite" in r["reasons"] for r in placeholders)


def test_nan_in_a_cloud_that_says_it_is_dense_is_judged(tmp_path: Path, scans: list[np.ndarray]) -> None:
    records = _replay(tmp_path, "dense", [organized(s) for s in scans], dense=True)
    assert all(r["verdict"] == "harmful" and "nonfinite" in r["reasons"] for r in records)


def test_nan_in_an_unorganized_cloud_is_judged(tmp_path: Path, scans: list[np.ndarray]) -> None:
    # One row has no slot for a missing return: NaN there is a corrupt coordinate (the sample drive's scan 20).
    one_row = [np.concatenate([s, np.full((1 + len(s) // 50, 4), np.nan, np.float32)]) for s in scans]
    one_row = [c for c in one_row if len(c) % ROWS]  # cloud() sends these as one row
    assert one_row
    records = _replay(tmp_path, "one_row", one_row, dense=False)
    assert all(r["verdict"] == "harmful" and "nonfinite" in r["reasons"] for r in records)


def test_an_organized_pcd_leaves_its_no_return_placeholders_out(tmp_path: Path, scans: list[np.ndarray]) -> None:
    from pypcd4 import PointCloud

    grid = organized(scans[0])
    pcd = PointCloud.from_xyzi_points(grid)
    pcd.metadata.width, pcd.metadata.height = len(grid) // ROWS, ROWS
    pcd.save(tmp_path / "organized.pcd")
    np.testing.assert_array_equal(read_points(tmp_path / "organized.pcd"), scans[0])
    PointCloud.from_xyzi_points(grid).save(tmp_path / "unorganized.pcd")  # one row: NaN is a point's coordinate
    assert np.isnan(read_points(tmp_path / "unorganized.pcd")).any()

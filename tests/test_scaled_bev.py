"""The LiDAR view in each scan's own units (agent/model/scaled_bev.py), and models choosing their view."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, sample_frames
from model_support import copy_with_metadata

from agent.config.model_cfg import ModelConfig, ProxyModelSpec
from agent.errors import ConfigError
from agent.model.preprocess import BevBuilder
from agent.model.proxy_model import LidarModel
from agent.model.scaled_bev import INPUT_KIND, ScaledBevBuilder


def _scan() -> np.ndarray:
    points = sample_frames("lidar")[0].array
    assert points is not None
    return np.ascontiguousarray(points)


def test_a_quarter_of_the_points_gives_the_same_scaled_view_but_not_the_same_fixed_view() -> None:
    scan = _scan()
    fewer = scan[::4]  # as a sensor with a quarter of the beams would see the same street, roughly
    scaled, fixed = ScaledBevBuilder(64), BevBuilder(64)
    same = np.abs(scaled(scan)[0][:2] - scaled(fewer)[0][:2]).mean()
    moved = np.abs(fixed(scan)[0][:2] - fixed(fewer)[0][:2]).mean()
    assert same < 0.5 * moved, (same, moved)


def test_a_lab_scan_fills_the_scaled_grid_as_a_street_does() -> None:
    street = _scan()
    lab = street[np.hypot(street[:, 0], street[:, 1]) < 12.0] * np.float32([0.3, 0.3, 0.3, 1.0])  # within ~4 m
    occupied = [float((view[0] + view[1] > 0).mean()) for view in (ScaledBevBuilder(64)(lab)[0],
                                                                     BevBuilder(64)(lab)[0])]
    assert occupied[0] > 4 * occupied[1], occupied


def test_a_missing_wedge_and_lost_lower_rings_stay_visible() -> None:
    scan = _scan()
    builder = ScaledBevBuilder(64)
    azimuth = np.degrees(np.arctan2(scan[:, 1], scan[:, 0]))
    wedge = scan[(azimuth < -30) | (azimuth > 60)]
    assert builder(wedge)[1].empty_sectors >= 8 and builder(scan)[1].empty_sectors == 0
    elevation = np.degrees(np.arctan2(scan[:, 2], np.hypot(scan[:, 0], scan[:, 1])))
    upper = scan[elevation > np.percentile(elevation, 50)]
    near = slice(24, 40)  # the cells around the sensor, where the lower rings land
    whole, cut = builder(scan)[0], builder(upper)[0]
    assert cut[0, near, near].sum() < 0.5 * whole[0, near, near].sum()


@pytest.mark.parametrize("points", [np.zeros((0, 4), np.float32), np.full((50, 4), np.nan, np.float32),
                                    np.full((3, 4), 1.0, np.float32)])
def test_empty_non_finite_and_tiny_scans_give_a_finite_view(points: np.ndarray) -> None:
    view, stats = ScaledBevBuilder(64)(points)
    assert view.shape == (4, 64, 64) and np.isfinite(view).all()
    assert stats.points == len(points) and stats.valid <= stats.points


def test_non_finite_and_far_points_are_counted_and_left_out() -> None:
    scan = _scan().copy()
    scan[::10, 0] = np.nan
    scan[1::10, :3] = 1e9
    view, stats = ScaledBevBuilder(64)(scan)
    assert np.isfinite(view).all() and abs(stats.nonfinite_fraction - 0.1) < 0.01
    assert abs(float(view[3, 0, 0]) - stats.nonfinite_fraction) < 1e-6


def test_a_model_states_which_view_it_takes(tmp_path: Path) -> None:
    shipped = REPO / "models" / "lidar_proxy_int8.onnx"
    spec = ProxyModelSpec(path=str(shipped), version="lidar-proxy-1", input_size=(64, 64))
    scaled = copy_with_metadata(shipped, tmp_path / "scaled.onnx", {"edgesift.lidar_input": INPUT_KIND})
    model = LidarModel(spec.model_copy(update={"path": str(scaled)}), ModelConfig())
    assert isinstance(model._bev, ScaledBevBuilder)
    assert isinstance(LidarModel(spec.model_copy(update={"path": str(shipped)}), ModelConfig())._bev, BevBuilder)
    bogus = copy_with_metadata(shipped, tmp_path / "bogus.onnx", {"edgesift.lidar_input": "range-image-v9"})
    with pytest.raises(ConfigError, match="lidar_input"):
        LidarModel(spec.model_copy(update={"path": str(bogus)}), ModelConfig())

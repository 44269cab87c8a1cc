"""Scans that a recorder drops into the daemon's folder source are read as replay's folders read them: .bin, .pcd,
.ply and nuScenes .pcd.bin, with no sensor model assumed.

Before, the live folder read only .bin files, each as a KITTI HDL-64E scan (`sensor_model: velodyne-hdl64`). That
put any LiDAR in the domain of the LiDAR fault head, which learnt 20 KITTI scans: with `scoring.kind: hybrid`, 4 of
the 10 healthy scans of an 8-beam Ouster OS0 were harmful (`fault_lost_rings`), and a .pcd was never read.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from camera_support import judge

from agent.config import AgentConfig
from agent.config.daemon import FolderSourceConfig
from agent.daemon.live import FolderSource
from agent.frame import Frame, Item, Modality
from agent.scoring.base import Label
from agent.scoring.factory import make_scorer

pytestmark = pytest.mark.shared


def _drain(source: FolderSource, want: int) -> list[Item]:
    items: list[Item] = []
    deadline = time.monotonic() + 30
    while len(items) < want and time.monotonic() < deadline:
        item = source.read()
        if item is not None:
            items.append(item)
    return items


@pytest.mark.parametrize("kind", ["lidar", "auto"])
def test_scans_dropped_into_a_live_folder_are_judged_by_their_own_sensor(shared_data: Path, tmp_path: Path,
                                                                          kind: str) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    os0 = sorted((shared_data / "lidar" / "ouster_os0_8beam_10scans").glob("*.bin"))
    pcd = next((shared_data / "bags" / "nebula_velodyne_vlp32").glob("*.pcd"))
    for n, path in enumerate(os0):
        shutil.copy(path, drop / f"{n:06d}.bin")
    shutil.copy(pcd, drop / "vlp32.pcd")
    source = FolderSource(FolderSourceConfig(type="folder", name="lidar_os0", path=str(drop), kind=kind,
                                             settle_s=0.0, existing=True))
    source.open()
    try:
        items = _drain(source, len(os0) + 1)
    finally:
        source.close()
    frames = [item for item in items if isinstance(item, Frame)]
    assert len(frames) == len(os0) + 1, items
    assert all(f.modality is Modality.LIDAR and "sensor_model" not in f.meta for f in frames)
    assert frames[-1].meta["file"] == "vlp32.pcd" and int(frames[-1].meta["points"]) > 10_000
    scorer = make_scorer(AgentConfig.model_validate({"scoring": {"kind": "hybrid"}}))
    verdicts = [judge(scorer, f) for f in frames[: len(os0)]]  # type: ignore[arg-type]
    assert [v.reasons for v in verdicts if v.label is Label.HARMFUL] == []


def test_a_sensor_setting_that_names_no_sensor_of_its_kind_is_warned_about(tmp_path: Path, caplog) -> None:
    """`scoring.sensors.<folder name>.model` on an auto folder names its pictures, not its scans
    (`<name>_lidar`): the LiDAR model would silently not apply. The daemon says so when it starts."""
    import logging

    from daemon_support import daemon_config, running

    from agent.app import App

    (tmp_path / "drop").mkdir()
    sensors = {"rec": {"model": "ouster-os0"}, "rec_lidar": {"lidar": {"min_points": 500}}, "cam_*": {"camera": {}},
               "velo": {"model": "velodyne-vlp16"}, "*": {"model": "velodyne-hdl64", "camera": {}}}
    config = daemon_config(tmp_path, [{"type": "folder", "name": "rec", "path": str(tmp_path / "drop")}],
                           scoring={"sensors": sensors})
    assert config.scoring.unmatched(["rec"], ["rec_lidar"]) == ["rec", "cam_*", "velo"]
    assert config.scoring.unmatched(["rec", "cam_front"], ["rec_lidar", "velo"]) == ["rec"]
    with caplog.at_level(logging.WARNING, logger="agent.app"), running(App(config)):
        pass
    warned = [r.getMessage() for r in caplog.records if "sensor_settings_unmatched" in r.getMessage()]
    assert [m.split()[1] for m in warned] == ["key=rec", "key=cam_*", "key=velo"]
    assert "lidars=rec_lidar" in warned[0]

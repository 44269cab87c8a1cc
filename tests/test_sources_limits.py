"""The newer folder readers (scans, images beside scans) keep the input bounds: a header that claims too many
points, a raw scan past inputs.max_points and a symlink loop are counted skips, never an allocation or a crash.
The faults are written onto real scans and frames from ../shared/data."""

from __future__ import annotations

import os
import re
import shutil
import struct
from collections import Counter
from pathlib import Path

import numpy as np
from _sources_fixtures import KITTI_SYNC, SHARED, shared_data

from agent.config.model import InputsConfig
from agent.frame import Frame, Skip
from agent.sources import merge, open_inputs

PANDAR64 = SHARED / "lidar" / "hesai_pandar64_pjlab_5scans"
HDL64 = SHARED / "lidar" / "dense_stf_hdl64s3d_single_scan" / "2019-09-11_19-13-44_00960.bin"


def _items(path: Path, **limits: int) -> list[Frame | Skip]:
    return list(merge(open_inputs([str(path)], InputsConfig(**limits))))


def _reasons(items: list[Frame | Skip]) -> dict[str, str]:
    return {Path(i.source).name: i.reason for i in items if isinstance(i, Skip)}


@shared_data
def test_scan_files_past_max_points_are_too_large_skips(tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    shutil.copy(PANDAR64 / "2021-10-26-16-21-29-468.bin", folder / "a.bin")
    shutil.copy(PANDAR64 / "pcd_original" / "2021-10-26-16-21-29-568.pcd", folder / "b.pcd")  # binary_compressed
    assert len([i for i in _items(folder) if isinstance(i, Frame)]) == 2  # the defaults take both
    assert _reasons(_items(folder, max_points=1000)) == {"a.bin": "too_large", "b.pcd": "too_large"}


@shared_data
def test_lying_scan_headers_are_refused_before_parsing(tmp_path: Path) -> None:
    from plyfile import PlyData, PlyElement
    from pypcd4 import Encoding, PointCloud

    scan = np.fromfile(HDL64, "<f4").reshape(-1, 4)[:2000]
    folder = tmp_path / "scans"
    folder.mkdir()
    PointCloud.from_xyzi_points(scan).save(folder / "ascii.pcd", encoding=Encoding.ASCII)
    text = (folder / "ascii.pcd").read_bytes()
    (folder / "ascii.pcd").write_bytes(re.sub(rb"\nPOINTS \d+", b"\nPOINTS 1000000000000", text))
    vertex = np.array([tuple(p) for p in scan], dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("intensity", "f4")])
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(folder / "vertices.ply"))
    ply = (folder / "vertices.ply").read_bytes()
    (folder / "vertices.ply").write_bytes(re.sub(rb"element vertex \d+", b"element vertex 1000000000000", ply))
    # A real binary_compressed scan whose LZF size field claims 4 GB decompressed.
    real = (PANDAR64 / "pcd_original" / "2021-10-26-16-21-29-668.pcd").read_bytes()
    at = real.index(b"DATA binary_compressed\n") + len(b"DATA binary_compressed\n")
    compressed = struct.unpack_from("<I", real, at)[0]
    (folder / "lzf.pcd").write_bytes(real[:at] + struct.pack("<II", compressed, 0xFFFFFFFF) + real[at + 8:])
    (folder / "ok.bin").write_bytes(scan.tobytes())
    items = _items(folder)
    assert _reasons(items) == {"ascii.pcd": "too_large", "vertices.ply": "too_large", "lzf.pcd": "too_large"}
    frames = [i for i in items if isinstance(i, Frame)]
    assert [Path(f.source).name for f in frames] == ["ok.bin"] and len(frames[0].array) == 2000


@shared_data
def test_symlink_loop_in_a_folder_of_images_and_scans(tmp_path: Path) -> None:
    folder = tmp_path / "object"
    folder.mkdir()
    shutil.copy(KITTI_SYNC / "image_02" / "data" / "0000000000.png", folder / "000000.png")
    shutil.copy(HDL64, folder / "000000.bin")
    os.symlink(folder / "loop.png", folder / "loop.png")  # a link to itself: ELOOP on every stat
    items = _items(folder)
    assert _reasons(items) == {"loop.png": "read_error"}
    assert Counter(i.sensor for i in items if isinstance(i, Frame)) == {"object": 1, "object_lidar": 1}

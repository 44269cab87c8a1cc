"""Input sources: recognise what a path holds, open it lazily, and merge all inputs in time order.

Kinds: "kitti" (KITTI raw drive folder), "mcap" (ROS 2 MCAP), "video" (OpenCV-readable video file), "images"
(folder of JPEG/PNG, possibly with scan files beside them), "scans" (folder of .bin/.pcd/.ply LiDAR scans),
"nuscenes" (nuScenes sample folder), "rosbag" (ROS 1 .bag or rosbag2 folder), "pcap" (Velodyne packet capture)
and "ouster" (Ouster packet capture with its metadata JSON).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agent.config.model import InputsConfig
from agent.errors import InputError
from agent.sources.base import Source
from agent.sources.folder import FolderSource, NuScenesSource, foreign_pictures, nuscenes_layout
from agent.sources.images import IMAGE_SUFFIXES, list_files
from agent.sources.kitti import KittiSource, kitti_layout
from agent.sources.limits import InputLimits
from agent.sources.mcap_source import MCAP_MAGIC, McapSource
from agent.sources.merge import merge
from agent.sources.ouster import OusterPcapSource, metadata_for
from agent.sources.pcap import PcapSource, is_pcap_magic
from agent.sources.points import POINT_SUFFIXES
from agent.sources.rosbag import ROS1_MAGIC, RosbagSource, is_rosbag2_folder
from agent.sources.video import VIDEO_SUFFIXES, VideoSource

__all__ = ["KINDS", "Source", "detect_kind", "merge", "open_inputs"]

KINDS = ("kitti", "mcap", "video", "images", "scans", "nuscenes", "rosbag", "pcap", "ouster")
_EXPECTED = ("a KITTI drive folder, a nuScenes sample folder, a folder of images or .bin/.pcd/.ply scans, .mcap, "
             "a ROS .bag or rosbag2 folder, a video file, or a Velodyne/Ouster .pcap")


def _video_magic(head: bytes) -> bool:
    # ISO media (mp4/mov: 'ftyp' box first), AVI (RIFF....AVI ) and Matroska/WebM (EBML header).
    return head[4:8] == b"ftyp" or (head[:4] == b"RIFF" and head[8:12] == b"AVI ") or head[:4] == b"\x1a\x45\xdf\xa3"


def _file_kind(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise InputError(f"cannot read input {path}: {exc.strerror or exc}") from exc
    if not head:
        raise InputError(f"input file is empty: {path}")
    suffix = path.suffix.lower()
    # Magic bytes first (a misnamed file still works), then the extension (so that a damaged .mcap or .pcap
    # gets that reader's specific complaint rather than "unknown type").
    if head.startswith(MCAP_MAGIC) or suffix == ".mcap":
        return "mcap"
    if head.startswith(ROS1_MAGIC[:9]) or suffix == ".bag":
        return "rosbag"
    if is_pcap_magic(head) or suffix in (".pcap", ".pcapng"):
        return "ouster" if metadata_for(path) is not None else "pcap"
    if _video_magic(head) or suffix in VIDEO_SUFFIXES:
        return "video"
    hint = " (a single image or scan: give its folder)" if suffix in IMAGE_SUFFIXES | POINT_SUFFIXES else ""
    raise InputError(f"cannot tell the input type of {path}{hint}: expected {_EXPECTED}")


def _folder_kind(path: Path) -> str:
    if kitti_layout(path):
        return "kitti"
    if is_rosbag2_folder(path):
        return "rosbag"
    if nuscenes_layout(path) and not foreign_pictures(path):
        return "nuscenes"
    if list_files(path, IMAGE_SUFFIXES):
        return "images"
    if list_files(path, POINT_SUFFIXES):
        return "scans"
    if not any(not p.name.startswith(".") for p in path.iterdir()):
        raise InputError(f"input folder is empty: {path}")
    raise InputError(f"cannot tell the input type of folder {path}: expected {_EXPECTED}")


def detect_kind(path: str) -> str:
    """One of KINDS from the folder layout, magic bytes or extension; InputError (one line) otherwise."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"input not found: {path}")
    try:
        return _folder_kind(p) if p.is_dir() else _file_kind(p)
    except PermissionError as exc:
        raise InputError(f"cannot read input {path}: {exc.strerror or exc}") from exc


def open_inputs(paths: Sequence[str], config: InputsConfig) -> list[Source]:
    """A Source per path, checked up front so that a bad input fails before any work is done."""
    if not paths:
        raise InputError("no inputs given")
    sources: list[Source] = []
    for path in paths:
        kind = detect_kind(path)
        if kind == "kitti":
            sources.append(KittiSource(path, config.nominal_hz))
        elif kind in ("images", "scans"):
            sources.append(FolderSource(path, config.nominal_hz))
        elif kind == "nuscenes":
            sources.append(NuScenesSource(path))
        elif kind == "rosbag":
            sources.append(RosbagSource(path, InputLimits.of(config)))  # a bag cut short is read when opened
        elif kind == "ouster":
            sources.append(OusterPcapSource(path))
        elif kind == "video":
            sources.append(VideoSource(path, config.nominal_hz))
        elif kind == "mcap":
            sources.append(McapSource(path))
        else:
            sources.append(PcapSource(path))
        sources[-1].limits = InputLimits.of(config)
    return sources

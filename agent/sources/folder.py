"""A folder of camera images and/or LiDAR scan files, and nuScenes-style sample folders.

A plain folder is one camera (its images) plus, when it also holds scans (.bin, .pcd, .ply), one LiDAR: a KITTI
object folder (000008.png beside 000008.bin) or a recorder's dump. Files that are not one numbered recording
(images.numbered_sequence: hash-named dash-cam stills, snapshots of several LiDAR models) are marked as stills,
each judged on its own rather than against the one before it. A nuScenes folder names each file
`<log>__<CHANNEL>__<timestamp_us>.<ext>`, or holds one CAM_*/LIDAR_* folder per sensor; every channel becomes
its own sensor, timed by the microsecond stamp in the file names.

Files the folder holds but that are neither (calibration, index.csv...) are listed once each as `unused_file`
skips, so that the report says what was not looked at.
"""

from __future__ import annotations

import functools
import heapq
import os
import re
from collections.abc import Iterator
from pathlib import Path

from agent.errors import InputError
from agent.frame import STILL, Frame, Item, Skip
from agent.sources.base import SeqCounter, Source, safe_name
from agent.sources.decode import SampleDepth
from agent.sources.images import IMAGE_SUFFIXES, image_file_item, is_dir_entry, natural_key, numbered_sequence
from agent.sources.limits import InputLimits
from agent.sources.points import POINT_SUFFIXES, is_wall_clock, point_file_item, point_suffix, timed_files

_NUSCENES_NAME = re.compile(r"__((?:CAM|LIDAR|RADAR)_[A-Z0-9_]+?)__(\d{10,19})\.")
_NUSCENES_FOLDER = re.compile(r"^(CAM|LIDAR|RADAR)_[A-Z0-9_]+$")
_CONSUMED = frozenset({"timestamps.txt", "labels.jsonl"})  # read by the source, by tune


def _entries(folder: Path) -> tuple[list[str], list[str], list[str]]:
    """(image names, scan names, other names) directly in `folder`, sorted; dot files left out."""
    images, scans, other = [], [], []
    with os.scandir(folder) as it:
        for entry in it:
            name = entry.name
            if name.startswith("."):
                continue
            suffix = point_suffix(name)
            if is_dir_entry(entry):  # a symlink loop is not a folder: listed below, then a read_error Skip
                other.append(name)
            elif suffix in IMAGE_SUFFIXES:
                images.append(name)
            elif suffix in POINT_SUFFIXES:
                scans.append(name)
            elif name not in _CONSUMED:
                other.append(name)
    return sorted(images, key=natural_key), sorted(scans, key=natural_key), sorted(other)


def _unused(folder: Path, names: list[str], sensor: str, why: str) -> list[Skip]:
    """One skip per file not read; a sub-folder says how to read it (a rosbag2 folder beside decoded scans)."""
    return [Skip(sensor, -1, 0, str(folder / name), "unused_file",
                 "a folder: give it as an input of its own to read it" if (folder / name).is_dir() else why)
            for name in names]


class FolderSource(Source):
    """Images as one camera named after the folder; scan files as one LiDAR (`<folder>_lidar` beside images)."""

    kind = "images"

    def __init__(self, path: str, nominal_hz: float) -> None:
        super().__init__(path)
        folder = Path(path)
        images, scans, _ = _entries(folder)
        if not images and not scans:
            raise InputError(f"no images (.jpg/.jpeg/.png/.tif) or scans (.bin/.pcd/.ply) in {path}")
        base = safe_name(folder.resolve().name) or "sensor"
        self.camera = base if images else ""
        self.lidar = (f"{base}_lidar" if images else base) if scans else ""
        self.kind = "images+scans" if images and scans else ("images" if images else "scans")
        self._hz = nominal_hz
        clocks = {timed_files(folder, names, nominal_hz)[1] for names in (images, scans) if names}
        self.clock = " + ".join(sorted(clocks))
        self.wall_clock = all(is_wall_clock(c) for c in clocks)

    def __iter__(self) -> Iterator[Item]:
        folder = Path(self.path)
        images, scans, other = _entries(folder)
        streams: list[Iterator[Item]] = [iter(_unused(folder, other, self.camera or self.lidar,
                                                      "not an image or a point cloud file"))]
        if images:
            read = functools.partial(image_file_item, depth=SampleDepth())  # one sample depth per stream
            streams.append(_stills(_timed(folder, images, self.camera, self._hz, read, self.limits),
                                   not numbered_sequence(images)))
        if scans:
            streams.append(_stills(_timed(folder, scans, self.lidar, self._hz, point_file_item, self.limits),
                                   not numbered_sequence(scans)))
        return heapq.merge(*streams, key=lambda item: item.t_ns)


def _timed(folder: Path, names: list[str], sensor: str, hz: float, read,  # type: ignore[no-untyped-def]
           limits: InputLimits) -> Iterator[Item]:
    seq = SeqCounter()
    for t_ns, name in timed_files(folder, names, hz)[0]:
        yield read(folder / name, sensor, seq(sensor), t_ns, limits)


def _stills(items: Iterator[Item], stills: bool) -> Iterator[Item]:
    """Mark the frames of a folder of unrelated pictures or scans (see images.numbered_sequence) as stills."""
    for item in items:
        if stills and isinstance(item, Frame):
            item.meta[STILL] = "1"
        yield item


def nuscenes_layout(path: Path) -> dict[str, list[Path]]:
    """Channel -> its files, for a nuScenes sample folder (flat, or CAM_*/LIDAR_* sub-folders); {} otherwise."""
    if not path.is_dir():
        return {}
    root = path / "samples" if (path / "samples").is_dir() else path
    channels: dict[str, list[Path]] = {}
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and _NUSCENES_FOLDER.match(entry.name):
            channels.setdefault(entry.name, []).extend(sorted(p for p in entry.iterdir() if p.is_file()))
        elif entry.is_file() and (match := _NUSCENES_NAME.search(entry.name)):
            channels.setdefault(match.group(1), []).append(entry)
    return channels


def foreign_pictures(path: Path) -> list[str]:
    """Images and scans directly in `path` that are not nuScenes files: a folder that mixes nuScenes frames with
    other pictures (stills gathered from several datasets) is read as a plain folder, so that none is skipped."""
    images, scans, _ = _entries(path)
    return [n for n in images + scans if not _NUSCENES_NAME.search(n)]


class NuScenesSource(Source):
    """One sensor per nuScenes channel (CAM_FRONT, LIDAR_TOP...); RADAR channels are listed as skipped."""

    kind = "nuscenes"
    clock = "file names"
    wall_clock = True

    def __init__(self, path: str) -> None:
        super().__init__(path)
        if not nuscenes_layout(Path(path)):
            raise InputError(f"{path} is not a nuScenes sample folder (no <log>__CAM_*__<us>.jpg or CAM_* folders)")

    def __iter__(self) -> Iterator[Item]:
        root = Path(self.path)
        layout = nuscenes_layout(root)
        used = {p.resolve() for files in layout.values() for p in files}
        loose = [p for p in sorted(root.iterdir()) if p.is_file() and p.resolve() not in used
                 and not p.name.startswith(".")]
        streams: list[Iterator[Item]] = [iter(_unused(root, [p.name for p in loose], "nuscenes",
                                                      "not a nuScenes sensor file"))]
        streams.extend(self._channel(channel, files) for channel, files in sorted(layout.items()))
        return heapq.merge(*streams, key=lambda item: item.t_ns)

    def _channel(self, channel: str, files: list[Path]) -> Iterator[Item]:
        seq, depth = SeqCounter(), SampleDepth()
        timed = []
        for position, path in enumerate(files):
            match = _NUSCENES_NAME.search(path.name)
            timed.append((int(match.group(2)) * 1_000 if match else position, path))
        lidar, camera = channel.startswith("LIDAR_"), channel.startswith("CAM_")
        for t_ns, path in sorted(timed):
            suffix = point_suffix(path.name)
            if camera and suffix in IMAGE_SUFFIXES:
                yield image_file_item(path, channel, seq(channel), t_ns, self.limits, depth)
            elif lidar and suffix in POINT_SUFFIXES:
                yield point_file_item(path, channel, seq(channel), t_ns, self.limits)
            else:
                what = "radar is not read" if channel.startswith("RADAR_") else f"{suffix or 'no'} extension"
                yield Skip(channel, seq(channel), t_ns, str(path), "unsupported_file", what)

"""A KITTI raw drive folder: image_00..image_03 PNG or JPEG cameras and the velodyne_points scans.

Layout (as in the KITTI raw downloads)::

    <drive>/image_02/data/0000000000.png   <drive>/image_02/timestamps.txt (optional)
    <drive>/velodyne_points/data/0000000000.bin   <drive>/velodyne_points/timestamps.txt (optional)

Times come from each sensor's timestamps.txt (line N is frame N), else from the nominal rate with the file
number as the frame index, so a gap in the numbering stays a gap in time.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import heapq
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from agent.errors import InputError
from agent.frame import FILE, Encoding, Frame, Item, Modality, Skip
from agent.sources.base import NS_PER_S, SeqCounter, Source, nominal_t_ns
from agent.sources.decode import SampleDepth
from agent.sources.images import IMAGE_SUFFIXES, image_file_item, list_files
from agent.sources.limits import DEFAULT_LIMITS, InputLimits, TooLarge, read_bounded

LIDAR_FOLDER = "velodyne_points"
LIDAR_SENSOR = "velodyne"
_CAMERA_FOLDER = re.compile(r"^image_0[0-3]$")
_POINT_BYTES = 16  # float32 x, y, z, reflectance
_STAMP = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?$")


def _is_sensor_folder(path: Path) -> bool:
    return (_CAMERA_FOLDER.match(path.name) is not None or path.name == LIDAR_FOLDER) and (path / "data").is_dir()


def _sensor_folders_in(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if _is_sensor_folder(p))
    except OSError:
        return []


def kitti_layout(path: Path) -> list[Path]:
    """The sensor folders of the KITTI drive at `path`, or [] when `path` is not one.

    Accepted: a drive folder; one sensor folder (image_02/); its data/ folder; or a folder holding exactly one
    drive folder (a KITTI date folder beside its calib_*.txt files).
    """
    if _is_sensor_folder(path):
        return [path]
    if path.name == "data" and _is_sensor_folder(path.parent):
        return [path.parent]
    found = _sensor_folders_in(path)
    if found or not path.is_dir():
        return found
    drives = sorted(p for p in path.iterdir() if p.is_dir() and _sensor_folders_in(p))
    if len(drives) > 1:
        names = ", ".join(p.name for p in drives[:4])
        raise InputError(f"{path} holds {len(drives)} KITTI drives ({names}...): give one drive folder per input")
    return _sensor_folders_in(drives[0]) if drives else []


def sensor_name(folder: Path) -> str:
    return LIDAR_SENSOR if folder.name == LIDAR_FOLDER else folder.name


def parse_stamp(line: str) -> int | None:
    """'2011-09-26 13:02:25.964389445' -> integer ns since the epoch, exactly (no float); None if malformed.

    KITTI writes local time without a zone; it is read as UTC, which keeps the sensors of a drive consistent.
    """
    match = _STAMP.match(line.strip())
    if match is None:
        return None
    fields = [int(g) for g in match.groups()[:6]]
    try:
        when = dt.datetime(*fields, tzinfo=dt.timezone.utc)  # validates the calendar fields
    except ValueError:
        return None
    fraction = (match.group(7) or "").ljust(9, "0")
    return calendar.timegm(when.utctimetuple()) * NS_PER_S + int(fraction)


def read_timestamps(folder: Path) -> list[int | None] | None:
    """One stamp per line of folder/timestamps.txt (None for a bad line), or None when there is no such file."""
    path = folder / "timestamps.txt"
    if not path.exists():
        return None
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    while lines and not lines[-1].strip():
        lines.pop()
    return [parse_stamp(line) for line in lines]


def _frame_order(name: str) -> tuple[int, int, str]:
    stem = Path(name).stem
    return (0, int(stem), name) if stem.isdigit() else (1, 0, name)


def lidar_file_item(path: Path, sensor: str, seq: int, t_ns: int, limits: InputLimits = DEFAULT_LIMITS) -> Item:
    """A Velodyne .bin scan as an Nx4 float32 view of the file's bytes, or a Skip."""
    source = str(path)
    try:
        data = read_bounded(path, min(limits.max_file_bytes, limits.max_points * _POINT_BYTES))
    except TooLarge as exc:
        return Skip(sensor, seq, t_ns, source, "too_large", f"{exc}: more than {limits.max_points} points")
    except OSError as exc:
        return Skip(sensor, seq, t_ns, source, "read_error", f"{type(exc).__name__}: {exc.strerror or exc}")
    if len(data) % _POINT_BYTES:
        detail = f"{len(data)} bytes is not a whole number of 16-byte (x, y, z, reflectance) float32 points"
        return Skip(sensor, seq, t_ns, source, "bad_size", detail)
    # NaN or absurd points are kept: judging the scan is the scorer's job, not the reader's.
    points = np.frombuffer(data, dtype="<f4").reshape(-1, 4)
    return Frame(
        sensor=sensor,
        modality=Modality.LIDAR,
        t_ns=t_ns,
        seq=seq,
        nbytes=len(data),
        source=source,
        encoding=Encoding.XYZI_F32,
        payload=data,
        array=points,
        meta={"points": str(len(points)), "sensor_model": "velodyne-hdl64", FILE: path.name},  # one HDL-64E
    )


class KittiSource(Source):
    """All sensors of one KITTI drive, merged in time order (each sensor read lazily, one file at a time)."""

    kind = "kitti"

    def __init__(self, path: str, nominal_hz: float) -> None:
        super().__init__(path)
        folders = kitti_layout(Path(path))
        if not folders:
            raise InputError(f"{path} is not a KITTI drive (no image_0[0-3]/data or velodyne_points/data)")
        self._hz = nominal_hz
        # Timestamps are read up front: a bad timestamps.txt is an input error, and 8 bytes a frame is cheap.
        self._sensors = [(sensor_name(f), f, read_timestamps(f)) for f in folders]
        self.sensors = [name for name, _, _ in self._sensors]
        self.wall_clock = all(stamps is not None for _, _, stamps in self._sensors)
        self.clock = "timestamps.txt" if self.wall_clock else f"nominal {nominal_hz:g} Hz from 0"

    def __iter__(self) -> Iterator[Item]:
        streams = [self._sensor_items(name, folder, stamps) for name, folder, stamps in self._sensors]
        # Ties keep sensor order (cameras before the Velodyne), so the output is deterministic.
        return heapq.merge(*streams, key=lambda item: item.t_ns)

    def _sensor_items(self, sensor: str, folder: Path, stamps: list[int | None] | None) -> Iterator[Item]:
        lidar = sensor == LIDAR_SENSOR
        # One sample depth per camera: its 16-bit pictures (if any) scaled alike (decode.SampleDepth).
        read = lidar_file_item if lidar else functools.partial(image_file_item, depth=SampleDepth())
        names = sorted(list_files(folder / "data", frozenset({".bin"}) if lidar else IMAGE_SUFFIXES), key=_frame_order)
        seq = SeqCounter()
        last_t = 0
        for position, name in enumerate(names):
            stem = Path(name).stem
            index = int(stem) if stem.isdigit() else position
            path = folder / "data" / name
            t_ns = self._time_of(index, stamps)
            if t_ns is None:
                detail = f"timestamps.txt has no valid line {index + 1} for {name}"
                yield Skip(sensor, seq(sensor), last_t, str(path), "bad_timestamp", detail)
                continue
            last_t = t_ns
            yield read(path, sensor, seq(sensor), t_ns, self.limits)

    def _time_of(self, index: int, stamps: list[int | None] | None) -> int | None:
        if stamps is None:
            return nominal_t_ns(index, self._hz)
        return stamps[index] if index < len(stamps) else None

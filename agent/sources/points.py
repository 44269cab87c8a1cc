"""LiDAR scans stored one per file: KITTI-style `.bin` (float32 x, y, z, intensity), nuScenes `.pcd.bin` (five
float32 columns), PCL `.pcd` (ascii, binary, binary_compressed; read with pypcd4) and `.ply` (read with plyfile).

Every reader returns Nx4 float32 (x, y, z, intensity) with intensity on KITTI's 0..1 scale: sensors that report
0..255 (Hesai, Velodyne, nuScenes) are divided by 255, so that one scorer threshold means the same on all of them.
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
import re
import struct
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np

from agent.errors import DecodeError
from agent.frame import FILE, Encoding, Frame, Item, Modality, Skip
from agent.sources.base import NS_PER_S, SeqCounter
from agent.sources.limits import DEFAULT_LIMITS, InputLimits, TooLarge, check_points, read_bounded

POINT_SUFFIXES = frozenset({".bin", ".pcd", ".ply", ".pcd.bin"})  # as point_suffix names them
_INTENSITY = ("intensity", "reflectance", "reflectivity", "i", "scalar_intensity")
# Epoch stamps in file names: 19 digits are ns, 16 us, 13 ms (nebula, nuScenes, ROS tools name files so).
_DIGITS = re.compile(r"(?<!\d)(\d{19}|\d{16}|\d{13})(?!\d)")
_DATETIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)[-_T ](\d\d)[-:](\d\d)[-:](\d\d)(?:[-.](\d{1,9}))?")
# Point counts as the headers state them, checked against inputs.max_points before a parser allocates anything.
_PCD_POINTS = re.compile(rb"^POINTS[ \t]+(\d+)", re.MULTILINE)
_PLY_VERTICES = re.compile(rb"^element[ \t]+vertex[ \t]+(\d+)", re.MULTILINE)
_PCD_COMPRESSED = re.compile(rb"^DATA[ \t]+binary_compressed[ \t]*\r?\n", re.MULTILINE)
_HEADER_BYTES = 4096


def point_suffix(name: str) -> str:
    """'.pcd.bin' for nuScenes scans, else the lower-case extension."""
    lower = name.lower()
    return ".pcd.bin" if lower.endswith(".pcd.bin") else Path(lower).suffix


def _unit_intensity(values: np.ndarray) -> np.ndarray:
    values = np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    top = float(values.max()) if values.size else 0.0
    return values / np.float32(255.0) if top > 1.0 else values


def _xyzi(x: np.ndarray, y: np.ndarray, z: np.ndarray, intensity: np.ndarray | None) -> np.ndarray:
    out = np.zeros((len(x), 4), dtype=np.float32)
    out[:, 0], out[:, 1], out[:, 2] = x, y, z
    if intensity is not None:
        out[:, 3] = _unit_intensity(intensity)
    return out


def read_bin(data: bytes, columns: int) -> np.ndarray:
    width = 4 * columns
    if len(data) % width:
        raise DecodeError(f"{len(data)} bytes is not a whole number of {width}-byte float32 points")
    raw = np.frombuffer(data, dtype="<f4").reshape(-1, columns)
    if columns == 4:
        return raw  # KITTI: already x, y, z, reflectance 0..1
    return _xyzi(raw[:, 0], raw[:, 1], raw[:, 2], raw[:, 3])


def xyzi_records(data: bytes, count: int, stride: int, fields: dict[str, tuple[int, str | None]],
                 what: str) -> np.ndarray:
    """Nx4 float32 x, y, z, intensity out of `count` packed records of `stride` bytes, as point cloud messages
    (ROS PointCloud2, Foxglove PointCloud) carry them. `fields`: name -> (byte offset, numpy type with its byte
    order, None for a type the message's format does not define); x, y and z are required, intensity is the
    first of the usual names present (0 without one). A DecodeError names `what`."""
    missing = [n for n in "xyz" if n not in fields]
    if missing:
        raise DecodeError(f"{what} has no {'/'.join(missing)} field (fields: {', '.join(fields)})")
    intensity = next((n for n in _INTENSITY if n in fields), None)
    wanted = ["x", "y", "z", *([intensity] if intensity else [])]
    formats: list[str] = []
    for name in wanted:
        offset, code = fields[name]
        if code is None:
            raise DecodeError(f"{what} field {name!r} has a type this reader does not know")
        if offset + np.dtype(code).itemsize > stride:
            raise DecodeError(f"{what} field {name!r} at offset {offset} overruns its {stride}-byte point")
        formats.append(code)
    dtype = np.dtype({"names": wanted, "formats": formats, "offsets": [fields[n][0] for n in wanted],
                      "itemsize": stride})
    records = np.frombuffer(data, dtype=dtype, count=count)
    points = np.zeros((count, 4), dtype=np.float32)
    for column, name in enumerate(wanted):
        points[:, column] = records[name]
    return points


def returns_only(points: np.ndarray) -> np.ndarray:
    """The points whose x, y and z are all finite (an organized cloud's "no return" placeholders left out)."""
    keep = np.isfinite(points[:, :3]).all(axis=1)
    return points if keep.all() else np.ascontiguousarray(points[keep])


def read_pcd(path: Path, data: bytes | None = None) -> np.ndarray:
    from pypcd4 import PointCloud  # deferred: only PCD inputs pay for the import

    try:
        cloud = PointCloud.from_path(path) if data is None else PointCloud.from_fileobj(io.BytesIO(data))
    except Exception as exc:  # pypcd4 raises ValueError, KeyError, struct and LZF errors on damaged files
        raise DecodeError(f"not a readable PCD file: {type(exc).__name__}: {exc}") from exc
    fields = list(cloud.fields)
    missing = [n for n in "xyz" if n not in fields]
    if missing:
        raise DecodeError(f"PCD has no {'/'.join(missing)} field (fields: {', '.join(fields)})")
    data = cloud.pc_data
    name = next((n for n in _INTENSITY if n in fields), None)
    points = _xyzi(data["x"], data["y"], data["z"], data[name] if name else None)
    # An organized cloud (HEIGHT > 1: one point per beam and firing, as PCL saves it) marks "no return" with NaN.
    return returns_only(points) if int(cloud.metadata.height) > 1 else points


def read_ply(path: Path, data: bytes | None = None) -> np.ndarray:
    from plyfile import PlyData  # deferred: only PLY inputs pay for the import

    try:
        ply = PlyData.read(str(path) if data is None else io.BytesIO(data))
        vertex = ply["vertex"].data
    except Exception as exc:  # plyfile raises PlyParseError, KeyError, ValueError on damaged files
        raise DecodeError(f"not a readable PLY point cloud: {type(exc).__name__}: {exc}") from exc
    names = vertex.dtype.names or ()
    missing = [n for n in "xyz" if n not in names]
    if missing:
        raise DecodeError(f"PLY vertices have no {'/'.join(missing)} property (properties: {', '.join(names)})")
    name = next((n for n in _INTENSITY if n in names), None)
    return _xyzi(vertex["x"], vertex["y"], vertex["z"], vertex[name] if name else None)


def read_points(path: Path, data: bytes | None = None) -> np.ndarray:
    """Nx4 float32 x, y, z, intensity of one scan file; DecodeError with a short reason otherwise."""
    suffix = point_suffix(path.name)
    if suffix == ".pcd":
        return read_pcd(path, data)
    if suffix == ".ply":
        return read_ply(path, data)
    if data is None:
        data = path.read_bytes()
    return read_bin(data, 5 if suffix == ".pcd.bin" else 4)


def header_points(data: bytes, suffix: str) -> int | None:
    """The point count a scan file states (PCD POINTS, PLY vertex element, .bin size); None if not stated."""
    if suffix in (".pcd", ".ply"):
        match = (_PCD_POINTS if suffix == ".pcd" else _PLY_VERTICES).search(data[:_HEADER_BYTES])
        return int(match.group(1)) if match else None
    return len(data) // (20 if suffix == ".pcd.bin" else 16)


def _check_pcd_compressed(data: bytes, limits: InputLimits) -> None:
    """binary_compressed PCD states its LZF output size before the data: refuse a size past the chunk bound."""
    match = _PCD_COMPRESSED.search(data[:_HEADER_BYTES])
    if match is None or len(data) < match.end() + 8:
        return
    _, size = struct.unpack_from("<II", data, match.end())
    if size > limits.max_chunk_bytes:
        raise TooLarge(f"PCD data says it decompresses to {size} bytes (limit {limits.max_chunk_bytes}, "
                       "inputs.max_chunk_mb)")


def point_file_item(path: Path, sensor: str, seq: int, t_ns: int, limits: InputLimits = DEFAULT_LIMITS) -> Item:
    """A scan file as a LiDAR Frame (nbytes: the file's size), or a Skip saying why not."""
    source = str(path)
    suffix = point_suffix(path.name)
    # A raw .bin has no header: its size is its point count, so it is bounded like KITTI's (16-20 bytes a point).
    limit = limits.max_file_bytes if suffix in (".pcd", ".ply") else min(limits.max_file_bytes,
                                                                         limits.max_points * 20)
    try:
        data = read_bounded(path, limit)
        count = header_points(data, suffix)
        if count is not None:
            check_points(count, limits)
        if suffix == ".pcd":
            _check_pcd_compressed(data, limits)
    except TooLarge as exc:
        return Skip(sensor, seq, t_ns, source, "too_large", str(exc))
    except OSError as exc:
        return Skip(sensor, seq, t_ns, source, "read_error", f"{type(exc).__name__}: {exc.strerror or exc}")
    try:
        points = read_points(path, data)
    except DecodeError as exc:
        return Skip(sensor, seq, t_ns, source, "decode_error" if not str(exc).endswith("points") else "bad_size",
                    str(exc))
    points = np.ascontiguousarray(points, dtype=np.float32)
    return Frame(
        sensor=sensor, modality=Modality.LIDAR, t_ns=t_ns, seq=seq, nbytes=len(data), source=source,
        encoding=Encoding.XYZI_F32, payload=points.tobytes(), array=points,
        meta={"points": str(len(points)), FILE: path.name},
    )


def stamp_in_name(name: str) -> int | None:
    """Epoch time (ns) written in a file name: a 13/16/19-digit number or a date-time; None when there is none."""
    found = stamp_and_span(name)
    return found[0] if found else None


def stamp_and_span(name: str) -> tuple[int, tuple[int, int]] | None:
    """stamp_in_name's time and where in `name` it is written (start, end); None when there is none."""
    match = _DIGITS.search(name)
    if match:
        digits = match.group(1)
        return int(digits) * {19: 1, 16: 1_000, 13: 1_000_000}[len(digits)], match.span()
    match = _DATETIME.search(name)
    if match is None:
        return None
    try:
        when = dt.datetime(*(int(g) for g in match.groups()[:6]), tzinfo=dt.timezone.utc)
    except ValueError:
        return None
    fraction = match.group(7) or ""
    # "-468" after the seconds is milliseconds (three digits), a longer group is a decimal fraction.
    frac_ns = int(fraction.ljust(9, "0")) if fraction else 0
    return calendar.timegm(when.utctimetuple()) * NS_PER_S + frac_ns, match.span()


def stamps_file(folder: Path) -> dict[str, tuple[int, bool]]:
    """timestamps.txt as 'file name -> (ns, is wall clock)' when its lines start with a file name.

    The first number after the name is used: epoch seconds (1e9..4e9) or epoch ns are wall-clock time; another
    large integer (a sensor's own ns counter) is relative time. KITTI's line-per-frame files are read elsewhere.
    """
    path = folder / "timestamps.txt"
    out: dict[str, tuple[int, bool]] = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split()
        if len(parts) < 2 or parts[0].startswith("#"):
            continue
        stamp = _first_stamp(parts[1:])
        if stamp is not None:
            out[parts[0]] = stamp
    return out


def _first_stamp(tokens: list[str]) -> tuple[int, bool] | None:
    for token in tokens:
        try:
            value = float(token)
        except ValueError:
            continue
        if 1e9 <= value < 4e9:
            return int(Decimal(token) * NS_PER_S), True  # exact: a float loses the microseconds
        if 1e18 <= value < 4e18:
            return int(token) if token.isdigit() else round(value), True
        if value >= 1e9 and token.isdigit():
            return int(token), False
    return None


def timed_files(folder: Path, names: list[str], hz: float) -> tuple[list[tuple[int, str]], str]:
    """(t_ns, name) in time order and the clock they are on: 'timestamps.txt', 'file names' or 'nominal rate'.

    Wall-clock stamps are used only when every file has one, so that one sensor never mixes clocks.
    """
    listed = stamps_file(folder)
    if listed and all(n in listed for n in names):
        wall = all(w for _, w in (listed[n] for n in names))
        base = 0 if wall else min(listed[n][0] for n in names)
        return sorted((listed[n][0] - base, n) for n in names), "timestamps.txt" if wall else "sensor clock"
    stamps = [stamp_in_name(n) for n in names]
    if names and all(s is not None for s in stamps):
        return sorted((s, n) for s, n in zip(stamps, names, strict=True) if s is not None), "file names"
    return [(round(i * NS_PER_S / hz), n) for i, n in enumerate(names)], "nominal rate"


def is_wall_clock(clock: str) -> bool:
    return clock in ("timestamps.txt", "file names")


def scan_items(folder: Path, names: list[str], sensor: str, hz: float,
               limits: InputLimits = DEFAULT_LIMITS) -> Iterator[Item]:
    seq = SeqCounter()
    for t_ns, name in timed_files(folder, names, hz)[0]:
        yield point_file_item(folder / name, sensor, seq(sensor), t_ns, limits)

"""Pick a few frames per (kept, primary reason) group, spread over time, and render them as data-URI thumbnails.

Selection is decided before anything is decoded, so offering every frame of a long drive costs a counter
increment per frame; only the few frames that enter a group are rendered.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from agent.frame import Frame, Modality
from agent.report.summary import primary_reason
from agent.sources.decode import image_of, points_of

GroupKey = tuple[bool, str]

BEV_RANGE_M = 50.0  # the LiDAR view spans +-50 m around the sensor (100 m x 100 m)
BEV_Z_RANGE_M = (-2.5, 2.5)  # heights mapped onto the colour scale, sensor frame
JPEG_QUALITY = 70
_BACKGROUND = (28, 22, 18)  # BGR, a dark slate
_TURBO = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(-1, 1), cv2.COLORMAP_TURBO).reshape(256, 3)


@dataclass(frozen=True, slots=True)
class Thumb:
    sensor: str
    seq: int
    t_ns: int
    score: float
    verdict: str
    rule: str
    reasons: tuple[str, ...]
    data_uri: str
    modality: str = ""
    placeholder: bool = False  # True when the frame did not decode and data_uri is a stand-in
    width: int = 0  # thumbnail width in pixels
    file: str = ""  # the frame's file, where it is a file of its own (a folder input)


@dataclass(slots=True)
class _Stream:
    """Evenly spaced picks from one sensor's frames in one group, by stride doubling.

    Frames whose arrival index is a multiple of `stride` are rendered; when more than `capacity` are held,
    every other one is dropped and the stride doubles, so the picks stay evenly spread over the whole stream.
    """

    capacity: int
    stride: int = 1
    offered: int = 0
    picks: list[tuple[int, Thumb]] = field(default_factory=list)

    def wants_next(self) -> bool:
        return self.offered % self.stride == 0

    def push(self, thumb: Thumb) -> None:
        self.picks.append((self.offered, thumb))
        while len(self.picks) > self.capacity:
            self.stride *= 2
            self.picks = [(i, t) for i, t in self.picks if i % self.stride == 0]


class ThumbnailCollector:
    """Keeps up to `per_group` thumbnails for each (kept, primary reason) group.

    Within a group the picks are spread evenly over each sensor's frames (arrival order), and the sensors of a
    group share its slots in turn, so interleaved camera and LiDAR frames do not alias each other out.
    Deterministic: the same frames offered in the same order give the same thumbnails.
    """

    def __init__(self, per_group: int, width: int) -> None:
        self.per_group = max(0, int(per_group))
        self.width = max(16, int(width))
        self._streams: dict[GroupKey, dict[str, _Stream]] = {}
        self._counts: dict[GroupKey, int] = {}

    def offer(self, frame: Frame, record: Mapping[str, Any]) -> None:
        """Consider one frame with its decision record; renders it only if it is picked."""
        key = (bool(record.get("kept", False)), primary_reason(record))
        self._counts[key] = self._counts.get(key, 0) + 1
        if self.per_group == 0:
            return
        sensors = self._streams.setdefault(key, {})
        stream = sensors.get(frame.sensor)
        if stream is None:
            stream = sensors[frame.sensor] = _Stream(capacity=2 * self.per_group)
        if stream.wants_next():
            stream.push(self._thumb(frame, record))
        stream.offered += 1

    def counts(self) -> dict[GroupKey, int]:
        """How many frames were offered per group (all of them, not only the rendered ones)."""
        return dict(self._counts)

    def groups(self) -> dict[GroupKey, list[Thumb]]:
        """Up to per_group thumbnails per group, in time order; kept groups first, then by group size."""
        order = sorted(self._streams, key=lambda k: (not k[0], -self._counts[k], k[1]))
        return {key: _merge(self._streams[key], self.per_group) for key in order}

    def _thumb(self, frame: Frame, record: Mapping[str, Any]) -> Thumb:
        uri, failed = render_thumbnail(frame, self.width)
        score = record.get("score")
        return Thumb(
            sensor=frame.sensor,
            seq=int(record.get("seq", frame.seq)),
            t_ns=int(record.get("t_ns", frame.t_ns)),
            score=float(score) if isinstance(score, int | float) else float("nan"),
            verdict=str(record.get("verdict", "")),
            rule=str(record.get("rule", "")),
            reasons=tuple(str(r) for r in record.get("reasons") or ()),
            data_uri=uri,
            modality=frame.modality.value,
            placeholder=failed,
            width=self.width,
            file=str(record.get("file", "")),
        )


def _evenly(items: list[Thumb], n: int) -> list[Thumb]:
    if len(items) <= n:
        return items
    if n == 1:
        return [items[0]]
    step = (len(items) - 1) / (n - 1)
    return [items[round(i * step)] for i in range(n)]


def _merge(sensors: dict[str, _Stream], per_group: int) -> list[Thumb]:
    """Share per_group slots between the group's sensors in turn, then pick evenly within each."""
    picks = {name: [t for _, t in stream.picks] for name, stream in sorted(sensors.items())}
    quota = dict.fromkeys(picks, 0)
    left = per_group
    while left > 0 and any(quota[name] < len(picks[name]) for name in picks):
        for name in picks:
            if left > 0 and quota[name] < len(picks[name]):
                quota[name] += 1
                left -= 1
    chosen = [t for name in picks for t in _evenly(picks[name], quota[name])]
    return sorted(chosen, key=lambda t: (t.t_ns, t.sensor, t.seq))


def render_thumbnail(frame: Frame, width: int) -> tuple[str, bool]:
    """(data URI, failed): the frame's thumbnail, or a placeholder if the frame does not decode."""
    try:
        if frame.modality is Modality.CAMERA:
            return _camera_thumb(frame, width), False
        return _lidar_thumb(frame, width), False
    except Exception:  # any decode failure becomes a placeholder, never a crash
        return placeholder_uri(width, frame.modality), True


def _camera_thumb(frame: Frame, width: int) -> str:
    image = image_of(frame, max_width=width * 2)
    if image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError("empty image")
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return _data_uri(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])


def bev_image(points: np.ndarray, size: int, range_m: float = BEV_RANGE_M) -> np.ndarray:
    """A size x size BGR bird's-eye view of Nx3+ points: x forward is up, y left is left, colour is height."""
    background = np.empty((size, size, 3), np.uint8)
    background[:] = _BACKGROUND
    _draw_rings(background, range_m)
    x, y, z = (np.asarray(points[:, i], dtype=np.float32) for i in range(3))
    # Comparisons with NaN are False, so this also drops non-finite points (without a cast warning later).
    inside = (np.abs(x) < range_m) & (np.abs(y) < range_m) & np.isfinite(z)
    scale = size / (2.0 * range_m)
    rows = np.minimum(((range_m - x[inside]) * scale).astype(np.intp), size - 1)
    cols = np.minimum(((range_m - y[inside]) * scale).astype(np.intp), size - 1)
    lo, hi = BEV_Z_RANGE_M
    level = np.clip((z[inside] - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint16) + 1
    # The highest point of each pixel sets its colour; 0 means no point.
    top = np.zeros(size * size, np.uint16)
    np.maximum.at(top, rows * size + cols, level)
    top = top.reshape(size, size)
    image = np.where((top > 0)[:, :, None], _TURBO[np.maximum(top, 1) - 1], background)
    _draw_ego(image)
    return image


def _draw_rings(image: np.ndarray, range_m: float) -> None:
    size = image.shape[0]
    centre = (size // 2, size // 2)
    for radius_m in (10.0, 20.0, 30.0, 40.0, 50.0):
        if radius_m <= range_m:
            radius = round(radius_m * size / (2.0 * range_m))
            cv2.circle(image, centre, radius, (60, 52, 46), 1, cv2.LINE_AA)


def _draw_ego(image: np.ndarray) -> None:
    size = image.shape[0]
    c = size // 2
    tip, half = max(3, size // 40), max(2, size // 64)
    triangle = np.array([[c, c - tip], [c - half, c + half], [c + half, c + half]], np.int32)
    cv2.fillPoly(image, [triangle], (255, 255, 255), cv2.LINE_AA)


def _lidar_thumb(frame: Frame, width: int) -> str:
    points = points_of(frame)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"points have shape {points.shape}")
    return _data_uri(".png", bev_image(points, width), [])


def _data_uri(ext: str, image: np.ndarray, params: list[int]) -> str:
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise ValueError(f"cannot encode {ext}")
    mime = "image/jpeg" if ext == ".jpg" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(buf.tobytes()).decode('ascii')}"


def placeholder_uri(width: int, modality: Modality | str = Modality.CAMERA) -> str:
    """An inline SVG stand-in for a frame that could not be decoded."""
    kind = Modality(modality) if not isinstance(modality, Modality) else modality
    height = width if kind is Modality.LIDAR else max(16, width * 3 // 8)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><rect width="100%" height="100%" fill="#3a3f47"/>'
        f'<path d="M0 0L{width} {height}M{width} 0L0 {height}" stroke="#5a616b" stroke-width="1"/>'
        f'<text x="50%" y="50%" fill="#e8eaed" font-family="sans-serif" font-size="13" '
        f'text-anchor="middle" dominant-baseline="middle">no preview</text></svg>'
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")

"""Live sources for `edgesift run`: OpenCV cameras, a video file at its own rate, Velodyne over UDP, a watched folder.

Each source is driven by one worker thread: `open()`, then `read()` in a loop until the worker stops, then
`close()`. `read()` blocks for at most about half a second and returns a Frame, a Skip, or None (nothing yet), so
the worker can beat its heartbeat and notice a stop. It raises on a broken device (the watchdog restarts the
worker) and raises `SourceFinished` at the end of a finite input. Frames are stamped with the host clock at
capture (`time.time_ns()`), the one clock all sensors of the vehicle share, so snippets line up across sensors.
"""

from __future__ import annotations

import abc
import os
import socket
import time
from pathlib import Path

import cv2
import numpy as np
import velodyne_decoder as vd

from agent.config.daemon import (
    CameraSourceConfig,
    FolderSourceConfig,
    SourceConfig,
    VelodyneUdpSourceConfig,
    VideoSourceConfig,
)
from agent.errors import InputError
from agent.frame import Frame, Item, Modality
from agent.sources.decode import SampleDepth
from agent.sources.images import IMAGE_SUFFIXES, image_file_item
from agent.sources.pcap import velodyne_xyzi
from agent.sources.points import POINT_SUFFIXES, point_file_item, point_suffix

NS = 1_000_000_000
READ_TIMEOUT_S = 0.5
_BACKENDS = {"any": cv2.CAP_ANY, "gstreamer": cv2.CAP_GSTREAMER, "ffmpeg": cv2.CAP_FFMPEG, "v4l2": cv2.CAP_V4L2}


class SourceFinished(Exception):
    """A finite input (a video without loop) reached its end."""


class LiveSource(abc.ABC):
    def __init__(self, config: SourceConfig) -> None:
        self.config = config
        self.sensor = config.name
        self.seq = 0

    def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire the device; raise to have the watchdog retry later."""

    @abc.abstractmethod
    def read(self) -> Item | None:
        """The next frame or skip, or None when nothing arrived within about READ_TIMEOUT_S."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the device (called from the worker thread, also after a failure)."""

    def _next_seq(self) -> int:
        seq, self.seq = self.seq, self.seq + 1
        return seq

    def _image_frame(self, image: np.ndarray, source: str) -> Frame:
        height, width = image.shape[:2]
        return Frame(self.sensor, Modality.CAMERA, time.time_ns(), self._next_seq(), image.nbytes, source,
                     array=image, meta={"width": str(width), "height": str(height)})


class CameraSource(LiveSource):
    """An OpenCV capture: a device index or path, an RTSP/HTTP URL, or a GStreamer pipeline string."""

    config: CameraSourceConfig

    def open(self) -> None:
        cfg = self.config
        self._capture = cv2.VideoCapture(cfg.device, _BACKENDS[cfg.backend])
        if not self._capture.isOpened():
            raise InputError(f"camera {cfg.name}: cannot open {cfg.device!r} ({cfg.backend})")
        if cfg.width and cfg.height:
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
        self._period = 1.0 / cfg.fps if cfg.fps else 0.0
        self._next_at = time.monotonic()

    def read(self) -> Item | None:
        ok, image = self._capture.read()
        if not ok or image is None:
            raise InputError(f"camera {self.sensor}: read failed (device gone or stream ended)")
        now = time.monotonic()
        if self._period and now < self._next_at:
            return None  # over the configured rate: drop at the source, not in the queue
        self._next_at = max(now, self._next_at + self._period)
        return self._image_frame(image, str(self.config.device))

    def close(self) -> None:
        capture = getattr(self, "_capture", None)
        if capture is not None:
            capture.release()


class VideoFileSource(LiveSource):
    """A video file played at its own frame rate (times `speed`), optionally looping: demos and tests."""

    config: VideoSourceConfig

    def open(self) -> None:
        self._capture = cv2.VideoCapture(self.config.path)
        if not self._capture.isOpened():
            raise InputError(f"video {self.config.name}: cannot open {self.config.path}")
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self._period = 1.0 / (fps if 0 < fps <= 1000 else 10.0) / self.config.speed
        self._next_at = time.monotonic()

    def read(self) -> Item | None:
        delay = self._next_at - time.monotonic()
        if delay > READ_TIMEOUT_S:
            time.sleep(READ_TIMEOUT_S)
            return None
        if delay > 0:
            time.sleep(delay)
        ok, image = self._capture.read()
        if not ok:
            if not self.config.loop:
                raise SourceFinished(self.config.path)
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._capture.read()
            if not ok:
                raise InputError(f"video {self.config.name}: {self.config.path} does not decode")
        self._next_at = max(self._next_at + self._period, time.monotonic() - self._period)
        return self._image_frame(image, self.config.path)

    def close(self) -> None:
        capture = getattr(self, "_capture", None)
        if capture is not None:
            capture.release()


class VelodyneUdpSource(LiveSource):
    """Velodyne data packets on a UDP port, assembled into one scan per rotation by velodyne_decoder."""

    config: VelodyneUdpSourceConfig

    def open(self) -> None:
        cfg = self.config
        vd_config = vd.Config()
        if cfg.model != "auto":
            vd_config.model = getattr(vd.Model, cfg.model)
        self._decoder = vd.StreamDecoder(vd_config)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, cfg.recv_buffer_kb * 1024)
        self._sock.bind((cfg.host, cfg.port))
        self._sock.settimeout(READ_TIMEOUT_S)
        self._packets = 0

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def read(self) -> Item | None:
        deadline = time.monotonic() + READ_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                data = self._sock.recv(2048)
            except TimeoutError:
                return None
            if len(data) != vd.PACKET_SIZE:
                continue  # position / telemetry packets
            self._packets += 1
            result = self._decoder.decode(time.time(), data, False)
            if result is not None:
                return self._scan(*result)
        return None

    def _scan(self, stamp: vd.TimePair, points: np.ndarray) -> Frame:
        xyzi = velodyne_xyzi(points)
        packets, self._packets = self._packets, 0
        return Frame(self.sensor, Modality.LIDAR, round(stamp.host * NS), self._next_seq(),
                     max(packets, 1) * vd.PACKET_SIZE, f"udp:{self.config.port}", array=xyzi,
                     meta={"points": str(len(xyzi)), "packets": str(packets)})

    def close(self) -> None:
        sock = getattr(self, "_sock", None)
        if sock is not None:
            sock.close()


class FolderSource(LiveSource):
    """New files in a folder, read once complete: size and mtime unchanged for settle_s, or renamed into place."""

    config: FolderSourceConfig

    def open(self) -> None:
        self._root = Path(self.config.path)
        if not self._root.is_dir():
            raise InputError(f"folder {self.config.name}: {self._root} is not a folder")
        self._seen: set[str] = set() if self.config.existing else set(self._listing())
        self._pending: dict[str, tuple[int, int, float]] = {}  # name -> (size, mtime_ns, since)
        self._ready: list[Path] = []
        self._depth = SampleDepth()  # 16-bit pictures (TIFF, PNG): the camera's sample depth so far

    def _listing(self) -> dict[str, os.stat_result]:
        out = {}
        with os.scandir(self._root) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(".") or name.endswith((".tmp", ".part")) or not self._suffix_ok(name):
                    continue
                try:
                    out[name] = entry.stat()
                except OSError:
                    continue
        return out

    def _suffix_ok(self, name: str) -> bool:
        kind = self.config.kind
        lidar, image = point_suffix(name) in POINT_SUFFIXES, Path(name).suffix.lower() in IMAGE_SUFFIXES
        return (kind == "auto" and (lidar or image)) or (kind == "lidar" and lidar) or (kind == "camera" and image)

    def read(self) -> Item | None:
        deadline = time.monotonic() + READ_TIMEOUT_S
        while not self._ready:
            self._scan()
            if self._ready or time.monotonic() >= deadline:
                break
            time.sleep(self.config.poll_s)
        if not self._ready:
            return None
        path = self._ready.pop(0)
        return self._item(path)

    def _scan(self) -> None:
        now = time.monotonic()
        listing = self._listing()
        self._seen &= listing.keys()  # forget files that are gone (a recorder rotating its folder)
        for name in sorted(listing.keys() - self._seen):
            st = listing[name]
            key = (st.st_size, st.st_mtime_ns)
            size, mtime, since = self._pending.get(name, (-1, -1, now))
            if (size, mtime) != key:
                self._pending[name] = (*key, now)
            elif st.st_size > 0 and now - since >= self.config.settle_s:
                del self._pending[name]
                self._seen.add(name)
                self._ready.append(self._root / name)

    def _item(self, path: Path) -> Item:
        t_ns = time.time_ns()
        with_time = path.stat().st_mtime_ns if path.exists() else t_ns
        # Scans are read as replay's folders read them: .bin, .pcd, .ply, nuScenes .pcd.bin, with no sensor model
        # assumed (a .bin read as KITTI's HDL-64 put an 8-beam Ouster in the LiDAR fault head's domain).
        lidar = point_suffix(path.name) in POINT_SUFFIXES
        if lidar and self.config.kind == "auto":
            # A folder receiving images and scans holds two sensors: one history per sensor must never mix a
            # camera with a LiDAR (the scorer compared an image embedding with a scan's: a shape error).
            self._lidar_seq = getattr(self, "_lidar_seq", -1) + 1
            item = point_file_item(path, lanes_of(self.config)[1], self._lidar_seq, with_time)
        elif lidar:
            item = point_file_item(path, self.sensor, self._next_seq(), with_time)
        else:
            item = image_file_item(path, self.sensor, self._next_seq(), with_time, depth=self._depth)
        if self.config.delete_after:
            path.unlink(missing_ok=True)
        return item


_KINDS: dict[str, type[LiveSource]] = {
    "camera": CameraSource, "video": VideoFileSource, "velodyne_udp": VelodyneUdpSource, "folder": FolderSource,
}


def lane_modalities(config: SourceConfig) -> dict[str, Modality]:
    """The sensor names a source's frames carry, with what each carries: an auto folder's pictures carry its
    name and its scans `<name>_lidar`."""
    if isinstance(config, FolderSourceConfig):
        return {"auto": {config.name: Modality.CAMERA, f"{config.name}_lidar": Modality.LIDAR},
                "camera": {config.name: Modality.CAMERA}, "lidar": {config.name: Modality.LIDAR}}[config.kind]
    lidar = isinstance(config, VelodyneUdpSourceConfig)
    return {config.name: Modality.LIDAR if lidar else Modality.CAMERA}


def lanes_of(config: SourceConfig) -> list[str]:
    """The sensor names a source's frames carry (see lane_modalities)."""
    return list(lane_modalities(config))


def make_source(config: SourceConfig) -> LiveSource:
    return _KINDS[config.type](config)

"""Per-vehicle MCAP files of received frames: ROS 2 CompressedImage / PointCloud2 (like kept.mcap) + JSON headers.

Per vehicle per ingest run, a series of segments `<out>/<vehicle>/<run id>-<n>.mcap`: a segment is finished
and the next one started once it reaches segment_mb or segment_s, so no file grows without end (and a finished
segment is a complete MCAP file that can be moved or archived while the ingest runs). A vehicle's frames of one
group commit make one MCAP chunk (written by mcap_segment.SegmentWriter: the JPEGs are not copied on the way),
closed by flush(); fsync() then fsyncs the files (and the folder entry of a new segment) before the receiver
commits the index and acks the broker; the files of one batch are fsynced in parallel (the disk serves several at
once). A chunk of JPEG images is stored uncompressed (zstd gains nothing on a JPEG and cost the ingest a third of
its CPU); one with a point cloud is zstd-compressed. A segment whose write failed part-way gets no more frames:
the next ones start a new segment. A clean stop (close())
writes the summary and footer; after a crash a file ends without them and is read with a streaming reader (`mcap`
CLI `recover`, or mcap.stream_reader).
"""

from __future__ import annotations

import json
import logging
import os
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from mcap.well_known import MessageEncoding, Profile, SchemaEncoding
from mcap_ros2._dynamic import serialize_dynamic

from agent.ingest.mcap_segment import SegmentWriter
from agent.replay import msgs
from agent.replay.mcap_out import IMAGE_TYPE, POINTS_TYPE, image_topic, points_topic
from agent.spool import JPEG, decompress_points
from agent.uplink.wire import FrameHeader

log = logging.getLogger(__name__)

HEADERS_TOPIC = "/edgesift/frames"
HEADER_TYPE = "edgesift.ReceivedFrame"
_HEADER_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": HEADER_TYPE,
    "description": "The uplink header of a received frame (see docs/mqtt.md), plus received_ns.",
    "type": "object",
    "additionalProperties": True,
}
_DROPPED_FIELDS = ("chunk", "chunks", "offset", "v")
_HEADER_FIELDS = tuple(f.name for f in fields(FrameHeader) if f.name not in _DROPPED_FIELDS)
_SYNC_THREADS = 8  # fsyncs of one batch in flight at once (each thread syncs its share of the files in turn:
# a task per file cost more CPU in thread hand-offs than the disk gained from more at once)
_CDR_LE = b"\x00\x01\x00\x00"  # CDR encapsulation: little endian
_STAMP = struct.Struct("<iII")  # stamp sec, nanosec, frame_id length
_U32 = struct.Struct("<I")


@dataclass(frozen=True)
class Flushed:
    """What McapSink.flush() handed to the OS and McapSink.fsync() makes durable."""

    fds: list[int]
    folders: list[Path]


@dataclass(frozen=True)
class RosMessage:
    topic: str
    type_name: str
    definition: str
    message: dict[str, Any]


def ros_message(header: FrameHeader, blob: bytes | memoryview) -> RosMessage:
    """The ROS 2 message for a frame blob; raises DecodeError when a point blob does not decompress."""
    if header.encoding == JPEG:
        message = msgs.compressed_image_msg(header.t_ns, header.sensor, blob)
        return RosMessage(image_topic(header.sensor), IMAGE_TYPE, msgs.COMPRESSED_IMAGE, message)
    message = msgs.point_cloud2_msg(header.t_ns, header.sensor, decompress_points(bytes(blob)))
    return RosMessage(points_topic(header.sensor), POINTS_TYPE, msgs.POINT_CLOUD2, message)


class _VehicleFile:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            self.writer = SegmentWriter(self.fd, Profile.ROS2, "edgesift-ingest")
            self.schemas: dict[str, tuple[int, Callable[[Any], bytes]]] = {}
            self.channels: dict[str, int] = {}
            self.sequence: dict[int, int] = {}
            schema_id = self.writer.register_schema(HEADER_TYPE, SchemaEncoding.JSONSchema,
                                                    json.dumps(_HEADER_SCHEMA).encode())
            self.headers = self.writer.register_channel(HEADERS_TOPIC, MessageEncoding.JSON, schema_id)
        except BaseException:
            os.close(self.fd)
            raise
        self.compress = False  # the open chunk holds a point cloud: zstd
        self.dirty = True
        self.frames = 0
        self.opened = time.monotonic()

    def add(self, ros: RosMessage, header: FrameHeader, received_ns: int) -> None:
        if ros.type_name not in self.schemas:
            schema_id = self.writer.register_schema(ros.type_name, SchemaEncoding.ROS2, ros.definition.encode())
            self.schemas[ros.type_name] = (schema_id, serialize_dynamic(ros.type_name, ros.definition)[ros.type_name])
        schema_id, encode = self.schemas[ros.type_name]
        if ros.topic not in self.channels:
            self.channels[ros.topic] = self.writer.register_channel(ros.topic, MessageEncoding.CDR, schema_id)
        t = max(0, header.t_ns)
        if ros.type_name == IMAGE_TYPE:
            self._add(self.channels[ros.topic], compressed_image_cdr(ros.message), t)  # the JPEG not copied
        else:
            self.compress = True
            self._add(self.channels[ros.topic], (encode(ros.message),), t)
        doc = {k: getattr(header, k) for k in _HEADER_FIELDS}  # not asdict(): 20x slower (deep copy)
        doc["received_ns"] = received_ns
        self._add(self.headers, (json.dumps(doc, separators=(",", ":")).encode(),), t)
        self.frames += 1
        self.dirty = True

    def _add(self, channel: int, data: tuple[Any, ...], t: int) -> None:
        sequence = self.sequence.get(channel, 0)
        self.sequence[channel] = sequence + 1
        self.writer.add_message(channel, t, data, sequence)

    @property
    def size(self) -> int:
        """Bytes of the segment, with the open chunk's messages."""
        return self.writer.position + self.writer.pending

    def end_chunk(self) -> None:
        """Write the open chunk (the batch's messages) to the file."""
        self.writer.end_chunk(self.compress)
        self.compress = False

    def sync(self) -> None:
        if self.dirty:
            self.end_chunk()
            _datasync(self.fd)
            self.dirty = False

    def close(self) -> None:
        try:
            if not self.writer.broken:
                self.writer.finish(self.compress)
                self.dirty = True
                self.sync()
        finally:
            os.close(self.fd)


def compressed_image_cdr(message: dict[str, Any]) -> tuple[bytes, Any]:
    """A sensor_msgs/CompressedImage (msgs.compressed_image_msg) as CDR, little endian, in two pieces: everything
    before the image data, and the data itself (not copied). Byte for byte what mcap_ros2 serializes (tested)."""
    head, data = message["header"], message["data"]
    frame_id, fmt = head["frame_id"].encode(), message["format"].encode()
    at = 4 + 8 + 4 + len(frame_id) + 1  # encapsulation, stamp, frame_id; alignment counts from after the first 4
    pad1 = -(at - 4) % 4
    at += pad1 + 4 + len(fmt) + 1
    pad2 = -(at - 4) % 4
    prefix = b"".join((
        _CDR_LE, _STAMP.pack(head["stamp"]["sec"], head["stamp"]["nanosec"], len(frame_id) + 1), frame_id,
        b"\0" * (1 + pad1), _U32.pack(len(fmt) + 1), fmt, b"\0" * (1 + pad2), _U32.pack(len(data)),
    ))  # fmt: skip
    return prefix, data


class McapSink:
    """Opens a vehicle's file on its first frame; sync() makes everything written so far durable."""

    def __init__(self, out_dir: Path, run_id: str, segment_mb: float = 512.0, segment_s: float = 3600.0) -> None:
        self.out_dir = out_dir
        self.run_id = run_id
        self.segment_bytes = int(segment_mb * 1_000_000)
        self.segment_s = segment_s
        self._files: dict[str, _VehicleFile] = {}
        self._segments: dict[str, int] = {}  # vehicle -> number of its open (or next) segment
        self._frames: dict[str, int] = {}  # vehicle -> frames in its finished segments
        self._new_dirs: set[Path] = set()  # folders with a new entry (segment or vehicle folder) since the last sync
        self._pool: ThreadPoolExecutor | None = None
        self.rolled = 0

    def segment(self, vehicle: str) -> str:
        """The relative path the vehicle's next frame goes to; finishes the open segment when it is full or old."""
        file = self._files.get(vehicle)
        if file is not None and (file.size >= self.segment_bytes or file.writer.broken
                                 or time.monotonic() - file.opened >= self.segment_s):
            self._finish(vehicle, file)
            self._segments[vehicle] = self._segments.get(vehicle, 0) + 1
            self.rolled += 1
        return f"{vehicle}/{self.run_id}-{self._segments.get(vehicle, 0):04d}.mcap"

    def write(self, vehicle: str, header: FrameHeader, ros: RosMessage, received_ns: int) -> None:
        file = self._files.get(vehicle)
        if file is None:
            path = self.out_dir / self.segment(vehicle)
            if not path.parent.is_dir():
                self._new_dirs.add(path.parent.parent)
            file = self._files[vehicle] = _VehicleFile(path)
            self._new_dirs.add(path.parent)
        file.add(ros, header, received_ns)

    def _finish(self, vehicle: str, file: _VehicleFile) -> None:
        del self._files[vehicle]
        self._frames[vehicle] = self._frames.get(vehicle, 0) + file.frames
        try:
            file.close()
        except (OSError, ValueError) as exc:
            log.error("ingest: cannot finish %s: %s", file.path, exc)

    def sync(self) -> None:
        """Everything written so far on disk."""
        self.fsync(self.flush())

    def flush(self) -> Flushed:
        """Everything written so far handed to the OS (open chunks closed, buffers flushed), for fsync(), which
        may run in another thread as long as nothing is written to the sink meanwhile."""
        dirty = [file for file in self._files.values() if file.dirty]
        for file in dirty:
            file.end_chunk()
            file.dirty = False
        folders, self._new_dirs = self._new_dirs, set()
        return Flushed([file.fd for file in dirty], sorted(folders, key=lambda p: len(p.parts)))

    def fsync(self, flushed: Flushed) -> None:
        """The flushed files' bytes on disk, then the folder entries of new segments (without which a crash
        could lose a new segment whose bytes were fsynced). Raises OSError."""
        try:
            if len(flushed.fds) > 1:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(_SYNC_THREADS, thread_name_prefix="mcap-fsync")
                shares = [flushed.fds[k::_SYNC_THREADS] for k in range(min(_SYNC_THREADS, len(flushed.fds)))]
                for _ in self._pool.map(_datasync_all, shares):  # re-raises the first OSError
                    pass
            elif flushed.fds:
                _datasync(flushed.fds[0])
            for folder in flushed.folders:  # a vehicle folder after its parent
                _fsync_dir(folder)
        except OSError:
            self._new_dirs.update(flushed.folders)  # synced again with the next batch
            raise

    def close(self) -> dict[str, int]:
        """Finish every file (summary + footer); returns frames written per vehicle."""
        for vehicle, file in list(self._files.items()):
            self._finish(vehicle, file)
        if self._new_dirs:
            self.sync()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        counts, self._frames = self._frames, {}
        return counts


def _datasync(fd: int) -> None:
    """A segment's appended bytes on disk. fdatasync writes the data and the metadata needed to read it back (the
    file's new size) but not its timestamps: the same durability for an append, for less CPU than fsync."""
    getattr(os, "fdatasync", os.fsync)(fd)


def _datasync_all(fds: list[int]) -> None:
    for fd in fds:
        _datasync(fd)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

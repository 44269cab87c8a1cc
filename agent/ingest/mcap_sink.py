"""Per-vehicle MCAP files of received frames: ROS 2 CompressedImage / PointCloud2 (like kept.mcap) + JSON headers.

Per vehicle per ingest run, a series of segments `<out>/<vehicle>/<run id>-<n>.mcap`: a segment is finished
and the next one started once it reaches segment_mb or segment_s, so no file grows without end (and a finished
segment is a complete MCAP file that can be moved or archived while the ingest runs). A vehicle's frames of one
group commit make one MCAP chunk, closed by sync(), which then fsyncs the files (and the folder entry of a new
segment) before the receiver commits the index and acks the broker; the files of one batch are fsynced in
parallel (the disk serves several at once). A chunk of JPEG images is stored uncompressed (zstd gains nothing on
a JPEG and cost the ingest a third of its CPU); one with a point cloud is zstd-compressed. A clean stop (close())
writes the summary and footer; after a crash a file ends without them and is read with a streaming reader (`mcap`
CLI `recover`, or mcap.stream_reader).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, Any

from mcap.well_known import MessageEncoding, Profile, SchemaEncoding
from mcap.writer import CompressionType, Writer
from mcap_ros2._dynamic import serialize_dynamic

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
_SYNC_THREADS = 8  # fsyncs of one batch in flight at once
_CHUNK_BYTES = 64 * 1024 * 1024  # a chunk closes by itself past this; sync() closes it at every group commit
# mcap's Writer takes one compression for the whole file and has no public way to close a chunk: the chunk being
# closed uses the first attribute, the second closes it. Without them (another mcap version) every message is
# its own chunk, zstd-compressed, as before.
_COMPRESSION_ATTR = "_Writer__compression"
_FINALIZE_ATTR = "_Writer__finalize_chunk"


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


def ros_message(header: FrameHeader, blob: bytes) -> RosMessage:
    """The ROS 2 message for a frame blob; raises DecodeError when a point blob does not decompress."""
    if header.encoding == JPEG:
        message = msgs.compressed_image_msg(header.t_ns, header.sensor, blob)
        return RosMessage(image_topic(header.sensor), IMAGE_TYPE, msgs.COMPRESSED_IMAGE, message)
    message = msgs.point_cloud2_msg(header.t_ns, header.sensor, decompress_points(blob))
    return RosMessage(points_topic(header.sensor), POINTS_TYPE, msgs.POINT_CLOUD2, message)


class _VehicleFile:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.stream: IO[bytes] = path.open("xb")
        self.batched = hasattr(Writer, _FINALIZE_ATTR)
        # else chunk_size=0: each message closes its chunk, so nothing waits in memory for the next fsync
        self.writer = Writer(self.stream, chunk_size=_CHUNK_BYTES if self.batched else 0,
                             compression=CompressionType.ZSTD)
        self.batched = self.batched and hasattr(self.writer, _COMPRESSION_ATTR)
        if not self.batched:
            log.warning("ingest: this mcap version cannot close a chunk on demand: one zstd chunk per message")
        self.compress = False  # the open chunk holds a point cloud: zstd
        if self.batched:
            self._compression(False)
        self.chunk_bytes = 0  # message bytes in the open chunk, not in the file yet
        self.writer.start(profile=Profile.ROS2, library="edgesift-ingest")
        self.schemas: dict[str, tuple[int, Callable[[Any], bytes]]] = {}
        self.channels: dict[str, int] = {}
        self.sequence: dict[int, int] = {}
        schema_id = self.writer.register_schema(HEADER_TYPE, SchemaEncoding.JSONSchema,
                                                json.dumps(_HEADER_SCHEMA).encode())
        self.headers = self.writer.register_channel(HEADERS_TOPIC, MessageEncoding.JSON, schema_id)
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
        if self.batched and ros.type_name != IMAGE_TYPE and not self.compress:
            self._compression(True)  # before adding: a chunk may close by itself inside add_message
        t = max(0, header.t_ns)
        self._add(self.channels[ros.topic], encode(ros.message), t)
        doc = {k: getattr(header, k) for k in _HEADER_FIELDS}  # not asdict(): 20x slower (deep copy)
        doc["received_ns"] = received_ns
        self._add(self.headers, json.dumps(doc, separators=(",", ":")).encode(), t)
        self.frames += 1
        self.dirty = True

    def _add(self, channel: int, data: bytes, t: int) -> None:
        sequence = self.sequence.get(channel, 0)
        self.sequence[channel] = sequence + 1
        self.writer.add_message(channel, log_time=t, data=data, publish_time=t, sequence=sequence)
        self.chunk_bytes += len(data)

    @property
    def size(self) -> int:
        """Bytes of the segment, with the open chunk's messages."""
        return self.stream.tell() + self.chunk_bytes

    def end_chunk(self) -> None:
        """Close the open chunk (the batch's messages) into the file's buffer."""
        if self.batched and self.chunk_bytes:
            getattr(self.writer, _FINALIZE_ATTR)()
            self._compression(False)
        self.chunk_bytes = 0

    def _compression(self, compress: bool) -> None:
        self.compress = compress
        setattr(self.writer, _COMPRESSION_ATTR, CompressionType.ZSTD if compress else CompressionType.NONE)

    def sync(self) -> None:
        if self.dirty:
            self.end_chunk()
            self.stream.flush()
            os.fsync(self.stream.fileno())
            self.dirty = False

    def close(self) -> None:
        self.writer.finish()
        self.chunk_bytes = 0
        self.dirty = True
        self.sync()
        self.stream.close()


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
        if file is not None and (file.size >= self.segment_bytes
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
            file.stream.flush()
            file.dirty = False
        folders, self._new_dirs = self._new_dirs, set()
        return Flushed([file.stream.fileno() for file in dirty], sorted(folders, key=lambda p: len(p.parts)))

    def fsync(self, flushed: Flushed) -> None:
        """The flushed files' bytes on disk, then the folder entries of new segments (without which a crash
        could lose a new segment whose bytes were fsynced). Raises OSError."""
        try:
            if len(flushed.fds) > 1:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(_SYNC_THREADS, thread_name_prefix="mcap-fsync")
                for _ in self._pool.map(os.fsync, flushed.fds):  # re-raises the first OSError
                    pass
            elif flushed.fds:
                os.fsync(flushed.fds[0])
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


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""ROS bags read with `rosbags` (pure Python): ROS 1 `.bag` files and rosbag2 folders (metadata.yaml with
SQLite `.db3` or `.mcap` storage).

Topics read: sensor_msgs Image, CompressedImage and PointCloud2 (as in MCAP inputs); raw LiDAR packets,
velodyne_msgs/VelodyneScan (decoded with velodyne-decoder, one scan per message) and Ouster PacketMsg topics
(decoded with ouster-sdk using the bag's metadata topic). Every other topic is one `unknown_schema` skip that
says how many messages it held. Times are the message header stamps (the log time when a header is unset).
A ROS 1 bag whose index is missing or damaged (a recording cut short) is read from an indexed copy of what it
holds (rosbag1_reindex), the cut a counted `corrupt_recording` skip; a rosbag2 SQLite file whose time-sorted read
fails on a damaged page is read on row by row (rosbag2_salvage).
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import DecodeError, InputError
from agent.frame import Frame, Item, Modality, Skip
from agent.sources.base import SeqCounter, Source, reorder, safe_name
from agent.sources.decode import SampleDepth
from agent.sources.limits import DEFAULT_LIMITS, InputLimits, TooLarge, check_points
from agent.sources.mcap_source import REORDER_WINDOW, message_frame, topic_sensor
from agent.sources.pcap import velodyne_xyzi
from agent.sources.ros_convert import stamp_ns
from agent.sources.rosbag1_reindex import reindex
from agent.sources.rosbag2_salvage import Lost, rows, sqlite_files

ROS1_MAGIC = b"#ROSBAG V2.0"
_VELODYNE_POINTS_PER_PACKET = 384  # 12 firing blocks x 32 channels per 1206-byte packet
_CAMERA = {"sensor_msgs/Image": "image", "sensor_msgs/CompressedImage": "compressed"}
_LIDAR = {"sensor_msgs/PointCloud2": "points", "velodyne_msgs/VelodyneScan": "velodyne"}
# Definitions for bags that do not carry them (rosbag2 before Iron stores only the type names).
_EXTRA_TYPES = {
    "velodyne_msgs/msg/VelodynePacket": "builtin_interfaces/Time stamp\nuint8[1206] data\n",
    "velodyne_msgs/msg/VelodyneScan": "std_msgs/Header header\nvelodyne_msgs/VelodynePacket[] packets\n",
    "ouster_ros/msg/PacketMsg": "uint8[] buf\n",
    "ouster_sensor_msgs/msg/PacketMsg": "uint8[] buf\n",
}


def is_rosbag2_folder(path: Path) -> bool:
    return path.is_dir() and (path / "metadata.yaml").is_file()


def _plain(msgtype: str) -> str:
    return msgtype.replace("/msg/", "/")


def _kind(msgtype: str, topic: str) -> str | None:
    name = _plain(msgtype)
    if name in _CAMERA:
        return _CAMERA[name]
    if name in _LIDAR:
        return _LIDAR[name]
    if name.endswith("/PacketMsg") and "lidar" in topic:
        return "ouster"
    return None


def _typestore() -> Any:
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    types: dict[str, Any] = {}
    for name, text in _EXTRA_TYPES.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


def _reader(path: str) -> Any:
    from rosbags.highlevel import AnyReader

    return AnyReader([Path(path)], default_typestore=_typestore())


def _topics(path: str) -> dict[str, str]:
    with _reader(path) as reader:
        return {c.topic: c.msgtype for c in reader.connections}


@dataclass(slots=True)
class _Topic:
    sensor: str
    kind: str
    decoder: Any = None  # velodyne ScanDecoder or ouster PacketBatcher, made on first use
    problem: str = ""  # set when the topic cannot be decoded at all
    extra: dict[str, Any] = field(default_factory=dict)
    depth: SampleDepth = field(default_factory=SampleDepth)  # a 16-bit image stream's sample depth so far


class RosbagSource(Source):
    """Camera and LiDAR topics of a ROS 1 bag or a rosbag2 folder, in header-stamp order."""

    kind = "rosbag"
    clock = "message header stamps"
    wall_clock = True

    def __init__(self, path: str, limits: InputLimits = DEFAULT_LIMITS) -> None:
        super().__init__(path)
        self.limits = limits
        self._fallback = safe_name(Path(path).stem) or "rosbag"
        self._read_path, self._cut = path, None  # a ROS 1 bag cut short is read from an indexed copy
        try:
            topics = _topics(path)
        except InputError:
            raise
        except Exception as exc:  # rosbags raises ReaderError, yaml and sqlite errors on unreadable bags
            topics = self._reindexed(exc)
        self.topics = topics
        if not any(_kind(msgtype, topic) for topic, msgtype in topics.items()):
            listed = ", ".join(f"{t} ({_plain(m)})" for t, m in sorted(topics.items())[:6]) or "none"
            raise InputError(f"{path} has no camera or LiDAR topic (Image, CompressedImage, PointCloud2, "
                             f"VelodyneScan, Ouster packets); its topics: {listed}")

    def _reindexed(self, exc: Exception) -> dict[str, str]:
        """The topics of an indexed copy of a ROS 1 bag whose index is missing or damaged (rosbag1_reindex), or
        the reader's refusal where it is no such bag or nothing in it reads."""
        refusal = InputError(f"{self.path} is not a readable ROS bag: {type(exc).__name__}: {exc}")
        path = Path(self.path)
        if not path.is_file():
            raise refusal from exc
        folder = Path(tempfile.mkdtemp(prefix="edgesift-reindex-"))
        weakref.finalize(self, shutil.rmtree, folder, True)
        try:
            done = reindex(path, folder, self.limits)
            topics = _topics(str(done.path)) if done.messages else {}
        except Exception as err:  # not a ROS 1 bag, or rosbags refuses the copy: the first refusal stands
            raise refusal from err
        if not topics:
            raise refusal from exc
        self._read_path = str(done.path)
        self._cut = Skip(self._fallback, -1, 0, self.path, "corrupt_recording", done.detail(path.stat().st_size))
        return topics

    def __iter__(self) -> Iterator[Item]:
        return reorder(self._items(), REORDER_WINDOW)

    def _items(self) -> Iterator[Item]:
        if self._cut is not None:
            yield self._cut
        with _reader(self._read_path) as reader:
            wanted, skips = self._plan(reader)
            yield from skips
            seq = SeqCounter()
            last_t, read_to = 0, -1
            try:
                for connection, log_ns, raw in reader.messages(connections=[c for c, _ in wanted.values()]):
                    state = wanted[connection.id][1]
                    read_to = max(read_to, log_ns)
                    for item in self._convert(reader, connection, state, log_ns, bytes(raw), seq):
                        last_t = max(last_t, item.t_ns)
                        yield item
            except Exception as exc:  # a damaged bag ends the read; what came before stays
                detail = f"{type(exc).__name__}: {exc}"[:500]
                files = sqlite_files(reader) if isinstance(exc, sqlite3.DatabaseError) else []
                yield Skip(self._fallback, -1, last_t, self.path, "corrupt_recording",
                           detail + ("; read on row by row" if files else ""))
                yield from self._salvage(reader, wanted, files, read_to, seq)
            yield from self._flush(seq)

    def _salvage(self, reader: Any, wanted: dict[int, tuple[Any, _Topic]], files: list[Path], read_to: int,
                 seq: SeqCounter) -> Iterator[Item]:
        """The rows of a damaged rosbag2 SQLite file that still read (rosbag2_salvage), after those read."""
        by_topic = {connection.topic: (connection, state) for connection, state in wanted.values()}
        for db3 in files:
            try:
                for row in rows(db3, set(by_topic), read_to):
                    if isinstance(row, Lost):
                        yield Skip(self._fallback, -1, 0, f"{self.path}:{db3.name}", "corrupt_recording",
                                   _lost(row))
                        continue
                    connection, state = by_topic[row[0]]
                    yield from self._convert(reader, connection, state, row[1], row[2], seq)
            except sqlite3.DatabaseError as exc:  # not even its tables read
                yield Skip(self._fallback, -1, 0, f"{self.path}:{db3.name}", "corrupt_recording",
                           f"no row reads: {type(exc).__name__}: {exc}"[:300])

    def _plan(self, reader: Any) -> tuple[dict[int, tuple[Any, _Topic]], list[Skip]]:
        names: dict[str, str] = {}
        wanted: dict[int, tuple[Any, _Topic]] = {}
        counts: dict[str, tuple[str, int]] = {}
        ouster = any(_kind(c.msgtype, c.topic) == "ouster" for c in reader.connections)
        metadata = _ouster_metadata(reader) if ouster else (None, "")
        self._topics: dict[str, _Topic] = {}
        for connection in reader.connections:
            kind = _kind(connection.msgtype, connection.topic)
            if kind is None:
                type_, n = counts.get(connection.topic, (_plain(connection.msgtype), 0))
                counts[connection.topic] = (type_, n + int(connection.msgcount))
                continue
            state = self._topics.get(connection.topic)
            if state is None:
                sensor = _unique(topic_sensor(_strip_packets(connection.topic)), names.values())
                names[connection.topic] = sensor
                state = self._topics[connection.topic] = _Topic(sensor, kind)
                if kind == "ouster":
                    state.extra["metadata"] = metadata
            wanted[connection.id] = (connection, state)
        skips = [
            Skip(topic_sensor(topic), -1, 0, f"{self.path}:{topic}", "unknown_schema",
                 f"{n} messages of {type_}: not a camera or LiDAR type")
            for topic, (type_, n) in sorted(counts.items())
            if not topic.endswith("metadata") or type_ != "std_msgs/String"  # read by the Ouster decoder
        ]
        return wanted, skips

    def _convert(self, reader: Any, connection: Any, state: _Topic, log_ns: int, raw: bytes,
                 seq: SeqCounter) -> Iterator[Item]:
        source = f"{self.path}:{connection.topic}"
        if state.problem:
            return
        try:
            msg = reader.deserialize(raw, connection.msgtype)
        except Exception as exc:  # the CDR/ROS1 decoders raise many types on a malformed message
            yield Skip(state.sensor, seq(state.sensor), log_ns, source, "decode_error", f"{type(exc).__name__}: {exc}")
            return
        if state.kind == "ouster":
            yield from self._ouster(state, msg, log_ns, source, seq)
            return
        t_ns = _stamp(msg) or log_ns
        number = seq(state.sensor)
        try:
            yield _frame(state, msg, number, t_ns, source, len(raw), self.limits)
        except TooLarge as exc:
            yield Skip(state.sensor, number, t_ns, source, "too_large", str(exc))
        except (DecodeError, ValueError, RuntimeError, OverflowError, MemoryError) as exc:
            yield Skip(state.sensor, number, t_ns, source, "decode_error", str(exc)[:300])

    def _ouster(self, state: _Topic, msg: Any, log_ns: int, source: str, seq: SeqCounter) -> Iterator[Item]:
        from agent.sources.ouster import PacketBatcher

        if state.decoder is None:
            metadata, problem = state.extra["metadata"]
            if metadata is None:
                state.problem = problem or "no Ouster metadata topic in the bag"
                yield Skip(state.sensor, -1, log_ns, source, "decode_error", state.problem)
                return
            try:
                state.decoder = PacketBatcher(metadata, self.limits)
            except DecodeError as exc:  # TooLarge too: a scan the metadata sizes past inputs.max_points
                state.problem = str(exc)
                yield Skip(state.sensor, -1, log_ns, source, "decode_error", state.problem)
                return
        try:
            done = state.decoder.add(bytes(msg.buf), log_ns)
        except DecodeError as exc:
            yield Skip(state.sensor, -1, log_ns, source, "decode_error", str(exc))
            return
        if done is not None:
            yield _ouster_frame(state, done, seq, source)

    def _flush(self, seq: SeqCounter) -> Iterator[Item]:
        for topic, state in getattr(self, "_topics", {}).items():
            if state.kind == "ouster" and state.decoder is not None:
                done = state.decoder.finish()
                if done is not None:
                    yield _ouster_frame(state, done, seq, f"{self.path}:{topic}")


def _lost(lost: Lost) -> str:
    ids = f"row {lost.first}" if lost.first == lost.last else f"rows {lost.first}-{lost.last}"
    return f"{ids} of the messages table do not read: {lost.detail}"


def _ouster_frame(state: _Topic, done: tuple[int, np.ndarray, int], seq: SeqCounter, source: str) -> Frame:
    from agent.sources.ouster import ouster_frame

    t_ns, points, packets = done
    return ouster_frame(state.sensor, seq(state.sensor), t_ns, points, packets * state.decoder.packet_bytes, source)


def _ouster_metadata(reader: Any) -> tuple[str | None, str]:
    """The JSON of the bag's Ouster metadata topic (std_msgs/String on .../metadata); else None and why ("": no
    such topic)."""
    meta = [c for c in reader.connections if c.topic.endswith("metadata") and _plain(c.msgtype) == "std_msgs/String"]
    if not meta:  # an empty list would read every message of the bag
        return None, ""
    problem = "the Ouster metadata topic holds no message"
    try:
        for connection, _, raw in reader.messages(connections=meta):
            try:
                return str(reader.deserialize(raw, connection.msgtype).data), ""
            except Exception as exc:  # noqa: PERF203 - a malformed metadata message: try the next one
                problem = f"the Ouster metadata message does not decode: {type(exc).__name__}: {exc}"[:300]
    except Exception as exc:  # rosbags and sqlite raise many types on a damaged bag
        problem = f"the bag is damaged before its Ouster metadata: {type(exc).__name__}: {exc}"[:300]
    return None, problem


def _strip_packets(topic: str) -> str:
    # /os_node0/lidar_packets -> /os_node0, /sensing/lidar/front/velodyne_packets -> /sensing/lidar/front
    levels = topic.rstrip("/").split("/")
    return "/".join(levels[:-1]) if levels[-1].endswith("_packets") and len(levels) > 2 else topic


def _unique(name: str, taken: Any) -> str:
    used = set(taken)
    out, n = name, 1
    while out in used:
        n += 1
        out = f"{name}_{n}"
    return out


def _stamp(msg: Any) -> int:
    header = getattr(msg, "header", None)
    return stamp_ns(msg) if header is not None and hasattr(header, "stamp") else 0


def _frame(state: _Topic, msg: Any, seq: int, t_ns: int, source: str, nbytes: int,
           limits: InputLimits = DEFAULT_LIMITS) -> Frame:
    if state.kind != "velodyne":
        return message_frame(state, msg, seq, t_ns, source, nbytes, limits)
    check_points(len(msg.packets) * _VELODYNE_POINTS_PER_PACKET, limits)  # before decoding: bounded by packets
    points = _velodyne_points(state, msg)
    return Frame(sensor=state.sensor, modality=Modality.LIDAR, t_ns=t_ns, seq=seq, nbytes=nbytes, source=source,
                 array=points, meta={"points": str(len(points))})


def _velodyne_points(state: _Topic, msg: Any) -> np.ndarray:
    import velodyne_decoder as vd

    if state.decoder is None:
        state.decoder = vd.ScanDecoder(vd.Config())
    packets = vd.PacketVector(
        vd.VelodynePacket(int(p.stamp.sec) + int(p.stamp.nanosec) * 1e-9, np.asarray(p.data, np.uint8).tobytes())
        for p in msg.packets
    )
    if not len(packets):
        raise DecodeError("VelodyneScan holds no packets")
    _, points = state.decoder.decode(packets)
    return velodyne_xyzi(points)

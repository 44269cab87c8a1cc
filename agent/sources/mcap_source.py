"""An MCAP recording of ROS 2 messages (Image / CompressedImage cameras, PointCloud2 LiDARs) or of Foxglove's
protobuf schemas (CompressedImage / RawImage, PointCloud: agent.sources.foxglove_convert).

The file is read in the reader's streaming (non-seeking) mode: one chunk in memory at a time, no need for the
summary section at the end, so a recording cut short by a crash or full disk still yields everything before
the damage. Other schemas are reported once per topic and otherwise ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcap.records import Channel, Message, Schema
from mcap_ros2.decoder import DecoderFactory

from agent.errors import DecodeError, InputError
from agent.frame import Frame, Item, Modality, Skip
from agent.sources import foxglove_convert
from agent.sources.base import SeqCounter, Source, reorder, safe_name
from agent.sources.decode import SampleDepth
from agent.sources.imageinfo import image_meta
from agent.sources.limits import DEFAULT_LIMITS, InputLimits, TooLarge, check_pixels, check_points
from agent.sources.mcap_salvage import Damage, salvage
from agent.sources.ros_convert import compressed_payload, image_array, points_array, stamp_ns

MCAP_MAGIC = b"\x89MCAP0\r\n"

# Topic levels that name the message kind rather than the sensor: /kitti/camera_02/image/compressed -> camera_02.
TRAILING_LEVELS = frozenset({
    "image_raw", "image", "compressed", "image_rect", "image_rect_color", "image_color",
    "points", "pointcloud", "points_raw",
})

# Schema name (ROS 2 spelling, with "/msg/" removed; Foxglove's protobuf schemas) -> what the message becomes.
_KINDS = {
    "sensor_msgs/Image": "image",
    "sensor_msgs/CompressedImage": "compressed",
    "sensor_msgs/PointCloud2": "points",
    **foxglove_convert.SCHEMAS,
}

# How far, in messages, a header stamp may lag the log order before items come out of time order.
REORDER_WINDOW = 64


def topic_sensor(topic: str) -> str:
    """Sensor name for a topic: its levels minus the trailing message-kind ones, joined with '_'."""
    levels = [level for level in topic.strip("/").split("/") if level]
    everything = safe_name("_".join(levels))
    while levels and levels[-1] in TRAILING_LEVELS:
        levels.pop()
    return safe_name("_".join(levels)) or everything or "topic"


@dataclass(slots=True)
class _Channel:
    sensor: str
    kind: str | None  # "image", "compressed", "points"; None: not read
    decode: Callable[[bytes], Any] | None
    why_not: str = ""  # for kind None: what the unknown_schema Skip says
    depth: SampleDepth = field(default_factory=SampleDepth)  # a 16-bit image stream's sample depth so far


class McapSource(Source):
    """Every camera and LiDAR message of the file (ROS 2 or Foxglove), in (header stamp) time order."""

    kind = "mcap"
    clock = "message header stamps"

    def __init__(self, path: str) -> None:
        super().__init__(path)
        try:
            with open(path, "rb") as fh:
                magic = fh.read(len(MCAP_MAGIC))
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if magic != MCAP_MAGIC:
            raise InputError(f"{path} is not an MCAP file (bad magic bytes)")
        self._fallback_sensor = safe_name(Path(path).stem) or "mcap"

    def __iter__(self) -> Iterator[Item]:
        return reorder(self._items(), REORDER_WINDOW)

    def _items(self) -> Iterator[Item]:
        reading = _Reading(self.path, self.limits)
        schemas: dict[int, Schema] = {}
        channels: dict[int, Channel] = {}
        with open(self.path, "rb") as fh:
            size = fh.seek(0, 2)
            # Record by record: a damaged chunk (its CRC fails) is skipped whole and reading resumes after it,
            # so a flipped bit neither ends the salvage nor becomes a plausible frame.
            for record in salvage(fh, size, self.limits):
                if isinstance(record, Damage):
                    yield self._damaged(reading, record)
                elif isinstance(record, Schema):
                    schemas[record.id] = record
                elif isinstance(record, Channel):
                    channels[record.id] = record
                elif record.channel_id in channels:
                    channel = channels[record.channel_id]
                    item = reading.item(schemas.get(channel.schema_id), channel, record)
                    if item is not None:
                        reading.last_t = max(reading.last_t, item.t_ns)
                        yield item

    def _damaged(self, reading: _Reading, damage: Damage) -> Skip:
        reason = "too_large" if damage.oversized else "corrupt_recording"
        detail = f"{damage.detail}; {reading.messages} messages read before it, reading resumed after it"
        return Skip(self._fallback_sensor, -1, reading.last_t, self.path, reason, detail[:500])


class _Reading:
    """The state of one pass over a file: channels seen, sensor names given out, seq numbers."""

    def __init__(self, path: str, limits: InputLimits = DEFAULT_LIMITS) -> None:
        self.path = path
        self.limits = limits
        self.messages = 0
        self.last_t = 0  # latest item time so far: a corrupt_recording Skip sorts after what was salvaged
        self._factories: list[Any] = [DecoderFactory()]  # ROS 2 CDR; protobuf added on its first channel
        self._channels: dict[int, _Channel] = {}
        self._sensors: dict[str, str] = {}  # topic -> sensor name (several channels may share a topic)
        self._reported: set[str] = set()
        self._seq = SeqCounter()

    def item(self, schema: Schema | None, channel: Channel, message: Message) -> Item | None:
        self.messages += 1
        state = self._channels.get(channel.id)
        if state is None:
            state = self._channels[channel.id] = self._open_channel(schema, channel)
            if state.kind is None and channel.topic not in self._reported:  # once per topic, on its first message
                self._reported.add(channel.topic)
                source = f"{self.path}:{channel.topic}"
                return Skip(state.sensor, -1, message.log_time, source, "unknown_schema", state.why_not)
        if state.kind is None or state.decode is None:
            return None
        return self._convert(state, channel.topic, message)

    def _open_channel(self, schema: Schema | None, channel: Channel) -> _Channel:
        base = topic_sensor(channel.topic)
        schema_name = schema.name if schema is not None else "(none)"
        kind = _KINDS.get(schema_name.replace("/msg/", "/"))
        if kind is None:
            return _Channel(base, None, None, f"{channel.topic}: schema {schema_name} is not a camera or LiDAR type")
        if channel.message_encoding == "protobuf" and len(self._factories) == 1:
            from mcap_protobuf.decoder import DecoderFactory as ProtobufDecoders  # deferred: Foxglove files only

            self._factories.append(ProtobufDecoders())
        decode, problem = None, f"message encoding {channel.message_encoding!r} is neither ROS 2 CDR nor protobuf"
        for factory in self._factories:
            try:
                decode = factory.decoder_for(channel.message_encoding, schema)
            except Exception as exc:  # a bad message definition must not stop the other topics
                decode, problem = None, f"{type(exc).__name__}: {exc}"
                break
            if decode is not None:
                break
        if decode is None:
            return _Channel(base, None, None, f"{channel.topic}: {schema_name} cannot be decoded ({problem})")
        return _Channel(self._sensor_for(channel.topic, base), kind, decode)

    def _sensor_for(self, topic: str, base: str) -> str:
        # Two topics of one file can reduce to one name (/cam/image_raw and /cam/image_raw/compressed).
        if topic not in self._sensors:
            taken = set(self._sensors.values())
            name, n = base, 1
            while name in taken:
                n += 1
                name = f"{base}_{n}"
            self._sensors[topic] = name
        return self._sensors[topic]

    def _convert(self, state: _Channel, topic: str, message: Message) -> Item:
        seq = self._seq(state.sensor)
        source = f"{self.path}:{topic}"
        assert state.decode is not None
        try:
            decoded = state.decode(message.data)
            t_ns = stamp_ns(decoded) or message.log_time
        except Exception as exc:  # the CDR decoder raises many types on a malformed message
            return Skip(state.sensor, seq, message.log_time, source, "decode_error", f"{type(exc).__name__}: {exc}")
        try:
            return message_frame(state, decoded, seq, t_ns, source, len(message.data), self.limits)
        except TooLarge as exc:
            return Skip(state.sensor, seq, t_ns, source, "too_large", str(exc))
        except (DecodeError, ValueError, OverflowError, MemoryError) as exc:  # numpy on lying headers
            return Skip(state.sensor, seq, t_ns, source, "decode_error", f"{type(exc).__name__}: {exc}"[:300])


def message_frame(state: Any, msg: Any, seq: int, t_ns: int, source: str, nbytes: int,
                  limits: InputLimits = DEFAULT_LIMITS) -> Frame:
    """A decoded Image / CompressedImage / PointCloud2 message (`state.kind`) as a Frame of `state.sensor`.

    Raises TooLarge past the pixel / point limits (from the message header, before any array is built).
    """
    common = {"sensor": state.sensor, "t_ns": t_ns, "seq": seq, "nbytes": nbytes, "source": source}
    if state.kind == "compressed":
        encoding, data, width, height = compressed_payload(msg)
        check_pixels(width, height, limits)
        return Frame(modality=Modality.CAMERA, encoding=encoding, payload=data, meta=image_meta(width, height),
                     **common)
    if state.kind == "image":
        check_pixels(int(msg.width), int(msg.height), limits)
        image = image_array(msg, getattr(state, "depth", None))
        return Frame(modality=Modality.CAMERA, array=image, meta=image_meta(image.shape[1], image.shape[0]),
                     **common)
    if state.kind == "foxglove_points":
        check_points(foxglove_convert.point_count(msg), limits)
        points = foxglove_convert.points_array(msg)
    else:
        check_points(int(msg.width) * int(msg.height), limits)
        points = points_array(msg)
    return Frame(modality=Modality.LIDAR, array=points, meta={"points": str(len(points))}, **common)

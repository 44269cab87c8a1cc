"""kept.mcap: the spool's frames as ROS 2 messages plus every decision as JSON, readable by Foxglove and `mcap`."""

from __future__ import annotations

import heapq
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from mcap.well_known import MessageEncoding, Profile, SchemaEncoding
from mcap.writer import CompressionType, Writer

# The encoder factory mcap_ros2.writer.Writer itself uses; calling it directly lets one mcap Writer carry both the
# CDR channels and the JSON decisions channel.
from mcap_ros2._dynamic import serialize_dynamic

from agent.errors import DecodeError, SpoolError
from agent.replay import msgs
from agent.spool import JPEG, XYZI_F32_ZSTD, Spool, SpoolEntry, decompress_points

log = logging.getLogger(__name__)

IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
POINTS_TYPE = "sensor_msgs/msg/PointCloud2"
DECISION_TYPE = "edgesift.Decision"
DECISIONS_TOPIC = "/edgesift/decisions"
CHUNK_SIZE = 1024 * 1024

_DECISION_PROPERTIES: dict[str, Any] = {
    "sensor": {"type": "string", "description": "Sensor name"},
    "modality": {"type": "string", "enum": ["camera", "lidar"]},
    "seq": {"type": "integer", "description": "Frame number within the sensor's stream"},
    "t_ns": {"type": "integer", "description": "Capture time, ns since the epoch"},
    "verdict": {"type": "string", "enum": ["helpful", "useless", "harmful"]},
    "score": {"type": "number", "minimum": 0, "maximum": 1},
    "kept": {"type": "boolean", "description": "Whether the frame is in the spool (and this file) at the end"},
    "reasons": {"type": "array", "items": {"type": "string"}, "description": "Signals behind the verdict"},
    "rule": {"type": "string", "description": "The policy rule that decided"},
    "bytes": {"type": "integer", "description": "Size of the frame in its input"},
    "frame_id": {"type": "string", "description": "Stable frame id (spool key)"},
    "signals": {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
}
DECISION_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": DECISION_TYPE,
    "description": "What edgesift decided for one frame, and why.",
    "type": "object",
    "properties": _DECISION_PROPERTIES,
    "required": [name for name in _DECISION_PROPERTIES if name != "signals"],
    "additionalProperties": True,
}

_TOKEN_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")


def topic_token(sensor: str) -> str:
    """A sensor name as a valid ROS 2 topic token (letters, digits, single underscores, not digit-first)."""
    token = re.sub(r"_+", "_", _TOKEN_UNSAFE.sub("_", sensor)).strip("_") or "sensor"
    return f"sensor_{token}" if token[0].isdigit() else token


def image_topic(sensor: str) -> str:
    return f"/edgesift/{topic_token(sensor)}/image/compressed"


def points_topic(sensor: str) -> str:
    return f"/edgesift/{topic_token(sensor)}/points"


class _KeptWriter:
    """One MCAP writer holding CDR (ROS 2) channels for frames and a JSON channel for decisions."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._mcap = Writer(stream, chunk_size=CHUNK_SIZE, compression=CompressionType.ZSTD)
        self._mcap.start(profile=Profile.ROS2, library="edgesift")
        self._ros_schemas: dict[str, tuple[int, Callable[[Any], bytes]]] = {}
        self._channels: dict[str, int] = {}
        self._sequence: dict[int, int] = {}
        schema_id = self._mcap.register_schema(
            DECISION_TYPE, SchemaEncoding.JSONSchema, json.dumps(DECISION_SCHEMA).encode()
        )
        self._decisions = self._mcap.register_channel(DECISIONS_TOPIC, MessageEncoding.JSON, schema_id)

    def ros(self, topic: str, type_name: str, definition: str, message: Mapping[str, Any], t_ns: int) -> None:
        if type_name not in self._ros_schemas:
            schema_id = self._mcap.register_schema(type_name, SchemaEncoding.ROS2, definition.encode())
            self._ros_schemas[type_name] = (schema_id, serialize_dynamic(type_name, definition)[type_name])
        schema_id, encode = self._ros_schemas[type_name]
        if topic not in self._channels:
            self._channels[topic] = self._mcap.register_channel(topic, MessageEncoding.CDR, schema_id)
        self._add(self._channels[topic], encode(message), t_ns)

    def decision(self, record: Mapping[str, Any]) -> None:
        data = json.dumps(_jsonable(record), separators=(",", ":"), allow_nan=False).encode()
        self._add(self._decisions, data, int(record.get("t_ns", 0)))

    def _add(self, channel_id: int, data: bytes, t_ns: int) -> None:
        sequence = self._sequence.get(channel_id, 0)
        self._sequence[channel_id] = sequence + 1
        t = max(0, int(t_ns))
        self._mcap.add_message(channel_id, log_time=t, data=data, publish_time=t, sequence=sequence)

    def metadata(self, name: str, data: Mapping[str, str]) -> None:
        self._mcap.add_metadata(name, dict(data))

    def finish(self) -> None:
        self._mcap.finish()


def clock_metadata(rows: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Each input's clock as an MCAP metadata record (string -> string): input path -> JSON of its clock row."""
    return {_utf8(str(row["input"])): json.dumps(dict(row), separators=(",", ":")) for row in rows}


def _utf8(text: str) -> str:
    # A path with undecodable bytes (a non-UTF-8 folder name) arrives with surrogates, which MCAP cannot encode.
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def write_kept_mcap(path: Path, spool: Spool, decisions: Iterable[Mapping[str, Any]],
                    metadata: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, int]:
    """Write the spool's frames and all decisions to `path` in log-time order; returns {frames, decisions, bytes}.

    `metadata`: MCAP metadata records to add (name -> string map), such as each input's clock.

    Frames are read from the spool one at a time. The file appears under its final name only when complete.
    """
    records = sorted(decisions, key=lambda r: int(r.get("t_ns", 0)))
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    counts = {"frames": 0, "decisions": 0}
    try:
        with partial.open("wb") as stream:
            writer = _KeptWriter(stream)
            for _, _, _, item in heapq.merge(_frame_items(spool), _decision_items(records)):
                if isinstance(item, SpoolEntry):
                    counts["frames"] += _write_frame(writer, spool, item)
                else:
                    writer.decision(item)
                    counts["decisions"] += 1
            for name, data in (metadata or {}).items():
                writer.metadata(name, data)
            writer.finish()
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return {**counts, "bytes": path.stat().st_size}


# Merge keys: (t_ns, 0 = frame before its decision, running number, item); the running number keeps items apart.
def _frame_items(spool: Spool) -> Iterator[tuple[int, int, int, Any]]:
    for n, entry in enumerate(spool.entries(order="oldest")):
        yield entry.t_ns, 0, n, entry


def _decision_items(records: list[Mapping[str, Any]]) -> Iterator[tuple[int, int, int, Any]]:
    for n, record in enumerate(records):
        yield int(record.get("t_ns", 0)), 1, n, record


def _write_frame(writer: _KeptWriter, spool: Spool, entry: SpoolEntry) -> int:
    """Write one spool frame; 0 when it cannot be (deleted meanwhile, unknown encoding, corrupt)."""
    try:
        blob = spool.read_blob(entry)
        if entry.encoding == JPEG:
            message = msgs.compressed_image_msg(entry.t_ns, entry.sensor, blob)
            writer.ros(image_topic(entry.sensor), IMAGE_TYPE, msgs.COMPRESSED_IMAGE, message, entry.t_ns)
        elif entry.encoding == XYZI_F32_ZSTD:
            message = msgs.point_cloud2_msg(entry.t_ns, entry.sensor, decompress_points(blob))
            writer.ros(points_topic(entry.sensor), POINTS_TYPE, msgs.POINT_CLOUD2, message, entry.t_ns)
        else:
            log.warning("kept.mcap: %s has unknown encoding %r, not written", entry.frame_id, entry.encoding)
            return 0
    except (SpoolError, DecodeError) as exc:
        log.warning("kept.mcap: %s not written: %s", entry.frame_id, exc)
        return 0
    return 1


def _jsonable(value: Any) -> Any:
    """Plain JSON values: non-finite floats become null, numpy scalars and arrays become numbers and lists."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _jsonable(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)

"""The frame message format and topic names shared by the uplink (vehicle) and the ingest (cloud).

A frame message is one MQTT payload:

    4 bytes   big-endian length H of the header
    H bytes   UTF-8 JSON header (FrameHeader fields)
    the rest  bytes [offset, offset + len) of the frame's blob (the whole blob when chunks == 1)

See docs/mqtt.md for the field list. Decoding never trusts the sender: every field is type- and range-checked.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass, fields
from typing import Any

from agent.errors import EdgesiftError

FORMAT_VERSION = 1
CONTENT_TYPE = "application/vnd.edgesift.frame.v1"
MAX_HEADER_BYTES = 16_384
MAX_BLOB_BYTES = 512 * 1024 * 1024
MAX_CHUNKS = 1_000_000
ENCODINGS = ("jpeg", "xyzi-f32-zstd")
MODALITIES = ("camera", "lidar")
_LEN = struct.Struct(">I")
_SAFE_LEVEL = re.compile(r"[^A-Za-z0-9_.-]")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


class WireError(EdgesiftError):
    """A payload or topic that is not a valid edgesift frame message."""


@dataclass(frozen=True, slots=True)
class FrameHeader:
    frame_id: str
    vehicle: str
    sensor: str
    modality: str
    t_ns: int
    seq: int
    verdict: str
    score: float
    reasons: list[str]
    rule: str
    encoding: str
    scorer: str
    sha256: str  # of the whole blob
    size: int  # bytes of the whole blob
    chunk: int = 0
    chunks: int = 1
    offset: int = 0  # where this chunk's bytes start in the blob
    sent_ns: int = 0  # wall clock when the vehicle published (for latency; not part of the identity)
    v: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        # what dataclasses.asdict() gives, for a fraction of its CPU (it deep-copies every field, for one list)
        doc = {name: getattr(self, name) for name in _FIELD_NAMES}
        doc["reasons"] = list(self.reasons)
        return doc


_FIELD_NAMES = tuple(f.name for f in fields(FrameHeader))


# ---- topics


def topic_level(name: str) -> str:
    """A name as one safe topic level: no wildcards, separators or spaces (the header keeps the exact name)."""
    return _SAFE_LEVEL.sub("_", name)[:128] or "_"


def frames_topic(prefix: str, vehicle: str, sensor: str) -> str:
    return f"{prefix}/{vehicle}/frames/{topic_level(sensor)}"


def status_topic(prefix: str, vehicle: str) -> str:
    return f"{prefix}/{vehicle}/status"


def stats_topic(prefix: str, vehicle: str) -> str:
    return f"{prefix}/{vehicle}/stats"


def split_topic(topic: str, prefix: str) -> tuple[str, str] | None:
    """(vehicle, kind) for `<prefix>/<vehicle>/<kind>[/...]`, or None for anything else."""
    head = f"{prefix}/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head):].split("/")
    if len(parts) < 2 or not _ID_RE.match(parts[0]):
        return None
    return parts[0], parts[1]


def is_vehicle_id(value: str) -> bool:
    return bool(_ID_RE.match(value))


# ---- encoding


def encode(header: FrameHeader, data: bytes | memoryview) -> bytes:
    raw = json.dumps(header.to_dict(), separators=(",", ":"), allow_nan=False).encode("utf-8")
    return b"".join((_LEN.pack(len(raw)), raw, data))


def chunk_data_size(header: FrameHeader, max_payload: int) -> int:
    """Blob bytes per message so that header + data fit in `max_payload` (worst-case header for this blob)."""
    worst = FrameHeader(**{**header.to_dict(), "chunk": header.size, "chunks": header.size, "offset": header.size,
                           "sent_ns": 2**63})
    overhead = _LEN.size + len(json.dumps(worst.to_dict(), separators=(",", ":")).encode("utf-8"))
    return max(1024, max_payload - overhead)  # a pathological header may push a message slightly over the limit


def split_blob(header: FrameHeader, blob: bytes, max_payload: int) -> list[tuple[FrameHeader, memoryview]]:
    """The (header, data) messages of one frame; one message when it fits in `max_payload`."""
    view = memoryview(blob)
    step = chunk_data_size(header, max_payload)
    count = max(1, -(-len(blob) // step))
    parts = []
    for index in range(count):
        start = index * step
        chunk_header = FrameHeader(**{**header.to_dict(), "chunk": index, "chunks": count, "offset": start})
        parts.append((chunk_header, view[start:start + step]))
    return parts


def sha256_hex(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- decoding (hostile input)


def decode(payload: bytes) -> tuple[FrameHeader, memoryview]:
    """Parse and check one frame message; raises WireError saying what is wrong."""
    if len(payload) < _LEN.size:
        raise WireError(f"payload of {len(payload)} bytes is too short for a header")
    (length,) = _LEN.unpack_from(payload)
    if length > MAX_HEADER_BYTES or length > len(payload) - _LEN.size:
        raise WireError(f"header length {length} is too large for a payload of {len(payload)} bytes")
    try:
        doc = json.loads(payload[_LEN.size:_LEN.size + length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError(f"header is not UTF-8 JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise WireError("header is not a JSON object")
    header = _header_of(doc)
    data = memoryview(payload)[_LEN.size + length:]
    _check_extent(header, len(data))
    return header, data


def _field(doc: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    value = doc.get(name, default)
    if value is None or isinstance(value, bool) or not isinstance(value, kind):
        raise WireError(f"header field {name!r} is missing or not {getattr(kind, '__name__', kind)}")
    return value


def _text(doc: dict[str, Any], name: str, max_len: int = 256) -> str:
    value = _field(doc, name, str)
    if not value or len(value) > max_len:
        raise WireError(f"header field {name!r} must be 1-{max_len} characters")
    return value


def _header_of(doc: dict[str, Any]) -> FrameHeader:
    if doc.get("v") != FORMAT_VERSION:
        raise WireError(f"unsupported format version {str(doc.get('v'))[:16]!r}")
    reasons = _field(doc, "reasons", list)
    if len(reasons) > 64 or not all(isinstance(r, str) and len(r) <= 64 for r in reasons):
        raise WireError("header field 'reasons' must be a list of at most 64 short strings")
    header = FrameHeader(
        frame_id=_text(doc, "frame_id"), vehicle=_text(doc, "vehicle", 64), sensor=_text(doc, "sensor", 128),
        modality=_text(doc, "modality"), t_ns=_field(doc, "t_ns", int), seq=_field(doc, "seq", int),
        verdict=_text(doc, "verdict", 32), score=float(_field(doc, "score", (int, float))), reasons=reasons,
        rule=_text(doc, "rule", 64), encoding=_text(doc, "encoding"), scorer=_text(doc, "scorer", 128),
        sha256=_text(doc, "sha256", 64), size=_field(doc, "size", int), chunk=_field(doc, "chunk", int, 0),
        chunks=_field(doc, "chunks", int, 1), offset=_field(doc, "offset", int, 0),
        sent_ns=_field(doc, "sent_ns", int, 0),
    )  # fmt: skip
    if header.modality not in MODALITIES or header.encoding not in ENCODINGS:
        raise WireError(f"unknown modality/encoding {header.modality[:16]!r}/{header.encoding[:16]!r}")
    if not _SHA_RE.match(header.sha256):
        raise WireError("header field 'sha256' is not 64 lowercase hex digits")
    if not 0.0 <= header.score <= 1.0 or not -(2**63) <= header.t_ns < 2**63 or not 0 <= header.seq < 2**63:
        raise WireError("score, t_ns or seq out of range")
    return header


def _check_extent(header: FrameHeader, length: int) -> None:
    if not 0 < header.size <= MAX_BLOB_BYTES:
        raise WireError(f"blob size {header.size} out of range")
    if not 1 <= header.chunks <= min(MAX_CHUNKS, header.size) or not 0 <= header.chunk < header.chunks:
        raise WireError(f"chunk {header.chunk} of {header.chunks} out of range")
    if header.offset < 0 or header.offset + length > header.size:
        raise WireError(f"chunk bytes [{header.offset}, {header.offset + length}) beyond blob size {header.size}")
    if header.chunks == 1 and length != header.size:
        raise WireError(f"single-message frame carries {length} bytes, header says {header.size}")

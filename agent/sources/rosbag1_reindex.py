"""ROS 1 bags cut short, read as `rosbag reindex` would.

`rosbag record` writes a bag's index (its connections and where each chunk lies) last, when the recording is
closed. A recorder that loses power leaves a bag without one (an `.active` file), or with a damaged one, and
rosbags refuses it whole ("not indexed", "index looks damaged") although every chunk written before the cut holds
good messages. Here the records are walked from the start instead: every connection and every message of each chunk
that reads whole (of an uncompressed chunk cut short, the messages before the cut) is written into an indexed copy
in a temporary folder, which the rosbags reader then reads as any bag. The walk stops at the first record whose
framing does not hold (lengths past the end of the file), and the result says how much was left unread.
"""

from __future__ import annotations

import bz2
import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.sources.limits import InputLimits

MAGIC = b"#ROSBAG V2.0\n"
_OP_MESSAGE, _OP_CHUNK, _OP_CONNECTION = 2, 5, 7
_MAX_HEADER = 1 << 20  # a record header is a handful of fields: anything longer is framing gone wrong
_BAG_HEADER_BYTES = 4096  # the bag header record, padded to this length (the ROS bag format 2.0)


@dataclass
class Reindexed:
    path: Path  # the indexed copy (in the caller's folder)
    messages: int = 0
    chunks_lost: int = 0  # chunks that did not decompress or claimed more than the chunk limit
    orphans: int = 0  # messages of a connection never defined before them
    unread_bytes: int = 0  # at the end, no whole record
    header_damaged: bool = False

    def detail(self, size: int) -> str:
        parts = [f"index missing or damaged (a recording cut short?): {self.messages} messages read in order"]
        if self.header_damaged:
            parts.append("the bag header is damaged")
        if self.unread_bytes:
            parts.append(f"the last {self.unread_bytes} of {size} bytes hold no whole record")
        if self.chunks_lost:
            parts.append(f"{self.chunks_lost} chunks unreadable")
        if self.orphans:
            parts.append(f"{self.orphans} messages of an undefined connection")
        return "; ".join(parts)


def _fields(buf: Any, start: int, end: int) -> dict[str, bytes] | None:
    """A record header's name=value fields, or None where its lengths do not add up."""
    out: dict[str, bytes] = {}
    pos = start
    while pos < end:
        if pos + 4 > end:
            return None
        (length,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        if pos + length > end:
            return None
        name, sep, value = bytes(buf[pos:pos + length]).partition(b"=")
        if not sep:
            return None
        out[name.decode("latin-1")] = value
        pos += length
    return out


def _records(buf: Any, start: int, end: int,
             stop: list[int] | None = None) -> Iterator[tuple[dict[str, bytes], int, int]]:
    """(fields, data start, data end) of each whole record from `start`; where one is not whole the walk ends,
    and `stop` gets where."""
    pos = start
    while pos + 8 <= end:
        (header_len,) = struct.unpack_from("<I", buf, pos)
        if header_len > _MAX_HEADER or pos + 8 + header_len > end:
            break
        fields = _fields(buf, pos + 4, pos + 4 + header_len)
        (data_len,) = struct.unpack_from("<I", buf, pos + 4 + header_len)
        data = pos + 8 + header_len
        if fields is None or "op" not in fields or data + data_len > end:
            break
        yield fields, data, data + data_len
        pos = data + data_len
    if stop is not None:
        stop.append(pos)


def _chunk(fields: dict[str, bytes], buf: Any, start: int, end: int, limits: InputLimits) -> bytes | None:
    """A chunk's records, decompressed within the chunk limit; None where it does not decompress."""
    compression = fields.get("compression", b"none")
    size = struct.unpack("<I", fields["size"])[0] if len(fields.get("size", b"")) == 4 else limits.max_chunk_bytes
    if size > limits.max_chunk_bytes or end - start > limits.max_chunk_bytes:  # memory stays at one chunk
        return None
    raw = bytes(buf[start:end])
    try:
        if compression == b"none":
            return raw
        if compression == b"bz2":
            out = bz2.BZ2Decompressor().decompress(raw, max_length=size)
        elif compression == b"lz4":
            import lz4.frame  # rosbags' own dependency

            out = lz4.frame.LZ4FrameDecompressor().decompress(raw, max_length=size)
        else:
            return None
    except (OSError, ValueError, RuntimeError, EOFError):
        return None
    return out


def reindex(path: Path, folder: Path, limits: InputLimits) -> Reindexed:
    """Walk `path` and write what reads whole into `folder`/reindexed.bag; raises OSError where it cannot be read."""
    from rosbags.rosbag1 import Writer

    done = Reindexed(folder / "reindexed.bag")
    if path.stat().st_size < len(MAGIC):
        raise OSError(f"{path} is too short to be a ROS 1 bag")
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf, Writer(done.path) as writer:
        if buf[:7] != MAGIC[:7]:  # "#ROSBAG": the version after it may be what is damaged
            raise OSError(f"{path} is not a ROS 1 bag (no {MAGIC!r})")
        connections: dict[int, Any] = {}
        stop: list[int] = []
        first = len(MAGIC)
        if next(_records(buf, first, len(buf)), None) is None:
            # A damaged bag header record: rosbag pads it to 4096 bytes, so the first chunk starts after that.
            first, done.header_damaged = first + _BAG_HEADER_BYTES, True
        for fields, start, end in _records(buf, first, len(buf), stop):
            op = fields["op"][:1]
            if op == bytes([_OP_CONNECTION]):
                _connect(writer, connections, fields, buf, start, end)
            elif op == bytes([_OP_CHUNK]):
                data = _chunk(fields, buf, start, end, limits)
                if data is None:
                    done.chunks_lost += 1
                    continue
                _write_chunk(writer, connections, data, done)
        walked = stop[0]
        if tail := _partial_chunk(buf, walked, limits):
            # An uncompressed chunk the cut ran through: its records up to the cut are whole messages.
            walked = tail[0] + _write_chunk(writer, connections, tail[1], done)
        done.unread_bytes = len(buf) - walked
    return done


def _partial_chunk(buf: Any, pos: int, limits: InputLimits) -> tuple[int, bytes] | None:
    """Where the body of an uncompressed chunk that starts at `pos` and runs past the end of the file starts, and
    the body (at most the chunk limit of it); None where there is no such chunk."""
    if pos + 8 > len(buf):
        return None
    (header_len,) = struct.unpack_from("<I", buf, pos)
    if header_len > _MAX_HEADER or pos + 8 + header_len > len(buf):
        return None
    fields = _fields(buf, pos + 4, pos + 4 + header_len)
    if not fields or fields.get("op", b"")[:1] != bytes([_OP_CHUNK]) or fields.get("compression") != b"none":
        return None
    body = pos + 8 + header_len
    return body, bytes(buf[body:body + limits.max_chunk_bytes])


def _write_chunk(writer: Any, connections: dict[int, Any], data: bytes, done: Reindexed) -> int:
    """Write the chunk's messages; returns where its last whole record ends."""
    stop: list[int] = []
    for fields, start, end in _records(data, 0, len(data), stop):
        op = fields["op"][:1]
        if op == bytes([_OP_CONNECTION]):
            _connect(writer, connections, fields, data, start, end)
        elif op == bytes([_OP_MESSAGE]) and len(fields.get("conn", b"")) == 4 and len(fields.get("time", b"")) == 8:
            conn = struct.unpack("<I", fields["conn"])[0]
            sec, nsec = struct.unpack("<II", fields["time"])
            if conn not in connections:
                done.orphans += 1
                continue
            writer.write(connections[conn], sec * 1_000_000_000 + nsec, data[start:end])
            done.messages += 1
    return stop[0]


def _connect(writer: Any, connections: dict[int, Any], fields: dict[str, bytes], buf: Any, start: int,
             end: int) -> None:
    """Register a connection record's topic and type once (it appears in each chunk that uses it and in the
    index)."""
    if len(fields.get("conn", b"")) != 4:
        return
    conn = struct.unpack("<I", fields["conn"])[0]
    described = _fields(buf, start, end)
    if conn in connections or not described or "type" not in described or "md5sum" not in described:
        return
    text = {k: v.decode("utf-8", "replace") for k, v in described.items()}
    latching = text.get("latching")
    topic = fields.get("topic", described.get("topic", b"")).decode("utf-8", "replace")
    key = (topic, text["type"], text["md5sum"], text.get("callerid"))
    # The writer takes each connection once: two of the bag's that are alike share one.
    same = next((c for c in writer.connections if (c.topic, c.msgtype, c.digest, c.ext.callerid) == key), None)
    package, _, name = text["type"].partition("/")
    connections[conn] = same or writer.add_connection(
        topic, f"{package}/msg/{name}", msgdef=text.get("message_definition", ""), md5sum=text["md5sum"],
        callerid=text.get("callerid"), latching=int(latching) if latching and latching.isdigit() else None)

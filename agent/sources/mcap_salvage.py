"""Read the Schema, Channel and Message records of an MCAP file record by record, surviving damage.

The mcap library's readers stop at the first bad byte: one flipped byte in a 2 GB drive loses everything after
it. Here every top-level record is framed by its opcode and 8-byte length, so a bad one is skipped: a chunk whose
CRC, decompression or inner records fail is dropped whole (its CRC says nothing inside can be trusted), and when
the framing itself is broken (an impossible opcode or length) the reader scans forward for the next place where
a well-formed record starts (in a chunked file: a chunk, which must also pass its CRC; bytes inside a chunk are
never read as records on their own, since zstd's raw blocks would show them with block headers spliced in)
and carries on from there. Each damaged stretch is
reported once, as a Damage. Chunks claiming more than `limits.max_chunk_bytes` decompressed are refused
unopened; memory stays at one chunk whatever the file claims.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from mcap.data_stream import ReadDataStream
from mcap.records import Channel, Message, Schema

from agent.sources.limits import DEFAULT_LIMITS, InputLimits, TooLarge, lz4_decompress, zstd_decompress

MAGIC_LEN = 8
SCHEMA, CHANNEL, MESSAGE, CHUNK, FOOTER, DATA_END = 0x03, 0x04, 0x05, 0x06, 0x02, 0x0F
_KNOWN = frozenset(range(0x01, 0x11))
_STARTS = (SCHEMA, CHANNEL, MESSAGE, CHUNK)  # where a resync may land
_U64 = struct.Struct("<Q")
_CHUNK_HEAD = struct.Struct("<QQQII")  # start, end, uncompressed size, uncompressed crc, compression length
_WINDOW = 1 << 20
Record = Schema | Channel | Message


@dataclass(frozen=True)
class Damage:
    offset: int
    detail: str
    oversized: bool = False  # a chunk refused by the size limit (reported as too_large, not corruption)


class _Bad(Exception):
    pass


def salvage(fh: BinaryIO, size: int, limits: InputLimits = DEFAULT_LIMITS) -> Iterator[Record | Damage]:
    """Every readable Schema / Channel / Message record, and a Damage per damaged stretch, in file order."""
    pos, damaged_at = MAGIC_LEN, None
    max_record = max(limits.max_chunk_bytes, 1 << 20)  # compressed can't exceed the decompressed bound by much
    channels: set[int] = set()
    for record in _summary_definitions(fh, size):  # so that a damaged first chunk does not orphan every message
        if isinstance(record, Channel):
            channels.add(record.id)
        yield record
    chunked = False  # once a chunk was seen, a resync lands on chunks only (CRC-checked, never raw inner bytes)
    while pos + 9 <= size:
        fh.seek(pos)
        head = fh.read(9)
        opcode, length = head[0], _U64.unpack_from(head, 1)[0]
        if opcode in (FOOTER, DATA_END) and damaged_at is None:
            return  # the summary section follows: indexes only
        try:
            if opcode not in _KNOWN or pos + 9 + length > size:
                raise _Bad(f"record framing broken (opcode 0x{opcode:02x}, length {length})")
            chunked = chunked or opcode == CHUNK
            if opcode == CHUNK and length > max_record:
                raise TooLarge(f"chunk of {length} bytes compressed")
            body = fh.read(length) if opcode in _STARTS else b""
            records = _records(opcode, body, limits, channels) if body else []
        except TooLarge as exc:
            yield Damage(pos, f"chunk at byte {pos}: {exc}", oversized=True)
            pos += 9 + length  # its framing is fine: step over it
            damaged_at = None
            continue
        except Exception as exc:  # damage surfaces as struct, zstd, lz4, unicode or EOF errors alike
            if damaged_at is None:
                damaged_at = pos
                yield Damage(pos, f"damaged record at byte {pos}: {type(exc).__name__}: {exc}"[:300])
            after = pos + 9 + length
            # Contents bad but the framing plausible (a chunk failing its CRC): step over the record whole, so
            # that nothing inside it (an uncompressed chunk's messages, one of them the damaged one) is read.
            # Framing broken: look for the next record start.
            starts = (CHUNK,) if chunked else _STARTS
            pos = after if opcode in _KNOWN and _plausible_head(fh, after, size) else \
                _next_start(fh, pos + 1, size, starts)
            continue
        damaged_at = None
        for record in records:
            if isinstance(record, Channel):
                channels.add(record.id)
            yield record
        pos += 9 + length


def _records(opcode: int, body: bytes, limits: InputLimits, channels: set[int]) -> list[Record]:
    if opcode == CHUNK:
        return _chunk_records(body, limits)
    record = _parse(opcode, ReadDataStream(io.BytesIO(body)), len(body))
    if isinstance(record, Message) and record.channel_id not in channels:
        raise _Bad(f"message on unknown channel {record.channel_id}")  # a resync landing in the middle of data
    return [record] if record is not None else []


def _parse(opcode: int, stream: ReadDataStream, length: int) -> Record | None:
    if opcode == SCHEMA:
        return Schema.read(stream)
    if opcode == CHANNEL:
        return Channel.read(stream)
    if opcode == MESSAGE:
        if length < 22:
            raise _Bad(f"message record of {length} bytes")
        return Message.read(stream, length)
    return None


def _chunk_records(body: bytes, limits: InputLimits) -> list[Record]:
    if len(body) < _CHUNK_HEAD.size:
        raise _Bad("chunk header cut short")
    _, _, usize, crc, clen = _CHUNK_HEAD.unpack_from(body)
    at = _CHUNK_HEAD.size
    compression = body[at:at + clen].decode("ascii")
    if compression not in ("", "zstd", "lz4"):
        raise _Bad(f"chunk compression {compression[:16]!r}")
    if usize > limits.max_chunk_bytes:
        raise TooLarge(f"chunk claims {usize} bytes decompressed (limit {limits.max_chunk_bytes}, "
                       "inputs.max_chunk_mb)")
    at += clen
    (dlen,) = _U64.unpack_from(body, at)
    data = memoryview(body)[at + 8:at + 8 + dlen]
    if len(data) != dlen:
        raise _Bad("chunk data cut short")
    if compression == "zstd":
        raw = zstd_decompress(data, usize)
    elif compression == "lz4":
        raw = lz4_decompress(data, usize)
    else:
        raw = bytes(data)
    if len(raw) != usize or (crc and zlib.crc32(raw) != crc):
        raise _Bad("chunk CRC or size does not match its contents")
    out: list[Record] = []
    stream, n = ReadDataStream(io.BytesIO(raw)), len(raw)
    while stream.count < n:
        opcode, length = stream.read1(), stream.read8()
        start = stream.count
        record = _parse(opcode, stream, length)
        if record is not None:
            out.append(record)
        skip = start + length - stream.count
        if skip < 0:
            raise _Bad("inner record overruns its length")
        if skip:
            stream.read(skip)
    return out


def _summary_definitions(fh: BinaryIO, size: int) -> list[Record]:
    """The Schema and Channel records the summary section repeats (none when the footer or summary is damaged)."""
    footer_at = size - MAGIC_LEN - 29
    if footer_at <= MAGIC_LEN:
        return []
    fh.seek(footer_at)
    footer = fh.read(29)
    if footer[0] != FOOTER or _U64.unpack_from(footer, 1)[0] != 20:
        return []
    start = _U64.unpack_from(footer, 9)[0]
    if not MAGIC_LEN < start < footer_at or footer_at - start > (64 << 20):
        return []
    fh.seek(start)
    section, out, at = fh.read(footer_at - start), [], 0
    try:
        while at + 9 <= len(section):
            opcode, length = section[at], _U64.unpack_from(section, at + 1)[0]
            body = section[at + 9:at + 9 + length]
            if opcode in (SCHEMA, CHANNEL) and len(body) == length:
                out.append(_parse(opcode, ReadDataStream(io.BytesIO(body)), length))
            at += 9 + length
    except Exception:
        return [r for r in out if r is not None]
    return [r for r in out if r is not None]


def _plausible_head(fh: BinaryIO, pos: int, size: int) -> bool:
    if pos == size:
        return True
    fh.seek(pos)
    head = fh.read(9)
    return len(head) == 9 and head[0] in _KNOWN and pos + 9 + _U64.unpack_from(head, 1)[0] <= size


def _next_start(fh: BinaryIO, start: int, size: int, starts: tuple[int, ...]) -> int:
    """The next offset at or after `start` where a record could begin: a start opcode and a length that fits."""
    pos = start
    while pos + 9 <= size:
        fh.seek(pos)
        window = fh.read(_WINDOW + 8)
        for i in range(max(0, len(window) - 8)):
            if window[i] not in starts:
                continue
            after = pos + i + 9 + _U64.unpack_from(window, i + 1)[0]
            # the record after it must look like a record too: random bytes rarely pass both checks
            if after <= size and _plausible_head(fh, after, size):
                return pos + i
        pos += max(1, len(window) - 8)
    return size

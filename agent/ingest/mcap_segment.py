"""A lean MCAP writer for the ingest's segments: one chunk per vehicle per group commit, written with one writev.

mcap's Writer builds every record in a BytesIO, copies a chunk's bytes three times before they reach the file
and costs ~100 us of Python per 95 KB frame; the ingest writes one chunk per vehicle per group commit, thousands
a second. Here the hot path (messages into the open chunk, the chunk and its message indexes out to the file) packs
each record header with one struct call and hands the message bytes themselves (never copied) to os.writev; the
file position is counted, not asked of the OS; the chunk CRC is ISA-L's where installed (the [ingest] extra).
Everything else (header, schemas, channels, the summary with statistics and chunk indexes, summary offsets,
footer) is written with mcap's own record classes, laid out as its Writer lays them out. Schemas and channels go
in the data section outside chunks, before the first message that uses them, so a file cut short by a crash reads
with a streaming reader. Chunks carry the CRC of their records.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Sequence

try:  # ISA-L's CRC-32: the same values as zlib's, ~10x faster (the [ingest] extra)
    from isal.isal_zlib import crc32
except ImportError:  # pragma: no cover - without the extra
    from zlib import crc32

import zstandard
from mcap.data_stream import RecordBuilder
from mcap.opcode import Opcode
from mcap.records import (
    Channel,
    ChunkIndex,
    DataEnd,
    Footer,
    Header,
    McapRecord,
    Schema,
    Statistics,
    SummaryOffset,
)  # fmt: skip

MAGIC = b"\x89MCAP0\r\n"
Buffer = bytes | bytearray | memoryview
_MESSAGE = struct.Struct("<BQHIQQ")  # opcode, record length, channel id, sequence, log time, publish time
_CHUNK = struct.Struct("<BQQQQII")  # opcode, record length, start, end, uncompressed size, crc, compression length
_U64 = struct.Struct("<Q")
_MESSAGE_HEAD = _MESSAGE.size - 9  # a message record's fields before its data
_IOV_MAX = min(1024, os.sysconf("SC_IOV_MAX")) if hasattr(os, "sysconf") else 1024


def write_all(fd: int, pieces: Sequence[Buffer]) -> int:
    """Write the pieces in order with as few writev calls as the OS allows; returns the bytes written."""
    total = 0
    pending = [memoryview(p).cast("B") for p in pieces if len(p)]
    while pending:
        group = pending[:_IOV_MAX]
        written = os.writev(fd, group)
        total += written
        done = 0
        while done < len(group) and written >= len(group[done]):
            written -= len(group[done])
            done += 1
        pending = pending[done:]
        if written:  # a piece written in part: its rest comes next
            pending[0] = pending[0][written:]
    return total


class SegmentWriter:
    """start() in the constructor; register_*; add_message() into the open chunk; end_chunk(); finish()."""

    def __init__(self, fd: int, profile: str, library: str) -> None:
        self.fd = fd
        self.position = 0  # bytes written to the file
        self.broken = False  # a write failed part-way: the file ends in a partial record, nothing more goes in
        self.schemas: dict[int, Schema] = {}
        self.channels: dict[int, Channel] = {}
        self.chunk_indexes: list[ChunkIndex] = []
        self.channel_counts: dict[int, int] = {}
        self.message_count = 0
        self.start_time = self.end_time = 0
        self._pieces: list[Buffer] = []  # the open chunk's records, not copied
        self._size = 0  # their bytes
        self._index: dict[int, list[int]] = {}  # channel id -> [log time, offset in the chunk, ...]
        self._chunk_start = self._chunk_end = 0
        self._write(MAGIC, _record(Header(profile=profile, library=library)))

    @property
    def pending(self) -> int:
        """Bytes of the open chunk's records, not in the file yet."""
        return self._size

    def register_schema(self, name: str, encoding: str, data: bytes) -> int:
        schema = self.schemas[len(self.schemas) + 1] = Schema(id=len(self.schemas) + 1, name=name,
                                                               encoding=encoding, data=data)
        self._write(_record(schema))
        return schema.id

    def register_channel(self, topic: str, message_encoding: str, schema_id: int) -> int:
        channel = self.channels[len(self.channels) + 1] = Channel(
            id=len(self.channels) + 1, topic=topic, message_encoding=message_encoding, schema_id=schema_id,
            metadata={})  # fmt: skip
        self._write(_record(channel))
        return channel.id

    def add_message(self, channel_id: int, log_time: int, data: Sequence[Buffer], sequence: int = 0) -> None:
        """A message (its data in pieces, concatenated) into the open chunk; publish time = log time."""
        length = sum(len(piece) for piece in data)
        if not self._pieces:  # the chunk's first message
            self._chunk_start = self._chunk_end = log_time
        index = self._index.get(channel_id)
        if index is None:
            index = self._index[channel_id] = []
        index += (log_time, self._size)
        self._pieces.append(_MESSAGE.pack(Opcode.MESSAGE, _MESSAGE_HEAD + length, channel_id, sequence, log_time,
                                          log_time))
        self._pieces += data
        self._size += _MESSAGE.size + length
        if self.message_count == 0 or log_time < self.start_time:
            self.start_time = log_time
        self.end_time = max(self.end_time, log_time)
        self._chunk_start = min(self._chunk_start, log_time)
        self._chunk_end = max(self._chunk_end, log_time)
        self.channel_counts[channel_id] = self.channel_counts.get(channel_id, 0) + 1
        self.message_count += 1

    def end_chunk(self, compress: bool = False) -> None:
        """The open chunk (zstd-compressed or not) and its message indexes into the file."""
        if not self._pieces:
            return
        crc = 0
        for piece in self._pieces:
            crc = crc32(piece, crc)
        if compress:
            compression, body = b"zstd", [zstandard.compress(b"".join(self._pieces))]
        else:
            compression, body = b"", self._pieces
        stored = sum(len(piece) for piece in body)
        length = _CHUNK.size - 9 + len(compression) + 8 + stored
        chunk_at = self.position
        head = _CHUNK.pack(Opcode.CHUNK, length, self._chunk_start, self._chunk_end, self._size, crc,
                           len(compression)) + compression + _U64.pack(stored)
        indexes: list[bytes] = []
        offsets: dict[int, int] = {}
        at = chunk_at + 9 + length
        for channel_id, flat in self._index.items():
            record = struct.pack(f"<BQHI{len(flat)}Q", Opcode.MESSAGE_INDEX, 6 + 8 * len(flat), channel_id,
                                 8 * len(flat), *flat)
            offsets[channel_id] = at
            at += len(record)
            indexes.append(record)
        self._write(head, *body, *indexes)
        self.chunk_indexes.append(ChunkIndex(
            message_start_time=self._chunk_start, message_end_time=self._chunk_end, chunk_start_offset=chunk_at,
            chunk_length=9 + length, message_index_offsets=offsets, message_index_length=at - chunk_at - 9 - length,
            compression=compression.decode(), compressed_size=stored, uncompressed_size=self._size,
        ))  # fmt: skip
        self._pieces, self._size, self._index = [], 0, {}

    def finish(self, compress: bool = False) -> None:
        """The open chunk, the data end, the summary (schemas, channels, statistics, chunk indexes, offsets) and
        the footer, as mcap's Writer lays them out."""
        self.end_chunk(compress)
        self._write(_record(DataEnd(data_section_crc=0)))
        start = self.position
        builder = RecordBuilder()
        offsets = []
        stats = Statistics(
            message_count=self.message_count, schema_count=len(self.schemas), channel_count=len(self.channels),
            attachment_count=0, metadata_count=0, chunk_count=len(self.chunk_indexes),
            message_start_time=self.start_time, message_end_time=self.end_time,
            channel_message_counts=dict(self.channel_counts),
        )  # fmt: skip
        groups: list[tuple[Opcode, list[McapRecord]]] = [
            (Opcode.SCHEMA, list(self.schemas.values())), (Opcode.CHANNEL, list(self.channels.values())),
            (Opcode.STATISTICS, [stats]), (Opcode.CHUNK_INDEX, list(self.chunk_indexes)),
        ]  # fmt: skip
        for opcode, records in groups:
            group_at = builder.count
            for record in records:
                record.write(builder)
            offsets.append(SummaryOffset(group_opcode=opcode, group_start=start + group_at,
                                         group_length=builder.count - group_at))
        offsets_at = start + builder.count
        for offset in offsets:
            offset.write(builder)
        summary = builder.end()
        crc = zlib.crc32(struct.pack("<BQQQ", Opcode.FOOTER, 20, start, offsets_at), zlib.crc32(summary))
        self._write(summary, _record(Footer(summary_start=start, summary_offset_start=offsets_at, summary_crc=crc)),
                    MAGIC)

    def _write(self, *pieces: Buffer) -> None:
        if self.broken:
            raise OSError(f"segment fd {self.fd}: an earlier write failed")
        try:
            self.position += write_all(self.fd, pieces)
        except OSError:
            self.broken = True
            raise


def _record(record: McapRecord) -> bytes:
    builder = RecordBuilder()
    record.write(builder)
    return builder.end()

"""Classic pcap records read one by one, surviving damage: a bad record header is reported and reading resumes.

dpkt's reader stops silently at a truncated or garbled record (a capture cut short by a full disk reads as a
shorter, clean capture). Here a record whose header is implausible (captured length beyond the original length
or 256 KiB, an empty one, time going back by more than a day) or that is cut short is reported as a PcapDamage,
and the reader scans forward for the next offset where plausible record headers line up, three in a row (eight
where the damage is at the capture's start; see _resync). The snap length the global header states is not used:
where that header is damaged, it would make every record implausible.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

GLOBAL_HEADER = 24
PCAP_MAGICS = frozenset({
    b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4",  # microsecond pcap, both byte orders
    b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",  # nanosecond pcap
})
_MAX_SNAP = 262_144
_DAY_S = 86_400
_WINDOW = 1 << 20
_CHAIN = 3  # record headers in a row that a resync needs
_CHAIN_UNANCHORED = 8  # ... where no record before it gave a time to hold them to (the capture's start damaged)


@dataclass(frozen=True)
class PcapDamage:
    offset: int
    detail: str


@dataclass(frozen=True)
class _Format:
    record: struct.Struct  # ts_sec, ts_frac, incl_len, orig_len
    frac_per_s: int
    link_type: int


def read_format(fh: BinaryIO) -> _Format:
    fh.seek(0)
    head = fh.read(GLOBAL_HEADER)
    if len(head) < GLOBAL_HEADER:
        raise ValueError("pcap global header cut short")
    magic = head[:4]
    order = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    frac = 1_000_000_000 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1_000_000
    (link_type,) = struct.unpack(order + "I", head[20:24])
    return _Format(struct.Struct(order + "IIII"), frac, link_type & 0x0FFFFFFF)


def records(fh: BinaryIO, size: int) -> Iterator[tuple[float, bytes] | PcapDamage]:
    """(time s, captured bytes) per record, and a PcapDamage per damaged stretch, in file order."""
    fmt = read_format(fh)
    for record in _walk(fh, size, fmt):
        if isinstance(record, PcapDamage):
            yield record
        else:
            fields, _, data = record
            yield fields[0] + fields[1] / fmt.frac_per_s, data


def repair(src: Path, dst: Path) -> list[PcapDamage]:
    """Write `src` without its damaged stretches to `dst`, for readers that stop at the first (ouster-sdk);
    returns the damage, and writes nothing where there is none."""
    with src.open("rb") as fh:
        if fh.read(4) not in PCAP_MAGICS:
            raise ValueError(f"{src} is not a classic pcap")
        size = fh.seek(0, 2)
        fmt = read_format(fh)
        damage = [r for r in _walk(fh, size, fmt) if isinstance(r, PcapDamage)]
        if not damage:
            return []
        with dst.open("wb") as out:
            fh.seek(0)
            out.write(fh.read(GLOBAL_HEADER))
            for record in _walk(fh, size, fmt):
                if not isinstance(record, PcapDamage):
                    out.write(record[1])
                    out.write(record[2])
    return damage


def _walk(fh: BinaryIO, size: int, fmt: _Format) -> Iterator[tuple[tuple[int, ...], bytes, bytes] | PcapDamage]:
    """(header fields, header bytes, captured bytes) per whole record, and a PcapDamage per damaged stretch."""
    pos, last_sec, damaged = GLOBAL_HEADER, None, False
    while pos < size:
        fh.seek(pos)
        head = fh.read(16)
        fields = fmt.record.unpack(head) if len(head) == 16 else None
        if fields is not None and _plausible(fmt, fields, last_sec) and pos + 16 + fields[2] <= size:
            data = fh.read(fields[2])
            last_sec, damaged = fields[0], False
            pos += 16 + fields[2]
            yield fields, head, data
            continue
        if not damaged:
            damaged = True
            what = "cut short" if fields is None or pos + 16 + fields[2] > size else "implausible record header"
            yield PcapDamage(pos, f"pcap record at byte {pos}: {what}")
        pos = _resync(fh, fmt, pos + 1, size, last_sec)


def _plausible(fmt: _Format, fields: tuple[int, ...], last_sec: int | None) -> bool:
    sec, frac, incl, orig = fields
    if not 0 < incl <= orig or orig > _MAX_SNAP or frac >= fmt.frac_per_s:  # no packet is empty
        return False
    return last_sec is None or abs(sec - last_sec) <= _DAY_S


def _resync(fh: BinaryIO, fmt: _Format, start: int, size: int, last_sec: int | None) -> int:
    """The next offset where _CHAIN plausible record headers follow one another (or run to the end of the file):
    one or two line up by chance inside packet data. Where the capture's start is damaged there is no time to hold
    them to, and Ouster packet data lines up even three in a row: _CHAIN_UNANCHORED then."""
    pos = start
    while pos + 16 <= size:
        fh.seek(pos)
        window = fh.read(_WINDOW + _CHAIN_UNANCHORED * (_MAX_SNAP + 16))
        for i in range(min(_WINDOW, max(0, len(window) - 16))):
            if _chained(fmt, window, i, size - pos, last_sec):
                return pos + i
        pos += _WINDOW
    return size


def _chained(fmt: _Format, window: bytes, at: int, left: int, last_sec: int | None) -> bool:
    for _ in range(_CHAIN if last_sec is not None else _CHAIN_UNANCHORED):
        if at == left:
            return True  # the end of the file, right after a whole record
        if at + 16 > len(window):
            return False
        fields = fmt.record.unpack_from(window, at)
        if not _plausible(fmt, fields, last_sec):
            return False
        at, last_sec = at + 16 + fields[2], fields[0]
    return True

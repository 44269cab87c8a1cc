"""Classic pcap records read one by one, surviving damage: a bad record header is reported and reading resumes.

dpkt's reader stops silently at a truncated or garbled record (a capture cut short by a full disk reads as a
shorter, clean capture). Here a record whose header is implausible (captured length beyond the snap length or
the original length, time going back by more than a day) or that is cut short is reported as a PcapDamage, and
the reader scans forward for the next offset where two consecutive plausible record headers line up.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

GLOBAL_HEADER = 24
_MAX_SNAP = 262_144
_DAY_S = 86_400
_WINDOW = 1 << 20


@dataclass(frozen=True)
class PcapDamage:
    offset: int
    detail: str


@dataclass(frozen=True)
class _Format:
    record: struct.Struct  # ts_sec, ts_frac, incl_len, orig_len
    frac_per_s: int
    snaplen: int
    link_type: int


def read_format(fh: BinaryIO) -> _Format:
    fh.seek(0)
    head = fh.read(GLOBAL_HEADER)
    if len(head) < GLOBAL_HEADER:
        raise ValueError("pcap global header cut short")
    magic = head[:4]
    order = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    frac = 1_000_000_000 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1_000_000
    snaplen, link_type = struct.unpack(order + "II", head[16:24])
    snap = snaplen if 0 < snaplen <= _MAX_SNAP else _MAX_SNAP
    return _Format(struct.Struct(order + "IIII"), frac, snap, link_type & 0x0FFFFFFF)


def records(fh: BinaryIO, size: int) -> Iterator[tuple[float, bytes] | PcapDamage]:
    """(time s, captured bytes) per record, and a PcapDamage per damaged stretch, in file order."""
    fmt = read_format(fh)
    pos, last_sec, damaged = GLOBAL_HEADER, None, False
    while pos < size:
        fh.seek(pos)
        head = fh.read(16)
        fields = fmt.record.unpack(head) if len(head) == 16 else None
        if fields is not None and _plausible(fmt, fields, last_sec) and pos + 16 + fields[2] <= size:
            data = fh.read(fields[2])
            last_sec, damaged = fields[0], False
            pos += 16 + fields[2]
            yield fields[0] + fields[1] / fmt.frac_per_s, data
            continue
        if not damaged:
            damaged = True
            what = "cut short" if fields is None or pos + 16 + fields[2] > size else "implausible record header"
            yield PcapDamage(pos, f"pcap record at byte {pos}: {what}")
        pos = _resync(fh, fmt, pos + 1, size, last_sec)


def _plausible(fmt: _Format, fields: tuple[int, ...], last_sec: int | None) -> bool:
    sec, frac, incl, orig = fields
    if incl > fmt.snaplen or incl > orig or orig > _MAX_SNAP or frac >= fmt.frac_per_s:
        return False
    return last_sec is None or abs(sec - last_sec) <= _DAY_S


def _resync(fh: BinaryIO, fmt: _Format, start: int, size: int, last_sec: int | None) -> int:
    """The next offset holding a plausible record header followed by another (or the end of the file)."""
    pos = start
    while pos + 16 <= size:
        fh.seek(pos)
        window = fh.read(_WINDOW + _MAX_SNAP + 32)
        for i in range(min(_WINDOW, max(0, len(window) - 16))):
            fields = fmt.record.unpack_from(window, i)
            if not _plausible(fmt, fields, last_sec):
                continue
            nxt = i + 16 + fields[2]
            if pos + nxt == size:
                return pos + i
            if nxt + 16 <= len(window) and _plausible(fmt, fmt.record.unpack_from(window, nxt), fields[0]):
                return pos + i
        pos += _WINDOW
    return size

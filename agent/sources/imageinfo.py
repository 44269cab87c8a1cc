"""Cheap facts about encoded images (format, size, completeness) read from their headers, without decoding."""

from __future__ import annotations

import struct

from agent.errors import DecodeError
from agent.frame import Encoding

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"

# Start-of-frame markers carry the image size: SOF0-3, 5-7, 9-11, 13-15 (0xC4, 0xC8 and 0xCC are not SOFs).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length field.
_STANDALONE = frozenset([0x01, *range(0xD0, 0xD9)])


def encoding_of(data: bytes) -> Encoding | None:
    """JPEG or PNG from the magic bytes, None for anything else."""
    if data.startswith(PNG_SIGNATURE):
        return Encoding.PNG
    if data.startswith(JPEG_SOI):
        return Encoding.JPEG
    return None


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which the PNG format requires to come first."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR" or len(data) < 24:
        raise DecodeError("not a PNG (no signature or IHDR header)")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


TIFF_MAGICS = (b"II*\x00", b"MM\x00*")
_TIFF_WIDTH, _TIFF_LENGTH = 256, 257
_TIFF_MAX_ENTRIES = 1024  # a directory that says it has more is not a picture's header


def png_bit_depth(data: bytes) -> int:
    """Bits per sample from the IHDR chunk (1, 2, 4, 8 or 16); png_size has checked the header."""
    return data[24] if len(data) > 24 else 0


def tiff_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the first image directory of a TIFF, every offset checked against the data."""
    if data[:4] not in TIFF_MAGICS or len(data) < 8:
        raise DecodeError("not a TIFF (no byte-order mark and 42)")
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", data[4:8])
    if offset + 2 > len(data):
        raise DecodeError(f"TIFF directory at byte {offset} is past the end ({len(data)} bytes)")
    (count,) = struct.unpack(order + "H", data[offset:offset + 2])
    if count > _TIFF_MAX_ENTRIES or offset + 2 + 12 * count > len(data):
        raise DecodeError(f"TIFF directory of {count} entries does not fit in the file")
    found: dict[int, int] = {}
    for k in range(count):
        entry = offset + 2 + 12 * k
        tag, kind = struct.unpack(order + "HH", data[entry:entry + 4])
        if tag in (_TIFF_WIDTH, _TIFF_LENGTH) and kind in (3, 4):  # SHORT or LONG, stored in the entry itself
            size = 2 if kind == 3 else 4
            found[tag] = int.from_bytes(data[entry + 8:entry + 8 + size], "little" if order == "<" else "big")
    if len(found) < 2:
        raise DecodeError("TIFF has no image width and length")
    return found[_TIFF_WIDTH], found[_TIFF_LENGTH]


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the first start-of-frame segment, walking the marker segments before the scan."""
    if not data.startswith(JPEG_SOI):
        raise DecodeError("not a JPEG (no SOI marker)")
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            raise DecodeError(f"JPEG marker expected at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker == 0xDA:  # start of scan: no SOF came before the entropy-coded data
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF_MARKERS:
            if pos + 9 > end:
                break
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    raise DecodeError("JPEG has no start-of-frame header")


def is_complete(data: bytes, encoding: Encoding) -> bool:
    """Whether the end marker is present: a truncated file still decodes in OpenCV, to a half-grey image."""
    if encoding is Encoding.JPEG:
        # Some encoders pad the file with zeros after EOI.
        return data.rstrip(b"\x00")[-2:] == _JPEG_EOI
    if encoding is Encoding.PNG:
        # IEND is the last chunk: 4-byte length, "IEND", 4-byte CRC; allow a little trailing junk.
        return b"IEND" in data[-16:]
    return True


def inspect_image(data: bytes) -> tuple[Encoding, int, int]:
    """(encoding, width, height) of JPEG/PNG bytes; DecodeError if unknown, headerless or truncated."""
    encoding = encoding_of(data)
    if encoding is None:
        raise DecodeError(f"not a JPEG or PNG (starts with {data[:8].hex() or 'nothing'})")
    width, height = png_size(data) if encoding is Encoding.PNG else jpeg_size(data)
    if not is_complete(data, encoding):
        raise DecodeError(f"{encoding.value} is truncated (no end marker) after {len(data)} bytes")
    if width == 0 or height == 0:
        raise DecodeError(f"{encoding.value} header gives an empty image ({width}x{height})")
    return encoding, width, height


def image_meta(width: int, height: int) -> dict[str, str]:
    return {"width": str(width), "height": str(height)}

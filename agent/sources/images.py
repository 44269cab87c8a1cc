"""Image files as camera frames (one frame per file, decoded only when needed), and how to tell a folder of one
recording's frames from a folder of unrelated stills."""

from __future__ import annotations

import itertools
import os
import re
from decimal import Decimal
from pathlib import Path

from agent.errors import DecodeError
from agent.frame import FILE, Encoding, Frame, Item, Modality, Skip
from agent.sources.decode import SampleDepth, decode_samples
from agent.sources.imageinfo import (
    PNG_SIGNATURE,
    TIFF_MAGICS,
    image_meta,
    inspect_image,
    png_bit_depth,
    png_size,
    tiff_size,
)
from agent.sources.limits import DEFAULT_LIMITS, InputLimits, TooLarge, check_pixels, read_bounded
from agent.sources.points import stamp_and_span

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})


def list_files(folder: Path, suffixes: frozenset[str]) -> list[str]:
    """Names of the entries in `folder` with one of `suffixes` (any case), sorted; folders and dot files left out.

    Entries are not required to be regular files: a dangling link or unreadable file must still show up, as a
    read_error Skip, rather than vanish.
    """
    with os.scandir(folder) as entries:
        names = [
            e.name for e in entries
            if not e.name.startswith(".") and Path(e.name).suffix.lower() in suffixes and not is_dir_entry(e)
        ]
    return sorted(names)


def is_dir_entry(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a symlink loop (ELOOP) or a vanished target: listed, then skipped as read_error
        return False


def image_file_item(path: Path, sensor: str, seq: int, t_ns: int, limits: InputLimits = DEFAULT_LIMITS,
                    depth: SampleDepth | None = None) -> Item:
    """One camera Frame holding the file's encoded bytes (decoded later, only if needed), or a Skip. A TIFF or a
    16-bit PNG (a raw, NIR or thermal camera's files) is decoded here, its 16-bit samples by `depth`, the
    stream's sample depth so far (see decode.SampleDepth: the top byte alone turns a 12-bit picture black)."""
    source = str(path)
    try:
        data = read_bounded(path, limits.max_file_bytes)
        tiff = data[:4] in TIFF_MAGICS
        if tiff or (data.startswith(PNG_SIGNATURE) and png_bit_depth(data) == 16):
            width, height = tiff_size(data) if tiff else png_size(data)
            check_pixels(width, height, limits)
            picture = decode_samples(data, depth)
            return Frame(sensor=sensor, modality=Modality.CAMERA, t_ns=t_ns, seq=seq, nbytes=len(data),
                         source=source, encoding=Encoding.RAW, payload=None, array=picture,
                         meta={**image_meta(width, height), FILE: path.name})
        encoding, width, height = inspect_image(data)
        check_pixels(width, height, limits)  # from the header: a 400 KB PNG can decode to gigabytes
    except TooLarge as exc:
        return Skip(sensor, seq, t_ns, source, "too_large", str(exc))
    except OSError as exc:
        return Skip(sensor, seq, t_ns, source, "read_error", f"{type(exc).__name__}: {exc.strerror or exc}")
    except DecodeError as exc:
        return Skip(sensor, seq, t_ns, source, "decode_error", str(exc))
    return Frame(
        sensor=sensor,
        modality=Modality.CAMERA,
        t_ns=t_ns,
        seq=seq,
        nbytes=len(data),
        source=source,
        encoding=encoding,
        payload=data,
        meta={**image_meta(width, height), FILE: path.name},
    )


_DIGIT_RUNS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[list[str | int], str]:
    """Sort key that orders numbers within names by value: img2.jpg before img10.jpg (ffmpeg's `%d` names);
    zero-padded names keep their order. The list alternates text and numbers, so like positions compare alike."""
    parts: list[str | int] = [int(p) if i % 2 else p for i, p in enumerate(_DIGIT_RUNS.split(name))]
    return parts, name


_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+(?:\.\d+)?)$")  # 0001TP_006690, or a decimal: <sec>.<nsec> (bag_to_pcd)


def numbered_sequence(names: list[str]) -> bool:
    """Whether the files look like the frames of one recording: a shared prefix and increasing frame numbers
    (0000000001.png, 0001TP_006690.jpg, bag_to_pcd's 1546300800.123456789.pcd), or a time stamp in every name
    with the rest of the names alike (2021-10-26-16-21-29-468.bin over several seconds). Hash-named stills (BDD's
    0ace96c3-48481887.jpg) are not: each comes from another car, another day, and comparing one with the last
    says nothing about the camera. Nor are snapshots of several LiDAR units (40p_<t>.bin, vls128_<t>.bin,
    0001_left.bin beside 0001_top.bin), nor two cameras' frames side by side (cam1_<t>.jpg, cam2_<t>.jpg)."""
    if len(names) < 2:
        return True
    stems = [Path(n).stem.removesuffix(".pcd") for n in names]  # nuScenes' .pcd.bin
    stamps = [stamp_and_span(stem) for stem in stems]
    if all(stamps):
        timed = [(stem, found) for stem, found in zip(stems, stamps, strict=True) if found]
        skeletons = {stem[:start] + "#" + stem[end:] for stem, (_, (start, end)) in timed}
        if len(skeletons) == 1 and len({t for _, (t, _) in timed}) == len(stems):
            return True
    parsed = [_TRAILING_NUMBER.match(stem) for stem in stems]
    if not all(parsed):
        return False
    prefixes = {m.group(1) for m in parsed if m}
    numbers = [Decimal(m.group(2)) for m in parsed if m]
    return len(prefixes) == 1 and all(b > a for a, b in itertools.pairwise(numbers))

"""Read received frames back from the ingest's MCAP segments (the fleet page's thumbnails, tests, audits).

A segment is read with the streaming reader, so one cut short by a crash reads too. The receiver writes each
frame's ROS message and then its JSON header (same log time): the header names the frame, the message before it
on the same file carries the blob (CompressedImage.data: the JPEG as uplinked; PointCloud2.data: the points).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mcap.exceptions import EndOfFile
from mcap.stream_reader import StreamReader
from mcap_ros2.decoder import DecoderFactory

from agent.ingest.mcap_sink import HEADERS_TOPIC


def read_frames(path: Path, frame_ids: set[str] | None = None) -> dict[str, tuple[dict[str, Any], bytes]]:
    """frame id -> (its header, the blob bytes of its ROS message) for the wanted frames (all when None)."""
    factory = DecoderFactory()
    schemas: dict[int, Any] = {}
    channels: dict[int, Any] = {}
    decoders: dict[int, Any] = {}
    found: dict[str, tuple[dict[str, Any], bytes]] = {}
    last: tuple[int, bytes] | None = None  # (channel id, raw CDR) of the latest frame message
    with path.open("rb") as fh:
        for record in _records(fh):
            kind = type(record).__name__
            if kind == "Schema":
                schemas[record.id] = record
            elif kind == "Channel":
                channels[record.id] = record
            elif kind == "Message":
                channel = channels.get(record.channel_id)
                if channel is None:
                    continue
                if channel.topic != HEADERS_TOPIC:
                    last = (record.channel_id, record.data)
                    continue
                header = json.loads(record.data)
                fid = header.get("frame_id")
                if last is not None and (frame_ids is None or fid in frame_ids):
                    decode = decoders.get(last[0])
                    if decode is None:
                        decode = decoders[last[0]] = factory.decoder_for("cdr", schemas[channels[last[0]].schema_id])
                    found[fid] = (header, bytes(decode(last[1]).data))
                    if frame_ids is not None and len(found) == len(frame_ids):
                        break
                last = None
    return found


def _records(fh: Any) -> Any:
    """The file's records, up to a partial one at its end (a write cut short by a crash): the rest reads."""
    try:
        yield from StreamReader(fh, skip_magic=False, emit_chunks=False).records
    except EndOfFile:
        return


def read_blob(root: Path, relative: str, frame_id: str) -> bytes | None:
    """One frame's blob from the segment the index names (`frames.mcap`), or None when it is not there."""
    path = (root / relative).resolve()
    if root.resolve() not in path.parents or not path.is_file():
        return None
    hit = read_frames(path, {frame_id}).get(frame_id)
    return hit[1] if hit else None

#!/usr/bin/env python3
"""MCAP fuzz salvage rate: frames recovered of frames present after random byte flips. Prints one JSON object.

The corpus is the bundled sample drive's real camera and LiDAR messages, repeated --repeat times (new log times)
into one zstd MCAP with --chunk-kb chunks (rosbag2's default chunk size is about 1 MB). Each trial flips
--flips random bytes (seeded) and reads the file with edgesift's McapSource (record-by-record salvage) and, for
the "before" figure, with the mcap library's streaming reader with CRC checks (what McapSource used before:
it stops at the first error). `bogus` counts frames whose bytes match no original message: damage that came out
looking like a frame (must be 0).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from mcap.reader import NonSeekingReader, make_reader
from mcap.writer import CompressionType, Writer

from agent.frame import Frame
from agent.sources.mcap_source import McapSource

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample_drive.mcap"
FRAME_SCHEMAS = ("sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/PointCloud2", "sensor_msgs/msg/Image")


def build_corpus(path: Path, repeat: int, chunk_kb: int) -> int:
    """Write the corpus; returns the number of frame messages in it."""
    with SAMPLE.open("rb") as fh:
        reader = make_reader(fh)
        summary = reader.get_summary()
        assert summary is not None
        messages = [(s, c, m) for s, c, m in reader.iter_messages() if s is not None and s.name in FRAME_SCHEMAS]
    span = messages[-1][2].log_time - messages[0][2].log_time + 100_000_000
    with path.open("wb") as out:
        writer = Writer(out, chunk_size=chunk_kb * 1024, compression=CompressionType.ZSTD)
        writer.start()
        schema_ids: dict[int, int] = {}
        channel_ids: dict[int, int] = {}
        for schema, channel, _ in messages:
            if schema.id not in schema_ids:
                schema_ids[schema.id] = writer.register_schema(schema.name, schema.encoding, schema.data)
            if channel.id not in channel_ids:
                channel_ids[channel.id] = writer.register_channel(channel.topic, channel.message_encoding,
                                                                  schema_ids[schema.id])
        for r in range(repeat):
            for _, channel, message in messages:
                t = message.log_time + r * span
                writer.add_message(channel_ids[channel.id], t, message.data, t)
        writer.finish()
    return len(messages) * repeat


def frame_digest(frame: Frame) -> str:
    data = frame.payload if frame.payload is not None else frame.array.tobytes()  # type: ignore[union-attr]
    return hashlib.sha256(bytes(data)).hexdigest()


def salvage_read(path: Path) -> list[str]:
    return [frame_digest(i) for i in McapSource(str(path)) if isinstance(i, Frame)]


def library_read(path: Path) -> int:
    """Frame messages the mcap library's CRC-checking stream reader yields before it stops."""
    n = 0
    with path.open("rb") as fh:
        try:
            for schema, _c, _m in NonSeekingReader(fh, validate_crcs=True).iter_messages(log_time_order=False):
                n += schema is not None and schema.name in FRAME_SCHEMAS
        except Exception:
            pass
    return n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-kb", type=int, default=1024)
    parser.add_argument("--flips", type=int, default=50)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgesift-salvage-") as tmp:
        corpus = Path(tmp) / "corpus.mcap"
        present = build_corpus(corpus, args.repeat, args.chunk_kb)
        clean = salvage_read(corpus)
        originals = set(clean)
        data = corpus.read_bytes()
        rnd = random.Random(args.seed)
        trials = []
        for _ in range(args.trials):
            damaged = bytearray(data)
            for _ in range(args.flips):
                damaged[rnd.randrange(8, len(damaged))] ^= 1 << rnd.randrange(8)
            path = Path(tmp) / "damaged.mcap"
            path.write_bytes(bytes(damaged))
            got = salvage_read(path)
            trials.append({"recovered": sum(d in originals for d in got), "bogus": sum(d not in originals for d in got),
                           "library_reader": library_read(path)})
    recovered = sum(t["recovered"] for t in trials)
    before = sum(t["library_reader"] for t in trials)
    total = present * len(trials)
    print(json.dumps({
        "corpus": {"frames": present, "bytes": len(data), "chunk_kb": args.chunk_kb, "clean_read": len(clean)},
        "flips_per_trial": args.flips, "trials": trials,
        "salvage_rate": round(recovered / total, 4), "library_reader_rate": round(before / total, 4),
        "bogus_frames": sum(t["bogus"] for t in trials), "seconds": round(time.monotonic() - started, 1),
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

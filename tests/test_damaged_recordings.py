"""Damaged bags. A ROS 1 bag cut short (the recorder lost power before it wrote the index) is read as far as it
holds, as `rosbag reindex` would, with the cut counted; it was refused whole before ("Bag index looks damaged").
A rosbag2 whose SQLite file is damaged mid-way is a one-line error; it was a traceback. An Ouster capture with a
damaged record is read past it, the damage counted; ouster-sdk stopped there and said nothing. A Velodyne packet
that does not decode is left out and counted; the capture's read stopped there."""

from __future__ import annotations

import importlib.util
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from _sources_fixtures import PCAP_OUSTER, SHARED, shared_data
from conftest import sample_frames

from agent.config.model import InputsConfig
from agent.errors import InputError
from agent.frame import Frame, Skip
from agent.sources import merge, open_inputs
from agent.sources.rosbag1_reindex import MAGIC

STAMP0 = 1_700_000_000_000_000_000
FRAMES = 12


def _write_bag(path: Path, compression: str | None) -> list[bytes]:
    """The sample drive's real JPEG frames (40-100 KB) as CompressedImage messages, a chunk closed once it holds
    over twice the largest (a few frames)."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    types = store.types
    payloads = [f.payload for f in sample_frames("camera")[:FRAMES]]
    writer = Writer(path)
    if compression:
        writer.set_compression(getattr(Writer.CompressionFormat, compression))
    writer.chunk_threshold = 2 * max(len(p or b"") for p in payloads) - 1
    with writer:
        connection = writer.add_connection("/cam/image_raw/compressed", "sensor_msgs/msg/CompressedImage",
                                           typestore=store)
        for i, payload in enumerate(payloads):
            t = STAMP0 + i * 100_000_000
            stamp = types["builtin_interfaces/msg/Time"](sec=t // 10**9, nanosec=t % 10**9)
            header = types["std_msgs/msg/Header"](seq=i, stamp=stamp, frame_id="cam")
            msg = types["sensor_msgs/msg/CompressedImage"](header=header, format="jpeg",
                                                           data=np.frombuffer(payload or b"", np.uint8))
            writer.write(connection, t, store.serialize_ros1(msg, msg.__msgtype__))
    return [p or b"" for p in payloads]


def _items(path: Path) -> list[Frame | Skip]:
    return list(merge(open_inputs([str(path)], InputsConfig())))


def _index_pos(data: bytes) -> int:
    """Where the bag header says the index starts (its index_pos field)."""
    at = data.index(b"index_pos=", len(MAGIC))
    return struct.unpack_from("<Q", data, at + len(b"index_pos="))[0]


@pytest.mark.parametrize("compression", [None, "LZ4", "BZ2"])
def test_a_bag_cut_short_is_read_up_to_the_cut(tmp_path: Path, compression: str | None) -> None:
    whole = tmp_path / "whole.bag"
    payloads = _write_bag(whole, compression)
    data = whole.read_bytes()
    cut = tmp_path / "cut.bag"
    cut.write_bytes(data[: int(_index_pos(data) * 0.6)])  # power lost 60% into the chunks: no index
    items = _items(cut)
    frames = [i for i in items if isinstance(i, Frame)]
    skips = [i for i in items if isinstance(i, Skip)]
    assert [s.reason for s in skips] == ["corrupt_recording"], skips
    assert "index missing or damaged" in skips[0].detail and "bytes hold no whole record" in skips[0].detail
    # Every whole chunk before the cut, and of an uncompressed chunk the frames before the cut.
    assert 4 <= len(frames) < FRAMES
    assert [f.payload for f in frames] == payloads[: len(frames)]
    assert [f.t_ns for f in frames] == [STAMP0 + i * 100_000_000 for i in range(len(frames))]


def test_a_bag_cut_short_keeps_to_the_configured_chunk_limit(tmp_path: Path) -> None:
    # A chunk closes once it holds over 200 KB of frames: with a 0.1 MB limit every chunk is refused unopened, so
    # nothing is read and the bag is refused with the reader's reason.
    whole = tmp_path / "whole.bag"
    _write_bag(whole, "LZ4")
    data = whole.read_bytes()
    cut = tmp_path / "cut.bag"
    cut.write_bytes(data[: int(_index_pos(data) * 0.6)])
    assert [i for i in _items(cut) if isinstance(i, Frame)]
    with pytest.raises(InputError, match="not a readable ROS bag"):
        list(merge(open_inputs([str(cut)], InputsConfig(max_chunk_mb=0.1))))


def test_a_bag_left_unindexed_reads_whole(tmp_path: Path) -> None:
    # What an interrupted `rosbag record` leaves when the last chunk was written: index_pos still 0.
    path = tmp_path / "drive.bag.active"
    payloads = _write_bag(path, "LZ4")
    data = bytearray(path.read_bytes())
    at = data.index(b"index_pos=", len(MAGIC)) + len(b"index_pos=")
    data[at:at + 8] = bytes(8)
    path.write_bytes(bytes(data))
    items = _items(path)
    assert [f.payload for f in items if isinstance(f, Frame)] == payloads
    assert [s.reason for s in items if isinstance(s, Skip)] == ["corrupt_recording"]


def test_a_bag_whose_header_is_damaged_is_read_from_its_first_chunk(tmp_path: Path) -> None:
    path = tmp_path / "drive.bag"
    payloads = _write_bag(path, "LZ4")
    data = bytearray(path.read_bytes())
    data[len(MAGIC):len(MAGIC) + 200] = bytes(range(200))  # the bag header record's lengths and fields
    path.write_bytes(bytes(data))
    items = _items(path)
    assert [f.payload for f in items if isinstance(f, Frame)] == payloads
    skips = [s for s in items if isinstance(s, Skip)]
    assert [s.reason for s in skips] == ["corrupt_recording"] and "the bag header is damaged" in skips[0].detail


def test_a_bag_cut_before_its_first_message_is_still_refused_with_the_readers_reason(tmp_path: Path) -> None:
    whole = tmp_path / "whole.bag"
    _write_bag(whole, None)
    cut = tmp_path / "cut.bag"
    cut.write_bytes(whole.read_bytes()[:4200])  # the 4 KB bag header and the start of the first chunk's header
    with pytest.raises(InputError, match=r"not a readable ROS bag.*index"):
        _items(cut)


@shared_data
def test_a_rosbag2_with_a_damaged_page_gives_every_message_that_still_reads(tmp_path: Path) -> None:
    # A page of the second scan's data zeroed in the real VLP-16 bag's SQLite file. Before: a traceback (the Ouster
    # metadata lookup read every message of a bag without that topic, outside the guarded read); with that fixed,
    # rosbags' time-sorted query still failed before its first row, and all 4 scans were lost.
    import sqlite3

    source = SHARED / "bags" / "nebula_velodyne_vlp16" / "1673400471837873222"
    whole = [i for i in _items(source) if isinstance(i, Frame)]
    assert len(whole) == 4
    bag = tmp_path / "vlp16"
    shutil.copytree(source, bag)
    db3 = next(bag.glob("*.db3"))
    con = sqlite3.connect(db3)
    second = con.execute("SELECT data FROM messages WHERE id = 2").fetchone()[0]
    con.close()
    data = bytearray(db3.read_bytes())
    at = data.index(second[50_000:50_064])  # inside the second message's overflow pages
    page = at - at % 4096
    data[page:page + 4096] = bytes(4096)
    db3.write_bytes(bytes(data))
    items = _items(bag)
    frames = [i for i in items if isinstance(i, Frame)]
    skips = [(s.reason, s.detail) for s in items if isinstance(s, Skip)]
    assert [r for r, _ in skips] == ["corrupt_recording", "corrupt_recording"], skips
    assert skips[0][1].endswith("read on row by row") and skips[1][1].startswith("row 2 of the messages table")
    assert len(frames) == 3
    for got, want in zip(frames, [whole[0], whole[2], whole[3]], strict=True):
        assert got.t_ns == want.t_ns
        np.testing.assert_array_equal(got.array, want.array)


@shared_data
@pytest.mark.skipif(importlib.util.find_spec("ouster") is None, reason="ouster-sdk is not installed")
def test_an_ouster_capture_is_read_past_a_damaged_record(tmp_path: Path) -> None:
    whole = [i for i in _items(PCAP_OUSTER) if isinstance(i, Frame)]
    assert len(whole) == 3
    data = bytearray(PCAP_OUSTER.read_bytes())
    at = _record_offsets(bytes(data))[100]  # a record header half-way through the second scan, zeroed
    data[at:at + 16] = bytes(16)
    damaged = tmp_path / PCAP_OUSTER.name
    damaged.write_bytes(bytes(data))
    shutil.copy(PCAP_OUSTER.parent / "ouster_OS-1-128_v2.3.0_1024x10.json", tmp_path)  # metadata_for finds it
    items = _items(damaged)
    frames = [i for i in items if isinstance(i, Frame)]
    assert [(s.reason, s.detail) for s in items if isinstance(s, Skip)] == [
        ("corrupt_recording", f"pcap record at byte {at}: implausible record header")]
    assert len(frames) == 3  # the third scan, after the damage, too
    np.testing.assert_array_equal(frames[2].array, whole[2].array)


@shared_data
@pytest.mark.skipif(importlib.util.find_spec("ouster") is None, reason="ouster-sdk is not installed")
def test_an_ouster_capture_whose_first_record_is_damaged_is_read_from_the_next(tmp_path: Path) -> None:
    # No record before the damage gives a time to hold a resync to, and Ouster packet data lines up as three
    # plausible record headers in a row: the reader locked onto packet data and lost all 3 scans (44 skips).
    data = bytearray(PCAP_OUSTER.read_bytes())
    rng = np.random.default_rng(3)
    data[24:200] = rng.integers(0, 256, 176, dtype=np.uint8).tobytes()  # the first record's header and data
    damaged = tmp_path / PCAP_OUSTER.name
    damaged.write_bytes(bytes(data))
    shutil.copy(PCAP_OUSTER.parent / "ouster_OS-1-128_v2.3.0_1024x10.json", tmp_path)
    items = _items(damaged)
    assert [(s.reason, s.detail) for s in items if isinstance(s, Skip)] == [
        ("corrupt_recording", "pcap record at byte 24: cut short")]
    assert len([i for i in items if isinstance(i, Frame)]) == 3


def _record_offsets(data: bytes) -> list[int]:
    offsets, pos = [], 24
    while pos + 16 <= len(data):
        offsets.append(pos)
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    return offsets


@shared_data
def test_a_velodyne_packet_that_does_not_decode_is_left_out_and_the_capture_read_on(tmp_path: Path) -> None:
    pcap = SHARED / "pcap" / "velodyne_vlp16_test_50frames.pcap"
    whole = [i for i in _items(pcap) if isinstance(i, Frame)]
    data = bytearray(pcap.read_bytes())
    record = _record_offsets(bytes(data))[1000]  # a data packet half-way through: its payload's tail zeroed
    end = record + 16 + struct.unpack_from("<I", data, record + 8)[0]
    data[end - 100:end] = bytes(100)  # the last firing blocks and the model byte
    damaged = tmp_path / pcap.name
    damaged.write_bytes(bytes(data))
    items = _items(damaged)
    skips = [i for i in items if isinstance(i, Skip)]
    assert [s.reason for s in skips] == ["decode_error"] and skips[0].detail.startswith("1 packet left out"), skips
    assert len([i for i in items if isinstance(i, Frame)]) >= len(whole) - 1  # it read on, not stopped half-way


def test_sqlite_rows_are_read_on_past_a_damaged_stretch(tmp_path: Path) -> None:
    # 3000 small messages, 40 KiB of pages zeroed in the middle: the rows before and after read, those between are
    # counted lost in a few stretches (the jumps double), and no row is read twice or out of id order.
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    from agent.sources.rosbag2_salvage import Lost, rows

    store = get_typestore(Stores.ROS2_HUMBLE)
    string = store.types["std_msgs/msg/String"]
    with Writer(tmp_path / "bag") as writer:
        connection = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
        for i in range(3000):
            message = string(data=f"message {i:05d} " * 8)
            writer.write(connection, STAMP0 + i, store.serialize_cdr(message, string.__msgtype__))
    db3 = next((tmp_path / "bag").glob("*.db3"))
    data = bytearray(db3.read_bytes())
    middle = len(data) // 2
    data[middle - middle % 4096:middle - middle % 4096 + 40_960] = bytes(40_960)
    db3.write_bytes(bytes(data))
    got = list(rows(db3, {"/chatter"}, -1))
    read = [r for r in got if not isinstance(r, Lost)]
    lost = [r for r in got if isinstance(r, Lost)]
    stamps = [r[1] - STAMP0 for r in read]
    assert stamps == sorted(set(stamps)) and stamps[0] == 0 and stamps[-1] == 2999
    assert 2500 < len(read) < 3000 and 1 <= len(lost) <= 3
    assert sum(x.last - x.first + 1 for x in lost) + len(read) >= 3000

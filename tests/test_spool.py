"""The spool on real frames: codec round trips, budget and eviction, idempotence, ordering, persistence, recovery."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import sample_frames, sample_png, sample_scan

from agent.config.model import SpoolConfig
from agent.errors import SpoolError
from agent.frame import Encoding, Frame, Modality
from agent.scoring.base import Label, Verdict
from agent.spool import (
    DUPLICATE,
    ENCODE_ERROR,
    JPEG,
    SPOOL_FULL,
    XYZI_F32_ZSTD,
    Spool,
    decode_jpeg,
    decode_points,
    default_frame_id,
)

# The sample drive's real frames (see data/README.md): its camera frames as PNG files (KITTI's own format), its
# scans as KITTI .bin bytes, and other camera frames, as they are stored (JPEG), as a second camera.
# The JPEG camera's frames, in this order: their real sizes make the eviction scenarios below (checked there).
JPEG_FRAMES = (20, 25, 26, 21, 22, 23)


def png_frame(i: int, t_ns: int | None = None) -> Frame:
    data = sample_png(i)
    t = i * 100_000_000 if t_ns is None else t_ns
    return Frame("cam_02", Modality.CAMERA, t, i, len(data), f"sample:camera/{i}.png", Encoding.PNG, data)


def lidar_frame(i: int, t_ns: int | None = None) -> Frame:
    data = sample_scan(i).tobytes()
    t = i * 100_000_000 if t_ns is None else t_ns
    return Frame("velodyne", Modality.LIDAR, t, i, len(data), f"sample:lidar/{i}.bin", Encoding.XYZI_F32, data)


def jpeg_frame(i: int, t_ns: int | None = None) -> Frame:
    n = JPEG_FRAMES[i]
    data = sample_frames("camera")[n].payload
    assert data is not None
    t = i * 100_000_000 if t_ns is None else t_ns
    return Frame("cam_jpeg", Modality.CAMERA, t, i, len(data), f"sample:camera/{n}.jpg", Encoding.JPEG, data)


def verdict(score: float, label: Label = Label.HELPFUL) -> Verdict:
    return Verdict(label, score, ("novel",))


def config(max_mb: float = 100.0) -> SpoolConfig:
    return SpoolConfig(max_mb=max_mb, jpeg_quality=90, zstd_level=3)


# ---- codec round trips


def test_jpeg_input_is_stored_byte_identical(tmp_path: Path) -> None:
    frame = jpeg_frame(0)
    with Spool.open(tmp_path / "spool", config()) as spool:
        result = spool.put(frame, verdict(0.7), "keep:novel")
        assert result.stored and result.frame_id == default_frame_id(frame)
        entry = spool.get(result.frame_id)
        assert entry is not None
        assert spool.read_blob(entry) == frame.payload
        assert entry.encoding == JPEG and entry.blob_bytes == len(frame.payload)
        assert (entry.sensor, entry.modality, entry.t_ns, entry.seq) == ("cam_jpeg", "camera", frame.t_ns, 0)
        assert (entry.label, entry.score, entry.reasons, entry.rule) == ("helpful", 0.7, ("novel",), "keep:novel")
        assert entry.input_bytes == frame.nbytes and entry.created_ns > 0
        assert entry.blob_path.is_file() and entry.blob_path.parent == spool.blobs_dir


def test_png_input_becomes_jpeg(tmp_path: Path) -> None:
    frame = png_frame(3)
    original = cv2.imdecode(np.frombuffer(frame.payload, np.uint8), cv2.IMREAD_COLOR)
    with Spool.open(tmp_path / "spool", config()) as spool:
        entry = spool.get(spool.put(frame, verdict(0.5), "keep").frame_id)
        assert entry is not None and entry.encoding == JPEG
        blob = spool.read_blob(entry)
    assert blob[:2] == b"\xff\xd8" and blob[-2:] == b"\xff\xd9"
    image = decode_jpeg(blob)
    assert image.shape == original.shape == (375, 1242, 3)
    # quality 90: close to the original, and much smaller than the PNG
    assert np.abs(image.astype(np.int16) - original.astype(np.int16)).mean() < 4.0
    assert len(blob) < len(frame.payload) / 3


def test_raw_grey_array_becomes_colour_jpeg(tmp_path: Path) -> None:
    grey = cv2.imdecode(np.frombuffer(sample_png(0, grey=True), np.uint8), cv2.IMREAD_UNCHANGED)
    assert grey is not None and grey.ndim == 2
    frame = Frame("cam_00", Modality.CAMERA, 1, 0, grey.nbytes, "array", Encoding.RAW, None, grey)
    with Spool.open(tmp_path / "spool", config()) as spool:
        entry = spool.get(spool.put(frame, verdict(0.5), "keep").frame_id)
        assert entry is not None
        assert decode_jpeg(spool.read_blob(entry)).shape == (*grey.shape, 3)


def test_points_round_trip_exactly(tmp_path: Path) -> None:
    frame = lidar_frame(5)
    expected = np.frombuffer(frame.payload, dtype="<f4").reshape(-1, 4)
    array_frame = lidar_frame(6)
    array_frame.payload, array_frame.encoding = None, Encoding.RAW
    array_frame.array = sample_scan(6).copy()
    with Spool.open(tmp_path / "spool", config()) as spool:
        entry = spool.get(spool.put(frame, verdict(0.5), "keep").frame_id)
        assert entry is not None and entry.encoding == XYZI_F32_ZSTD
        blob = spool.read_blob(entry)
        points = decode_points(blob)
        assert points.dtype == np.float32 and points.shape == expected.shape
        assert np.array_equal(points, expected)  # bit-exact, also for the intensity column
        assert len(blob) < len(frame.payload)
        entry6 = spool.get(spool.put(array_frame, verdict(0.5), "keep").frame_id)
        assert entry6 is not None
        assert np.array_equal(decode_points(spool.read_blob(entry6)), array_frame.array)


def test_undecodable_frame_is_refused_not_raised(tmp_path: Path) -> None:
    frame = png_frame(0)
    frame.payload = frame.payload[: len(frame.payload) // 2]  # a truncated PNG
    with Spool.open(tmp_path / "spool", config()) as spool:
        result = spool.put(frame, verdict(0.9), "keep")
        assert not result.stored and result.reason == ENCODE_ERROR
        assert spool.stats().encode_failures == 1 and spool.stats().frames == 0
        assert list(spool.blobs_dir.iterdir()) == []


# ---- budget and eviction


def test_budget_evicts_lowest_scores_first_and_rejects_low_incoming(tmp_path: Path) -> None:
    frames = [jpeg_frame(i) for i in range(6)]
    size = [len(f.payload) for f in frames]
    budget = size[0] + size[1] + size[2] + 1000
    # the real frames' sizes make this scenario: frame 3 needs both lower frames gone, frame 4 cannot fit
    assert size[1] < size[3] - 1000 < size[0] + size[1] and size[2] + size[3] + size[4] > budget
    with Spool.open(tmp_path / "spool", config(budget / 1e6)) as spool:
        ids = [spool.put(f, verdict(s), "keep").frame_id for f, s in zip(frames[:3], (0.5, 0.2, 0.8), strict=True)]
        assert spool.stats().frames == 3 and spool.stats().bytes == sum(size[:3])

        r3 = spool.put(frames[3], verdict(0.6), "keep")
        assert r3.stored and r3.evicted == [ids[1], ids[0]]  # lowest score first; 0.8 > 0.6 is never a candidate
        assert [e.seq for e in spool.entries()] == [2, 3]

        r4 = spool.put(frames[4], verdict(0.05), "keep")  # cannot push out better frames
        assert not r4.stored and r4.reason == SPOOL_FULL and r4.evicted == []
        assert [e.seq for e in spool.entries()] == [2, 3]

        r5 = spool.put(frames[5], verdict(0.7), "keep")
        assert r5.stored and r5.evicted == [r3.frame_id]
        assert [e.seq for e in spool.entries()] == [2, 5]

        stats = spool.stats()
        assert stats.evicted_frames == 3 and stats.evicted_bytes == size[1] + size[0] + size[3]
        assert stats.rejected_frames == 1
        assert stats.frames == 2 and stats.bytes == size[2] + size[5] <= budget == stats.budget_bytes
        assert sorted(p.name for p in spool.blobs_dir.iterdir()) == sorted(e.blob_path.name for e in spool.entries())


def test_eviction_ties_go_oldest_first_and_equal_scores_are_not_evicted(tmp_path: Path) -> None:
    frames = [jpeg_frame(i, t_ns=1_000 + i) for i in range(3)]
    size = max(len(f.payload) for f in frames)
    with Spool.open(tmp_path / "spool", config((2 * size + 10) / 1e6)) as spool:
        newer = spool.put(jpeg_frame(1, t_ns=5_000), verdict(0.3), "keep")
        older = spool.put(jpeg_frame(0, t_ns=2_000), verdict(0.3), "keep")
        assert newer.stored and older.stored
        same = spool.put(frames[2], verdict(0.3), "keep")  # equal score: nothing strictly lower, rejected
        assert not same.stored and same.reason == SPOOL_FULL
        higher = spool.put(frames[2], verdict(0.4), "keep")
        assert higher.stored and higher.evicted == [older.frame_id]  # tie at 0.3: the older capture goes
        assert newer.frame_id in spool and older.frame_id not in spool


def test_frame_larger_than_the_whole_budget_is_rejected(tmp_path: Path) -> None:
    with Spool.open(tmp_path / "spool", config(0.3)) as spool:
        kept = spool.put(jpeg_frame(0), verdict(0.1), "keep")
        result = spool.put(lidar_frame(0), verdict(1.0), "keep")  # ~1.1 MB compressed > 0.3 MB
        assert kept.stored and not result.stored and result.reason == SPOOL_FULL
        assert kept.frame_id in spool and spool.stats().evicted_frames == 0
        assert spool.stats().rejected_frames == 1


# ---- identity, deletion, ordering


def test_put_is_idempotent_per_frame_id(tmp_path: Path) -> None:
    with Spool.open(tmp_path / "spool", config()) as spool:
        first = spool.put(png_frame(0), verdict(0.5), "keep")
        again = spool.put(png_frame(0), verdict(0.9), "keep")
        assert first.stored and again.stored and again.reason == DUPLICATE
        assert again.frame_id == first.frame_id == default_frame_id(png_frame(0))
        custom = spool.put(png_frame(0), verdict(0.5), "keep", frame_id="veh1/cam/0")
        custom_again = spool.put(png_frame(0), verdict(0.5), "keep", frame_id="veh1/cam/0")
        assert custom.reason != DUPLICATE and custom_again.reason == DUPLICATE
        assert spool.stats().frames == 2 and len(list(spool.blobs_dir.iterdir())) == 2
        entry = spool.get(first.frame_id)
        assert entry is not None and entry.score == 0.5  # the first put wins
    with Spool.open(tmp_path / "spool", config()) as spool:  # also across restarts
        assert spool.put(png_frame(0), verdict(0.5), "keep").reason == DUPLICATE
        assert spool.stats().frames == 2


def test_delete_is_idempotent(tmp_path: Path) -> None:
    with Spool.open(tmp_path / "spool", config()) as spool:
        fid = spool.put(lidar_frame(0), verdict(0.5), "keep").frame_id
        entry = spool.get(fid)
        assert entry is not None
        assert spool.delete(fid) is True
        assert spool.delete(fid) is False
        assert spool.delete("never-stored") is False
        assert spool.get(fid) is None and not entry.blob_path.exists()
        assert spool.stats().frames == 0 and spool.stats().bytes == 0
        assert spool.stats().evicted_frames == 0  # a delete is not an eviction
        with pytest.raises(SpoolError, match="no longer in the spool"):
            spool.read_blob(entry)


def test_entries_order_and_limit(tmp_path: Path) -> None:
    scores = [0.3, 0.9, 0.1, 0.9, 0.5]
    with Spool.open(tmp_path / "spool", config()) as spool:
        # put out of time order, so that "oldest" must sort by capture time, not by insertion
        for i in (4, 2, 0, 3, 1):
            spool.put(jpeg_frame(i), verdict(scores[i]), "keep")
        oldest = spool.entries()
        assert [e.seq for e in oldest] == [0, 1, 2, 3, 4]
        assert [e.seq for e in spool.entries(order="score")] == [1, 3, 4, 0, 2]  # 0.9 tie: older first
        assert [e.seq for e in spool.entries(order="score", limit=2)] == [1, 3]
        assert [e.seq for e in spool.entries(limit=3)] == [0, 1, 2]
        assert spool.entries(limit=0) == []
        with pytest.raises(ValueError, match="order"):
            spool.entries(order="newest")  # type: ignore[arg-type]


# ---- persistence and recovery


def test_counters_and_frames_survive_close_and_reopen(tmp_path: Path) -> None:
    frames = [jpeg_frame(i) for i in range(4)]
    budget = sum(len(f.payload) for f in frames[:2]) + 10
    with Spool.open(tmp_path / "spool", config(budget / 1e6)) as spool:
        for i, frame in enumerate(frames):
            spool.put(frame, verdict(0.2 + 0.2 * i), "keep")  # each new one evicts lower ones as needed
        spool.put(jpeg_frame(5), verdict(0.0), "keep")  # rejected
        before = spool.stats()
        entries = spool.entries()
    assert before.evicted_frames >= 2 and before.rejected_frames == 1
    with Spool.open(tmp_path / "spool", config(budget / 1e6)) as spool:
        assert spool.stats() == before
        assert spool.entries() == entries
        assert all(spool.read_blob(e) == frames[e.seq].payload for e in entries)


def test_reopen_removes_orphans_and_counts_lost_rows(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    with Spool.open(root, config()) as spool:
        keep = spool.put(jpeg_frame(0), verdict(0.5), "keep").frame_id
        truncated = spool.get(spool.put(jpeg_frame(1), verdict(0.5), "keep").frame_id)
        missing = spool.get(spool.put(png_frame(0), verdict(0.5), "keep").frame_id)
        assert truncated is not None and missing is not None
    # what a crash can leave (temp file, renamed blob without its row), plus damage a crash cannot cause
    (root / "blobs" / "x.jpg.1234abcd.tmp").write_bytes(b"\xff\xd8partial")
    (root / "blobs" / "0000000000000000009-cam-9.0123456789abcdef.jpg").write_bytes(jpeg_frame(2).payload)
    truncated.blob_path.write_bytes(truncated.blob_path.read_bytes()[:100])
    missing.blob_path.unlink()
    with Spool.open(root, config()) as spool:
        stats = spool.stats()
        assert stats.orphans_removed == 2
        assert stats.lost_frames == 2
        assert [e.frame_id for e in spool.entries()] == [keep]
        assert sorted(p.name for p in spool.blobs_dir.iterdir()) == [spool.entries()[0].blob_path.name]
        assert stats.frames == 1 and stats.bytes == len(jpeg_frame(0).payload)


def test_a_spool_is_opened_by_one_owner_at_a_time(tmp_path: Path) -> None:
    with Spool.open(tmp_path / "spool", config()) as spool:
        with pytest.raises(SpoolError, match="already open"):
            Spool.open(tmp_path / "spool", config())
        spool.put(jpeg_frame(0), verdict(0.5), "keep")
    with Spool.open(tmp_path / "spool", config()) as spool:  # released by close
        assert spool.stats().frames == 1
    spool.close()  # idempotent
    with pytest.raises(SpoolError, match="closed"):
        spool.put(jpeg_frame(1), verdict(0.5), "keep")


def test_scorer_thread_puts_while_uplink_thread_deletes(tmp_path: Path) -> None:
    frames = [lidar_frame(i) for i in range(6)] + [png_frame(i) for i in range(10)]
    errors: list[BaseException] = []
    done = threading.Event()
    deleted: list[str] = []

    def scorer(spool: Spool) -> None:
        try:
            for n, frame in enumerate(frames):
                spool.put(frame, verdict((n * 37 % 100) / 100), "keep")
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def uplink(spool: Spool) -> None:
        try:
            while not done.is_set() or spool.entries(limit=1):
                for entry in spool.entries(order="score", limit=2):
                    try:
                        spool.read_blob(entry)
                    except SpoolError:
                        continue  # evicted by the scorer thread between listing and reading: documented race
                    if spool.delete(entry.frame_id):
                        deleted.append(entry.frame_id)
                if len(deleted) > 8:
                    break
        except BaseException as exc:
            errors.append(exc)

    with Spool.open(tmp_path / "spool", config(3.0)) as spool:
        threads = [threading.Thread(target=scorer, args=(spool,)), threading.Thread(target=uplink, args=(spool,))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        stats = spool.stats()
        entries = spool.entries()
        assert stats.frames == len(entries) and stats.bytes == sum(e.blob_bytes for e in entries)
        assert stats.bytes <= spool.budget_bytes
        assert not set(deleted) & {e.frame_id for e in entries}
    with Spool.open(tmp_path / "spool", config(3.0)) as spool:
        assert spool.stats().orphans_removed == 0 and spool.stats().lost_frames == 0
        assert spool.entries() == entries

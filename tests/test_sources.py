"""Input sources on real data: KITTI folders, image folders, videos, Velodyne pcaps, type detection, merge.

The inputs are made from the sample drive's real frames and the shipped pcap (see _sources_fixtures); the tests
marked `shared` are about particular files of ../shared/data and skip without it.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import cv2
import dpkt
import numpy as np
import pytest

from agent.config.model import InputsConfig
from agent.errors import InputError
from agent.frame import Encoding, Frame, Modality, Skip
from agent.sources import detect_kind, merge, open_inputs
from agent.sources.base import SeqCounter, reorder, safe_name
from agent.sources.decode import image_of, points_of
from agent.sources.kitti import KittiSource, parse_stamp

try:  # as a package module when tests/ has an __init__.py, else from the test folder on sys.path
    from tests import _sources_fixtures as fx
except ImportError:
    import _sources_fixtures as fx  # type: ignore[no-redef]

shared_data = fx.shared_data
make_kitti = fx.make_kitti
make_jpeg_folder = fx.make_jpeg_folder
BDD, KITTI_77, KITTI_SYNC, VIDEO = fx.BDD, fx.KITTI_77, fx.KITTI_SYNC, fx.VIDEO
PCAP_HDL32, PCAP_VLP16, PCAP_OUSTER = fx.PCAP_HDL32, fx.PCAP_VLP16, fx.PCAP_OUSTER

CONFIG = InputsConfig()  # nominal 10 Hz
MS = 1_000_000


def items_of(*paths: Path | str, config: InputsConfig = CONFIG, max_frames: int = 0) -> list[Frame | Skip]:
    return list(merge(open_inputs([str(p) for p in paths], config), max_frames))


def by_sensor(items: list[Frame | Skip], sensor: str) -> list[Frame | Skip]:
    return [i for i in items if i.sensor == sensor]


def assert_time_ordered(items: list[Frame | Skip]) -> None:
    times = [i.t_ns for i in items]
    assert times == sorted(times)


# --- helpers -------------------------------------------------------------------------------------------------


def test_kitti_timestamps_are_parsed_to_exact_integer_ns() -> None:
    t = parse_stamp("2011-09-26 13:02:25.964389445")
    second = int(dt.datetime(2011, 9, 26, 13, 2, 25, tzinfo=dt.timezone.utc).timestamp())
    assert t == second * 1_000_000_000 + 964_389_445  # a float would have lost the last digits
    assert parse_stamp("2011-09-26 13:02:25.5") == second * 1_000_000_000 + 500_000_000
    assert parse_stamp("2011-13-26 13:02:25.5") is None
    assert parse_stamp("garbage") is None


def test_seq_counter_and_names() -> None:
    seq = SeqCounter()
    assert [seq("a"), seq("b"), seq("a"), seq("a")] == [0, 0, 1, 2]
    assert safe_name("/front cam/übersicht#1") == "front_cam_bersicht_1"


def test_reorder_fixes_small_disorder_and_keeps_ties_in_order() -> None:
    items = [Skip("s", i, t, "x", "r") for i, t in enumerate([0, 20, 10, 30, 30, 25])]
    assert [s.seq for s in reorder(items, window=2)] == [0, 2, 1, 5, 3, 4]


# --- KITTI ---------------------------------------------------------------------------------------------------


def test_kitti_without_timestamps_uses_nominal_rate(tmp_path: Path) -> None:
    drive = make_kitti(tmp_path / "drive")
    items = items_of(drive)
    assert [(i.sensor, i.t_ns) for i in items] == [
        (sensor, k * 100 * MS) for k in range(3) for sensor in ("image_02", "velodyne")
    ]
    for k, frame in enumerate(by_sensor(items, "image_02")):
        assert isinstance(frame, Frame)
        png = drive / "image_02" / "data" / f"{k:010d}.png"
        assert frame.modality is Modality.CAMERA and frame.encoding is Encoding.PNG and frame.array is None
        assert frame.payload == png.read_bytes() and frame.nbytes == png.stat().st_size
        assert frame.meta == {"width": "1242", "height": "375", "file": png.name}
        assert frame.seq == k
    for k, scan in enumerate(by_sensor(items, "velodyne")):
        assert isinstance(scan, Frame) and scan.array is not None
        expected = np.fromfile(drive / "velodyne_points" / "data" / f"{k:010d}.bin", dtype="<f4").reshape(-1, 4)
        assert scan.encoding is Encoding.XYZI_F32 and scan.array.dtype == np.float32
        np.testing.assert_array_equal(points_of(scan), expected)
        assert scan.nbytes == expected.nbytes


def test_kitti_timestamps_txt_gives_exact_times(tmp_path: Path) -> None:
    drive = make_kitti(tmp_path / "drive")
    cam = ["2011-09-26 13:02:25.964389445", "2011-09-26 13:02:26.067798745", "2011-09-26 13:02:26.171103454"]
    lidar = ["2011-09-26 13:02:25.951199337", "2011-09-26 13:02:26.054938947", "2011-09-26 13:02:26.158541238"]
    (drive / "image_02" / "timestamps.txt").write_text("\n".join(cam) + "\n\n")
    (drive / "velodyne_points" / "timestamps.txt").write_text("\n".join(lidar) + "\n")
    items = items_of(drive)
    assert [i.t_ns for i in by_sensor(items, "image_02")] == [parse_stamp(s) for s in cam]
    assert [i.t_ns for i in by_sensor(items, "velodyne")] == [parse_stamp(s) for s in lidar]
    assert items[0].sensor == "velodyne" and items[0].t_ns % 1000 == 337  # ns digits kept exactly
    assert_time_ordered(items)


def test_kitti_missing_timestamp_line_is_a_skip(tmp_path: Path) -> None:
    drive = make_kitti(tmp_path / "drive")
    (drive / "image_02" / "timestamps.txt").write_text("2011-09-26 13:02:25.964389445\nnot a time\n")
    skips = [i for i in items_of(drive) if isinstance(i, Skip)]
    assert [(s.seq, s.reason) for s in skips] == [(1, "bad_timestamp"), (2, "bad_timestamp")]


def test_kitti_damaged_files_become_skips_and_keep_their_seq(tmp_path: Path) -> None:
    drive = make_kitti(tmp_path / "drive", frames=range(4))
    png = drive / "image_02" / "data" / "0000000001.png"
    data = png.read_bytes()
    png.write_bytes(data[: len(data) // 2])  # a real PNG cut in half
    os.symlink(tmp_path / "gone.png", drive / "image_02" / "data" / "0000000004.png")  # unreadable
    lidar = drive / "velodyne_points" / "data"
    (lidar / "0000000001.bin").write_bytes((lidar / "0000000001.bin").read_bytes()[:1000])
    scan = np.fromfile(lidar / "0000000002.bin", dtype="<f4").reshape(-1, 4)
    scan[::50, :3] = np.nan  # NaN points are a frame for the scorer to judge, not a read failure
    scan.tofile(lidar / "0000000002.bin")

    items = items_of(drive)
    camera = by_sensor(items, "image_02")
    assert [(i.seq, getattr(i, "reason", "frame")) for i in camera] == [
        (0, "frame"), (1, "decode_error"), (2, "frame"), (3, "frame"), (4, "read_error"),
    ]
    assert camera[1].t_ns == 100 * MS and "truncated" in camera[1].detail  # type: ignore[union-attr]
    velodyne = by_sensor(items, "velodyne")
    assert [(i.seq, getattr(i, "reason", "frame")) for i in velodyne] == [
        (0, "frame"), (1, "bad_size"), (2, "frame"), (3, "frame"),
    ]
    nan_frame = velodyne[2]
    assert isinstance(nan_frame, Frame) and nan_frame.array is not None
    assert np.isnan(nan_frame.array[:, 0]).sum() == len(range(0, len(scan), 50))


@shared_data
def test_kitti_frame77_keeps_the_numbering_gap_in_time() -> None:
    items = items_of(KITTI_77)
    assert [(i.sensor, i.seq, i.t_ns) for i in items] == [("image_02", 0, 7_700 * MS), ("velodyne", 0, 7_700 * MS)]
    assert isinstance(items[1], Frame) and items[1].array is not None and len(items[1].array) == 69_719


@shared_data
def test_kitti_shared_drive_all_sensors_in_time_order() -> None:
    items = items_of(KITTI_SYNC)
    assert all(isinstance(i, Frame) for i in items)
    assert {s: len(by_sensor(items, s)) for s in ("image_00", "image_02", "velodyne")} == {
        "image_00": 10, "image_02": 30, "velodyne": 30,
    }
    assert_time_ordered(items)
    grey = by_sensor(items, "image_00")[0]
    assert isinstance(grey, Frame) and image_of(grey).shape == (375, 1242, 3)


def test_kitti_accepts_a_sensor_folder_its_data_folder_and_a_date_folder(tmp_path: Path) -> None:
    drive = make_kitti(tmp_path / "2011_09_26" / "2011_09_26_drive_0001_sync", cameras=("image_00", "image_02"))
    assert {i.sensor for i in items_of(drive / "image_02")} == {"image_02"}
    assert len(items_of(drive / "velodyne_points" / "data")) == 3
    (tmp_path / "2011_09_26" / "calib_cam_to_cam.txt").write_text("calib\n")
    assert detect_kind(str(tmp_path / "2011_09_26")) == "kitti"
    assert len(items_of(tmp_path / "2011_09_26")) == 3 * 3  # image_00, image_02, velodyne


def test_kitti_reads_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drive = make_kitti(tmp_path / "drive", frames=range(10), cameras=("image_00", "image_02"))  # 30 files
    reads: list[str] = []
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self.name) or real_read(self))
    stream = iter(KittiSource(str(drive), 10.0))
    next(stream)
    assert len(reads) <= 3  # one pending file per sensor, not the drive


# --- image folders -------------------------------------------------------------------------------------------


def test_image_folder_of_real_jpegs(tmp_path: Path) -> None:
    folder = make_jpeg_folder(tmp_path / "dashcam")
    assert detect_kind(str(folder)) == "images"
    items = items_of(folder)
    names = sorted(p.name for p in folder.glob("*.jpg"))
    assert [i.t_ns for i in items] == [k * 100 * MS for k in range(6)]
    for item, name in zip(items, names, strict=True):
        assert isinstance(item, Frame) and item.sensor == "dashcam"
        assert item.encoding is Encoding.JPEG and item.payload == (folder / name).read_bytes()
        assert item.meta == {"width": "1242", "height": "375", "file": name} and item.array is None
    assert image_of(items[0]).shape == (375, 1242, 3)


def test_image_folder_flags_truncated_jpeg_and_png(tmp_path: Path) -> None:
    folder = tmp_path / "front cam"
    folder.mkdir()
    jpgs = sorted(make_jpeg_folder(tmp_path / "stills").glob("*.jpg"))
    shutil.copy(jpgs[0], folder / "a.jpg")
    (folder / "b.JPG").write_bytes(jpgs[1].read_bytes()[:30_000])
    png = (make_kitti(tmp_path / "drive", frames=[0]) / "image_02" / "data" / "0000000000.png").read_bytes()
    (folder / "c.png").write_bytes(png)
    (folder / "d.png").write_bytes(png[: len(png) // 2])
    (folder / "notes.txt").write_text("listed, not read")
    notes, *items = items_of(folder, config=InputsConfig(nominal_hz=4.0))
    assert isinstance(notes, Skip) and notes.reason == "unused_file" and notes.source.endswith("notes.txt")
    assert [(i.seq, i.t_ns, getattr(i, "reason", "frame")) for i in items] == [
        (0, 0, "frame"), (1, 250 * MS, "decode_error"), (2, 500 * MS, "frame"), (3, 750 * MS, "decode_error"),
    ]
    assert items[0].sensor == "front_cam"
    # a, b, c, d: not the numbered frames of one recording, so each is a still (judged on its own)
    assert isinstance(items[2], Frame) and items[2].meta == {"width": "1242", "height": "375", "file": "c.png",
                                                         "still": "1"}


# --- video ---------------------------------------------------------------------------------------------------


@shared_data
def test_video_mp4_frames_and_times() -> None:
    items = items_of(VIDEO)
    assert len(items) == 38 and all(isinstance(i, Frame) for i in items)
    assert [i.t_ns for i in items] == [k * 40 * MS for k in range(38)]  # 25 fps
    first = items[0]
    assert isinstance(first, Frame) and first.array is not None and first.array.shape == (720, 1280, 3)
    assert first.sensor == "udacity_vehicle_detection_test_video"
    assert first.nbytes == VIDEO.stat().st_size // 38
    assert [i.seq for i in items] == list(range(38))


def test_video_written_from_real_frames(tmp_path: Path) -> None:
    path = tmp_path / "dash.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (1242, 375))
    for jpg in sorted(make_jpeg_folder(tmp_path / "stills").glob("*.jpg"))[:3]:
        writer.write(cv2.imread(str(jpg)))
    writer.release()
    items = items_of(path, max_frames=2)
    assert detect_kind(str(path)) == "video"
    assert [(i.sensor, i.t_ns) for i in items] == [("dash", 0), ("dash", 100 * MS)]


def test_video_cut_short_ends_with_a_corrupt_recording_skip(tmp_path: Path) -> None:
    path = tmp_path / "dash.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (1242, 375))
    for jpg in sorted(make_jpeg_folder(tmp_path / "stills").glob("*.jpg")) * 2:
        writer.write(cv2.imread(str(jpg)))
    writer.release()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header still says 12 frames
    *frames, last = items_of(path)
    assert 3 <= len(frames) < 12 and all(isinstance(f, Frame) for f in frames)
    assert isinstance(last, Skip) and last.reason == "corrupt_recording" and last.seq == len(frames)


def test_video_that_does_not_open_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.mp4"
    path.write_text("this is not a video\n")
    with pytest.raises(InputError, match="cannot be opened as a video"):
        open_inputs([str(path)], CONFIG)


# --- Velodyne pcap -------------------------------------------------------------------------------------------


def test_pcap_hdl32e_driving_scans() -> None:
    assert detect_kind(str(PCAP_HDL32)) == "pcap"
    items = items_of(PCAP_HDL32)
    assert len(items) == 6 and all(isinstance(i, Frame) for i in items)  # 5 rotations + the partial last one
    assert_time_ordered(items)
    first = items[0]
    assert isinstance(first, Frame) and first.array is not None
    assert first.modality is Modality.LIDAR and first.sensor == "velodyne_hdl32e_driving_example"
    assert first.array.shape[1] == 4 and first.array.dtype == np.float32 and first.array.flags.c_contiguous
    assert len(first.array) > 40_000 and np.isfinite(first.array).all()
    assert abs(first.t_ns - 1_355_263_365_463_844_000) < 1_000  # host time of the capture
    assert sum(i.nbytes for i in items) == 876 * 1206  # every data packet counted once
    assert all(i.nbytes % 1206 == 0 for i in items)


@shared_data
def test_pcap_vlp16_and_ouster_without_metadata(tmp_path: Path) -> None:
    items = items_of(PCAP_VLP16)
    assert len(items) == 51 and [i.seq for i in items] == list(range(51))
    alone = tmp_path / PCAP_OUSTER.name  # without its metadata JSON an Ouster capture cannot be decoded
    shutil.copy(PCAP_OUSTER, alone)
    with pytest.raises(InputError, match="no Velodyne data packets"):
        open_inputs([str(alone)], CONFIG)


def test_pcap_cut_short_yields_what_is_there(tmp_path: Path) -> None:
    data = PCAP_HDL32.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) // 2 + 7])
    items = items_of(cut)
    frames = [i for i in items if isinstance(i, Frame)]
    skips = [i for i in items if isinstance(i, Skip)]
    assert 2 <= len(frames) <= 4  # what is there is read ...
    assert [s.reason for s in skips] == ["corrupt_recording"] and "cut short" in skips[0].detail  # ... and counted


def test_pcap_with_flipped_record_headers_is_counted_and_read_on(tmp_path: Path) -> None:
    data = bytearray(PCAP_HDL32.read_bytes())
    clean = [i for i in items_of(PCAP_HDL32) if isinstance(i, Frame)]
    at = 24 + (len(data) // 3)
    at = data.find(bytes(data[24:28]), at)  # a record header: same seconds field as the first record
    data[at + 8:at + 12] = b"\xff\xff\xff\x7f"  # its captured length now says 2 GB
    damaged = tmp_path / "flipped.pcap"
    damaged.write_bytes(bytes(data))
    items = items_of(damaged)
    frames = [i for i in items if isinstance(i, Frame)]
    assert [i.reason for i in items if isinstance(i, Skip)] == ["corrupt_recording"]
    assert len(frames) >= len(clean) - 1 and frames[-1].t_ns == clean[-1].t_ns  # read on to the end


def test_pcapng_of_the_same_capture_decodes_the_same(tmp_path: Path) -> None:
    path = tmp_path / "hdl32.pcapng"
    with PCAP_HDL32.open("rb") as src, path.open("wb") as out:
        writer = dpkt.pcapng.Writer(out)
        for ts, buf in dpkt.pcap.Reader(src):
            writer.writepkt(buf, ts=ts)
    assert detect_kind(str(path)) == "pcap"
    pcapng, pcap = items_of(path), items_of(PCAP_HDL32)
    assert [(i.t_ns, i.nbytes) for i in pcapng] == [(i.t_ns, i.nbytes) for i in pcap]
    np.testing.assert_array_equal(points_of(pcapng[2]), points_of(pcap[2]))  # type: ignore[arg-type]


# --- detection and errors ------------------------------------------------------------------------------------


@shared_data
def test_detect_kind_of_every_real_input() -> None:
    assert detect_kind(str(KITTI_SYNC)) == "kitti"
    assert detect_kind(str(BDD)) == "images"
    assert detect_kind(str(VIDEO)) == "video"
    assert detect_kind(str(PCAP_VLP16)) == "pcap"


def test_detect_kind_by_magic_bytes_not_name(tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[1] / "data" / "sample_drive.mcap"
    renamed = tmp_path / "recording.bin"
    os.symlink(sample, renamed)
    assert detect_kind(str(renamed)) == "mcap"


@pytest.mark.parametrize(
    ("relpath", "content", "message"),
    [
        ("nope", None, "input not found"),
        ("empty/", None, "input folder is empty"),
        ("e.mcap", "", "input file is empty"),
        ("d/x.txt", "x", "cannot tell the input type of folder"),
        ("x.csv", "a,b\n", "cannot tell the input type"),
        ("x.jpg", "a", "a single image"),
        ("x.mcap", "not mcap", "not an MCAP file"),
        ("x.pcap", "not pcap", "not a readable pcap"),
    ],
)
def test_unusable_inputs_are_one_line_input_errors(
    tmp_path: Path, relpath: str, content: str | None, message: str
) -> None:
    target = tmp_path / relpath
    if relpath.endswith("/"):
        target.mkdir()
    elif content is not None:
        target.parent.mkdir(exist_ok=True)
        target.write_text(content)
    given = tmp_path / relpath.split("/")[0]  # the folder, for files inside one
    with pytest.raises(InputError, match=message) as info:
        open_inputs([str(given)], CONFIG)
    assert "\n" not in str(info.value)


def test_no_inputs_is_an_input_error() -> None:
    with pytest.raises(InputError):
        open_inputs([], CONFIG)


# --- merge ---------------------------------------------------------------------------------------------------


def test_merge_orders_inputs_by_time_and_is_stable(tmp_path: Path) -> None:
    drive = make_kitti(tmp_path / "drive")
    stills = make_jpeg_folder(tmp_path / "dashcam")
    frame77 = make_kitti(tmp_path / "partial_frame77", frames=[77])  # a drive folder holding only frame 77
    items = items_of(drive, stills, frame77)
    assert_time_ordered(items)
    at_zero = [i.sensor for i in items if i.t_ns == 0]
    assert at_zero == ["image_02", "velodyne", "dashcam"]  # input order, then each input's own order
    assert [i.sensor for i in items[-2:]] == ["image_02_2", "velodyne_2"]  # frame 77, at 7.7 s, renamed
    assert len(items) == 6 + 6 + 2


def test_merge_makes_sensor_names_unique_and_honours_max_frames(tmp_path: Path) -> None:
    drive = make_kitti(tmp_path / "drive")
    items = items_of(drive, drive)
    assert [i.sensor for i in items[:4]] == ["image_02", "velodyne", "image_02_2", "velodyne_2"]
    limited = items_of(drive, drive, max_frames=5)
    assert len(limited) == 5


def test_frames_named_without_zero_padding_are_one_recording_in_number_order(tmp_path: Path) -> None:
    # ffmpeg's frame_%d names: img2 comes before img10. Sorted as text (img1, img10, img11, img2...) the folder
    # played out of order and did not look like one recording, so each frame was judged alone (a still).
    from camera_support import judge, sample_images

    from agent.config.model import ScoringConfig
    from agent.scoring.heuristic import HeuristicScorer

    folder = tmp_path / "dashcam"
    folder.mkdir()
    for k, image in enumerate(sample_images(11), start=1):
        cv2.imwrite(str(folder / f"img{k}.jpg"), image)
    shutil.copyfile(folder / "img11.jpg", folder / "img12.jpg")  # the camera sent its last frame again
    frames = [i for i in items_of(folder) if isinstance(i, Frame)]
    assert [f.meta["file"] for f in frames] == [f"img{k}.jpg" for k in range(1, 13)]
    assert not any("still" in f.meta for f in frames)
    scorer = HeuristicScorer(ScoringConfig())
    assert "frozen" in [judge(scorer, f) for f in frames][-1].reasons


def test_a_sub_folder_of_an_image_folder_is_a_skip_that_says_how_to_read_it(tmp_path: Path) -> None:
    folder = make_jpeg_folder(tmp_path / "dashcam")
    (folder / "bag").mkdir()
    (folder / "notes.txt").write_text("not read")
    skips = {Path(i.source).name: i.detail for i in items_of(folder) if isinstance(i, Skip)}
    assert skips == {"bag": "a folder: give it as an input of its own to read it",
                     "notes.txt": "not an image or a point cloud file"}


def test_recordings_named_by_time_are_recordings_and_two_units_side_by_side_are_not() -> None:
    from agent.sources.images import numbered_sequence

    # bag_to_pcd's <sec>.<nsec> names, and a date-time over several seconds: one recording each.
    assert numbered_sequence(["1546300800.900000000.pcd", "1546300801.000000000.pcd", "1546300801.100000000.pcd"])
    assert numbered_sequence(["2021-10-26-16-21-29-968.bin", "2021-10-26-16-21-30-068.bin"])
    # Two cameras' frames in one folder, by time or by counter: not one recording.
    assert not numbered_sequence(["cam1_1546300800123456789.jpg", "cam1_1546300800223456789.jpg",
                                  "cam2_1546300800123456789.jpg", "cam2_1546300800223456789.jpg"])
    assert not numbered_sequence(["img_0231_cam1.jpg", "img_0231_cam2.jpg", "img_0232_cam1.jpg"])


def test_a_lidar_folder_dumped_by_bag_to_pcd_is_judged_against_its_own_history(tmp_path: Path) -> None:
    # Sorted and read as one recording, a scan the driver sent twice is a frozen repeat; read as unrelated
    # snapshots (the names' seconds change, so they shared no prefix), it passed.
    from conftest import sample_frames

    from agent.config.model import ScoringConfig
    from agent.scoring.heuristic import HeuristicScorer

    folder = tmp_path / "velodyne"
    folder.mkdir()
    scans = [f.array for f in sample_frames("lidar")[:4]]
    names = [f"{1546300800 + k // 3}.{(k % 3) * 300_000_000:09d}.bin" for k in range(5)]
    for name, scan in zip(names, [*scans, scans[-1]], strict=True):
        scan.astype("<f4").tofile(folder / name)
    frames = [i for i in items_of(folder) if isinstance(i, Frame)]
    assert [f.meta["file"] for f in frames] == names and not any("still" in f.meta for f in frames)
    scorer = HeuristicScorer(ScoringConfig())
    verdicts = [scorer.score(f) for f in frames]
    assert "frozen" in verdicts[-1].reasons

"""The inputs a robotics team already has, on the real recordings in ../shared/data: ROS 1 and rosbag2 bags
(camera/LiDAR messages and raw Velodyne/Ouster packets), Ouster pcaps with their metadata, folders of .bin /
.pcd / .ply scans, nuScenes sample folders, KITTI layouts with JPEG frames and the KITTI object folder."""

from __future__ import annotations

import importlib.util
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from _sources_fixtures import KITTI_SYNC, PCAP_OUSTER, SHARED, shared_data

from agent.config.model import InputsConfig
from agent.errors import InputError
from agent.frame import Frame, Modality, Skip
from agent.sources import detect_kind, merge, open_inputs
from agent.sources.points import read_points

BAGS = SHARED / "bags"
VLP16_BAG = BAGS / "nebula_velodyne_vlp16" / "1673400471837873222"
VLP32_BAG = BAGS / "nebula_velodyne_vlp32" / "1713492677464078412"
OUSTER_BAG = BAGS / "ouster_512x10_raw.bag"
LIDAR = SHARED / "lidar"
PANDAR64 = LIDAR / "hesai_pandar64_pjlab_5scans"
NUSCENES = SHARED / "nuscenes" / "n015-2018-07-24-11-22-45_sample"
KITTI_OBJECT = SHARED / "kitti" / "object_000008_mmdet3d"

needs_ouster = pytest.mark.skipif(importlib.util.find_spec("ouster") is None,
                                  reason="ouster-sdk is not installed (scripts/setup.sh installs edgesift[ouster])")


def items_of(path: Path) -> list[Frame | Skip]:
    return list(merge(open_inputs([str(path)], InputsConfig())))


def frames_of(path: Path) -> list[Frame]:
    return [i for i in items_of(path) if isinstance(i, Frame)]


def _points_in_pcd(path: Path) -> int:
    header = path.read_bytes()[:1024].decode("ascii", errors="replace")
    return int(next(line.split()[1] for line in header.splitlines() if line.startswith("POINTS")))


@shared_data
@pytest.mark.parametrize(("bag", "truth_pcd", "scans"), [
    (VLP16_BAG, "1673400472138016708_decoded.pcd", 4),
    (VLP32_BAG, "1713492677464078412_decoded.pcd", 5),
])
def test_rosbag2_velodyne_packets_decode_like_the_reference(bag: Path, truth_pcd: str, scans: int) -> None:
    assert detect_kind(str(bag)) == "rosbag"
    frames = frames_of(bag)
    assert len(frames) == scans and all(f.modality is Modality.LIDAR for f in frames)
    assert [f.seq for f in frames] == list(range(scans))
    # The reference decoder's cloud of one scan (nebula's ground truth; its name is the scan's bag time).
    expected = _points_in_pcd(bag.parent / truth_pcd)
    assert min(abs(len(f.array) - expected) for f in frames) <= 0.01 * expected
    assert all(2020 <= 1970 + f.t_ns // (365.25 * 86400e9) <= 2025 for f in frames)  # header stamps, wall clock
    assert all(0.0 <= f.array[:, 3].max() <= 1.0 for f in frames)  # intensity on the 0..1 scale


@shared_data
@needs_ouster
def test_ros1_bag_ouster_packets_and_other_topics_counted() -> None:
    assert detect_kind(str(OUSTER_BAG)) == "rosbag"
    items = items_of(OUSTER_BAG)
    frames = [i for i in items if isinstance(i, Frame)]
    skips = [i for i in items if isinstance(i, Skip)]
    assert len(frames) == 1 and frames[0].sensor == "os_node0" and len(frames[0].array) > 20_000
    assert frames[0].nbytes == 32 * 8448  # the 32 lidar packets of the bag
    imu = [s for s in skips if s.source.endswith("/os_node0/imu_packets")]
    assert len(imu) == 1 and imu[0].reason == "unknown_schema" and "10 messages" in imu[0].detail


@shared_data
@needs_ouster
def test_ouster_pcap_with_its_metadata_json() -> None:
    assert detect_kind(str(PCAP_OUSTER)) == "ouster"
    frames = frames_of(PCAP_OUSTER)
    assert len(frames) == 3 and [f.seq for f in frames] == [0, 1, 2]
    assert all(len(f.array) > 100_000 for f in frames)  # 128 x 1024 beams, most with a return outdoors
    assert all(f.nbytes == 64 * 8448 for f in frames)  # 64 packets of 8448 bytes per 1024-column frame
    gaps = np.diff([f.t_ns for f in frames]) / 1e6
    assert np.allclose(gaps, 100, atol=5)  # 10 Hz
    assert 1_650_000_000e9 < frames[0].t_ns < 1_651_000_000e9  # 2022-04-19, the capture host's clock


@shared_data
def test_pcd_folder_matches_the_bin_conversion_of_the_same_scans() -> None:
    pcd_frames = frames_of(PANDAR64 / "pcd_original")  # binary_compressed (LZF) PCDs
    bin_frames = frames_of(PANDAR64)
    assert len(pcd_frames) == len(bin_frames) == 5
    for pcd, binary in zip(pcd_frames, bin_frames, strict=True):
        assert Path(pcd.source).stem == Path(binary.source).stem
        np.testing.assert_array_equal(pcd.array[:, :3], binary.array[:, :3])
    # timestamps.txt (unix seconds per file) is the clock of the .bin folder
    assert bin_frames[0].t_ns == 1_635_236_489_369_082_000


@shared_data
def test_pcd_ascii_and_ply_read_back_a_real_scan(tmp_path: Path) -> None:
    from plyfile import PlyData, PlyElement
    from pypcd4 import Encoding, PointCloud

    scan = np.fromfile(LIDAR / "dense_stf_hdl64s3d_single_scan" / "2019-09-11_19-13-44_00960.bin", "<f4")
    scan = scan.reshape(-1, 4)[:5000]
    folder = tmp_path / "scans"
    folder.mkdir()
    PointCloud.from_xyzi_points(scan).save(folder / "000000.pcd", encoding=Encoding.ASCII)
    vertex = np.array([tuple(p) for p in scan], dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("intensity", "f4")])
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(folder / "000001.ply"))
    for name in ("000000.pcd", "000001.ply"):
        np.testing.assert_allclose(read_points(folder / name), scan, rtol=1e-5, atol=1e-5)
    assert detect_kind(str(folder)) == "scans"
    frames = frames_of(folder)
    assert [f.sensor for f in frames] == ["scans", "scans"] and [f.seq for f in frames] == [0, 1]


@shared_data
@pytest.mark.parametrize("folder", ["nebula_hesai_vls128_single_scans", "ouster_sdk_test_frames",
                                    "ouster_os0_8beam_10scans", "hesai_multi_lidar_pjlab_snapshots"])
def test_kitti_style_bin_folders_from_any_lidar(folder: str) -> None:
    items = items_of(LIDAR / folder)
    frames = [i for i in items if isinstance(i, Frame)]
    files = sorted(p.name for p in (LIDAR / folder).glob("*.bin"))
    assert len(frames) == len(files) and all(len(f.array) > 1000 for f in frames)
    unused = {Path(i.source).name for i in items if isinstance(i, Skip)}
    assert unused == {p.name for p in (LIDAR / folder).iterdir() if p.suffix not in (".bin",)} - {"timestamps.txt"}


@shared_data
def test_nuscenes_sample_one_sensor_per_channel() -> None:
    assert detect_kind(str(NUSCENES)) == "nuscenes"
    items = items_of(NUSCENES)
    frames = [i for i in items if isinstance(i, Frame)]
    assert Counter(f.sensor for f in frames) == Counter({
        "CAM_FRONT": 1, "CAM_FRONT_LEFT": 1, "CAM_FRONT_RIGHT": 1, "CAM_BACK": 1, "CAM_BACK_LEFT": 1,
        "CAM_BACK_RIGHT": 1, "LIDAR_TOP": 1})
    lidar = next(f for f in frames if f.sensor == "LIDAR_TOP")
    assert len(lidar.array) == 34_688 and lidar.array[:, 3].max() <= 1.0
    assert lidar.t_ns == 1_532_402_927_647_951_000  # the microsecond stamp in the file name
    assert [Path(i.source).name for i in items if isinstance(i, Skip)] == ["calib_from_mmdet3d_pkl.json"]


@shared_data
def test_kitti_layout_with_jpeg_frames(tmp_path: Path) -> None:
    drive = tmp_path / "drive"
    for sub in ("image_02/data", "velodyne_points/data"):
        (drive / sub).mkdir(parents=True)
    for n in range(3):
        name = f"{n:010d}"
        image = cv2.imread(str(KITTI_SYNC / "image_02" / "data" / f"{name}.png"))
        cv2.imwrite(str(drive / "image_02" / "data" / f"{name}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        shutil.copy(KITTI_SYNC / "velodyne_points" / "data" / f"{name}.bin", drive / "velodyne_points" / "data")
    frames = frames_of(drive)
    assert Counter(f.sensor for f in frames) == Counter({"image_02": 3, "velodyne": 3})


@shared_data
def test_kitti_object_folder_reads_its_scan_too() -> None:
    items = items_of(KITTI_OBJECT)
    frames = [i for i in items if isinstance(i, Frame)]
    assert sorted((f.sensor, f.modality.value) for f in frames) == [
        ("object_000008_mmdet3d", "camera"), ("object_000008_mmdet3d_lidar", "lidar")]
    assert len(next(f for f in frames if f.modality is Modality.LIDAR).array) == 17_238
    assert sorted(Path(i.source).name for i in items if isinstance(i, Skip)) == [
        "000008.txt", "000008_calib_from_mmdet3d_pkl.json"]


def test_bag_without_sensor_topics_is_refused(tmp_path: Path) -> None:
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    String = store.types["std_msgs/msg/String"]
    with Writer(tmp_path / "bag") as writer:
        connection = writer.add_connection("/chatter", String.__msgtype__, typestore=store)
        writer.write(connection, 1, store.serialize_cdr(String(data="hello"), String.__msgtype__))
    with pytest.raises(InputError, match=r"no camera or LiDAR topic.*/chatter"):
        open_inputs([str(tmp_path / "bag")], InputsConfig())


@pytest.mark.parametrize("version", [1, 2])
def test_bag_camera_and_pointcloud_topics(tmp_path: Path, version: int) -> None:
    """Real frames (the sample drive's JPEG and scan) written as CompressedImage and PointCloud2 into a ROS 1 bag
    and a rosbag2 folder by rosbags' writers, read back as frames with the header stamps."""
    from conftest import sample_frames
    from rosbags.typesys import Stores, get_typestore

    from agent.replay.msgs import XYZI_FIELDS

    store = get_typestore(Stores.ROS1_NOETIC if version == 1 else Stores.ROS2_HUMBLE)
    types = store.types
    camera, scan = sample_frames("camera")[0], sample_frames("lidar")[0]
    assert camera.payload is not None and scan.array is not None
    stamp = types["builtin_interfaces/msg/Time"](sec=1_700_000_000, nanosec=5)
    header = (types["std_msgs/msg/Header"](seq=0, stamp=stamp, frame_id="cam") if version == 1
              else types["std_msgs/msg/Header"](stamp=stamp, frame_id="cam"))
    image = types["sensor_msgs/msg/CompressedImage"](header=header, format="jpeg",
                                                     data=np.frombuffer(camera.payload, np.uint8))
    fields = [types["sensor_msgs/msg/PointField"](**f) for f in XYZI_FIELDS]
    points = scan.array.astype("<f4")
    cloud = types["sensor_msgs/msg/PointCloud2"](
        header=header, height=1, width=len(points), fields=fields, is_bigendian=False, point_step=16,
        row_step=16 * len(points), data=np.frombuffer(points.tobytes(), np.uint8), is_dense=False)
    if version == 1:
        from rosbags.rosbag1 import Writer

        path, serialize = tmp_path / "drive.bag", store.serialize_ros1
    else:
        from rosbags.rosbag2 import Writer

        path, serialize = tmp_path / "drive", store.serialize_cdr
    with Writer(path) as writer:
        for topic, msg in (("/cam/image_raw/compressed", image), ("/lidar/points", cloud)):
            connection = writer.add_connection(topic, msg.__msgtype__, typestore=store)
            writer.write(connection, 1_700_000_000_000_000_005, serialize(msg, msg.__msgtype__))
    frames = frames_of(path)
    assert sorted(f.sensor for f in frames) == ["cam", "lidar"]
    got_camera = next(f for f in frames if f.sensor == "cam")
    assert got_camera.payload == camera.payload and got_camera.t_ns == 1_700_000_000_000_000_005
    np.testing.assert_array_equal(next(f for f in frames if f.sensor == "lidar").array, points)


def test_velodyne_pcap_intensity_on_the_kitti_scale() -> None:
    from _sources_fixtures import PCAP_HDL32

    frames = frames_of(PCAP_HDL32)
    tops = [float(f.array[:, 3].max()) for f in frames]
    assert all(0.0 < top <= 1.0 for top in tops)  # velodyne_decoder reports 0..255
    assert max(tops) > 0.5  # scaled, not clipped: retro-reflectors still stand out


def test_velodyne_libraries_load_only_for_a_velodyne_capture() -> None:
    """dpkt and velodyne_decoder are imported on first use (about 70 ms of every worker's start otherwise)."""
    import subprocess
    import sys

    from _sources_fixtures import PCAP_HDL32

    probe = ("import sys, agent.sources, agent.replay.runner; from agent.sources.pcap import PACKET_BYTES; "
             "before = {'dpkt', 'velodyne_decoder'} & set(sys.modules); "
             "import velodyne_decoder; assert PACKET_BYTES == velodyne_decoder.PACKET_SIZE; print(sorted(before))")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout == "[]\n"
    assert frames_of(PCAP_HDL32)  # and a capture still decodes


def test_rosbag2_folder_with_mcap_storage(tmp_path: Path, sample_drive: Path) -> None:
    """A rosbag2 folder whose storage is MCAP (ros2 bag record -s mcap): metadata.yaml beside the .mcap."""
    bag = tmp_path / "drive"
    bag.mkdir()
    shutil.copy(sample_drive, bag / "drive_0.mcap")
    topics = [("/kitti/camera_02/image/compressed", "sensor_msgs/msg/CompressedImage", 31),
              ("/kitti/velodyne/points", "sensor_msgs/msg/PointCloud2", 16)]
    listed = "".join(
        f"    - topic_metadata:\n        name: {name}\n        type: {kind}\n        serialization_format: cdr\n"
        f"        offered_qos_profiles: ''\n      message_count: {n}\n" for name, kind, n in topics)
    (bag / "metadata.yaml").write_text(
        "rosbag2_bagfile_information:\n  version: 5\n  storage_identifier: mcap\n"
        "  duration:\n    nanoseconds: 7750000000\n  starting_time:\n    nanoseconds_since_epoch: 1317000000000000000\n"
        f"  message_count: 47\n  topics_with_message_count:\n{listed}"
        "  compression_format: ''\n  compression_mode: ''\n  relative_file_paths:\n    - drive_0.mcap\n"
        "  files:\n    - path: drive_0.mcap\n      starting_time:\n"
        "        nanoseconds_since_epoch: 1317000000000000000\n"
        "      duration:\n        nanoseconds: 7750000000\n      message_count: 47\n")
    assert detect_kind(str(bag)) == "rosbag"
    as_bag = frames_of(bag)
    as_mcap = frames_of(sample_drive)  # the same file through the MCAP reader
    assert [(f.sensor, f.seq, f.t_ns) for f in as_bag] == [(f.sensor, f.seq, f.t_ns) for f in as_mcap]
    assert len(as_bag) == 47


@shared_data
def test_nuscenes_dataroot_with_channel_folders(tmp_path: Path) -> None:
    root = tmp_path / "nuscenes"
    for path in NUSCENES.iterdir():
        if "__" in path.name:
            channel = path.name.split("__")[1]
            (root / "samples" / channel).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, root / "samples" / channel / path.name)
    assert detect_kind(str(root)) == "nuscenes"
    assert sorted(f.sensor for f in frames_of(root)) == sorted(
        ["CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT", "CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "LIDAR_TOP"])

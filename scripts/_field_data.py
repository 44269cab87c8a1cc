"""Every real recording in ../shared/data as evaluation sources (camera and LiDAR), tagged by source, condition and
sensor model, and the field fault set applied to them.

A *source* is one recording (or one set of stills from one origin); evaluation holds out by source, never by frame.
Sequences are scored in order as one sensor stream; stills are each their own sensor (a stream of one frame: the
first seconds of a stream, with no baseline yet). `seen_by_models` marks the sources the shipped proxy models
(camera-proxy-1/2, lidar-proxy-1/2) trained on; on every other source their figures are held-out figures.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
EVAL_WIDTH = 640  # camera frames are evaluated at most this wide (faults are applied at this size)


@dataclass(frozen=True)
class Source:
    name: str
    modality: str  # camera | lidar
    condition: str  # day, night, dusk, rain, snow, fisheye, nir, near_field, ...
    # (item name, image BGR / points Nx4[, the source's Frame.meta: genuine faults only])
    load: Callable[[], list[tuple]] = field(repr=False)
    sequence: bool = True  # one sensor stream in order; False: every item is its own one-frame stream
    sensor_model: str | None = None  # LiDAR model for scoring.sensors (None: unknown, learnt from the stream)
    seen_by_models: bool = False
    genuine_fault: bool = False  # every item is a real faulty frame (section 9 of SOURCES.md)


def _fit(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    if w <= EVAL_WIDTH:
        return image
    return cv2.resize(image, (EVAL_WIDTH, round(h * EVAL_WIDTH / w)), interpolation=cv2.INTER_AREA)


def _images(folder: str, pattern: str = "*.jpg", names: tuple[str, ...] = ()) -> Callable[[], list]:
    def load() -> list[tuple[str, np.ndarray]]:
        files = sorted((SHARED / folder).glob(pattern))
        if names:
            files = [f for f in files if any(f.name.startswith(n) for n in names)]
        return [(f.name, _fit(cv2.imread(str(f)))) for f in files]

    return load


def _video(name: str) -> Callable[[], list]:
    def load() -> list[tuple[str, np.ndarray]]:
        cap, out = cv2.VideoCapture(str(SHARED / "video" / name)), []
        while True:
            ok, frame = cap.read()
            if not ok:
                return out
            # Named as numbered frames of one recording, so the evaluation judges them as one stream with its history
            # (named "x.mp4#N" they were taken for unrelated stills, each judged alone).
            out.append((f"{Path(name).stem}_{len(out):06d}.png", _fit(frame)))

    return load


def _tiff_8bit(path: Path, bayer: bool) -> np.ndarray:
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.float32)
    top = 4095.0 if bayer else 1023.0
    grey = np.clip(raw / top * 255.0, 0, 255).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_BayerRG2BGR) if bayer else cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def _dense(kind: str) -> Callable[[], list]:
    folder = SHARED / "camera" / "dense_stf_examples_germany_sweden"

    def load() -> list[tuple[str, np.ndarray]]:
        if kind == "bayer":
            return [(f.name, _fit(_tiff_8bit(f, True))) for f in sorted(folder.glob("raw12*.tiff"))]
        if kind == "gated":
            return [(f.name, _fit(_tiff_8bit(f, False))) for f in sorted(folder.glob("gated*.tiff"))]
        files = [f for f in sorted(folder.glob(f"{kind}_*.jpg")) if kind != "rgb" or "_lut_" not in f.name]
        return [(f.name, _fit(cv2.imread(str(f)))) for f in files]  # rgb: not rgb_lut_* (dense_snow_lut_se)

    return load


def _bins(folder: str, names: tuple[str, ...] = (), columns: int = 4) -> Callable[[], list]:
    def load() -> list[tuple[str, np.ndarray]]:
        files = sorted((SHARED / folder).glob("*.bin"))
        if names:
            files = [f for f in files if any(f.name.startswith(n) for n in names)]
        return [(f.name, np.fromfile(f, np.float32).reshape(-1, columns)[:, :4].copy()) for f in files]

    return load


def _pcap(name: str, edges: bool = False) -> Callable[[], list]:
    """The scans of a capture; the first and last are partial when the capture starts or stops mid-rotation
    (fewer than 90% of the median point count): those are genuine incomplete scans (`edges`), not valid ones.
    An edge scan keeps what the pcap source said about it (Frame.meta: a rotation the capture cut short)."""

    def load() -> list[tuple]:
        scans = _pcap_scans(name)
        median = float(np.median([len(p) for _, p, _ in scans]))
        partial = {i for i in (0, len(scans) - 1) if len(scans[i][1]) < 0.9 * median}
        return [s if edges else s[:2] for i, s in enumerate(scans) if (i in partial) == edges]

    return load


def _pcap_scans(name: str) -> list[tuple[str, np.ndarray, dict[str, str]]]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from agent.frame import Frame
    from agent.sources.pcap import PcapSource

    return [(f"{name}#{item.seq}", item.array, dict(item.meta)) for item in PcapSource(str(SHARED / "pcap" / name))
            if isinstance(item, Frame) and item.array is not None]


KITTI = "kitti/2011_09_26/udacity_sfnd_sync"
BDD = "camera/bdd100k_yolop"
NUS = "nuscenes/n015-2018-07-24-11-22-45_sample"
OUSTER_FRAMES = "lidar/ouster_sdk_test_frames"
NEBULA = "lidar/nebula_hesai_vls128_single_scans"


def _synthetic(load: Callable[[], list], condition: str) -> Callable[[], list]:
    """A real recording under a synthesised condition, steady over the whole stream (a benign change: valid)."""

    def apply() -> list[tuple[str, np.ndarray]]:
        rng = np.random.default_rng(3)
        out = []
        for name, image in load():
            f = image.astype(np.float32)
            if condition == "fog":  # haze: contrast pulled towards a bright grey airlight, more with height
                depth = np.linspace(0.85, 0.45, f.shape[0], dtype=np.float32)[:, None, None]
                f = f * (1 - depth) + 200.0 * depth
            elif condition == "night":  # low light: gain down, gamma up, sensor noise at high gain
                f = 255.0 * (f / 255.0) ** 2.2 * 0.35 + rng.normal(0, 2.5, f.shape)
            out.append((name, np.clip(f, 0, 255).astype(np.uint8)))
        return out

    return apply


def _lidar_fog(load: Callable[[], list]) -> Callable[[], list]:
    """Fog for a LiDAR: far returns attenuated away, some backscatter within a few metres."""

    def apply() -> list[tuple[str, np.ndarray]]:
        rng = np.random.default_rng(5)
        out = []
        for name, points in load():
            r = np.linalg.norm(points[:, :3], axis=1)
            keep = rng.random(len(points)) < np.exp(-r / 25.0)
            fog = points[rng.random(len(points)) < 0.03].copy()
            fog[:, :3] *= (rng.uniform(1.0, 4.0, (len(fog), 1)) / np.maximum(np.linalg.norm(fog[:, :3], axis=1,
                                                                                             keepdims=True), 1e-3))
            out.append((name, np.concatenate([points[keep], fog])))
        return out

    return apply


def camera_sources() -> list[Source]:
    return [
        Source("kitti_day", "camera", "day", _images(f"{KITTI}/image_02/data", "*.png"), seen_by_models=True),
        Source("kitti_grey_day", "camera", "day", _images(f"{KITTI}/image_00/data", "*.png"), seen_by_models=True),
        Source("kitti_object_day", "camera", "day", _images("kitti/object_000008_mmdet3d", "*.png"), False,
               seen_by_models=True),
        Source("bdd_day", "camera", "day", _images(BDD, names=("0ace", "8e1c", "adb4")), False, seen_by_models=True),
        Source("bdd_night", "camera", "night", _images(BDD, names=("3c0e", "9aa9")), False, seen_by_models=True),
        Source("bdd_snow", "camera", "snow", _images(BDD, names=("7dd9",)), False, seen_by_models=True),
        Source("nuscenes_day_6cams", "camera", "day", _images(NUS), False, seen_by_models=True),
        Source("highway_video_1", "camera", "day", _video("udacity_lanelines_solidWhiteRight.mp4"),
               seen_by_models=True),
        Source("highway_video_2", "camera", "day", _video("udacity_vehicle_detection_test_video.mp4"),
               seen_by_models=True),
        Source("camvid_dusk_uk", "camera", "dusk", _images("camera/dusk_uk_camvid_0001TP")),
        Source("nturain_rain_sg", "camera", "rain", _images("camera/rain_singapore_nturain_rb2")),
        Source("evocargo_winter_ru", "camera", "snow", _images("camera/winter_moscow_evocargo_seq1")),
        Source("sid_snow_dusk_us", "camera", "snow", _images("camera/sid_snow_dusk_and_rain_michigan_stereo",
                                                             names=("Campus",)), False),
        Source("sid_rain_day_us", "camera", "rain", _images("camera/sid_snow_dusk_and_rain_michigan_stereo",
                                                            names=("City",)), False),
        Source("night_robotcar_uk", "camera", "night",
               _images("camera/night_singles_robotcar_nuscenes_md4all", names=("robotcar",)), False),
        Source("night_nuscenes_sg", "camera", "night",
               _images("camera/night_singles_robotcar_nuscenes_md4all", names=("n015",)), False),
        Source("fisheye_woodscape", "camera", "fisheye", _images("camera/fisheye_woodscape_and_surround_singles"),
               False),
        Source("dense_snow_lut_se", "camera", "snow", _dense("rgb_lut"), False),
        Source("dense_overcast_de", "camera", "day", _dense("rgb"), False),
        Source("dense_raw_bayer_se", "camera", "snow", _dense("bayer"), False),
        Source("dense_gated_nir", "camera", "nir", _dense("gated"), False),
        Source("bdd_folder_one_stream", "camera", "mixed", _images(BDD)),  # as replay reads an image folder
        Source("kitti_synthetic_fog", "camera", "fog", _synthetic(_images(f"{KITTI}/image_02/data", "*.png"), "fog")),
        Source("kitti_synthetic_night", "camera", "night",
               _synthetic(_images(f"{KITTI}/image_02/data", "*.png"), "night")),
    ]


# Camera sources in folds for leave-sources-out training (scripts/train_camera_loso.py): recordings that share a
# vehicle, a drive or frames stay in one fold (KITTI's synthetic fog and night are KITTI frames; the BDD folder is
# the BDD stills; nuScenes day and night share the car), so a fold's model has never seen anything of them.
CAMERA_FOLDS = {
    "kitti": ("kitti_day", "kitti_grey_day", "kitti_object_day", "kitti_synthetic_fog", "kitti_synthetic_night"),
    "bdd_camvid": ("bdd_day", "bdd_night", "bdd_snow", "bdd_folder_one_stream", "camvid_dusk_uk"),
    "nuscenes_highway_rain": ("nuscenes_day_6cams", "night_nuscenes_sg", "highway_video_1", "highway_video_2",
                              "nturain_rain_sg"),
    "dense_winter": ("dense_snow_lut_se", "dense_overcast_de", "dense_raw_bayer_se", "dense_gated_nir",
                     "evocargo_winter_ru"),
    "michigan_oxford_fisheye": ("sid_snow_dusk_us", "sid_rain_day_us", "night_robotcar_uk", "fisheye_woodscape"),
}


def camera_genuine_faults() -> list[Source]:
    return [Source("lens_smear_chicago", "camera", "fault", _images("camera/FAULT_lens_smear_streetview_chicago",
                                                                    names=("3934",)), False, genuine_fault=True)]


def _ouster_model(product: str) -> str:
    head = product.split(" ")[0]
    return {"OS-0": "ouster-os0", "OS-1": "ouster-os1", "OS-2": "ouster-os2"}[head[:4]]


def _ouster_frames(complete: bool) -> list[Source]:
    rows = list(csv.DictReader((SHARED / OUSTER_FRAMES / "index.csv").open()))
    out = []
    for row in rows:
        if (row["complete"] == "True") != complete:
            continue
        name = row["file"].removesuffix(".bin")
        out.append(Source(f"ouster_{name[:28]}", "lidar", "near_field" if float(row["range_median_m"]) < 3 else "day",
                          _bins(OUSTER_FRAMES, (row["file"],)), False, _ouster_model(row["sensor"]),
                          genuine_fault=not complete))
    return out


NEBULA_MODELS = {"40p": "hesai-pandar40p", "64_": "hesai-pandar64", "at128": "hesai-at128", "ot128": "hesai-ot128",
                 "qt128": "hesai-qt128", "qt64": "hesai-qt64", "xt16": "hesai-xt16", "xt32_": "hesai-xt32",
                 "xt32m": "hesai-xt32m", "vls128": "velodyne-vls128"}
NEBULA_BLOCKED = ("40p", "64_", "ot128", "xt32_")  # SOURCES.md section 9: most returns within 1 m
# Our judgement, not SOURCES.md's: this 360-degree unit returns nothing in 230 degrees of a lab whose farthest
# return is 9 m away (returns only between 30 and 190 degrees): an incomplete or blocked scan.
NEBULA_INCOMPLETE = ("xt32m",)


def lidar_sources() -> list[Source]:
    out = [
        Source("kitti_hdl64", "lidar", "day", _bins(f"{KITTI}/velodyne_points/data"), sensor_model="velodyne-hdl64",
               seen_by_models=True),
        Source("kitti_object_hdl64_fov", "lidar", "day", _bins("kitti/object_000008_mmdet3d"), False),
        Source("nuscenes_32beam", "lidar", "day", _bins(NUS, columns=5), False, "velodyne-hdl32"),
        Source("hdl32_monterey_stopped", "lidar", "day", _pcap("velodyne_hdl32e_monterey_first_packets.pcap"),
               sensor_model="velodyne-hdl32"),
        Source("hdl32_driving", "lidar", "day", _pcap("velodyne_hdl32e_driving_example.pcap"),
               sensor_model="velodyne-hdl32"),
        Source("vlp16_indoor", "lidar", "near_field", _pcap("velodyne_vlp16_test_50frames.pcap"),
               sensor_model="velodyne-vlp16"),
        Source("hesai_pandar64_5scans", "lidar", "day", _bins("lidar/hesai_pandar64_pjlab_5scans"),
               sensor_model="hesai-pandar64"),
        Source("ouster_os0_8beam", "lidar", "day", _bins("lidar/ouster_os0_8beam_10scans"),
               sensor_model="ouster-os0"),
        Source("hdl32_driving_synthetic_fog", "lidar", "fog",
               _lidar_fog(_pcap("velodyne_hdl32e_driving_example.pcap")), sensor_model="velodyne-hdl32"),
        Source("kitti_hdl64_synthetic_fog", "lidar", "fog", _lidar_fog(_bins(f"{KITTI}/velodyne_points/data")),
               sensor_model="velodyne-hdl64"),
        Source("dense_hdl64s3d", "lidar", "day", _bins("lidar/dense_stf_hdl64s3d_single_scan"), False,
               "velodyne-hdl64"),
    ]
    for mount, model in (("top", "hesai-pandar64"), ("left", "hesai-qt64"), ("right", "hesai-qt64")):
        out.append(Source(f"hesai_multi_{mount}", "lidar", "day" if mount == "top" else "near_field",
                          _bins("lidar/hesai_multi_lidar_pjlab_snapshots", tuple(f"000{i}_{mount}" for i in (1, 2, 3))),
                          False, model))  # snapshots minutes apart, not a stream
    out += _ouster_frames(complete=True)
    for prefix, model in NEBULA_MODELS.items():
        if prefix not in NEBULA_BLOCKED + NEBULA_INCOMPLETE:
            out.append(Source(f"nebula_{model}", "lidar", "near_field", _bins(NEBULA, (prefix,)), False, model))
    return out


def lidar_genuine_faults() -> list[Source]:
    out = [Source("kitti_scan77_lost_rings", "lidar", "fault",
                  _bins("kitti/2011_09_26/udacity_sfnd_partial_frame77/velodyne_points/data"), False,
                  "velodyne-hdl64", genuine_fault=True)]
    out += _ouster_frames(complete=False)
    out += [Source(f"nebula_{'blocked' if p in NEBULA_BLOCKED else 'incomplete'}_{NEBULA_MODELS[p]}", "lidar",
                   "fault", _bins(NEBULA, (p,)), False, NEBULA_MODELS[p], genuine_fault=True)
            for p in NEBULA_BLOCKED + NEBULA_INCOMPLETE]
    for name, model in (("velodyne_hdl32e_monterey_first_packets.pcap", "velodyne-hdl32"),
                        ("velodyne_hdl32e_driving_example.pcap", "velodyne-hdl32"),
                        ("velodyne_vlp16_test_50frames.pcap", "velodyne-vlp16")):
        out.append(Source(f"capture_edge_{name[:24]}", "lidar", "fault", _pcap(name, edges=True), False, model,
                          genuine_fault=True))
    return out


def iter_sources(modality: str | None = None) -> Iterator[Source]:
    for source in (*camera_sources(), *camera_genuine_faults(), *lidar_sources(), *lidar_genuine_faults()):
        if modality is None or source.modality == modality:
            yield source

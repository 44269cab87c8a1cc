"""The configuration schema: one pydantic model for the local file, remote updates and replay.

Every model forbids unknown keys and every number is bounded, so a typo or a hostile value is an error with a
location instead of a silently ignored setting.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Literal

from pydantic import Field, field_validator

from agent.config.base import StrictModel
from agent.config.daemon import DaemonConfig, SnippetConfig, Sources
from agent.config.health import HealthConfig
from agent.config.model_cfg import ModelConfig
from agent.config.remote import RemoteConfig
from agent.config.sensors import MODEL_NAMES
from agent.config.uplink import UplinkConfig

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class InputsConfig(StrictModel):
    nominal_hz: float = Field(
        10.0, gt=0.0, le=1000.0, description="Frame rate assumed for inputs without timestamps (KITTI without "
        "timestamps.txt, image folders)."
    )
    max_frames: int = Field(
        0, ge=0, le=100_000_000, description="Stop after this many input frames in total (0 = no limit)."
    )
    max_pixels: int = Field(
        50_000_000, ge=1, le=1_000_000_000, description="Images whose header claims more pixels are skipped "
        "(counted, reason too_large) before any decoding."
    )
    max_points: int = Field(
        4_000_000, ge=1, le=1_000_000_000, description="LiDAR scans with more points are skipped (too_large)."
    )
    max_chunk_mb: float = Field(
        64.0, gt=0.0, le=4096.0, description="Largest decompressed MCAP chunk or zstd blob read; a bigger claim is "
        "skipped unopened (too_large)."
    )


class CameraScoring(StrictModel):
    analysis_width: int = Field(
        320, ge=32, le=4096, description="Images are reduced to about this width before the checks run."
    )
    blur_min_sharpness: float = Field(
        4.0, ge=0.0, le=1e6, description="Variance of the Laplacian (at analysis width) below which a frame is "
        "blurred whatever the camera's history (fog and night scenes measure 250 and up: keep this low; blur is "
        "judged against the camera's own recent frames, see blur_min_ratio)."
    )
    blur_min_ratio: float = Field(
        0.25, ge=0.0, le=1.0, description="Sharpness below this fraction of the camera's recent median is blur "
        "(defocus, a smeared lens, motion blur)."
    )
    dark_max_mean: float = Field(
        2.0, ge=0.0, le=255.0, description="Mean luma at or below this is under-exposed whatever the camera's "
        "history (nothing but black). A dark night stream is valid: a fall to dark is judged against the camera's "
        "own recent frames (exposure_fall_ratio)."
    )
    bright_min_mean: float = Field(
        245.0, ge=0.0, le=255.0, description="Mean luma at or above this is over-exposed."
    )
    dark_clipped_max_fraction: float = Field(
        0.98, ge=0.0, le=1.0, description="Fraction of black pixels (luma <= 5) at or above which the frame is "
        "under-exposed whatever its history (an unlit night road is 60% black and valid)."
    )
    exposure_fall_ratio: float = Field(
        0.3, ge=0.0, le=1.0, description="Mean luma below this fraction of the camera's recent median, with the "
        "same scene in view, is under-exposure (an exposure or gain fault: night does not fall in one frame); a "
        "mean as far above it (the median divided by this) is over-exposure, white or not."
    )
    exposure_rise_ratio: float = Field(
        2.0, ge=1.0, le=100.0, description="Mean luma at or above this multiple of the camera's recent median, "
        "with the same scene in view and a tenth of the picture burnt white, is over-exposure (a gain or exposure "
        "runaway: a dark scene does not double its light in one frame)."
    )
    blind_max_std: float = Field(
        4.0, ge=0.0, le=128.0, description="Luma standard deviation over 4x4 blocks (sensor noise averaged away) at "
        "or below which the camera sees no structure at all: harmful when the vehicle's LiDAR sees a scene at the "
        "same moment, or when the camera saw structure a moment before (a lens cap, a dead sensor at night)."
    )
    colour_min_ratio: float = Field(
        0.2, ge=0.0, le=1.0, description="A colour channel whose mean falls below this fraction of the other two, "
        "or a colour camera whose saturation falls below this fraction of its recent median, is a colour fault "
        "(dead channel, raw Bayer data passed through); swapped red and blue are caught against the history too."
    )
    scene_cut_distance: float = Field(
        1.0, ge=0.0, le=2.0, description="Descriptor distance to the previous frame beyond which the view changed "
        "entirely (a folder of unrelated stills, a camera moved): the frame is judged against absolute limits "
        "only and starts a new baseline, instead of being compared with a scene it does not show."
    )
    bright_clipped_max_fraction: float = Field(
        0.3, ge=0.0, le=1.0, description="Fraction of white pixels (luma >= 250) at or above which the frame is "
        "over-exposed (a bright sky alone clips about 10-15%)."
    )
    uniform_max_std: float = Field(
        6.0, ge=0.0, le=128.0, description="Global luma standard deviation below which the image is uniform."
    )
    occluded_min_fraction: float = Field(
        0.35, ge=0.0, le=1.0, description="Fraction of tiles that lost their usual texture (a covered or soiled "
        "lens) at or above which the frame is occluded."
    )
    noise_max_sigma: float = Field(
        12.0, ge=0.0, le=255.0, description="Estimated pixel noise (grey levels at analysis width, robust Laplacian "
        "estimate) above which the frame is noisy whatever its history: clean real frames measure 0.2-4.5 (night "
        "and high gain at the top), a failing sensor 15 and up."
    )
    noise_max_ratio: float = Field(
        3.0, ge=1.0, le=1000.0, description="Noise above this multiple of the camera's recent median (and above "
        "noise_min_sigma) is a noisy frame: judged against the camera itself, so a grainy night camera is valid."
    )
    noise_min_sigma: float = Field(
        3.0, ge=0.0, le=255.0, description="Noise below this is never a fault, whatever the camera's history."
    )
    tearing_min_seam: float = Field(
        0.35, ge=0.0, le=1.0, description="Share of columns that step sharply at one row (and not at the rows beside "
        "it) at or above which a horizontal seam is a tear candidate (rows at one column, for a vertical seam); "
        "clean frames measure up to about 0.33 (0.39 vertical)."
    )
    tearing_min_mixed: float = Field(
        0.25, ge=0.0, le=1.0, description="Share of columns whose step at that seam is off its common brightness "
        "ratio (a shadow edge darkens all by one ratio) at or above which the seam is tearing; clean frames measure "
        "up to about 0.2. A seam with a flat one-colour band below it is tearing too (decoder fill)."
    )
    frozen_max_diff: float = Field(
        0.25, ge=0.0, le=255.0, description="Mean absolute difference to the previous frame of the same sensor "
        "at or below which the frame is frozen (a stuck sensor repeats itself exactly)."
    )
    redundant_max_distance: float = Field(
        0.15, ge=0.0, le=2.0, description="Descriptor distance to the nearest recently kept frame at or below "
        "which the frame is a near-duplicate (useless)."
    )


class LidarScoring(StrictModel):
    min_points: int = Field(
        1_000, ge=0, le=10_000_000, description="Scans with fewer valid points are harmful whatever the sensor's "
        "history (an 8-beam Ouster delivers about 6,000; fewer points than usual for this sensor is `sparse`)."
    )
    max_nonfinite_fraction: float = Field(
        0.001, ge=0.0, le=1.0, description="Fraction of NaN/inf coordinates above which a scan is harmful."
    )
    max_range_m: float = Field(
        400.0, gt=0.0, le=2000.0, description="Ranges beyond this are impossible (for a sensor whose `model` is set "
        "in scoring.sensors, that model's reach is used instead)."
    )
    max_impossible_fraction: float = Field(
        0.01, ge=0.0, le=1.0, description="Fraction of impossible ranges above which a scan is harmful."
    )
    sector_count: int = Field(36, ge=4, le=720, description="Azimuth sectors used to find missing angular sectors.")
    max_empty_sectors: int = Field(
        3, ge=0, le=720, description="More than this many consecutive empty sectors is a missing sector."
    )
    min_ring_coverage: float = Field(
        0.7, ge=0.0, le=1.0, description="Fraction of the recent typical elevation spread a scan must cover; less "
        "means lost laser rings."
    )
    min_points_ratio: float = Field(
        0.75, ge=0.0, le=1.0, description="Fraction of the recent typical valid point count a scan must reach; "
        "less is a sparse scan (dropouts)."
    )
    noise_max_ratio: float = Field(
        4.0, ge=1.0, le=1000.0, description="Median step between consecutive points (scan order) above this multiple "
        "of the sensor's recent typical step is a noisy scan (points scattered by interference or a failing unit)."
    )
    blocked_min_fraction: float = Field(
        0.45, ge=0.0, le=1.0, description="Share of returns closer than the sensor model's near field (1 m for "
        "most, 0.3 m for blind-spot units; 1 m without a model) at or above which the view is blocked."
    )
    incomplete_min_coverage: float = Field(
        0.5, ge=0.0, le=1.0, description="A spinning LiDAR (model set in scoring.sensors) whose returns cover less "
        "than this share of azimuth sectors delivered an incomplete scan."
    )
    lost_rings_max_gap: float = Field(
        0.35, ge=0.0, le=1.0, description="Share of the sensor model's vertical field between its lowest beam and "
        "the lowest returns beyond which the lower rings are lost (a vehicle LiDAR always sees the ground)."
    )
    tilt_max_deg: float = Field(
        4.0, ge=0.0, le=90.0, description="Change of the scan's front/back or left/right elevation balance against "
        "the sensor's recent scans beyond which its geometry is broken (a loose mount, wrong extrinsics)."
    )
    redundant_max_distance: float = Field(
        0.25, ge=0.0, le=2.0, description="Descriptor distance to the nearest recently kept scan at or below which "
        "the scan is a near-duplicate (useless)."
    )


class SensorScoring(StrictModel):
    """Settings of one sensor (or of every sensor whose name matches a pattern) in scoring.sensors."""

    model: str | None = Field(
        None, description="LiDAR model (velodyne-vlp16, velodyne-hdl64, ouster-os1, hesai-pandar64, ...: see "
        "`edgesift config schema`): its data sheet sets the absolute limits a scan is judged by."
    )
    camera: CameraScoring | None = Field(None, description="This camera's checks (defaults for keys not given).")
    lidar: LidarScoring | None = Field(None, description="This LiDAR's checks (defaults for keys not given).")

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str | None) -> str | None:
        if value is not None and value not in MODEL_NAMES:
            raise ValueError(f"unknown sensor model; one of: {', '.join(MODEL_NAMES)}")
        return value


class ScoringConfig(StrictModel):
    kind: Literal["heuristic", "proxy", "hybrid"] = Field(
        "heuristic", description="Which scorer produces verdicts: heuristic checks, the ONNX proxy models "
        "(the `model` section), or hybrid: the heuristic checks plus the proxy models' fault heads when they are sure."
    )
    model_fault_min_prob: float = Field(
        0.8, ge=0.0, le=1.0, description="With kind hybrid: a frame the checks pass is harmful when the fault "
        "head's probability reaches this and the frame is in the model's domain (0.6 suited camera-proxy-2 on frames "
        "of its training recordings; on recordings it never saw, 0.6 called 6% of valid frames harmful, 0.8 1.2%)."
    )
    memory_size: int = Field(
        64, ge=1, le=100_000, description="Recently kept descriptors remembered per sensor for redundancy."
    )
    camera: CameraScoring = CameraScoring()
    lidar: LidarScoring = LidarScoring()
    sensors: dict[str, SensorScoring] = Field(
        default_factory=dict, max_length=256, description="Per-sensor settings, by sensor name or a shell pattern "
        "('lidar_*', '*'); an exact name wins over patterns, patterns are tried in order."
    )
    cross_sensor: bool = Field(
        True, description="Use the vehicle's other sensors as evidence: a camera that sees nothing while a LiDAR "
        "sees a scene at the same moment is faulty."
    )
    rare_boost: float = Field(
        0.3, ge=0.0, le=1.0, description="Score added to a helpful frame in a rare condition (dark, low contrast, "
        "glare, unusual colour or optics) or out of the models' domain, so budgets keep it first."
    )
    rank_unfamiliar_every_s: float = Field(
        5.0, ge=0.0, le=3600.0, description="heuristic: every this many seconds of a camera's frames, the camera "
        "model (model.camera) measures how far one frame is from what it learnt; while the last one measured was "
        "out of its domain, the camera's helpful frames get the rare boost (out_of_domain). Ranking only: no "
        "verdict changes. 0 = off (hybrid and proxy measure every frame)."
    )

    @field_validator("sensors")
    @classmethod
    def _sensor_keys(cls, value: dict[str, SensorScoring]) -> dict[str, SensorScoring]:
        for key in value:
            if not 1 <= len(key) <= 128:
                raise ValueError("sensor names and patterns are 1-128 characters")
        return value

    def for_sensor(self, sensor: str) -> SensorScoring:
        """The settings of `sensor`: its own entry, else the first matching pattern, else the defaults."""
        if sensor in self.sensors:
            return self.sensors[sensor]
        for pattern, entry in self.sensors.items():
            if fnmatch.fnmatchcase(sensor, pattern):
                return entry
        return _NO_OVERRIDE

    def unmatched(self, cameras: list[str], lidars: list[str]) -> list[str]:
        """Keys of `sensors:` (names or patterns) that apply to none of these sensors: a typo, or a name the
        source does not give (an auto folder names its scans `<name>_lidar`), whose settings would silently not
        apply. An entry of LiDAR settings only (`model`, `lidar`) must match a LiDAR, of camera ones a camera."""
        out = []
        for key, entry in self.sensors.items():
            lidar_only = entry.camera is None and (entry.model is not None or entry.lidar is not None)
            camera_only = entry.camera is not None and entry.model is None and entry.lidar is None
            names = lidars if lidar_only else cameras if camera_only else cameras + lidars
            if not any(fnmatch.fnmatchcase(name, key) for name in names):
                out.append(key)
        return out


_NO_OVERRIDE = SensorScoring()


class BudgetConfig(StrictModel):
    frames_per_min: int = Field(
        0, ge=0, le=1_000_000, description="Most frames kept per sensor in any 60 s window (0 = unlimited)."
    )
    mb_per_min: float = Field(
        0.0, ge=0.0, le=1_000_000.0, description="Most MB kept per sensor in any 60 s window (0 = unlimited)."
    )


class ModalityPolicy(StrictModel):
    keep_min_score: float = Field(
        0.0, ge=0.0, le=1.0, description="Helpful frames scoring below this are dropped (reason low_score)."
    )
    keep_harmful: bool = Field(False, description="Keep harmful frames anyway (for fault-analysis fleets).")
    coverage_every_s: float = Field(
        0.0, ge=0.0, le=86_400.0, description="Keep at least one non-harmful frame per sensor every this many "
        "seconds, marked coverage (0 = off)."
    )
    budget: BudgetConfig = BudgetConfig()


class PolicyConfig(StrictModel):
    camera: ModalityPolicy = ModalityPolicy(coverage_every_s=10.0)
    lidar: ModalityPolicy = ModalityPolicy(coverage_every_s=10.0)


class SpoolConfig(StrictModel):
    path: str = Field("spool", min_length=1, max_length=4096, description="Spool folder (relative paths are "
                      "resolved against the output folder in replay and the working folder in the daemon).")
    max_mb: float = Field(
        2048.0, gt=0.0, le=10_000_000.0, description="Size budget; the lowest-score frames are evicted beyond it."
    )
    jpeg_quality: int = Field(90, ge=30, le=100, description="JPEG quality for camera frames not already JPEG.")
    zstd_level: int = Field(3, ge=1, le=22, description="zstd level for point clouds.")


class ReportConfig(StrictModel):
    thumbnails_per_group: int = Field(
        8, ge=0, le=200, description="Thumbnails shown per (kept/dropped, reason) group in report.html."
    )
    thumbnail_width: int = Field(192, ge=32, le=1024, description="Thumbnail width in pixels.")


class AgentConfig(StrictModel):
    version: int = Field(0, ge=0, le=2**53, description="Config version; remote updates must increase it.")
    vehicle_id: str = Field("vehicle-0", description="Unique id of this vehicle (letters, digits, _ . -).")
    inputs: InputsConfig = InputsConfig()
    scoring: ScoringConfig = ScoringConfig()
    model: ModelConfig = ModelConfig()
    policy: PolicyConfig = PolicyConfig()
    spool: SpoolConfig = SpoolConfig()
    report: ReportConfig = ReportConfig()
    uplink: UplinkConfig = UplinkConfig()
    remote: RemoteConfig = RemoteConfig()
    sources: Sources = Field(default_factory=list, max_length=64, description="Live sources of `edgesift run`.")
    daemon: DaemonConfig = DaemonConfig()
    snippets: SnippetConfig = SnippetConfig()
    health: HealthConfig = HealthConfig()

    @field_validator("vehicle_id")
    @classmethod
    def _vehicle_id_is_topic_safe(cls, value: str) -> str:
        # The id becomes an MQTT topic level and a file name: no wildcards, slashes or spaces.
        if not _ID_RE.match(value):
            raise ValueError("must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
        return value

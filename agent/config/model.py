"""The configuration schema: one pydantic model for the local file, remote updates and replay.

Every model forbids unknown keys and every number is bounded, so a typo or a hostile value is an error with a
location instead of a silently ignored setting.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from agent.config.base import StrictModel
from agent.config.daemon import DaemonConfig, SnippetConfig, Sources
from agent.config.health import HealthConfig
from agent.config.model_cfg import ModelConfig
from agent.config.remote import RemoteConfig
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


class CameraScoring(StrictModel):
    analysis_width: int = Field(
        320, ge=32, le=4096, description="Images are reduced to about this width before the checks run."
    )
    blur_min_sharpness: float = Field(
        40.0, ge=0.0, le=1e6, description="Variance of the Laplacian (at analysis width) below which a frame is "
        "blurred whatever the camera's history."
    )
    blur_min_ratio: float = Field(
        0.15, ge=0.0, le=1.0, description="Sharpness below this fraction of the camera's recent median is blur "
        "(defocus, a smeared lens, motion blur)."
    )
    dark_max_mean: float = Field(10.0, ge=0.0, le=255.0, description="Mean luma at or below this is under-exposed.")
    bright_min_mean: float = Field(
        235.0, ge=0.0, le=255.0, description="Mean luma at or above this is over-exposed."
    )
    dark_clipped_max_fraction: float = Field(
        0.6, ge=0.0, le=1.0, description="Fraction of black pixels (luma <= 5) at or above which the frame is "
        "under-exposed (night scenes have large black areas: keep this high)."
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
        4.0, ge=0.0, le=255.0, description="Estimated pixel noise (grey levels at analysis width, robust Laplacian "
        "estimate) above which the frame is noisy: clean real frames measure 0.5-2.5, heavy sensor noise 7 and up."
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
    min_points: int = Field(20_000, ge=0, le=10_000_000, description="Scans with fewer valid points are harmful.")
    max_nonfinite_fraction: float = Field(
        0.001, ge=0.0, le=1.0, description="Fraction of NaN/inf coordinates above which a scan is harmful."
    )
    max_range_m: float = Field(250.0, gt=0.0, le=2000.0, description="Ranges beyond this are impossible.")
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
    redundant_max_distance: float = Field(
        0.25, ge=0.0, le=2.0, description="Descriptor distance to the nearest recently kept scan at or below which "
        "the scan is a near-duplicate (useless)."
    )


class ScoringConfig(StrictModel):
    kind: Literal["heuristic", "proxy", "hybrid"] = Field(
        "heuristic", description="Which scorer produces verdicts: heuristic checks, the ONNX proxy models "
        "(the `model` section), or hybrid: the heuristic checks plus the proxy models' fault heads when they are sure."
    )
    model_fault_min_prob: float = Field(
        0.6, ge=0.0, le=1.0, description="With kind hybrid: a frame the checks pass is harmful when the fault "
        "head's probability reaches this (0.6 was chosen for camera-proxy-2 on a validation split; camera-proxy-1 "
        "needs 0.8)."
    )
    memory_size: int = Field(
        64, ge=1, le=100_000, description="Recently kept descriptors remembered per sensor for redundancy."
    )
    camera: CameraScoring = CameraScoring()
    lidar: LidarScoring = LidarScoring()


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

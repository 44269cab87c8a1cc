"""Config sections for `edgesift run`: live sources, the daemon's queues / watchdog / observability, snippets."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from agent.config.base import StrictModel

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

Overflow = Literal["drop_oldest", "drop_newest"]


class _SourceBase(StrictModel):
    name: str = Field(description="Sensor name (letters, digits, _ . -): it names the frames, topics and metrics.")
    queue_size: int = Field(
        4, ge=1, le=1024, description="Frames waiting for the scorer; beyond it the overflow rule sheds (counted)."
    )
    overflow: Overflow = Field(
        "drop_oldest", description="What a full queue sheds: the oldest waiting frame, or the new one."
    )

    @field_validator("name")
    @classmethod
    def _name_is_safe(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
        return value


class CameraSourceConfig(_SourceBase):
    type: Literal["camera"]
    device: int | str = Field(
        0, description="OpenCV device index, device path, RTSP/HTTP URL or (backend gstreamer) a pipeline string."
    )
    backend: Literal["any", "gstreamer", "ffmpeg", "v4l2"] = Field("any", description="OpenCV capture backend.")
    fps: float = Field(0.0, ge=0.0, le=1000.0, description="Read at most this many frames/s (0 = as delivered).")
    width: int = Field(0, ge=0, le=16384, description="Requested capture width (0 = the camera's default).")
    height: int = Field(0, ge=0, le=16384, description="Requested capture height (0 = the camera's default).")


class VideoSourceConfig(_SourceBase):
    type: Literal["video"]
    path: str = Field(min_length=1, max_length=4096, description="Video file played at its own frame rate.")
    loop: bool = Field(False, description="Start again at the end (demos, soak tests).")
    speed: float = Field(1.0, gt=0.0, le=100.0, description="Playback speed factor.")


class VelodyneUdpSourceConfig(_SourceBase):
    type: Literal["velodyne_udp"]
    host: str = Field("0.0.0.0", max_length=255, description="Address to bind the UDP socket to.")  # noqa: S104
    port: int = Field(2368, ge=1, le=65535, description="Data port of the sensor (2368 by default).")
    model: Literal[
        "auto", "HDL32E", "VLP16", "VLP32C", "VLP32A", "VLP32B", "PuckLite", "PuckHiRes", "VLS128", "AlphaPrime"
    ] = Field("auto", description="Sensor model (auto: read from the packets' factory bytes).")
    recv_buffer_kb: int = Field(4096, ge=64, le=262_144, description="Socket receive buffer (SO_RCVBUF).")


class FolderSourceConfig(_SourceBase):
    type: Literal["folder"]
    path: str = Field(min_length=1, max_length=4096, description="Folder an existing recorder drops files into.")
    kind: Literal["auto", "camera", "lidar"] = Field(
        "auto", description="auto: pictures (.jpg, .png, .tif ...) are camera images, .bin (float32 x4), .pcd, .ply "
        "and .pcd.bin files are LiDAR scans (then named <name>_lidar)."
    )
    settle_s: float = Field(
        0.2, ge=0.0, le=60.0, description="A file is complete once its size and mtime stayed the same this long "
        "(names ending .tmp/.part or starting with '.' are ignored: write-then-rename is picked up at once)."
    )
    poll_s: float = Field(0.05, gt=0.0, le=60.0, description="How often the folder is listed.")
    existing: bool = Field(False, description="Also read files already there at start-up.")
    delete_after: bool = Field(False, description="Delete each file once read (the recorder's folder never fills).")


SourceConfig = Annotated[
    CameraSourceConfig | VideoSourceConfig | VelodyneUdpSourceConfig | FolderSourceConfig,
    Field(discriminator="type"),
]


def _unique_names(sources: list) -> list:
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError("source names must be unique")
    return sources


Sources = Annotated[list[SourceConfig], AfterValidator(_unique_names)]


class WatchdogConfig(StrictModel):
    max_restarts: int = Field(
        5, ge=0, le=1000, description="A source worker that dies or hangs is restarted at most this many times "
        "within restart_window_s, then its sensor is marked failed (the others keep running)."
    )
    restart_window_s: float = Field(60.0, gt=0.0, le=86_400.0, description="Window of max_restarts.")
    backoff_min_s: float = Field(0.5, ge=0.0, le=600.0, description="First restart delay; doubles each time.")
    backoff_max_s: float = Field(10.0, ge=0.0, le=3600.0, description="Cap of the restart delay.")
    hang_s: float = Field(
        30.0, gt=0.0, le=3600.0, description="A worker without a heartbeat for this long is hung and restarted."
    )


class DaemonConfig(StrictModel):
    shutdown_timeout_s: float = Field(
        20.0, gt=0.0, le=600.0, description="SIGTERM: finish queued frames, hand acks a chance, close the spool "
        "and say offline within this long (keep it below systemd's TimeoutStopSec)."
    )
    scoring_threads: int = Field(
        1, ge=1, le=16, description="Scoring threads; sensors are shared out among them (a sensor stays on one). "
        "OpenCV and NumPy release the GIL, so 2 help on a 2+ core computer."
    )
    measure_processes: int = Field(
        0, ge=0, le=16, description="Processes that decode and measure frames for the scoring threads (0 = the "
        "threads measure themselves). With many cameras set it to scoring_threads: the measuring then runs "
        "on every core instead of sharing one interpreter lock with the rest of the daemon, and each thread's "
        "next camera frame is measured while the thread judges the current one."
    )
    measure_timeout_s: float = Field(
        10.0, gt=0.0, le=600.0, description="A measuring process that takes longer on one frame is killed and "
        "replaced; the frame is recorded as error:scoring."
    )
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus /metrics port (0 = off).")
    metrics_host: str = Field("127.0.0.1", max_length=255, description="Address the metrics endpoint binds to.")
    log_format: Literal["text", "json"] = Field("text", description="Log lines as key=value text or JSON.")
    decisions_path: str = Field(
        "", max_length=4096, description="Append every decision as one JSON line to this file ('' = off)."
    )
    tick_s: float = Field(1.0, gt=0.0, le=60.0, description="Housekeeping period: watchdog, gauges, guardrails.")
    debug_score_delay_ms: float = Field(
        0.0, ge=0.0, le=10_000.0, description="Test knob: sleep this long per frame before scoring, to simulate "
        "a slow scorer (keep 0 on vehicles)."
    )
    watchdog: WatchdogConfig = WatchdogConfig()


class SnippetConfig(StrictModel):
    enabled: bool = Field(False, description="Keep time-synced windows of all sensors around trigger frames.")
    trigger_min_score: float = Field(
        0.9, ge=0.0, le=1.0, description="A helpful frame scoring at least this triggers a snippet."
    )
    trigger_sensors: list[str] = Field(
        default_factory=list, max_length=64, description="Sensors whose frames may trigger ([] = any)."
    )
    sensors: list[str] = Field(default_factory=list, max_length=64, description="Sensors kept in a window ([] = all).")
    pre_s: float = Field(2.0, ge=0.0, le=300.0, description="Seconds kept before the trigger frame.")
    post_s: float = Field(2.0, ge=0.0, le=300.0, description="Seconds kept after the trigger frame.")
    buffer_mb: float = Field(
        256.0, gt=0.0, le=65_536.0, description="Memory bound of the pre-trigger ring buffer; frames pushed out "
        "before pre_s elapsed are counted (overflow)."
    )

    @model_validator(mode="after")
    def _window_is_not_empty(self) -> SnippetConfig:
        if self.enabled and self.pre_s == 0 and self.post_s == 0:
            raise ValueError("pre_s and post_s cannot both be 0 when snippets are enabled")
        return self

"""The `model` config section: the ONNX proxy models behind `scoring.kind: proxy`, and a user's own model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent.config.base import StrictModel

_PATH = {"min_length": 1, "max_length": 4096}


class ProxyModelSpec(StrictModel):
    path: str = Field(..., description="ONNX file (relative paths: working folder, then the checkout).", **_PATH)
    version: str = Field(
        ..., max_length=128, description="edgesift.model_version the file must carry ('' = accept any version)."
    )
    input_size: tuple[int, int] = Field(..., description="Model input [height, width]; checked against the file.")
    harmful_min_prob: float = Field(
        0.5, ge=0.0, le=1.0, description="Fault-head probability (1 - p(ok)) at or above which the frame is harmful."
    )
    redundant_max_distance: float = Field(
        0.1, ge=0.0, le=2.0, description="Embedding distance to the nearest kept frame or fleet exemplar at or "
        "below which the frame is a near-duplicate (useless)."
    )
    exemplars: list[str] = Field(
        default_factory=list, max_length=64, description="Fleet memory: .npy files of embeddings (rows) that "
        "count as already kept, for novelty."
    )
    targets: list[str] = Field(
        default_factory=list, max_length=64, description="What the backend asked for: .npy embedding files, or "
        "image files (camera) embedded at start-up."
    )
    target_max_distance: float = Field(
        0.3, ge=0.0, le=2.0, description="Embedding distance to a target at or below which the frame matches it."
    )
    target_boost: float = Field(0.3, ge=0.0, le=1.0, description="Added to the score of a frame matching a target.")
    trusted_sensor_models: list[str] = Field(
        default_factory=list, max_length=32, description="Sensor models (scoring.sensors.<name>.model, or the "
        "model a source reports) whose frames the fault head is trusted on; [] = any. A LiDAR model trained on one "
        "sensor's scans has no say on another's."
    )


class ByoModelConfig(StrictModel):
    path: str = Field("", max_length=4096, description="A user's ONNX camera classifier or detector ('' = none).")
    mode: Literal["beside", "instead"] = Field(
        "beside", description="beside: its uncertainty joins the proxy's; instead: it replaces the proxy's."
    )
    kind: Literal["classifier", "detector"] = Field("classifier", description="What the model's outputs are.")
    input_size: tuple[int, int] = Field((224, 224), description="Model input [height, width] (NCHW float32).")
    channel_order: Literal["rgb", "bgr"] = Field("rgb", description="Channel order the model expects.")
    mean: tuple[float, float, float] = Field((123.675, 116.28, 103.53), description="Per-channel mean (0-255).")
    std: tuple[float, float, float] = Field((58.395, 57.12, 57.375), description="Per-channel std (0-255).")
    logits_output: str = Field("", max_length=256, description="Classifier output holding logits (softmaxed).")
    probs_output: str = Field("", max_length=256, description="Classifier output holding probabilities.")
    scores_output: str = Field(
        "", max_length=256, description="Detector output holding per-box confidences ([1, N] or [1, N, classes])."
    )
    min_box_score: float = Field(
        0.1, ge=0.0, le=1.0, description="Detector boxes below this confidence are background and ignored."
    )


class ModelConfig(StrictModel):
    providers: list[str] = Field(
        ["tensorrt", "cuda", "openvino", "qnn", "cpu"], min_length=1, max_length=8,
        description="Execution providers in order of preference; missing ones are logged and skipped, CPU last.",
    )
    intra_op_threads: int = Field(1, ge=1, le=64, description="Threads inside one operator (per model).")
    inter_op_threads: int = Field(1, ge=1, le=64, description="Threads across operators (per model).")
    warmup_runs: int = Field(2, ge=0, le=100, description="Inference runs at start-up before the first frame.")
    ood_trust_ratio: float = Field(
        1.0, ge=0.0, le=1000.0, description="Out-of-domain distance over the model's calibrated 99th percentile at "
        "or above which the fault head is not trusted: the frame is unfamiliar, not broken, so it is a candidate "
        "for helpful (reason out_of_domain) unless a deterministic check finds a fault. 0 = always trusted."
    )
    uncertain_min_entropy: float = Field(
        0.7, ge=0.0, le=1.0, description="Normalised scene entropy at or above which an in-domain frame is "
        "uncertain (helpful, reason uncertain)."
    )
    uncertainty_boost: float = Field(0.2, ge=0.0, le=1.0, description="Added to the score of an uncertain frame.")
    committee: list[ProxyModelSpec] = Field(
        default_factory=list, max_length=4, description="Other camera models that vote beside `camera` (query by "
        "committee): e.g. the shipped camera-proxy-1, or a user's own model in the edgesift format with the same "
        "input size. Where their fault heads disagree on a frame the checks found no fault in, the frame is "
        "helpful with reason disagreement (a model would learn from it). Each member costs one more inference."
    )
    committee_min_disagreement: float = Field(
        0.4, ge=0.0, le=1.0, description="Spread of the members' fault probabilities (max - min) at or above which "
        "the committee disagrees."
    )
    committee_boost: float = Field(0.2, ge=0.0, le=1.0, description="Added to the score of a disputed frame.")
    camera: ProxyModelSpec = ProxyModelSpec(
        path="models/camera_proxy_v2_int8.onnx", version="camera-proxy-2", input_size=(72, 128)
    )
    lidar: ProxyModelSpec = ProxyModelSpec(
        path="models/lidar_proxy_int8.onnx", version="lidar-proxy-1", input_size=(64, 64),
        redundant_max_distance=0.45,  # consecutive KITTI scans at ~2.5 m/s lie 0.2-0.65 apart, other places > 1.2
        trusted_sensor_models=["velodyne-hdl64"],  # lidar-proxy-1/2 learnt 20 KITTI HDL-64E scans
    )
    byo: ByoModelConfig = ByoModelConfig()

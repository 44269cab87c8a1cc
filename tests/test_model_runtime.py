"""ModelRuntime: metadata checks, provider fallback, timings; the preprocessing the models rely on."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, sample_frames
from model_support import copy_with_metadata, tiny_classifier

from agent.config.model_cfg import ModelConfig
from agent.errors import ConfigError
from agent.model import ModelRuntime, choose_providers
from agent.model.preprocess import BevBuilder, camera_image, longest_empty_run
from agent.model.proxy_model import CameraModel

CAMERA = REPO / "models" / "camera_proxy_v2_int8.onnx"
LIDAR = REPO / "models" / "lidar_proxy_int8.onnx"


def test_shipped_models_carry_metadata_that_matches_the_default_config() -> None:
    cfg = ModelConfig()
    assert REPO / cfg.camera.path == CAMERA and REPO / cfg.lidar.path == LIDAR
    camera_v1 = cfg.camera.model_copy(update={"version": "camera-proxy-1"})  # still shipped, for pinned configs
    for path, spec, modality in ((CAMERA, cfg.camera, "camera"), (LIDAR, cfg.lidar, "lidar"),
                                 (REPO / "models" / "camera_proxy_int8.onnx", camera_v1, "camera")):
        runtime = ModelRuntime(path)
        meta = runtime.metadata
        assert meta is not None
        meta.check(modality=modality, version=spec.version, input_size=spec.input_size, source=str(path))
        assert meta.outputs[0] == "embedding" and meta.fault_classes[0] == "ok"
        assert meta.ood_centroids and meta.ood_threshold > 0
        assert path.stat().st_size < 2_000_000


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"edgesift.model_version": "camera-proxy-0"}, "version 'camera-proxy-0', config expects 'camera-proxy-2'"),
        ({"edgesift.input_size": "96x160"}, "input size [96, 160], config expects [72, 128]"),
        ({"edgesift.modality": "lidar"}, "modality 'lidar'"),
        ({"edgesift.outputs": None}, "lacks edgesift.outputs"),
        ({"edgesift.mean": "[1, 2"}, "malformed edgesift metadata"),
        ({"edgesift.outputs": '["embedding", "logits"]'}, "outputs ['logits'] the graph does not have"),
    ],
)
def test_metadata_mismatch_is_a_clear_config_error(tmp_path: Path, changes: dict, message: str) -> None:
    bad = copy_with_metadata(CAMERA, tmp_path / "bad.onnx", changes)
    cfg = ModelConfig()
    with pytest.raises(ConfigError, match=r".*") as err:
        CameraModel(cfg.camera.model_copy(update={"path": str(bad)}), cfg)
    assert message in str(err.value)
    assert str(bad) in str(err.value)


def test_a_model_without_edgesift_metadata_is_refused_unless_it_is_a_byo_model(tmp_path: Path) -> None:
    plain = tiny_classifier(tmp_path / "plain.onnx")
    with pytest.raises(ConfigError, match="not an edgesift model"):
        ModelRuntime(plain)
    assert ModelRuntime(plain, require_metadata=False).metadata is None
    with pytest.raises(ConfigError, match="does not exist"):
        ModelRuntime(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="cannot load ONNX model"):
        ModelRuntime(tmp_path / "junk.onnx")


def test_provider_preference_falls_back_to_what_is_available_and_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="agent.model.runtime"):
        chosen = choose_providers(["tensorrt", "cuda", "cpu"], available=["CPUExecutionProvider", "TestProvider"])
    assert chosen == ["CPUExecutionProvider"]
    assert "TensorrtExecutionProvider, CUDAExecutionProvider are not available" in caplog.text
    assert "running on CPUExecutionProvider" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agent.model.runtime"):  # the next model: said once already
        assert choose_providers(["tensorrt", "cuda", "cpu"], available=["CPUExecutionProvider", "TestProvider"]) == [
            "CPUExecutionProvider"]
    assert "not available" not in caplog.text
    assert choose_providers(["openvino"], available=["OpenVINOExecutionProvider", "CPUExecutionProvider"]) == [
        "OpenVINOExecutionProvider", "CPUExecutionProvider"]
    # A CPU-only build (the default wheel) is the usual case on a machine without an accelerator: not a warning.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="agent.model.runtime"):
        assert choose_providers(["cuda", "cpu"], available=["AzureExecutionProvider", "CPUExecutionProvider"]) == [
            "CPUExecutionProvider"]
    assert [r.levelno for r in caplog.records if "not available" in r.getMessage()] == [logging.INFO]
    # The real session: preferring only accelerators this build lacks still runs, on CPU.
    runtime = ModelRuntime(LIDAR, providers=["tensorrt", "cuda", "qnn"])
    assert runtime.active_providers == ["CPUExecutionProvider"]


def test_run_returns_named_outputs_and_times_inference() -> None:
    runtime = ModelRuntime(LIDAR, warmup_runs=1)
    out = runtime.run(np.zeros((3, 4, 64, 64), np.float32))
    assert out["embedding"].shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(out["embedding"], axis=1), 1.0, atol=0.02)
    assert out["fault_probs"].shape[0] == 3
    stats = runtime.timer.summary()["inference"]
    assert stats["count"] == 1 and stats["mean_ms"] > 0 and stats["p95_ms"] >= stats["p50_ms"]


def test_camera_preprocessing_uses_reduced_decode_and_the_model_size() -> None:
    frame = sample_frames("camera")[0]
    image = camera_image(frame, (72, 128))
    assert image.shape == (72, 128, 3) and image.dtype == np.uint8


def test_bev_of_a_real_scan_and_of_faults() -> None:
    points = sample_frames("lidar")[0].array
    assert points is not None
    bev, stats = BevBuilder(64)(points)
    assert bev.shape == (4, 64, 64) and bev.dtype == np.float32
    assert stats.valid == stats.points > 100_000 and stats.nonfinite_fraction == 0.0
    assert stats.empty_sectors <= 3
    assert bev[0].max() > 0.5 and np.all(bev[3] == 0)
    broken = points.copy()
    broken[::10, 1] = np.nan
    bev2, stats2 = BevBuilder(64)(broken)
    assert abs(stats2.nonfinite_fraction - 0.1) < 0.001 and np.allclose(bev2[3], stats2.nonfinite_fraction)
    azimuth = np.degrees(np.arctan2(points[:, 1], points[:, 0]))
    _, cut = BevBuilder(64)(points[(azimuth < 30) | (azimuth > 120)])
    assert cut.empty_sectors >= 7
    assert longest_empty_run(np.array([0, 0, 5, 5, 0, 0])) == 4  # wraps around


def test_byo_runtime_accepts_any_real_onnx_model(tmp_path: Path) -> None:
    runtime = ModelRuntime(tiny_classifier(tmp_path / "c.onnx"), require_metadata=False)
    out = runtime.run(np.ones((2, 3, 32, 32), np.float32))
    assert out["logits"].shape == (2, 4)

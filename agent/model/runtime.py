"""Load an ONNX model into ONNX Runtime: provider preference with logged fallback, threads, warm-up, timings."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from agent.errors import ConfigError
from agent.model.metadata import ModelMetadata
from agent.model.timing import StageTimer

log = logging.getLogger(__name__)


def _ort() -> ModuleType:
    """onnxruntime, imported when a model is first used: a process that scores without one (the heuristic
    scorer, a Ray worker replaying with it) does not pay for it."""
    import onnxruntime

    return onnxruntime

# Short names accepted in the config, in the order a vehicle would usually prefer them.
PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
CPU = "CPUExecutionProvider"
AZURE = "AzureExecutionProvider"  # remote inference, in every build: no local accelerator
_MISSING_LOGGED: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()  # what choose_providers has warned about


def choose_providers(preference: Sequence[str], available: Sequence[str] | None = None) -> list[str]:
    """The preferred execution providers that this onnxruntime build has, in preference order, CPU always last.

    The preferred providers that are missing are logged, so a vehicle that silently runs on CPU instead of its
    accelerator shows it in the log: in one line, once per process for the same preference (each model loaded,
    each tune or replay worker, would otherwise repeat it for every accelerator in the default list).
    """
    have = list(_ort().get_available_providers() if available is None else available)
    chosen: list[str] = []
    missing: list[str] = []
    for name in preference:
        full = PROVIDER_NAMES.get(name.lower(), name)
        if full in have:
            if full not in chosen:
                chosen.append(full)
        elif full not in missing:
            missing.append(full)
    if CPU not in chosen:
        chosen.append(CPU)
    said = (tuple(missing), tuple(have))
    if missing and said not in _MISSING_LOGGED:
        _MISSING_LOGGED.add(said)  # bounded: one entry per distinct preference and build
        # A CPU-only build (the default wheel) on a machine without an accelerator is the usual case, not news on
        # every replay: said at INFO. A build with accelerators, none of them the preferred ones, is a warning.
        accelerated = any(p not in (CPU, AZURE) for p in have)
        log.log(logging.WARNING if accelerated else logging.INFO,
                "execution providers %s are not available (have %s); running on %s", ", ".join(missing),
                ", ".join(have), ", ".join(chosen))
    return chosen


def resolve_model_path(path: str) -> Path:
    """A model path as given, else relative to the checkout (so `models/...` works from any working folder)."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    repo = Path(__file__).resolve().parents[2]
    return repo / candidate if (repo / candidate).exists() else candidate


class ModelRuntime:
    """One ONNX model in one InferenceSession; run() times inference, the caller times its own stages."""

    def __init__(
        self,
        path: str | Path,
        providers: Sequence[str] = ("cpu",),
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
        warmup_runs: int = 2,
        require_metadata: bool = True,
    ) -> None:
        self.path = resolve_model_path(str(path))
        if not self.path.is_file():
            raise ConfigError(f"model file {self.path} does not exist")
        ort = _ort()
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning threads burn a core while idle; on a vehicle that core belongs to the sensors' drivers.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.providers = choose_providers(providers)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=self.providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise ConfigError(f"{self.path}: cannot load ONNX model ({exc})") from exc
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        self.metadata = ModelMetadata.from_props(props, str(self.path)) if require_metadata else None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        if self.metadata is not None:
            unknown = [n for n in self.metadata.outputs if n not in self.output_names]
            if unknown:
                raise ConfigError(f"{self.path}: metadata names outputs {unknown} the graph does not have")
        self.timer = StageTimer()
        self._warmup(warmup_runs)
        log.info("loaded %s on %s", self.path.name, ", ".join(self.session.get_providers()))

    @property
    def active_providers(self) -> list[str]:
        return list(self.session.get_providers())

    def input_shape(self) -> list[int | str | None]:
        return list(self.session.get_inputs()[0].shape)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run one batch through the model's first input; every output by name."""
        started = time.perf_counter()
        values = self.session.run(None, {self.input_names[0]: batch})
        self.timer.record("inference", time.perf_counter() - started)
        return dict(zip(self.output_names, values, strict=True))

    def _warmup(self, runs: int) -> None:
        # The first runs allocate arenas and pick kernels; pay that at start-up, not on the first real frame.
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in self.input_shape()]
        dtype = np.uint8 if "uint8" in self.session.get_inputs()[0].type else np.float32
        dummy = np.zeros(shape, dtype=dtype)
        for _ in range(runs):
            self.session.run(None, {self.input_names[0]: dummy})

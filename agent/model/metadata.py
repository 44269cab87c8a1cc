"""The edgesift.* metadata embedded in a shipped ONNX model, parsed and checked against the config.

The training scripts write these keys (scripts/_export.py); a model without them is not an edgesift proxy and
is refused with a ConfigError naming the missing key, as is one whose version or input size the config does not
expect: a silently mismatched model would produce verdicts that look fine and mean nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agent.errors import ConfigError

PREFIX = "edgesift."
REQUIRED = ("model_version", "modality", "input_size", "mean", "std", "outputs")


@dataclass(frozen=True)
class ModelMetadata:
    model_version: str
    modality: str
    input_size: tuple[int, int]  # (height, width) of the model input
    mean: tuple[float, ...]
    std: tuple[float, ...]
    outputs: tuple[str, ...]
    fault_classes: tuple[str, ...] = ()
    scene_classes: tuple[str, ...] = ()
    ood_centroids: list[list[float]] = field(default_factory=list)
    ood_threshold: float = 0.0
    harmful_threshold: float = 0.5
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_props(cls, props: dict[str, str], source: str) -> ModelMetadata:
        ours = {k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)}
        missing = [k for k in REQUIRED if k not in ours]
        if missing:
            lacks = ", ".join(PREFIX + k for k in missing)
            raise ConfigError(f"{source}: not an edgesift model, metadata lacks {lacks}")
        try:
            return cls(
                model_version=ours["model_version"],
                modality=ours["modality"],
                input_size=_size(ours["input_size"]),
                mean=tuple(float(x) for x in json.loads(ours["mean"])),
                std=tuple(float(x) for x in json.loads(ours["std"])),
                outputs=tuple(json.loads(ours["outputs"])),
                fault_classes=tuple(json.loads(ours.get("fault_classes", "[]"))),
                scene_classes=tuple(json.loads(ours.get("scene_classes", "[]"))),
                ood_centroids=json.loads(ours.get("ood_centroids", "[]")),
                ood_threshold=float(ours.get("ood_threshold", "0")),
                harmful_threshold=float(ours.get("harmful_threshold", "0.5")),
                extra={k: v for k, v in ours.items() if k not in cls.__dataclass_fields__},
            )
        except (ValueError, TypeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{source}: malformed edgesift metadata ({exc})") from exc

    def check(self, *, modality: str, version: str, input_size: tuple[int, int], source: str) -> None:
        """Refuse a model that is not the one the config describes."""
        problems = []
        if self.modality != modality:
            problems.append(f"modality {self.modality!r}, config expects {modality!r}")
        if version and self.model_version != version:
            problems.append(f"version {self.model_version!r}, config expects {version!r}")
        if tuple(input_size) != self.input_size:
            problems.append(f"input size {list(self.input_size)}, config expects {list(input_size)}")
        if len(self.mean) != len(self.std):
            problems.append("mean and std differ in length")
        if problems:
            raise ConfigError(f"{source}: model does not match the config: " + "; ".join(problems))

    def as_dict(self) -> dict[str, Any]:
        return {"model_version": self.model_version, "modality": self.modality, "input_size": list(self.input_size),
                "outputs": list(self.outputs), "fault_classes": list(self.fault_classes),
                "scene_classes": list(self.scene_classes)}


def _size(text: str) -> tuple[int, int]:
    h, w = (int(x) for x in text.lower().split("x"))
    return h, w

"""ONNX Runtime model execution: metadata-checked loading, provider choice, preprocessing, timing."""

from agent.model.metadata import ModelMetadata
from agent.model.runtime import ModelRuntime, choose_providers

__all__ = ["ModelMetadata", "ModelRuntime", "choose_providers"]

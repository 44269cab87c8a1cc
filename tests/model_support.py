"""Small real ONNX models built with onnx.helper for the runtime and bring-your-own-model tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(graph: onnx.GraphProto, path: Path, metadata: dict[str, str] | None = None) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tiny_classifier(path: Path, classes: int = 4, size: int = 32, seed: int = 0, detector: bool = False) -> Path:
    """pixels [N,3,size,size] -> global average pool -> linear -> `logits` [N, classes]
    (or, as a detector, `scores` [N, classes] = sigmoid, one confidence per 'box')."""
    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array(rng.normal(0, 2.0, (3, classes)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.normal(0, 0.5, classes).astype(np.float32), "B")
    nodes = [
        helper.make_node("GlobalAveragePool", ["pixels"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "W", "B"], ["logits" if not detector else "raw"]),
    ]
    out_name = "logits"
    if detector:
        nodes.append(helper.make_node("Sigmoid", ["raw"], ["scores"]))
        out_name = "scores"
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", classes])], [weight, bias],
    )
    return _save(graph, path)


def copy_with_metadata(source: Path, target: Path, changes: dict[str, str | None]) -> Path:
    """A copy of an ONNX model with some edgesift.* metadata entries changed (None = removed)."""
    model = onnx.load(str(source))
    props = {p.key: p.value for p in model.metadata_props}
    for key, value in changes.items():
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(target))
    return target

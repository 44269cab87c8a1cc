"""Choose the scorer the config asks for."""

from __future__ import annotations

from agent.config.model import AgentConfig
from agent.scoring.base import Scorer


def make_scorer(config: AgentConfig) -> Scorer:
    """`scoring.kind`: heuristic (image/scan checks), proxy (ONNX models, see the `model` section) or hybrid."""
    if config.scoring.kind == "hybrid":
        from agent.scoring.hybrid import HybridScorer

        return HybridScorer(config.scoring, config.model)
    if config.scoring.kind == "proxy":
        from agent.scoring.proxy import ProxyScorer  # onnxruntime sessions are only built when asked for

        return ProxyScorer(config.scoring, config.model)
    from agent.scoring.heuristic import HeuristicScorer

    return HeuristicScorer(config.scoring, config.model)

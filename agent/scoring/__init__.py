"""Scoring: per-frame verdicts (helpful / useless / harmful) with a score and reasons."""

from agent.scoring.base import Label, Scorer, Verdict

__all__ = ["Label", "Scorer", "Verdict"]

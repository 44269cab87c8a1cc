"""Policy: turns verdicts into keep/drop decisions under thresholds, coverage and budgets."""

from agent.policy.engine import Policy
from agent.policy.rules import Decision, base_rule, is_keep

__all__ = ["Decision", "Policy", "base_rule", "is_keep"]

"""Keep/drop rules as pure functions of a verdict: no I/O, no clocks, tested as tables."""

from __future__ import annotations

from dataclasses import dataclass

from agent.config.model import ModalityPolicy
from agent.scoring.base import Label

KEEP_HELPFUL = "keep:helpful"
KEEP_HARMFUL = "keep:harmful"
KEEP_COVERAGE = "keep:coverage"
DROP_HARMFUL = "drop:harmful"
DROP_USELESS = "drop:useless"
DROP_LOW_SCORE = "drop:low_score"
DROP_OVER_BUDGET = "drop:over_budget"
DROP_DISPLACED = "drop:displaced"  # kept, then pushed out of its budget window by a higher-scoring frame
DROP_SPOOL_FULL = "drop:spool_full"  # the spool could not make room for it
DROP_EVICTED = "drop:evicted"  # kept, then evicted from the spool for a higher-scoring frame


@dataclass(frozen=True, slots=True)
class Decision:
    keep: bool
    rule: str
    displaced: tuple[str, ...] = ()  # frame ids this decision pushed out of the budget


def base_rule(label: Label, score: float, since_kept_s: float | None, cfg: ModalityPolicy) -> str:
    """The rule for one frame before budgets apply.

    `since_kept_s` is the time since this sensor last kept a frame (None: never), for the coverage sample:
    even an idle sensor sends one frame every `coverage_every_s`, so the backend can tell idle from dead.
    """
    if label is Label.HARMFUL:
        return KEEP_HARMFUL if cfg.keep_harmful else DROP_HARMFUL
    if label is Label.HELPFUL and score >= cfg.keep_min_score:
        return KEEP_HELPFUL
    if cfg.coverage_every_s > 0 and (since_kept_s is None or since_kept_s >= cfg.coverage_every_s):
        return KEEP_COVERAGE
    return DROP_USELESS if label is Label.USELESS else DROP_LOW_SCORE


def is_keep(rule: str) -> bool:
    return rule.startswith("keep:")

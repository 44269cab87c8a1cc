"""Policy rules and budgets as tables: no I/O, no clocks."""

from __future__ import annotations

import pytest

from agent.config.model import BudgetConfig, ModalityPolicy, PolicyConfig
from agent.frame import Frame, Modality
from agent.policy import Policy, base_rule, rules
from agent.policy.budget import WindowBudget
from agent.scoring.base import Label, Verdict

H, U, X = Label.HELPFUL, Label.USELESS, Label.HARMFUL
DEFAULT = ModalityPolicy()
COVER = ModalityPolicy(coverage_every_s=5.0)
STRICT = ModalityPolicy(keep_min_score=0.7, coverage_every_s=5.0)
FAULTS = ModalityPolicy(keep_harmful=True)


@pytest.mark.parametrize(
    ("label", "score", "since", "cfg", "expected"),
    [
        (H, 0.9, None, DEFAULT, rules.KEEP_HELPFUL),
        (H, 0.51, 0.1, DEFAULT, rules.KEEP_HELPFUL),
        (U, 0.2, 0.1, DEFAULT, rules.DROP_USELESS),
        (U, 0.2, 1000.0, DEFAULT, rules.DROP_USELESS),  # coverage off
        (U, 0.2, None, COVER, rules.KEEP_COVERAGE),  # nothing kept yet for this sensor
        (U, 0.2, 4.99, COVER, rules.DROP_USELESS),
        (U, 0.2, 5.0, COVER, rules.KEEP_COVERAGE),
        (X, 0.0, 100.0, COVER, rules.DROP_HARMFUL),  # coverage never keeps junk
        (X, 0.0, 0.0, FAULTS, rules.KEEP_HARMFUL),
        (H, 0.6, 1.0, STRICT, rules.DROP_LOW_SCORE),
        (H, 0.6, 6.0, STRICT, rules.KEEP_COVERAGE),
        (H, 0.7, 1.0, STRICT, rules.KEEP_HELPFUL),
    ],
)
def test_base_rule_table(label: Label, score: float, since: float | None, cfg: ModalityPolicy, expected: str) -> None:
    assert base_rule(label, score, since, cfg) == expected


S = 1_000_000_000


@pytest.mark.parametrize(
    ("max_frames", "max_bytes", "offers", "expected"),
    [
        # unlimited: everything fits
        (0, 0, [(0, 0.5, 10, "a"), (1, 0.1, 10, "b")], [(True, ()), (True, ())]),
        # 2 frames per window: a better third frame displaces the lowest, a worse one is refused
        (2, 0, [(0, 0.5, 1, "a"), (1, 0.3, 1, "b"), (2, 0.9, 1, "c"), (3, 0.2, 1, "d")],
         [(True, ()), (True, ()), (True, ("b",)), (False, ())]),
        # equal score does not displace (strictly lower only)
        (1, 0, [(0, 0.5, 1, "a"), (1, 0.5, 1, "b")], [(True, ()), (False, ())]),
        # the window slides: after 60 s the budget is free again
        (1, 0, [(0, 0.9, 1, "a"), (30, 0.1, 1, "b"), (61, 0.1, 1, "c")], [(True, ()), (False, ()), (True, ())]),
        # bytes: a big frame displaces as many low ones as needed, lowest first
        (0, 100, [(0, 0.2, 40, "a"), (1, 0.1, 40, "b"), (2, 0.3, 20, "c"), (3, 0.9, 70, "d")],
         [(True, ()), (True, ()), (True, ()), (True, ("b", "a"))]),
        # bytes: not enough lower-scored frames to make room -> refused, nobody displaced
        (0, 100, [(0, 0.95, 60, "a"), (1, 0.1, 30, "b"), (2, 0.9, 70, "c")],
         [(True, ()), (True, ()), (False, ())]),
    ],
)
def test_window_budget_table(max_frames: int, max_bytes: int, offers: list, expected: list) -> None:
    budget = WindowBudget(max_frames, max_bytes)
    got = [budget.offer(t * S, score, size, key) for t, score, size, key in offers]
    assert [(o.accept, o.displaced) for o in got] == expected


def test_forced_offer_counts_against_budget() -> None:
    budget = WindowBudget(max_frames=1)
    assert budget.offer(0, 0.1, 1, "cov", force=True).accept
    assert budget.offer(1 * S, 0.05, 1, "x").accept is False


def _frame(t_s: float, sensor: str = "cam") -> Frame:
    return Frame(sensor, Modality.CAMERA, int(t_s * S), 0, 100, "test")


def test_policy_tracks_coverage_and_budget_per_sensor() -> None:
    cfg = PolicyConfig(camera=ModalityPolicy(coverage_every_s=2.0, budget=BudgetConfig(frames_per_min=2)))
    policy = Policy(cfg)
    useless = Verdict(U, 0.1, ("redundant",))
    helpful = Verdict(H, 0.8, ("novel",))
    seq = [
        (_frame(0.0), useless, "a"),  # first frame of the sensor: coverage
        (_frame(0.5), useless, "b"),
        (_frame(0.6, "cam2"), useless, "c"),  # another sensor has its own timer
        (_frame(1.0), helpful, "d"),  # 2nd frame of the window: fits
        (_frame(1.5), helpful, "e"),  # over budget; displaces nothing scoring lower than 0.8 except 'a' (0.1)
        (_frame(3.6), useless, "f"),  # 2.1 s since last kept: coverage, forced over the budget
    ]
    got = [policy.decide(f, v, k, f.nbytes) for f, v, k in seq]
    assert [(d.keep, d.rule, d.displaced) for d in got] == [
        (True, rules.KEEP_COVERAGE, ()),
        (False, rules.DROP_USELESS, ()),
        (True, rules.KEEP_COVERAGE, ()),
        (True, rules.KEEP_HELPFUL, ()),
        (True, rules.KEEP_HELPFUL, ("a",)),
        (True, rules.KEEP_COVERAGE, ()),
    ]

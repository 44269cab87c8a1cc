"""The keep-rate guardrail monitor, fed decisions directly (pure, no clock, no broker)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.config.remote import GuardrailsConfig
from agent.remote import Guardrails

S = 1_000_000_000


def monitor(**settings: object) -> Guardrails:
    g = Guardrails(GuardrailsConfig.model_validate({"enabled": True, **settings}))
    g.arm()
    return g


def test_idle_monitor_ignores_decisions() -> None:
    g = Guardrails(GuardrailsConfig(enabled=True))
    assert not g.armed and g.observe(True, 0) is None and g.check(10**18) is None


def test_frame_window_closes_once_with_a_verdict() -> None:
    g = monitor(keep_rate_min=0.2, keep_rate_max=0.6, window_frames=10, window_s=0)
    verdicts = [g.observe(i < 4, i) for i in range(10)]
    assert verdicts[:9] == [None] * 9
    last = verdicts[9]
    assert last is not None and last.ok and last.keep_rate == 0.4 and last.frames == 10
    assert not g.armed and g.observe(True, 11) is None


@pytest.mark.parametrize(("kept", "ok", "words"), [(0, False, "below min 0.2"), (1, False, "below min 0.2"),
                                                  (2, True, "within"), (6, True, "within"),
                                                  (7, False, "above max 0.6"), (10, False, "above max 0.6")])
def test_bounds_are_inclusive(kept: int, ok: bool, words: str) -> None:
    g = monitor(keep_rate_min=0.2, keep_rate_max=0.6, window_frames=10)
    verdict = None
    for i in range(10):
        verdict = g.observe(i < kept, i)
    assert verdict is not None and verdict.ok is ok and words in verdict.reason


def test_time_window_needs_min_frames_and_counts_from_the_first_decision() -> None:
    g = monitor(keep_rate_max=0.5, window_frames=0, window_s=10.0, min_frames=5)
    t0 = 1_000 * S  # the clock is the decisions' own: it need not start at zero
    assert g.observe(True, t0) is None
    assert g.check(t0 + 20 * S) is None  # time is up, but 1 decision is noise: stay open
    for i in range(3):
        assert g.observe(True, t0 + (21 + i) * S) is None
    verdict = g.observe(False, t0 + 25 * S)  # the 5th decision closes it
    assert verdict is not None and not verdict.ok and verdict.frames == 5 and verdict.elapsed_s == 25.0
    assert verdict.reason == "keep rate 0.800 over 5 frames / 25.0 s above max 0.5"


def test_check_closes_a_time_window_without_new_decisions() -> None:
    g = monitor(keep_rate_min=0.5, window_frames=1000, window_s=2.0, min_frames=2)
    g.observe(False, 0)
    g.observe(False, S)
    assert g.check(S + S // 2) is None
    verdict = g.check(2 * S)
    assert verdict is not None and not verdict.ok and verdict.keep_rate == 0.0


def test_rearming_starts_a_fresh_window_with_new_bounds() -> None:
    g = monitor(keep_rate_max=0.1, window_frames=3)
    g.observe(True, 0)
    g.arm(GuardrailsConfig(enabled=True, keep_rate_max=1.0, window_frames=2))
    assert g.observe(True, 5) is None
    verdict = g.observe(True, 6)
    assert verdict is not None and verdict.ok and verdict.frames == 2


def test_guardrail_settings_are_validated() -> None:
    with pytest.raises(ValidationError, match="keep_rate_min must not exceed keep_rate_max"):
        GuardrailsConfig(keep_rate_min=0.8, keep_rate_max=0.2)
    with pytest.raises(ValidationError, match="cannot both be 0"):
        GuardrailsConfig(window_frames=0, window_s=0)

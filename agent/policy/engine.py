"""The stateful policy: applies the pure rules per sensor with coverage timers and window budgets."""

from __future__ import annotations

from collections.abc import Callable

from agent.config.model import ModalityPolicy, PolicyConfig
from agent.frame import Frame, Modality
from agent.policy import rules
from agent.policy.budget import WindowBudget
from agent.scoring.base import Verdict


class Policy:
    def __init__(self, config: PolicyConfig) -> None:
        self._config = config
        self._last_kept_ns: dict[str, int] = {}
        self._budgets: dict[str, WindowBudget] = {}

    def _for(self, modality: Modality) -> ModalityPolicy:
        return self._config.camera if modality is Modality.CAMERA else self._config.lidar

    def _budget(self, sensor: str, cfg: ModalityPolicy) -> WindowBudget:
        budget = self._budgets.get(sensor)
        if budget is None:
            budget = WindowBudget(cfg.budget.frames_per_min, int(cfg.budget.mb_per_min * 1_000_000))
            self._budgets[sensor] = budget
        return budget

    def decide(self, frame: Frame, verdict: Verdict, key: str, stored_bytes: int | Callable[[], int]
               ) -> rules.Decision:
        """Decide one frame. `key` names it for later displacement; `stored_bytes` is what keeping it costs
        (a callable is asked only when a budget needs the figure: encoding a frame is not free)."""
        cfg = self._for(frame.modality)
        last = self._last_kept_ns.get(frame.sensor)
        since = None if last is None else (frame.t_ns - last) / 1e9
        rule = rules.base_rule(verdict.label, verdict.score, since, cfg)
        if not rules.is_keep(rule):
            return rules.Decision(False, rule)
        force = rule != rules.KEEP_HELPFUL  # coverage and keep_harmful frames are not traded away
        nbytes = stored_bytes() if callable(stored_bytes) else stored_bytes
        offer = self._budget(frame.sensor, cfg).offer(frame.t_ns, verdict.score, nbytes, key, force)
        if not offer.accept:
            return rules.Decision(False, rules.DROP_OVER_BUDGET)
        self._last_kept_ns[frame.sensor] = frame.t_ns
        return rules.Decision(True, rule, offer.displaced)

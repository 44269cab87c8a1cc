"""Keep-rate guardrails: judge a newly applied config by the decisions it produces over one window.

Pure: fed with (kept, t_ns) and returning a verdict once the window closes; no clock, no I/O. Time is the
decisions' own timestamps, so replay and live driving judge alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config.remote import GuardrailsConfig


@dataclass(frozen=True)
class GuardrailVerdict:
    ok: bool
    frames: int
    kept: int
    elapsed_s: float
    reason: str

    @property
    def keep_rate(self) -> float | None:
        return self.kept / self.frames if self.frames else None


class Guardrails:
    """One evaluation window at a time: arm() when a config is applied, observe() every decision.

    The window closes after `window_frames` decisions, or `window_s` seconds after its first decision once at
    least `min_frames` were seen, whichever comes first. Its verdict is returned once, and the monitor disarms.
    """

    def __init__(self, settings: GuardrailsConfig) -> None:
        self.settings = settings
        self._armed = False
        self._start_ns: int | None = None
        self._frames = 0
        self._kept = 0

    @property
    def armed(self) -> bool:
        return self._armed

    def arm(self, settings: GuardrailsConfig | None = None) -> None:
        """Start a fresh window (optionally with other bounds); the first observed decision starts its clock."""
        if settings is not None:
            self.settings = settings
        self._armed = True
        self._start_ns = None
        self._frames = 0
        self._kept = 0

    def disarm(self) -> None:
        self._armed = False

    def observe(self, kept: bool, t_ns: int) -> GuardrailVerdict | None:
        """Count one decision; return the verdict when this decision closes the window, else None."""
        if not self._armed:
            return None
        if self._start_ns is None:
            self._start_ns = t_ns
        self._frames += 1
        self._kept += bool(kept)
        return self.check(t_ns)

    def check(self, t_ns: int) -> GuardrailVerdict | None:
        """Close the window by time without a new decision (a periodic tick); None while it stays open."""
        if not self._armed or self._start_ns is None:
            return None
        elapsed_s = max(0, t_ns - self._start_ns) / 1e9
        s = self.settings
        by_frames = s.window_frames > 0 and self._frames >= s.window_frames
        by_time = s.window_s > 0 and elapsed_s >= s.window_s and self._frames >= s.min_frames
        if not (by_frames or by_time):
            return None
        self._armed = False
        return self._verdict(elapsed_s)

    def _verdict(self, elapsed_s: float) -> GuardrailVerdict:
        s = self.settings
        rate = self._kept / self._frames
        where = f"keep rate {rate:.3f} over {self._frames} frames / {elapsed_s:.1f} s"
        if rate < s.keep_rate_min:
            return GuardrailVerdict(False, self._frames, self._kept, elapsed_s,
                                    f"{where} below min {s.keep_rate_min:g}")
        if rate > s.keep_rate_max:
            return GuardrailVerdict(False, self._frames, self._kept, elapsed_s,
                                    f"{where} above max {s.keep_rate_max:g}")
        return GuardrailVerdict(True, self._frames, self._kept, elapsed_s, f"{where} within bounds")

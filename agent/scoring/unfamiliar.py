"""Unfamiliar scenes ranked up by the heuristic scorer: the camera model's distance from everything it learnt,
measured on one frame of each camera every `scoring.rank_unfamiliar_every_s` seconds.

The checks' own rare conditions (dark, low contrast, glare, colour, optics) cannot tell a rain drive or a new
city from the fleet's usual day: in the field evaluation none of the 62 rain frames was flagged rare and none
reached the top 10% by score, where the hybrid scorer's model, run on every frame, marked 97% of them out of its
domain. A scene's unfamiliarity changes over seconds, not frames, so one model pass per camera and interval ranks
the frames up to the next pass like it, at a small part of the per-frame cost. Ranking only: the model's fault
head has no say here, so no verdict changes, only a helpful frame's score (reason `out_of_domain`).
"""

from __future__ import annotations

from dataclasses import replace

from agent.config.model import ScoringConfig
from agent.config.model_cfg import ModelConfig
from agent.errors import DecodeError
from agent.frame import STILL, Frame
from agent.model.preprocess import camera_image
from agent.scoring.trust import unfamiliar, with_out_of_domain
from agent.scoring.usefulness import Pending


class UnfamiliarSampler:
    """Per camera, the last sampled frame's time and whether it was out of the camera model's domain."""

    def __init__(self, scoring: ScoringConfig, model: ModelConfig) -> None:
        from agent.model.proxy_model import CameraModel  # onnxruntime only where this is asked for

        self._every_ns = round(scoring.rank_unfamiliar_every_s * 1e9)
        self._scoring, self._model_cfg = scoring, model
        self._model = CameraModel(model.camera, model)
        # sensor -> (t_ns of the sampled frame, out of domain); one entry per camera, as the scorer's baselines
        self._last: dict[str, tuple[int, bool]] = {}

    def rank(self, frame: Frame, pending: Pending) -> Pending:
        """`pending` with the out_of_domain boost when the camera's last sampled frame (this one, when due) was
        out of the model's domain; a sampled frame's signals carry its `ood`."""
        last = self._last.get(frame.sensor)
        # Due: the first frame, the interval passed, time went back (another recording), or a still (its own scene).
        if (last is None or frame.t_ns - last[0] >= self._every_ns or frame.t_ns < last[0]
                or frame.meta.get(STILL) == "1"):
            try:
                image = camera_image(frame, self._model.spec.input_size)
            except DecodeError:  # the checks decoded it: a reduced decode failing is no evidence of anything
                return pending
            out = self._model.run(self._model.inputs([image]))[0]
            last = (frame.t_ns, unfamiliar(out, frame, self._scoring, self._model_cfg))
            self._last[frame.sensor] = last
            pending = replace(pending, signals={**pending.signals, "ood": round(out.ood, 4)})
        if not last[1]:
            return pending
        return replace(pending, boosts=with_out_of_domain(pending.boosts, self._scoring))

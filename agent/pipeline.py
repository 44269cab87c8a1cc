"""The path of one frame, shared by replay and the daemon: score -> decide -> spool."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import cv2

from agent.errors import DecodeError
from agent.frame import Frame
from agent.policy import Policy, rules
from agent.scoring.base import Scorer, Verdict
from agent.spool import Spool

log = logging.getLogger(__name__)


def frame_id_of(frame: Frame) -> str:
    # Stable across restarts and re-runs of the same recording, unique per vehicle: the ingest dedups on it.
    return f"{frame.t_ns:019d}-{frame.sensor}-{frame.seq}"


@dataclass(frozen=True, slots=True)
class Outcome:
    record: dict[str, Any]
    verdict: Verdict
    revoked: dict[str, str]  # frame id -> rule, for earlier frames this one pushed out (budget or spool)


class FramePipeline:
    def __init__(self, scorer: Scorer, policy: Policy, spool: Spool) -> None:
        self.scorer = scorer
        self.policy = policy
        self.spool = spool

    def process(self, frame: Frame) -> Outcome:
        verdict = self.scorer.score(frame)
        fid = frame_id_of(frame)
        encoded: list[tuple[str, bytes]] = []
        decision = self.policy.decide(frame, verdict, fid, lambda: self._stored_size(frame, encoded))
        revoked: dict[str, str] = {}
        for victim in decision.displaced:
            self.spool.delete(victim)
            revoked[victim] = rules.DROP_DISPLACED
        kept, rule = decision.keep, decision.rule
        stored = 0
        if kept:
            result = self.spool.put(frame, verdict, rule, frame_id=fid, encoded=encoded[0] if encoded else None)
            for victim in result.evicted:
                revoked[victim] = rules.DROP_EVICTED
            if result.stored:
                self.scorer.remember(frame, verdict)
                stored = result.blob_bytes
            else:
                kept, rule = False, rules.DROP_SPOOL_FULL
        record = {
            "sensor": frame.sensor,
            "modality": frame.modality.value,
            "seq": frame.seq,
            "t_ns": frame.t_ns,
            "verdict": verdict.label.value,
            "score": round(float(verdict.score), 4),
            "kept": kept,
            "reasons": list(verdict.reasons),
            "rule": rule,
            "bytes": frame.nbytes,
            "stored_bytes": stored,
            "frame_id": fid,
            "signals": verdict.signals,
        }
        return Outcome(record, verdict, revoked)

    def _stored_size(self, frame: Frame, encoded: list[tuple[str, bytes]]) -> int:
        """What keeping the frame costs in the spool and on the uplink: its encoded blob (kept for the put)."""
        try:
            encoded.append(self.spool.encode(frame))
        except (DecodeError, ValueError, cv2.error):
            return frame.nbytes  # the put refuses it with its encode error; the budget needs only a figure
        return len(encoded[0][1])

"""The path of one frame, shared by replay and the daemon: score -> decide -> spool.

Every frame that enters leaves with a decision record: when scoring raises (a scorer bug on a strange frame) or
the spool cannot store a kept frame (a full disk), the record says so with rule `error:scoring` /
`error:storage`, verdict `error`, and the run carries on; summary.json (by_rule) and Prometheus
(edgesift_decisions_total{rule}) count them like any other rule.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from typing import Any

import cv2

from agent.errors import DecodeError, SpoolError
from agent.frame import FILE, Frame
from agent.policy import Policy, rules
from agent.scoring.base import Label, Scorer, Verdict
from agent.spool import Spool

log = logging.getLogger(__name__)

ERROR_SCORING = "error:scoring"
ERROR_STORAGE = "error:storage"
_LOG_FIRST = 20  # errors logged one by one up to here, then every 1000th (a full disk fails every frame)


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
        self.errors = 0

    def process(self, frame: Frame) -> Outcome:
        fid = frame_id_of(frame)
        try:
            verdict = self.scorer.score(frame)
        except Exception as exc:
            self._log_error(ERROR_SCORING, fid, exc)
            verdict = Verdict(Label.HARMFUL, 0.0, ("error",))
            return Outcome(self._record(frame, fid, verdict, False, ERROR_SCORING, error=exc), verdict, {})
        encoded: list[tuple[str, bytes]] = []
        decision = self.policy.decide(frame, verdict, fid, lambda: self._stored_size(frame, encoded))
        revoked: dict[str, str] = {}
        for victim in decision.displaced:
            self.spool.delete(victim)
            revoked[victim] = rules.DROP_DISPLACED
        kept, rule = decision.keep, decision.rule
        error: Exception | None = None
        stored = 0
        if kept:
            try:
                result = self.spool.put(frame, verdict, rule, frame_id=fid,
                                        encoded=encoded[0] if encoded else None)
            except (SpoolError, OSError, sqlite3.Error) as exc:
                self._log_error(ERROR_STORAGE, fid, exc)
                kept, rule, error = False, ERROR_STORAGE, exc
            else:
                for victim in result.evicted:
                    revoked[victim] = rules.DROP_EVICTED
                if result.stored:
                    self.scorer.remember(frame, verdict)
                    stored = result.blob_bytes
                else:
                    kept, rule = False, rules.DROP_SPOOL_FULL
        return Outcome(self._record(frame, fid, verdict, kept, rule, error, stored), verdict, revoked)

    def _record(self, frame: Frame, fid: str, verdict: Verdict, kept: bool, rule: str,
                error: Exception | None = None, stored: int = 0) -> dict[str, Any]:
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
        if FILE in frame.meta:
            record["file"] = frame.meta[FILE]
        if error is not None:
            record["verdict"] = "error"
            record["error"] = f"{type(error).__name__}: {error}"[:300]
        return record

    def _log_error(self, rule: str, fid: str, exc: Exception) -> None:
        self.errors += 1
        if self.errors <= _LOG_FIRST or self.errors % 1000 == 0:
            log.error("frame %s: %s (%s: %s); recorded as %s", fid, rule.split(":")[1] + " failed",
                      type(exc).__name__, str(exc)[:300], rule)
            log.debug("frame %s: where it failed", fid, exc_info=exc)  # for a bug report, with -v

    def _stored_size(self, frame: Frame, encoded: list[tuple[str, bytes]]) -> int:
        """What keeping the frame costs in the spool and on the uplink: its encoded blob (kept for the put)."""
        try:
            encoded.append(self.spool.encode(frame))
        except (DecodeError, ValueError, cv2.error):
            return frame.nbytes  # the put refuses it with its encode error; the budget needs only a figure
        return len(encoded[0][1])

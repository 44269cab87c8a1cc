"""Accumulate decision records and skips into the replay summary (summary.json), with counters only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.frame import Skip

VERDICTS = ("helpful", "useless", "harmful")
"""Verdict labels in display order; by_verdict always has these keys (others are appended if seen)."""

DEFAULT_MAX_SKIP_ITEMS = 1000


def primary_reason(record: Mapping[str, Any]) -> str:
    """The record's first reason, or its verdict when it has no reasons."""
    reasons = record.get("reasons") or ()
    return str(reasons[0]) if reasons else str(record.get("verdict", "unknown"))


def _ordered_verdicts(counts: Counter[str]) -> dict[str, int]:
    out = {label: counts.get(label, 0) for label in VERDICTS}
    out.update({label: n for label, n in sorted(counts.items()) if label not in out})
    return out


def _by_count(counts: Counter[str]) -> dict[str, int]:
    """Most frequent first, ties by name, so that the JSON is stable."""
    return {key: n for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}


@dataclass(slots=True)
class _Tally:
    """Frame and byte counters for one sensor (or modality, or the whole run)."""

    frames_in: int = 0
    frames_kept: int = 0
    bytes_in: int = 0
    bytes_kept: int = 0
    bytes_stored: int = 0  # what the kept frames take in the spool and on the uplink (re-encoded, compressed)
    by_verdict: Counter[str] = field(default_factory=Counter)

    def add(self, verdict: str, kept: bool, nbytes: int, stored: int = 0) -> None:
        self.frames_in += 1
        self.bytes_in += nbytes
        if kept:
            self.frames_kept += 1
            self.bytes_kept += nbytes
            self.bytes_stored += stored
        self.by_verdict[verdict] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames_in": self.frames_in,
            "frames_kept": self.frames_kept,
            "bytes_in": self.bytes_in,
            "bytes_kept": self.bytes_kept,
            "bytes_stored": self.bytes_stored,
            "by_verdict": _ordered_verdicts(self.by_verdict),
        }


class SummaryBuilder:
    """Builds summary.json incrementally from decision records and skips.

    Memory is a handful of counters per sensor, reason and rule, so it suits drives of millions of frames;
    only the first `max_skip_items` skips are kept as items (the skip count and per-reason counts stay exact).
    """

    def __init__(self, max_skip_items: int = DEFAULT_MAX_SKIP_ITEMS) -> None:
        self._max_skip_items = max(0, max_skip_items)
        self._total = _Tally()
        self._sensors: dict[str, _Tally] = {}
        self._sensor_modality: dict[str, str] = {}
        self._modalities: dict[str, _Tally] = {}
        self._by_reason: Counter[str] = Counter()
        self._by_primary_reason: Counter[str] = Counter()
        self._by_rule: Counter[str] = Counter()
        self._t_first: int | None = None
        self._t_last: int | None = None
        self._skip_count = 0
        self._skip_by_reason: Counter[str] = Counter()
        self._skip_items: list[dict[str, Any]] = []

    def add(self, record: Mapping[str, Any]) -> None:
        """Count one decision record (the dict written to decisions.jsonl)."""
        sensor = str(record.get("sensor", "?"))
        modality = str(record.get("modality", "?"))
        verdict = str(record.get("verdict", "unknown"))
        kept = bool(record.get("kept", False))
        nbytes = int(record.get("bytes") or 0)
        stored = int(record.get("stored_bytes") or 0)
        self._total.add(verdict, kept, nbytes, stored)
        self._sensors.setdefault(sensor, _Tally()).add(verdict, kept, nbytes, stored)
        self._sensor_modality.setdefault(sensor, modality)
        self._modalities.setdefault(modality, _Tally()).add(verdict, kept, nbytes, stored)
        # A reason listed twice on one record still counts that frame once.
        self._by_reason.update(dict.fromkeys(map(str, record.get("reasons") or ()), 1))
        self._by_primary_reason[primary_reason(record)] += 1
        self._by_rule[str(record.get("rule", "unknown"))] += 1
        self._note_time(record.get("t_ns"))

    def add_skip(self, skip: Mapping[str, Any] | Skip) -> None:
        """Count one input item that did not become a frame (a Skip or its as_dict())."""
        item = skip.as_dict() if isinstance(skip, Skip) else dict(skip)
        self._skip_count += 1
        self._skip_by_reason[str(item.get("reason", "unknown"))] += 1
        if len(self._skip_items) < self._max_skip_items:
            self._skip_items.append(item)

    def _note_time(self, t_ns: Any) -> None:
        if not isinstance(t_ns, int) or isinstance(t_ns, bool):
            return
        self._t_first = t_ns if self._t_first is None else min(self._t_first, t_ns)
        self._t_last = t_ns if self._t_last is None else max(self._t_last, t_ns)

    @property
    def frames_in(self) -> int:
        return self._total.frames_in

    def build(self, elapsed_s: float, inputs: list[str], config_version: int) -> dict[str, Any]:
        """The summary dict, ready for json.dump."""
        total = self._total.as_dict()
        elapsed = max(0.0, float(elapsed_s))
        by_sensor = {}
        for sensor in sorted(self._sensors):
            by_sensor[sensor] = {"modality": self._sensor_modality[sensor], **self._sensors[sensor].as_dict()}
        return {
            "frames_in": total["frames_in"],
            "frames_kept": total["frames_kept"],
            "bytes_in": total["bytes_in"],
            "bytes_kept": total["bytes_kept"],
            "bytes_stored": total["bytes_stored"],
            "by_verdict": total["by_verdict"],
            "by_sensor": by_sensor,
            "by_modality": {name: tally.as_dict() for name, tally in sorted(self._modalities.items())},
            "by_reason": _by_count(self._by_reason),
            "by_primary_reason": _by_count(self._by_primary_reason),
            "by_rule": _by_count(self._by_rule),
            "skipped": {
                "count": self._skip_count,
                "by_reason": _by_count(self._skip_by_reason),
                "items": list(self._skip_items),
                "items_truncated": self._skip_count > len(self._skip_items),
            },
            "t_first_ns": self._t_first,
            "t_last_ns": self._t_last,
            "elapsed_s": round(elapsed, 3),
            "frames_per_s": round(total["frames_in"] / elapsed, 2) if elapsed > 0 else 0.0,
            "inputs": [str(p) for p in inputs],
            "config_version": int(config_version),
        }

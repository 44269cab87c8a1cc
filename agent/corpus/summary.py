"""The fleet view of a corpus replay: DIR/summary.json (per drive, per vehicle, pooled) from the drive results."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from agent.corpus.job import DAMAGED, STREAK_MIN
from agent.corpus.runner import CorpusRun

COUNTS = ("frames_in", "frames_kept", "bytes_in", "bytes_kept")
SLOWEST = 5


def _pool(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Frames and bytes in and kept, verdict, reason and rule mix over drives that replayed."""
    total: dict[str, Any] = dict.fromkeys(COUNTS, 0)
    mixes: dict[str, Counter[str]] = {k: Counter() for k in ("by_verdict", "by_primary_reason", "by_rule")}
    drives = 0
    for r in results:
        drives += 1
        for k in COUNTS:
            total[k] += int(r.get(k, 0))
        for k, counter in mixes.items():
            counter.update(r.get(k, {}))
    total["drives"] = drives
    for k, counter in mixes.items():
        total[k] = dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))
    return total


def streaks(results: Iterable[Mapping[str, Any]], minimum: int = STREAK_MIN) -> list[dict[str, Any]]:
    """Sensors whose longest run of consecutive harmful frames reached `minimum`, longest first."""
    found = [
        {"drive": r["id"], "vehicle": r["vehicle"], "sensor": sensor, **streak}
        for r in results
        for sensor, streak in sorted(r.get("harmful_streaks", {}).items())
        if streak["frames"] >= minimum
    ]
    return sorted(found, key=lambda s: (-s["frames"], s["drive"], s["sensor"]))


def _drive_row(r: Mapping[str, Any]) -> dict[str, Any]:
    row = {k: r.get(k) for k in ("id", "vehicle", "condition", "ok", "reused")}
    if not r["ok"]:
        return {**row, "error": r["error"]}
    keys = (*COUNTS, "by_verdict", "by_primary_reason", "skipped", "skipped_by_reason", "elapsed_s", "frames_per_s",
            "decisions_sha256", "worker")
    return {**row, **{k: r.get(k) for k in keys}}


def fleet_summary(run: CorpusRun) -> dict[str, Any]:
    ok = [r for r in run.results if r["ok"]]
    vehicles: dict[str, list[Mapping[str, Any]]] = {}
    for r in ok:
        vehicles.setdefault(r["vehicle"], []).append(r)
    fresh = [r for r in ok if not r.get("reused")]
    frames_now = sum(int(r["frames_in"]) for r in fresh)
    return {
        **_pool(ok),
        "drives": {"total": len(run.results), "ok": len(ok), "failed": len(run.results) - len(ok),
                   "reused": run.reused, "replayed": len(fresh)},
        "per_vehicle": {v: {**_pool(rs), "harmful_streaks": streaks(rs)} for v, rs in sorted(vehicles.items())},
        "per_drive": [_drive_row(r) for r in run.results],
        "failed": [{"id": r["id"], "vehicle": r["vehicle"], "reason": r["error"]} for r in run.results if not r["ok"]],
        # Drives replayed as far as their recordings hold: damaged stretches skipped (counted), the first one named.
        "damaged": [{"id": r["id"], "vehicle": r["vehicle"], "stretches": r["skipped_by_reason"][DAMAGED],
                     "first": r.get("damage", "")} for r in ok if r.get("skipped_by_reason", {}).get(DAMAGED)],
        "harmful_streaks": streaks(ok),
        "harmful_streak_min_frames": STREAK_MIN,
        "slowest": [{"id": r["id"], "vehicle": r["vehicle"], "elapsed_s": r["elapsed_s"],
                     "frames_per_s": r["frames_per_s"], "frames_in": r["frames_in"]}
                    for r in sorted(ok, key=lambda r: -float(r["elapsed_s"]))[:SLOWEST]],
        "run": {"executor": run.executor, "slots": run.slots, "elapsed_s": round(run.elapsed_s, 3),
                "frames_replayed": frames_now,
                "frames_per_s": round(frames_now / run.elapsed_s, 2) if run.elapsed_s > 0 else 0.0},
    }

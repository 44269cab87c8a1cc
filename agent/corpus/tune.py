"""`edgesift tune --manifest`: score every drive where the work runs, sweep the whole corpus, report per vehicle
and per condition as well as pooled.

Each drive's scores are cached in DIR/drives/<id>/scores.cache (keyed as for a one-drive tune) and skipped on a
rerun with the same inputs and config. The sweep joins the drives into one CorpusCache: each drive's sensors get
the drive id as prefix, so kept memory, coverage and budget windows stay per drive as in a replay, and the
corpus lasts the sum of its drives. The sweep runs on the driver, with every drive's scores in memory (10-15 KB
per frame, see agent.tune.cache): a few hundred drive-hours per driver, not thousands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from agent.config.model import AgentConfig
from agent.corpus.job import SCORE
from agent.corpus.manifest import Drive
from agent.corpus.runner import DRIVES, CorpusRun, run_corpus
from agent.errors import InputError
from agent.frame import Modality
from agent.tune.cache import CACHE_FILE, ScoreCache, cache_key, load_cached
from agent.tune.labels import UNKNOWN, find_labels, rates
from agent.tune.runner import require_frames, truth_of, tune_scored
from agent.tune.sweep import Combined, Target


@dataclass
class CorpusCache(ScoreCache):
    """The scored frames of many drives, one after the other; `groups` names each frame's vehicle / condition."""

    drive_of: list[int] = field(default_factory=list)  # per frame: index into `durations`
    durations: list[float] = field(default_factory=list)  # per drive, seconds
    drive_sensors: list[dict[Modality, int]] = field(default_factory=list)  # per drive: its sensors of each kind

    @property
    def duration_s(self) -> float:
        return max(1e-3, sum(self.durations))

    def sensors_at_once(self, modality: Modality) -> float:
        """Sensors of this kind recording at once, on average over the corpus's time: a per-sensor budget of
        B MB/min then stores B x this x 60 MB per hour of drive. (The most of any drive, which this was, let one
        six-camera drive cut every one-camera drive's budget candidates to a sixth of what the target allows.)"""
        seconds = sum(n.get(modality, 0) * d for n, d in zip(self.drive_sensors, self.durations, strict=True))
        return max(1.0, seconds / self.duration_s)


def join(caches: Sequence[tuple[Drive, ScoreCache]]) -> CorpusCache:
    joined = CorpusCache([], scorer=caches[0][1].scorer if caches else "")
    for k, (drive, cache) in enumerate(caches):
        for cached in cache.frames:
            frame = replace(cached.frame, sensor=f"{drive.id}/{cached.frame.sensor}")
            joined.frames.append(replace(cached, frame=frame))
            joined.drive_of.append(k)
        joined.skipped.extend({**s, "drive": drive.id} for s in cache.skipped)
        joined.durations.append(cache.duration_s)
        joined.score_s += cache.score_s
        joined.drive_sensors.append({m: len({c.frame.sensor for c in cache.frames if c.frame.modality is m})
                                     for m in Modality})
    return joined


def _groups(drives: Sequence[Drive], cache: CorpusCache, attr: str) -> dict[str, tuple[np.ndarray, float]]:
    """Frame mask and duration of each vehicle (or condition)."""
    drive_of = np.asarray(cache.drive_of, dtype=np.int64)
    names: dict[str, list[int]] = {}
    for k, drive in enumerate(drives):
        names.setdefault(str(getattr(drive, attr) or "unspecified"), []).append(k)
    return {name: (np.isin(drive_of, ks), sum(cache.durations[k] for k in ks)) for name, ks in sorted(names.items())}


def _per_group(drives: Sequence[Drive], cache: CorpusCache):  # type: ignore[no-untyped-def]
    nbytes = np.array([c.frame.nbytes for c in cache.frames], dtype=np.int64)

    def figures(choice: Combined | None, now: Combined, truth: np.ndarray) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for attr, key in (("vehicle", "per_vehicle"), ("condition", "per_condition")):
            out[key] = {}
            for name, (mask, duration) in _groups(drives, cache, attr).items():
                row = {"current": rates(now.kept[mask], truth[mask], nbytes[mask], duration)}
                if choice is not None:
                    row["suggested"] = rates(choice.kept[mask], truth[mask], nbytes[mask], duration)
                out[key][name] = row
        return out

    return figures


def run_corpus_tune(
    drives: Sequence[Drive], out: Path, config: AgentConfig, target: Target, *, workers: int | None = None,
    ray: str | None = None, progress: bool | None = None, baselines: bool = True, rerun: bool = False,
    base_version: int | None = None,
) -> tuple[dict[str, Any], CorpusRun]:
    run = run_corpus(drives, out, config, kind=SCORE, workers=workers, ray=ray, progress=progress,
                     baselines=baselines, rerun=rerun)
    scored: list[tuple[Drive, ScoreCache]] = []
    labelled: list[tuple[np.ndarray, list[str | None]]] = []
    for drive, result in zip(drives, run.results, strict=True):
        if not result["ok"]:
            continue
        cache = load_cached(out / DRIVES / drive.id / CACHE_FILE, cache_key(list(drive.inputs), config, baselines))
        if cache is None:
            raise InputError(f"scores of drive {drive.id} are missing or stale; run again with --rerun")
        truth, faults, _info = truth_of(cache, Path(drive.labels) if drive.labels else find_labels(drive.inputs))
        scored.append((drive, cache))
        labelled.append((truth, faults))
    if not scored:
        raise InputError("no drive of the manifest could be scored")
    corpus = join(scored)
    require_frames(corpus)
    truth = np.concatenate([t for t, _ in labelled])
    faults = [f for _, fs in labelled for f in fs]
    labels = [d.labels or find_labels(d.inputs) for d, _ in scored]
    info = {"path": "per drive" if any(labels) else None, "matched": int((truth != UNKNOWN).sum()),
            "frames": len(truth)}
    kept_drives = [d for d, _ in scored]
    result = tune_scored([d.id for d in kept_drives], out, config, target, corpus, run.reused == len(drives),
                         (truth, faults, info), baselines, extra=_per_group(kept_drives, corpus),
                         base_version=base_version)
    result["drives"] = [{k: r.get(k) for k in ("id", "vehicle", "condition", "ok", "error", "frames_in", "reused")}
                        for r in run.results]
    return result, run

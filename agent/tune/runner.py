"""`edgesift tune`: score a recording once, sweep the policy, compare with baselines, suggest a config."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from agent.config.model import AgentConfig
from agent.errors import InputError
from agent.frame import Modality
from agent.remote.merge import deep_merge
from agent.tune.baselines import run_baselines
from agent.tune.cache import (
    CACHE_FILE,
    ScoreCache,
    cache_key,
    input_bytes,
    load_cached,
    save_cached,
    score_recording,
)
from agent.tune.labels import UNKNOWN, caught_by_fault, find_labels, load_labels, rates
from agent.tune.report import write_sweep_html
from agent.tune.simulate import simulate
from agent.tune.sweep import (
    Combined,
    Row,
    Target,
    base_knobs,
    budget_candidates,
    combine,
    grid,
    suggest,
    sweep_modality,
)

SWEEP_JSON = "sweep.json"
SWEEP_HTML = "sweep.html"
SUGGESTED = "suggested.yaml"
PSEUDO = "pseudo-labels: the current config's own verdicts (no labels file), not ground truth"


def truth_of(cache: ScoreCache, labels_path: Path | None) -> tuple[np.ndarray, list[str | None], dict[str, Any]]:
    """Label codes (UNKNOWN where unlabelled) and fault types per cached frame, and what was read."""
    truth = np.full(len(cache.frames), UNKNOWN, dtype=np.int8)
    if labels_path is None:
        return truth, [None] * len(truth), {"path": None}
    labels = load_labels(labels_path)
    faults: list[str | None] = [None] * len(cache.frames)
    for i, cached in enumerate(cache.frames):
        hit = labels.get((cached.frame.sensor, cached.frame.seq))
        if hit is not None:
            truth[i], faults[i] = hit
    return truth, faults, {"path": str(labels_path), "matched": int((truth != UNKNOWN).sum()), "frames": len(truth)}


def pseudo_truth(cache: ScoreCache, truth: np.ndarray, config: AgentConfig) -> None:
    """Without labels, the current config's verdicts stand in for them: a suggestion then keeps as much as it can
    of what the current config judges helpful, and catches what it judges harmful, within the budget."""
    for modality in Modality:
        idx = cache.of(modality)
        if idx:
            outcome = simulate(cache.frames, idx, base_knobs(config, cache.scorer, modality),
                               config.scoring.memory_size)
            truth[idx] = outcome.verdict


def _row_json(row: Row) -> dict[str, Any]:
    return {"modality": row.modality, "knobs": row.knobs.as_dict(), **row.metrics}


def _combined_json(c: Combined, faults: list[str | None]) -> dict[str, Any]:
    out = {"camera": c.camera.knobs.as_dict() if c.camera else None,
           "lidar": c.lidar.knobs.as_dict() if c.lidar else None, **c.metrics}
    if any(faults):
        out["harmful_caught_by_fault"] = caught_by_fault(c.kept, faults)
    return out


def suggested_config(config: AgentConfig, scorer: str, choice: Combined, base_version: int | None = None
                     ) -> dict[str, Any]:
    """The user's config with the chosen setting applied and the version raised (ready for fleet config push).

    `base_version`: the version the vehicles run now (`--base-version`), when it is ahead of the local file's.
    """
    data = config.model_dump(mode="json", exclude_unset=True)
    patch: dict[str, Any] = {"version": max(config.version, base_version or 0) + 1, "policy": {}}
    for row in (choice.camera, choice.lidar):
        if row is None:
            continue
        k = row.knobs
        patch["policy"][row.modality] = {
            "keep_min_score": k.keep_min_score, "keep_harmful": k.keep_harmful, "coverage_every_s": k.coverage_every_s,
            "budget": {"frames_per_min": k.frames_per_min, "mb_per_min": k.mb_per_min},
        }
        home = "model" if scorer == "proxy" else "scoring"
        if home == "model":  # the model specs have required keys: carry the whole spec
            spec = getattr(config.model, row.modality).model_dump(mode="json")
            patch.setdefault("model", {})[row.modality] = {**spec, "redundant_max_distance": k.redundant_max_distance}
        else:
            patch.setdefault("scoring", {})[row.modality] = {"redundant_max_distance": k.redundant_max_distance}
    merged = deep_merge(data, patch)
    AgentConfig.model_validate(merged)  # what we hand out must load
    return merged


def _baseline_table(
    cache: ScoreCache, truth: np.ndarray, faults: list[str | None], ours: Combined, name: str
) -> list[dict[str, Any]]:
    budgets = {Modality.CAMERA: ours.camera.metrics["kept"] if ours.camera else 0,
               Modality.LIDAR: ours.lidar.metrics["kept"] if ours.lidar else 0}
    nbytes = np.array([c.frame.nbytes for c in cache.frames], dtype=np.int64)
    table = [{"method": f"edgesift ({name})", **_combined_json(ours, faults)}]
    for method, kept in run_baselines(cache, budgets).items():
        row = {"method": method, **rates(kept, truth, nbytes, cache.duration_s)}
        if any(faults):
            row["harmful_caught_by_fault"] = caught_by_fault(kept, faults)
        table.append(row)
    return table


def _scores(inputs: list[str], out_dir: Path, config: AgentConfig, baselines: bool, progress: bool | None,
            rescore: bool) -> tuple[ScoreCache, bool]:
    """The scored recording: from DIR/scores.cache when it was made from the same things, else scored now."""
    key = cache_key(inputs, config, baselines)
    cache = None if rescore else load_cached(out_dir / CACHE_FILE, key)
    if cache is not None:
        return cache, True
    cache = score_recording(inputs, config, baselines=baselines, progress=progress)
    save_cached(out_dir / CACHE_FILE, key, cache)
    return cache, False


def _sweep(cache: ScoreCache, truth: np.ndarray, config: AgentConfig, target: Target
           ) -> tuple[dict[Modality, list[Row]], Combined, Combined | None, int]:
    """Every setting per modality, the current config's pair, and the suggestion for the target (if any)."""
    rows: dict[Modality, list[Row]] = {}
    current: dict[Modality, Row | None] = {}
    for modality in Modality:
        base = base_knobs(config, cache.scorer, modality)
        settings = grid(base, budget_candidates(cache, modality, target))
        rows[modality] = sweep_modality(cache, modality, settings, truth, config.scoring.memory_size)
        current[modality] = next((r for r in rows[modality] if r.knobs == base), None)
    now = combine(cache, truth, current[Modality.CAMERA], current[Modality.LIDAR])
    if not target.given:
        return rows, now, None, 0
    choice, pairs = suggest(cache, truth, rows[Modality.CAMERA], rows[Modality.LIDAR], target)
    if choice is not None and not choice.metrics["kept"]:
        choice = None  # "keep nothing" meets every budget and answers none: the target is out of reach
    return rows, now, choice, pairs


def best_reachable(rows: dict[Modality, list[Row]]) -> dict[str, Any] | None:
    """The lowest MB/h and keep rate of any swept setting that keeps frames (what an unreachable target missed)."""
    keeping = [r for modality in Modality for r in rows[modality] if r.metrics["kept"]]
    if not keeping:
        return None
    lowest = min(keeping, key=lambda r: r.metrics["mb_per_hour"])
    return {"modality": lowest.modality, "mb_per_hour": lowest.metrics["mb_per_hour"],
            "keep_rate": min(r.metrics["keep_rate"] for r in keeping), "kept": lowest.metrics["kept"]}


def run_tune(
    inputs: list[str], out_dir: Path, config: AgentConfig, target: Target, labels: Path | None = None,
    baselines: bool = True, progress: bool | None = None, rescore: bool = False, base_version: int | None = None,
) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    cache, reused = _scores(inputs, out_dir, config, baselines, progress, rescore)
    require_frames(cache)
    truth, faults, label_info = truth_of(cache, labels or find_labels(inputs))
    return tune_scored(inputs, out_dir, config, target, cache, reused, (truth, faults, label_info), baselines,
                       base_version=base_version)


def require_frames(cache: ScoreCache) -> None:
    """Nothing to sweep: say why instead of an empty sweep and exit 0."""
    if not cache.frames:
        reasons = Counter(str(s.get("reason")) for s in cache.skipped)
        why = ", ".join(f"{n} {r}" for r, n in reasons.most_common(3)) or "nothing readable"
        raise InputError(f"the inputs yielded no frame ({why})")


def tune_scored(
    inputs: list[str], out_dir: Path, config: AgentConfig, target: Target, cache: ScoreCache, reused: bool,
    labelled: tuple[np.ndarray, list[str | None], dict[str, Any]], baselines: bool = True,
    extra: Callable[[Combined | None, Combined, np.ndarray], dict[str, Any]] | None = None,
    base_version: int | None = None,
) -> dict[str, Any]:
    """Sweep scored frames, compare, suggest and write the outputs (`extra` adds figures to sweep.json)."""
    truth, faults, label_info = labelled
    started = time.perf_counter()
    if label_info["path"] is None:
        pseudo_truth(cache, truth, config)
        label_info["pseudo"] = PSEUDO
    rows, now, choice, pairs = _sweep(cache, truth, config, target)
    sweep_s = time.perf_counter() - started
    result: dict[str, Any] = {
        "inputs": list(inputs), "scorer": cache.scorer, "frames": len(cache.frames),
        "skipped": len(cache.skipped), "duration_s": round(cache.duration_s, 3), "labels": label_info,
        "bytes": {"basis": "stored: what the spool holds and the uplink sends (MB/h, budgets, targets)",
                  "input": sum(input_bytes(c.frame) for c in cache.frames),
                  "stored": sum(c.frame.nbytes for c in cache.frames)},
        "timing": {"score_s": round(cache.score_s, 2), "scores_reused": reused, "sweep_s": round(sweep_s, 2),
                   "settings": sum(len(r) for r in rows.values()), "pairs_compared": pairs},
        "current": _combined_json(now, faults),
        "target": {"mb_per_hour": target.mb_per_hour, "keep_rate": target.keep_rate},
        "suggested": _combined_json(choice, faults) if choice else None,
        "best_reachable": best_reachable(rows) if target.given and choice is None else None,
        "settings": [_row_json(r) for modality in Modality for r in rows[modality]],
    }
    if extra is not None:
        result.update(extra(choice, now, truth))
    if baselines:
        ours, name = (choice, "suggested") if choice else (now, "current config")
        result["baselines"] = _baseline_table(cache, truth, faults, ours, name)
    _write(out_dir, result, config, cache.scorer, choice, target, base_version)
    return result


def _write(out_dir: Path, result: dict[str, Any], config: AgentConfig, scorer: str, choice: Combined | None,
           target: Target, base_version: int | None) -> None:
    suggested = out_dir / SUGGESTED
    if choice is not None:
        text = yaml.safe_dump(suggested_config(config, scorer, choice, base_version), sort_keys=False)
        suggested.write_text(f"# edgesift tune: suggested for {target.mb_per_hour or '-'} MB/h, "
                             f"keep rate {target.keep_rate or '-'}\n" + text, encoding="utf-8")
    else:
        suggested.unlink(missing_ok=True)  # an earlier run's suggestion would answer a question not asked now
    (out_dir / SWEEP_JSON).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    write_sweep_html(out_dir / SWEEP_HTML, result)

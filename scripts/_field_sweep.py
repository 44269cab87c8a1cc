"""The hybrid scorer's model operating point chosen leave-one-source-out, from verdicts the field evaluation recorded
(evaluate_field.py --sweep).

A hybrid verdict is harmful when the checks find a fault, or when the fault head's probability p reaches
`scoring.model_fault_min_prob` (t) on a frame inside the model's domain (ood below `model.ood_trust_ratio`, r). Each
recorded verdict keeps whether the checks fired, p and ood, so it can be recomputed at any (t, r) of a grid. For each
source, the point the *other* sources prefer (the mean over them of recall on the trained fault kinds plus recall on
the others, minus 10x the false-harmful rate on valid frames; a tie keeps the shipped default) is applied to it:
its figures are then those of a setting chosen without it. A second-order effect is left out: a frame that would
now be harmful would not join the scorer's memory.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from _field_data import Source
from _field_faults import TRAINED

THRESHOLDS = (0.6, 0.7, 0.8, 0.9, 0.95, 1.01)  # 1.01: the head never decides
TRUST = (0.5, 1.0, 1.5, 2.0, 3.0)
DEFAULT = (0.8, 1.0)


def _harmful(row: tuple, t: float, r: float) -> bool:
    _, _, _, checks, p, ood = row
    return bool(checks) or (p is not None and ood is not None and p >= t and ood < r)


def _figures(rows: list[tuple], trained: set[str], t: float, r: float) -> dict[str, float | None]:
    groups: dict[str, list[bool]] = defaultdict(list)
    for row in rows:
        groups[row[2]].append(_harmful(row, t, r))
    valid = groups.pop("valid", [])
    rec_t = [float(np.mean(v)) for k, v in groups.items() if k in trained]
    rec_u = [float(np.mean(v)) for k, v in groups.items() if k not in trained]
    return {"false_harmful": float(np.mean(valid)) if valid else None,
            "recall_trained": float(np.mean(rec_t)) if rec_t else None,
            "recall_unseen": float(np.mean(rec_u)) if rec_u else None}


def _objective(f: dict) -> float:
    return (f["recall_trained"] or 0.0) + (f["recall_unseen"] or 0.0) - 10.0 * (f["false_harmful"] or 0.0)


def choose(records: list[tuple], sources: list[Source], modality: str) -> dict:
    """Per source: the point chosen without it and its figures there; per condition, the held-out means."""
    rows = defaultdict(list)
    for row in records:
        if row[0] == modality:
            rows[row[1]].append(row)
    trained = TRAINED[modality]
    grid = [(t, r) for t in THRESHOLDS for r in TRUST]
    table = {name: {point: _figures(rs, trained, *point) for point in grid} for name, rs in rows.items()}

    def best(names: list[str]) -> tuple[float, float]:
        score = {p: float(np.mean([_objective(table[n][p]) for n in names])) for p in grid}
        top = max(score.values())
        return DEFAULT if score[DEFAULT] >= top - 1e-9 else max(grid, key=lambda p: score[p])

    per_source = {}
    for name in table:
        point = best([n for n in table if n != name])
        per_source[name] = {"chosen": list(point), **table[name][point], "at_default": table[name][DEFAULT]}
    condition = {s.name: s.condition for s in sources}
    by_condition: dict[str, dict] = {}
    for cond in sorted({condition[n] for n in per_source}):
        names = [n for n in per_source if condition[n] == cond]
        out = {}
        for key in ("false_harmful", "recall_trained", "recall_unseen"):
            values = [per_source[n][key] for n in names if per_source[n][key] is not None]
            defaults = [per_source[n]["at_default"][key] for n in names if per_source[n]["at_default"][key] is not None]
            out[key] = round(float(np.mean(values)), 4) if values else None
            out[f"{key}_at_default"] = round(float(np.mean(defaults)), 4) if defaults else None
        by_condition[cond] = {"sources": len(names), **out}
    chosen_all = best(list(table))
    return {"grid": {"model_fault_min_prob": THRESHOLDS, "ood_trust_ratio": TRUST}, "default": DEFAULT,
            "chosen_on_all_sources": list(chosen_all),
            "held_out_choices": {f"{t}/{r}": sum(1 for v in per_source.values() if tuple(v["chosen"]) == (t, r))
                                 for t, r in grid if any(tuple(v["chosen"]) == (t, r) for v in per_source.values())},
            "per_condition_held_out": by_condition, "per_source": per_source}

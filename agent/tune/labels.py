"""Ground-truth labels of evaluation drives (scripts/make_eval_drive.py) and the rates measured against them.

A labels file is JSON lines, one per frame: {"sensor", "seq", "label": helpful|useless|harmful, "fault", ...},
joined to frames on (sensor, seq), seq being the frame's 0-based index in its sensor stream (as in replay's
decisions.jsonl).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import InputError

LABELS_FILE = "labels.jsonl"
CODES = {"helpful": 0, "useless": 1, "harmful": 2}
UNKNOWN = -1


def find_labels(inputs: Sequence[str]) -> Path | None:
    """A labels.jsonl beside (file input) or inside (folder input) the first input that has one."""
    for raw in inputs:
        path = Path(raw)
        candidate = (path if path.is_dir() else path.parent) / LABELS_FILE
        if candidate.is_file():
            return candidate
    return None


def load_labels(path: Path) -> dict[tuple[str, int], tuple[int, str | None]]:
    """(sensor, seq) -> (label code, fault); a malformed line is an InputError naming its line number."""
    out: dict[tuple[str, int], tuple[int, str | None]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read labels {path}: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            key = (str(row["sensor"]), int(row["seq"]))
            code = CODES[row["label"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}:{number}: not a label line ({exc!r})") from exc
        fault = row.get("fault")
        out[key] = (code, str(fault) if fault else None)
    return out


def rates(kept: np.ndarray, truth: np.ndarray, nbytes: np.ndarray, duration_s: float) -> dict[str, Any]:
    """Keep rate, MB per hour and (where `truth` is known) helpful-kept / harmful-caught / useless-dropped."""
    total_bytes = float(nbytes.sum())
    kept_bytes = float(nbytes[kept].sum())
    out: dict[str, Any] = {
        "frames": int(kept.size), "kept": int(kept.sum()),
        "keep_rate": round(float(kept.mean()), 4) if kept.size else 0.0,
        "bytes_kept": int(kept_bytes), "mb_per_hour": round(kept_bytes / 1e6 * 3600.0 / duration_s, 2),
        "bytes_dropped": round(1.0 - kept_bytes / total_bytes, 4) if total_bytes else 0.0,
    }
    if (truth != UNKNOWN).any():
        for name, code, want_kept in (("helpful_kept", 0, True), ("useless_dropped", 1, False),
                                      ("harmful_caught", 2, False)):
            mask = truth == code
            hits = kept[mask] if want_kept else ~kept[mask]
            out[name] = round(float(hits.mean()), 4) if mask.any() else None
    return out


def caught_by_fault(kept: np.ndarray, faults: Sequence[str | None]) -> dict[str, float]:
    """Per fault type, the fraction of its frames not kept."""
    out: dict[str, list[bool]] = {}
    for flag, fault in zip(kept, faults, strict=True):
        if fault:
            out.setdefault(fault, []).append(not flag)
    return {fault: round(float(np.mean(hits)), 4) for fault, hits in sorted(out.items())}

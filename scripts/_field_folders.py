"""LiDAR snapshot folders as `edgesift replay FOLDER` reads them: the product's folder source, one sensor name for
the whole folder and no sensor model (scoring.sensors cannot give one per file), scans marked as stills where their
names are not one numbered recording.

The per-source part of the evaluation gives each of these scans a sensor and a model of its own (_field_data); a
user who replays the folder gets neither, so this part reports what that user sees: per folder, the healthy scans
called harmful and the genuine faults caught, file by file.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from _field_data import NEBULA, NEBULA_BLOCKED, NEBULA_INCOMPLETE, OUSTER_FRAMES, SHARED
from _field_eval import judge

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agent.config import AgentConfig
from agent.frame import Frame
from agent.scoring.base import Label
from agent.scoring.factory import make_scorer
from agent.sources.folder import FolderSource


def _faulty(folder: str) -> dict[str, bool]:
    """File name -> a genuine fault (SOURCES.md section 9, and _field_data's judgement of the XT32M scan)."""
    path = SHARED / folder
    names = sorted(p.name for p in path.iterdir() if p.suffix == ".bin")
    if folder == OUSTER_FRAMES:
        with (path / "index.csv").open(encoding="utf-8") as fh:
            return {row["file"]: row["complete"] != "True" for row in csv.DictReader(fh)}
    if folder == NEBULA:
        return {n: n.startswith(NEBULA_BLOCKED + NEBULA_INCOMPLETE) for n in names}
    return dict.fromkeys(names, False)


FOLDERS = (OUSTER_FRAMES, NEBULA, "lidar/hesai_multi_lidar_pjlab_snapshots")


def replayed_folders(kind: str) -> dict:
    out = {}
    for folder in FOLDERS:
        if not (SHARED / folder).is_dir():
            continue
        faulty = _faulty(folder)
        scorer = make_scorer(AgentConfig.model_validate({"scoring": {"kind": kind}}))
        files = {}
        for item in FolderSource(str(SHARED / folder), 10.0):
            if isinstance(item, Frame):
                verdict = judge(scorer, item)
                harmful = verdict.label is Label.HARMFUL
                files[Path(item.source).name] = verdict.reasons[0] if harmful else f"valid:{verdict.label.value}"
        healthy = [n for n in files if not faulty.get(n, False)]
        genuine = [n for n in files if faulty.get(n, False)]
        out[Path(folder).name] = {
            "healthy_scans": len(healthy),
            "healthy_called_harmful": sum(not files[n].startswith("valid:") for n in healthy),
            "genuine_faults": len(genuine),
            "genuine_caught": sum(not files[n].startswith("valid:") for n in genuine),
            "files": files}
    return out


def folders_table(result: dict) -> list[str]:
    """Markdown rows: per folder and scorer, healthy scans called harmful and genuine faults caught."""
    by_kind = {k: v["replayed_folders"] for k, v in result.get("lidar", {}).items()
               if isinstance(v, dict) and "replayed_folders" in v}
    if not by_kind:
        return []
    kinds = list(by_kind)
    lines = ["", "### lidar: snapshot folders as `edgesift replay FOLDER` reads them (no sensor model; healthy "
             "called harmful / genuine faults caught)", "", "| folder | " + " | ".join(kinds) + " |",
             "|---|" + "---|" * len(kinds)]
    for name in by_kind[kinds[0]]:
        cells = [f"{r['healthy_called_harmful']} of {r['healthy_scans']} / {r['genuine_caught']} of "
                 f"{r['genuine_faults']}" for r in (by_kind[k][name] for k in kinds)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines

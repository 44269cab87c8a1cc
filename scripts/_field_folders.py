"""Folders as `edgesift replay FOLDER` reads them: the product's folder source, one sensor name for the whole
folder and no sensor model (scoring.sensors cannot give one per file), files marked as stills where their names
are not one numbered recording, 16-bit pictures by the folder's own sample depth.

The per-source part of the evaluation gives each snapshot scan a sensor and a model of its own, and loads each
camera source with its own reader (_field_data); a user who replays the folder gets neither, so this part reports
what that user sees: per folder, the healthy frames called harmful and the genuine faults caught, file by file.
LiDAR: the snapshot folders of several units and models. Camera: the folders whose files no plain reader took
(DENSE's 16-bit gated NIR and raw TIFFs beside its JPEGs; night stills from two datasets, one nuScenes-named).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from _field_data import NEBULA, NEBULA_BLOCKED, NEBULA_INCOMPLETE, OUSTER_FRAMES, SHARED
from _field_eval import judge

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agent.config import AgentConfig
from agent.config.model import InputsConfig
from agent.frame import Frame
from agent.scoring.base import Label
from agent.scoring.factory import make_scorer
from agent.sources import merge, open_inputs


def _faulty(folder: str) -> dict[str, bool]:
    """File name -> a genuine fault (SOURCES.md section 9, and _field_data's judgement of the XT32M scan); a name
    not listed is healthy."""
    path = SHARED / folder
    names = sorted(p.name for p in path.iterdir() if p.suffix == ".bin")
    if folder == OUSTER_FRAMES:
        with (path / "index.csv").open(encoding="utf-8") as fh:
            return {row["file"]: row["complete"] != "True" for row in csv.DictReader(fh)}
    if folder == NEBULA:
        return {n: n.startswith(NEBULA_BLOCKED + NEBULA_INCOMPLETE) for n in names}
    return dict.fromkeys(names, False)


FOLDERS = {"lidar": (OUSTER_FRAMES, NEBULA, "lidar/hesai_multi_lidar_pjlab_snapshots"),
           "camera": ("camera/dense_stf_examples_germany_sweden", "camera/night_singles_robotcar_nuscenes_md4all")}


def replayed_folders(kind: str, modality: str) -> dict:
    out = {}
    for folder in FOLDERS[modality]:
        if not (SHARED / folder).is_dir():
            continue
        faulty = _faulty(folder)
        scorer = make_scorer(AgentConfig.model_validate({"scoring": {"kind": kind}}))
        files, skipped = {}, {}
        for item in merge(open_inputs([str(SHARED / folder)], InputsConfig())):  # replay's own choice of reader
            if isinstance(item, Frame):
                verdict = judge(scorer, item)
                harmful = verdict.label is Label.HARMFUL
                files[Path(item.source).name] = verdict.reasons[0] if harmful else f"valid:{verdict.label.value}"
            else:
                skipped[Path(item.source).name] = f"{item.reason}: {item.detail}"[:120]
        healthy = [n for n in files if not faulty.get(n, False)]
        genuine = [n for n in files if faulty.get(n, False)]
        out[Path(folder).name] = {
            "healthy": len(healthy),
            "healthy_called_harmful": sum(not files[n].startswith("valid:") for n in healthy),
            "genuine_faults": len(genuine),
            "genuine_caught": sum(not files[n].startswith("valid:") for n in genuine),
            "files": files, "skipped": skipped}
    return out


def folders_table(result: dict) -> list[str]:
    """Markdown rows: per modality, folder and scorer, healthy frames called harmful and genuine faults caught."""
    lines: list[str] = []
    for modality in ("camera", "lidar"):
        by_kind = {k: v["replayed_folders"] for k, v in result.get(modality, {}).items()
                   if isinstance(v, dict) and "replayed_folders" in v}
        if not by_kind:
            continue
        kinds = list(by_kind)
        lines += ["", f"### {modality}: folders as `edgesift replay FOLDER` reads them (no sensor model; healthy "
                  "called harmful / genuine faults caught; files skipped)", "",
                  "| folder | " + " | ".join(kinds) + " | skipped |", "|---|" + "---|" * (len(kinds) + 1)]
        for name, first in by_kind[kinds[0]].items():
            cells = [f"{r['healthy_called_harmful']} of {r['healthy']} / {r['genuine_caught']} of "
                     f"{r['genuine_faults']}" for r in (by_kind[k][name] for k in kinds)]
            why = "; ".join(f"{file} ({reason.split(':')[0]})" for file, reason in first["skipped"].items())
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {why or 'none'} |")
    return lines

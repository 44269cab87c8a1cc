"""The corpus manifest: which drives to replay or tune, from which vehicle, with which inputs.

A manifest is JSON lines (one drive object a line) or a YAML list of the same objects:

    {"id": "2026-11-02-veh17-a", "vehicle": "veh17", "inputs": ["/data/veh17/a.mcap"], "labels": null,
     "condition": "night"}

Relative paths are taken from the manifest's folder, so a manifest can travel with its drives (on a shared
filesystem every node mounts at the same place).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.errors import ConfigError

# A drive id names its output folder, DIR/drives/<id>/: no separators, no dot-files, nothing a shell trips on.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class Drive(BaseModel):
    """One recorded drive of the corpus."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Unique name of the drive; its outputs go to DIR/drives/<id>/")
    vehicle: str = Field("unknown", min_length=1, max_length=200, description="Vehicle that recorded it")
    inputs: tuple[str, ...] = Field(min_length=1, description="Recordings of the drive (as for `edgesift replay`)")
    labels: str | None = Field(None, description="Ground-truth labels.jsonl for tune (default: one beside the input)")
    condition: str | None = Field(None, max_length=200, description="Free-form condition (night, rain, ...) that "
                                  "tune reports its figures for")

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        if not ID_PATTERN.match(value):
            raise ValueError(f"drive id {value!r} must be 1-128 of A-Z a-z 0-9 . _ - and start with a letter "
                             "or digit")
        return value


def _resolve(drive: Drive, base: Path) -> Drive:
    def absolute(raw: str) -> str:
        path = Path(raw).expanduser()
        return str(path if path.is_absolute() else base / path)

    labels = absolute(drive.labels) if drive.labels else None
    return drive.model_copy(update={"inputs": tuple(absolute(p) for p in drive.inputs), "labels": labels})


def _entries(path: Path, text: str) -> list[tuple[str, object]]:
    """(where, raw entry) pairs: a YAML list, or one JSON object per non-empty line."""
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, list):
            raise ConfigError(f"{path}: a YAML manifest is a list of drives")
        return [(f"{path}: drive {i + 1}", entry) for i, entry in enumerate(data)]
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                out.append((f"{path}:{number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{number}: not a JSON object ({exc.msg})") from None
    return out


def load_manifest(path: str | Path) -> list[Drive]:
    """The drives of a manifest file, validated; raises ConfigError with the line or entry at fault."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read manifest {path}: {exc}") from None
    drives: list[Drive] = []
    seen: set[str] = set()
    for where, raw in _entries(path, text):
        try:
            drive = Drive.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "drive"
            raise ConfigError(f"{where}: {loc}: {first['msg']}") from None
        if drive.id in seen:
            raise ConfigError(f"{where}: drive id {drive.id!r} appears twice")
        seen.add(drive.id)
        drives.append(_resolve(drive, path.resolve().parent))
    if not drives:
        raise ConfigError(f"{path}: the manifest lists no drives")
    return drives

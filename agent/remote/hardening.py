"""What a remote update may not do, beyond the schema: jump the version out of reach, change what only a restart
applies, or name files outside the local targets folder.

- A version jump above `remote.max_version_jump` is refused: one message with version 2^53 would otherwise make
  every later update stale, for good. Only a signed administrative reset (envelope `reset: true`, addressed to
  one vehicle) may set any version, lower ones included.
- Restart-only keys (the spool, the uplink, identity, sources, daemon settings) are refused remotely with that
  reason: reporting them "accepted" when they only take effect after a restart misleads the fleet operator.
- Targets and exemplars pushed remotely must be bare file names; they are read from `remote.targets_dir`. Any
  other path gets one and the same answer, so the vehicle's replies reveal nothing about its file system.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.remote.merge import RESTART_ONLY, protected_changes

_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
FILE_LISTS = ("targets", "exemplars")
REFUSED_PATH = ("refused: remote targets and exemplars must be bare file names of the local targets folder "
                "(remote.targets_dir)")


class Refused(ValueError):
    """A remote update refused by one of the rules above; str() is the reason reported to the fleet."""


def check_version(requested: int, floor: int, max_jump: int, reset: bool) -> None:
    if reset:
        return
    if requested <= floor:
        kind = "replayed" if requested == floor else "stale"
        raise Refused(f"{kind} version {requested}: must be above {floor}")
    if requested - floor > max_jump:
        raise Refused(f"version {requested} jumps {requested - floor} above {floor}: more than "
                      f"remote.max_version_jump ({max_jump}); a signed administrative reset can set it")


def check_restart_only(current: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    changed = protected_changes(current, new, RESTART_ONLY)
    if changed:
        raise Refused(f"restart-only, set in the local file: {', '.join(changed)} (a remote change would take "
                      "effect only after a restart)")


def localise_file_lists(current: Mapping[str, Any], patch: dict[str, Any], folder: str) -> dict[str, Any]:
    """The patch with every remotely set targets / exemplars entry turned into a path inside `folder`.

    Entries equal to the running config's are kept as they are (the local file set them).
    """
    models = patch.get("model")
    if not isinstance(models, dict):
        return patch
    out_models = dict(models)
    for name, spec in models.items():
        if not isinstance(spec, dict):
            continue
        running = (current.get("model") or {}).get(name) or {}
        spec = dict(spec)
        for key in FILE_LISTS:
            entries = spec.get(key)
            if not isinstance(entries, list):
                continue
            known = set(running.get(key) or [])
            local = []
            for entry in entries:
                if entry in known:
                    local.append(entry)
                elif isinstance(entry, str) and _FILE_NAME.match(entry):
                    local.append(str(Path(folder) / entry))
                else:
                    raise Refused(f"model.{name}.{key}: {REFUSED_PATH}")
            spec[key] = local
        out_models[name] = spec
    return {**patch, "model": out_models}

"""Deep merge of a (partial) config document onto the current config, and the keys a remote may not change."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

# Dotted key paths (fnmatch patterns) that only the local file may set: identity, where data lives, how and as
# whom the vehicle reaches the broker, and the remote channel's own trust settings (a remote that could change
# the public key or turn remote config off could lock the fleet out or let anyone in).
PROTECTED_KEYS: tuple[str, ...] = (
    "vehicle_id",
    "spool.path",
    "uplink.broker",
    "uplink.topic_prefix",
    "uplink.protocol",
    "uplink.client_id",
    "uplink.tls*",
    "uplink.*user*",
    "uplink.*pass*",
    "uplink.*cert*",
    "uplink.*key*",
    "uplink.ca*",
    "uplink.*credential*",
    "remote.enabled",
    "remote.public_key",
    "remote.state_dir",
    "remote.targets_dir",
    # Which files the agent loads as models stays a local decision: a remote message must not make it load (or
    # probe for) arbitrary files. Thresholds, providers, targets and exemplars stay remotely tunable.
    "model.*path*",
)


# Sections only the local file sets, read at start-up: sources and daemon settings name devices, files and ports,
# and the spool / uplink / identity are built once. A SIGHUP reload or a remote update that changes them is refused.
LOCAL_ONLY: tuple[str, ...] = ("sources", "daemon")
RESTART_ONLY: tuple[str, ...] = ("vehicle_id", "spool", "uplink", "remote.enabled", "remote.state_dir",
                                 "remote.queue_size", *LOCAL_ONLY)


def deep_merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Return base with patch merged in: mappings merge key by key, anything else (lists too) is replaced."""
    out = dict(base)
    for key, value in patch.items():
        current = out.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            out[key] = deep_merge(current, value)
        else:
            out[key] = value
    return out


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted leaf paths of a nested mapping (lists are leaves)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def is_protected(path: str, patterns: tuple[str, ...] = PROTECTED_KEYS) -> bool:
    # A pattern also covers everything below it (uplink.tls covers uplink.tls.cafile).
    return any(fnmatchcase(path, p) or path.startswith(p.rstrip("*") + ".") for p in patterns)


def protected_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], patterns: tuple[str, ...] = PROTECTED_KEYS
) -> list[str]:
    """The protected paths whose value differs between two config dumps, sorted."""
    before, after = flatten(old), flatten(new)
    changed = {p for p in before.keys() | after.keys() if before.get(p, _MISSING) != after.get(p, _MISSING)}
    return sorted(p for p in changed if is_protected(p, patterns))


def overlay_protected(
    target: Mapping[str, Any], source: Mapping[str, Any], patterns: tuple[str, ...] = PROTECTED_KEYS
) -> dict[str, Any]:
    """target with every protected leaf taken from source (the local file stays authoritative for them)."""
    out = dict(target)
    for path, value in flatten(source).items():
        if is_protected(path, patterns):
            _set_path(out, path.split("."), value)
    return out


def _set_path(tree: dict[str, Any], parts: list[str], value: Any) -> None:
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        child = dict(child) if isinstance(child, Mapping) else {}
        node[part] = child
        node = child
    node[parts[-1]] = value


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()

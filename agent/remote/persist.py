"""Persist the running config so a remote update survives a restart: atomic write, validated read.

File format (JSON): {"format": 1, "version_floor": N, "config": {...}, "saved_at": unix_s}. version_floor is the
highest version ever applied (rolled-back ones included), so a replayed bad config is refused after a restart.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from agent.config import AgentConfig
from agent.config.load import issues_from_validation
from agent.errors import ConfigError
from agent.remote.merge import overlay_protected

logger = logging.getLogger(__name__)

STATE_FILE = "remote_config.json"
FORMAT = 1
MAX_STATE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Persisted:
    config: AgentConfig
    version_floor: int


@dataclass(frozen=True)
class StartupConfig:
    """What the agent starts with, and why (for the log line)."""

    config: AgentConfig
    version_floor: int
    source: str  # "file" or "persisted"
    note: str = ""


class ConfigPersister:
    """Writes and reads one state file; writes are tmp + fsync + rename + directory fsync."""

    def __init__(self, state_dir: str | Path, name: str = STATE_FILE) -> None:
        self.path = Path(state_dir) / name

    def save(self, config: AgentConfig, version_floor: int) -> None:
        doc = {"format": FORMAT, "version_floor": version_floor, "saved_at": time.time(),
               "config": config.model_dump(mode="json")}
        data = json.dumps(doc, sort_keys=True, indent=1).encode("utf-8")
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise ConfigError(f"cannot persist config to {self.path}: {exc.strerror or exc}") from exc
        _fsync_dir(self.path.parent)  # the rename itself must reach the disk before we report success

    def load(self) -> Persisted | None:
        """The persisted config, or None when there is none; raise ConfigError when it is unusable."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        if len(raw) > MAX_STATE_BYTES:
            raise ConfigError(f"{self.path} is larger than {MAX_STATE_BYTES} bytes")
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ConfigError(f"{self.path} is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("config"), dict):
            raise ConfigError(f"{self.path} is not a format-{FORMAT} state file")
        try:
            config = AgentConfig.model_validate(doc["config"])
        except ValidationError as exc:
            detail = "; ".join(str(i) for i in issues_from_validation(exc)[:5])
            raise ConfigError(f"{self.path} holds an invalid config: {detail}") from exc
        floor = doc.get("version_floor")
        floor = floor if isinstance(floor, int) and not isinstance(floor, bool) else config.version
        return Persisted(config, max(floor, config.version))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # platforms without directory fds: the rename is still atomic, just not yet durable
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def startup_config(file_config: AgentConfig, persister: ConfigPersister) -> StartupConfig:
    """Pick the config to start with: the persisted one wins when valid and newer than the file's.

    Protected keys (vehicle id, spool path, broker, credentials) always come from the file: the persisted copy was
    derived from an older file and must not undo a local edit of them.
    """
    try:
        persisted = persister.load()
    except ConfigError as exc:
        logger.warning("ignoring persisted remote config: %s", exc)
        return StartupConfig(file_config, file_config.version, "file", f"persisted config ignored: {exc}")
    if persisted is None:
        return StartupConfig(file_config, file_config.version, "file")
    floor = max(persisted.version_floor, file_config.version)
    if persisted.config.version <= file_config.version:
        note = f"file version {file_config.version} >= persisted {persisted.config.version}"
        return StartupConfig(file_config, floor, "file", note)
    merged = overlay_protected(persisted.config.model_dump(mode="json"), file_config.model_dump(mode="json"))
    try:
        config = AgentConfig.model_validate(merged)
    except ValidationError as exc:
        logger.warning("persisted config does not validate with the file's protected keys: %s", exc)
        return StartupConfig(file_config, floor, "file", "persisted config invalid with local protected keys")
    return StartupConfig(config, floor, "persisted", f"persisted version {config.version} > file")

"""The running config: one immutable AgentConfig behind a reference that swaps atomically, with subscribers.

Readers take `store.current` (a single attribute read: always a whole config, never half of one). Writers go
through `apply()`, which is serialised: version check, swap, notify each subscriber in order, persist. If a
subscriber raises or persisting fails, the previous config is swapped back and the subscribers already notified
are told to rebuild for it, so the agent runs either the new config everywhere or the old one everywhere.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from agent.config import AgentConfig
from agent.errors import ConfigError
from agent.remote.persist import ConfigPersister, startup_config

logger = logging.getLogger(__name__)

# A subscriber rebuilds what it needs for `new`; `old` is what it ran before. Raising vetoes the change.
Subscriber = Callable[[AgentConfig, AgentConfig], None]


class ApplyStatus(str, Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled_back"


@dataclass(frozen=True)
class ApplyResult:
    status: ApplyStatus
    version: int  # the version running after the call
    requested_version: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is ApplyStatus.ACCEPTED


class ConfigStore:
    def __init__(
        self, initial: AgentConfig, *, version_floor: int | None = None, persister: ConfigPersister | None = None
    ) -> None:
        self._current = initial
        self._floor = max(initial.version, version_floor or 0)
        self._persister = persister
        self._subscribers: list[tuple[str, Subscriber]] = []
        self._lock = threading.Lock()  # serialises apply(); readers never take it

    @classmethod
    def open(cls, file_config: AgentConfig, state_dir: str | None = None) -> ConfigStore:
        """A store persisted under state_dir (default: config.remote.state_dir), starting from the newer config."""
        persister = ConfigPersister(state_dir or file_config.remote.state_dir)
        start = startup_config(file_config, persister)
        logger.info("config version %d from %s %s", start.config.version, start.source, start.note)
        return cls(start.config, version_floor=start.version_floor, persister=persister)

    @property
    def current(self) -> AgentConfig:
        return self._current

    @property
    def version_floor(self) -> int:
        """Highest version ever applied; a new config must be above it."""
        return self._floor

    @property
    def persister(self) -> ConfigPersister | None:
        return self._persister

    def subscribe(self, callback: Subscriber, name: str | None = None) -> Callable[[], None]:
        """Register a callback run on every change; returns a function that unsubscribes it."""
        entry = (name or getattr(callback, "__qualname__", repr(callback)), callback)
        with self._lock:
            self._subscribers.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)

        return unsubscribe

    def apply(self, new: AgentConfig, *, force: bool = False, reset: bool = False) -> ApplyResult:
        """Swap in `new` whole or not at all. force skips the version check (used to roll back to a lower one);
        reset (a signed administrative reset) also makes its version the new floor, lower or not."""
        with self._lock:
            old = self._current
            if reset:
                error = self._swap(old, new, floor=new.version)
                if error is not None:
                    return ApplyResult(ApplyStatus.ROLLED_BACK, old.version, new.version, error)
                self._floor = new.version
                return ApplyResult(ApplyStatus.ACCEPTED, new.version, new.version)
            if not force and new.version <= self._floor:
                kind = "replayed" if new.version == self._floor else "stale"
                error = f"{kind} version {new.version}: must be above {self._floor}"
                return ApplyResult(ApplyStatus.REJECTED, old.version, new.version, error)
            error = self._swap(old, new)
            if error is not None:
                return ApplyResult(ApplyStatus.ROLLED_BACK, old.version, new.version, error)
            if not force:
                self._floor = new.version
            return ApplyResult(ApplyStatus.ACCEPTED, new.version, new.version)

    def _swap(self, old: AgentConfig, new: AgentConfig, floor: int | None = None) -> str | None:
        """Swap, notify, persist; on any failure restore old and return why."""
        self._current = new
        notified: list[tuple[str, Subscriber]] = []
        for name, callback in list(self._subscribers):
            notified.append((name, callback))  # the failing one may have half-rebuilt: it is told to go back too
            try:
                callback(new, old)
            except ConfigError as exc:  # a refusal by design (e.g. sources change remotely): the caller logs it
                logger.debug("config subscriber %s refused version %d: %s", name, new.version, exc)
                self._restore(old, new, notified)
                return f"{name} refused it: {exc}"
            except Exception as exc:
                logger.exception("config subscriber %s failed on version %d", name, new.version)
                self._restore(old, new, notified)
                return f"subscriber {name} failed: {type(exc).__name__}: {exc}"
        floor = max(self._floor, new.version) if floor is None else floor
        try:
            if self._persister is not None:
                self._persister.save(new, floor)
        except ConfigError as exc:
            self._restore(old, new, notified)
            return str(exc)
        return None

    def _restore(self, old: AgentConfig, failed: AgentConfig, notified: list[tuple[str, Subscriber]]) -> None:
        self._current = old
        for name, callback in notified:
            _restore_one(name, callback, old, failed)


def _restore_one(name: str, callback: Subscriber, old: AgentConfig, failed: AgentConfig) -> None:
    try:
        callback(old, failed)
    except Exception:
        # Nothing better to roll back to; the component keeps whatever it managed to rebuild.
        logger.exception("config subscriber %s failed while restoring version %d", name, old.version)

"""The reference cloud receiver: MQTT frames from a fleet -> dedup index + per-vehicle MCAP files.

Names are imported lazily so that `agent.ingest.cli` (imported by `edgesift --help`) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Ingest": "agent.ingest.receiver",
    "IngestConfig": "agent.ingest.config",
    "IngestIndex": "agent.ingest.store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

"""The MQTT uplink: spool -> broker at QoS 1, frames deleted from the spool only once acknowledged.

Names are imported lazily so that `agent.uplink.cli` (imported by `edgesift --help`) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Uplink": "agent.uplink.uplink",
    "UplinkStats": "agent.uplink.uplink",
    "UplinkError": "agent.uplink.connection",
    "FrameHeader": "agent.uplink.wire",
    "WireError": "agent.uplink.wire",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

"""The proxy models shipped inside the installed package (wheel data under share/edgesift/models/).

A checkout finds `models/...` beside the code; an installed edgesift (pip, Docker) has no checkout, so a relative
model path that resolves neither against the working folder nor the checkout is pointed at the installed copy.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from agent.config.model import AgentConfig

_CHECKOUT = Path(__file__).resolve().parents[2]
_DATA_PREFIX = "share/edgesift/"


def packaged_file(relative: str) -> Path | None:
    """The installed copy of `models/<name>` from the edgesift distribution's data files, if there is one."""
    try:
        dist = metadata.distribution("edgesift")
    except metadata.PackageNotFoundError:
        return None
    want = _DATA_PREFIX + Path(relative).as_posix()
    for entry in dist.files or ():
        if entry.as_posix().endswith(want):
            path = Path(str(dist.locate_file(entry))).resolve()
            if path.is_file():
                return path
    return None


def with_packaged_models(config: AgentConfig) -> AgentConfig:
    """`config` with relative proxy model paths that exist only in the installed package made absolute."""
    updates = {}
    for name in ("camera", "lidar"):
        spec = getattr(config.model, name)
        path = Path(spec.path)
        if path.is_absolute() or path.exists() or (_CHECKOUT / path).exists():
            continue
        found = packaged_file(spec.path)
        if found is not None:
            updates[name] = spec.model_copy(update={"path": str(found)})
    if not updates:
        return config
    return config.model_copy(update={"model": config.model.model_copy(update=updates)})

"""Load and validate YAML config files, reporting each error with its key path and line number."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agent.config.model import AgentConfig
from agent.config.packaged import with_packaged_models
from agent.config.safe_yaml import compose_and_load
from agent.errors import ConfigError

MAX_CONFIG_BYTES = 256 * 1024  # a policy document is small; refuse anything that is not


@dataclass(frozen=True)
class ConfigIssue:
    location: str
    message: str
    line: int | None = None
    value: str | None = None

    def __str__(self) -> str:
        where = f"{self.location} (line {self.line})" if self.line else self.location
        shown = f" [got {self.value}]" if self.value is not None else ""
        return f"{where}: {self.message}{shown}"


def _line_index(node: yaml.Node | None, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map each key path in a YAML document to its 1-based line number."""
    index: dict[tuple[Any, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key_path = (*path, key_node.value)
            index[key_path] = key_node.start_mark.line + 1
            index.update(_line_index(value_node, key_path))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            index[(*path, i)] = item.start_mark.line + 1
            index.update(_line_index(item, (*path, i)))
    return index


def issues_from_validation(
    error: ValidationError, lines: dict[tuple[Any, ...], int] | None = None
) -> list[ConfigIssue]:
    lines = lines or {}
    out = []
    for err in error.errors():
        loc = tuple(str(p) if not isinstance(p, int) else p for p in err["loc"])
        line = None
        for n in range(len(loc), 0, -1):  # nearest enclosing key that has a line
            if loc[:n] in lines:
                line = lines[loc[:n]]
                break
        value = err.get("input")
        shown = None if isinstance(value, dict) else repr(value)[:80]
        out.append(ConfigIssue(".".join(map(str, loc)) or "<root>", err["msg"], line, shown))
    return out


def parse_config(text: str, name: str = "<config>") -> tuple[AgentConfig | None, list[ConfigIssue]]:
    """Parse YAML (or JSON, a subset) into an AgentConfig; return the config or the list of issues."""
    if len(text.encode("utf-8", "replace")) > MAX_CONFIG_BYTES:
        return None, [ConfigIssue("<root>", f"{name} is larger than {MAX_CONFIG_BYTES} bytes")]
    try:
        node, data = compose_and_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return None, [ConfigIssue("<root>", f"not valid YAML: {problem}", line)]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [ConfigIssue("<root>", f"must be a mapping of keys, got {type(data).__name__}")]
    try:
        return AgentConfig.model_validate(data), []
    except ValidationError as exc:
        return None, issues_from_validation(exc, _line_index(node))


def validate_file(path: str | Path) -> tuple[AgentConfig | None, list[ConfigIssue]]:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        return None, [ConfigIssue("<file>", f"cannot read {p}: {exc.strerror or exc}")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, [ConfigIssue("<file>", f"{p} is not UTF-8 text")]
    config, issues = parse_config(text, str(p))
    return (with_packaged_models(config) if config is not None else None), issues


def load_config(path: str | Path | None) -> AgentConfig:
    """Load a config file, or the defaults when path is None; raise ConfigError listing every issue."""
    if path is None:
        return with_packaged_models(AgentConfig())
    config, issues = validate_file(path)
    if config is None:
        detail = "; ".join(str(i) for i in issues)
        raise ConfigError(f"invalid config {path}: {detail}")
    return config

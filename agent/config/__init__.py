"""Configuration: the pydantic schema and the YAML loader."""

from agent.config.load import ConfigIssue, load_config, parse_config, validate_file
from agent.config.model import AgentConfig

__all__ = ["AgentConfig", "ConfigIssue", "load_config", "parse_config", "validate_file"]

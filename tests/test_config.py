from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agent.config import AgentConfig, load_config, parse_config
from agent.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config" / "agent.yaml"


def _keys(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        out.add(prefix + key)
        if isinstance(value, dict):
            out |= _keys(value, prefix + key + ".")
    return out


def test_example_config_is_the_defaults_and_documents_every_key() -> None:
    assert load_config(EXAMPLE) == AgentConfig()
    documented = _keys(yaml.safe_load(EXAMPLE.read_text()))
    assert documented == _keys(AgentConfig().model_dump(mode="json"))


@pytest.mark.parametrize(
    ("text", "location", "line"),
    [
        ("scoring:\n  camera:\n    blur_min_sharpness: -1\n", "scoring.camera.blur_min_sharpness", 3),
        ("policy:\n  lidar:\n    budget:\n      fps: 3\n", "policy.lidar.budget.fps", 4),
        ("spool:\n  max_mb: lots\n", "spool.max_mb", 2),
        ("vehicle_id: 'car/1'\n", "vehicle_id", 1),
        ("version: -3\n", "version", 1),
        ("scoring:\n  kind: magic\n", "scoring.kind", 2),
        ("inputs:\n  nominal_hz: .nan\n", "inputs.nominal_hz", 2),
    ],
)
def test_invalid_values_are_reported_with_location_and_line(text: str, location: str, line: int) -> None:
    config, issues = parse_config(text)
    assert config is None
    assert [(i.location, i.line) for i in issues] == [(location, line)]


def test_not_yaml_and_not_a_mapping_and_huge() -> None:
    assert "not valid YAML" in parse_config("a: [\n")[1][0].message
    assert "mapping" in parse_config("- 1\n- 2\n")[1][0].message
    assert "larger than" in parse_config("x: " + "a" * 300_000)[1][0].message
    assert parse_config("")[0] == AgentConfig()


def test_load_config_raises_one_error_listing_all_issues(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("spool:\n  max_mb: 0\n  zstd_level: 99\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert "spool.max_mb" in str(err.value) and "spool.zstd_level" in str(err.value)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=60)


def test_cli_config_validate_and_schema(tmp_path: Path) -> None:
    ok = _cli("config", "validate", str(EXAMPLE))
    assert ok.returncode == 0 and "valid" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("scoring:\n  lidar:\n    min_points: -5\n  colour: red\n")
    res = _cli("config", "validate", str(bad))
    assert res.returncode == 1
    assert "scoring.lidar.min_points (line 3)" in res.stderr
    assert "scoring.colour (line 4)" in res.stderr
    assert "Traceback" not in res.stderr
    missing = _cli("config", "validate", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    schema = json.loads(_cli("config", "schema").stdout)
    assert schema["additionalProperties"] is False
    assert "scoring" in schema["properties"]

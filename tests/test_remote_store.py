"""ConfigStore, persistence and merge rules, without a broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.remote import ApplyStatus, ConfigPersister, ConfigStore, startup_config
from agent.remote.merge import deep_merge, is_protected, overlay_protected, protected_changes
from agent.remote.persist import STATE_FILE


def cfg(version: int, **sections: object) -> AgentConfig:
    return AgentConfig.model_validate({"version": version, **sections})


def test_apply_swaps_whole_configs_and_enforces_increasing_versions() -> None:
    store = ConfigStore(cfg(5))
    first = store.current
    assert store.apply(cfg(5)).error == "replayed version 5: must be above 5"
    assert store.apply(cfg(2)).status is ApplyStatus.REJECTED
    assert store.current is first
    result = store.apply(cfg(9, inputs={"nominal_hz": 3.0}))
    assert (result.status, result.version, result.requested_version) == (ApplyStatus.ACCEPTED, 9, 9)
    assert store.current.inputs.nominal_hz == 3.0 and store.version_floor == 9
    # force (a rollback) may go down without lowering the floor.
    assert store.apply(first, force=True).ok and store.current is first and store.version_floor == 9
    assert store.apply(cfg(7)).status is ApplyStatus.REJECTED


def test_subscribers_are_told_in_order_and_a_raising_one_rolls_everything_back() -> None:
    store = ConfigStore(cfg(1))
    calls: list[tuple[str, int, int]] = []
    store.subscribe(lambda new, old: calls.append(("a", new.version, old.version)), name="a")

    def b(new: AgentConfig, old: AgentConfig) -> None:
        calls.append(("b", new.version, old.version))
        if new.version == 3:
            raise ValueError("nope")

    unsubscribe_b = store.subscribe(b, name="b")
    store.subscribe(lambda new, old: calls.append(("c", new.version, old.version)), name="c")
    assert store.apply(cfg(2)).ok
    assert calls == [("a", 2, 1), ("b", 2, 1), ("c", 2, 1)]
    calls.clear()
    before = store.current
    result = store.apply(cfg(3))
    assert result.status is ApplyStatus.ROLLED_BACK and result.version == 2
    assert result.error == "subscriber b failed: ValueError: nope"
    # a and b (which may have half-rebuilt) go back to 2; c never heard of 3.
    assert calls == [("a", 3, 2), ("b", 3, 2), ("a", 2, 3), ("b", 2, 3)]
    assert store.current is before and store.version_floor == 2
    unsubscribe_b()
    assert store.apply(cfg(3)).ok


def test_persisted_config_survives_restart_and_wins_only_when_newer(tmp_path: Path) -> None:
    file_config = cfg(5, vehicle_id="car-1", remote={"state_dir": str(tmp_path)})
    store = ConfigStore.open(file_config)
    assert store.current is file_config and not (tmp_path / STATE_FILE).exists()
    new = file_config.model_copy(update={"version": 8})
    assert store.apply(new).ok
    doc = json.loads((tmp_path / STATE_FILE).read_text())
    assert doc["format"] == 1 and doc["config"]["version"] == 8
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temp file left behind

    assert ConfigStore.open(file_config).current.version == 8
    newer_file = file_config.model_copy(update={"version": 10})
    reopened = ConfigStore.open(newer_file)
    assert reopened.current is newer_file and reopened.version_floor == 10


def test_local_file_stays_authoritative_for_protected_keys(tmp_path: Path) -> None:
    persister = ConfigPersister(tmp_path)
    persister.save(cfg(8, vehicle_id="old-name", spool={"path": "/old"}, inputs={"nominal_hz": 4.0}), 9)
    start = startup_config(cfg(5, vehicle_id="new-name", spool={"path": "/new"}), persister)
    assert start.source == "persisted" and start.version_floor == 9
    assert (start.config.vehicle_id, start.config.spool.path) == ("new-name", "/new")
    assert start.config.inputs.nominal_hz == 4.0


@pytest.mark.parametrize("content", [b"{", b"\xff", b"[]", b'{"format": 1, "config": {"version": "x"}}',
                                     b'{"format": 99, "config": {}}'])
def test_unusable_state_file_is_ignored_in_favour_of_the_file(tmp_path: Path, content: bytes) -> None:
    (tmp_path / STATE_FILE).write_bytes(content)
    file_config = cfg(5)
    start = startup_config(file_config, ConfigPersister(tmp_path))
    assert start.config is file_config and start.source == "file" and "ignored" in start.note


def test_failing_to_persist_rolls_back(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state folder should be")
    store = ConfigStore(cfg(1), persister=ConfigPersister(blocker))
    seen: list[int] = []
    store.subscribe(lambda new, _old: seen.append(new.version))
    result = store.apply(cfg(2))
    assert result.status is ApplyStatus.ROLLED_BACK and "cannot persist" in (result.error or "")
    assert store.current.version == 1 and store.version_floor == 1 and seen == [2, 1]


def test_deep_merge_merges_mappings_and_replaces_everything_else() -> None:
    base = {"a": {"x": 1, "y": {"p": 1, "q": 2}}, "l": [1, 2], "s": "k"}
    patch = {"a": {"y": {"q": 3}}, "l": [9], "n": {"new": True}}
    assert deep_merge(base, patch) == {"a": {"x": 1, "y": {"p": 1, "q": 3}}, "l": [9], "s": "k", "n": {"new": True}}
    assert base["a"]["y"]["q"] == 2  # inputs untouched


def test_protected_keys_cover_identity_storage_and_credentials() -> None:
    for path in ("vehicle_id", "spool.path", "uplink.broker", "uplink.username", "uplink.password_file",
                 "uplink.tls_ca", "uplink.tls_cert", "uplink.tls_key", "uplink.topic_prefix", "remote.public_key"):
        assert is_protected(path), path
    for path in ("spool.max_mb", "uplink.max_in_flight", "uplink.keepalive_s", "remote.groups", "policy.camera"):
        assert not is_protected(path), path
    old = AgentConfig().model_dump(mode="json")
    new = deep_merge(old, {"vehicle_id": "x", "spool": {"path": "p", "max_mb": 1.0}})
    assert protected_changes(old, new) == ["spool.path", "vehicle_id"]
    assert overlay_protected(new, old)["vehicle_id"] == old["vehicle_id"]

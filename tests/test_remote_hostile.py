"""Hostile config/set messages over a real broker: each is rejected with its reason, nothing changes or persists.

The vehicle requires signatures, so content checks are exercised with correctly signed documents: a valid
signature never makes a bad config acceptable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from mqtt_broker import Broker, find_mosquitto
from remote_support import Vehicle, envelope, running_vehicle, vehicle_config

from agent.remote.persist import STATE_FILE
from agent.remote.signing import public_key_text, sign_config

KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()


def signed(config: dict[str, Any], key: Ed25519PrivateKey = KEY) -> bytes:
    return envelope(config, request_id="hostile", signature=sign_config(key, config))


@pytest.fixture(scope="module")
def car(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Vehicle, Path]]:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (scripts/setup.sh installs it)")
    root = tmp_path_factory.mktemp("hostile")
    config = vehicle_config("car-h", root / "state", public_key=public_key_text(KEY))
    with Broker(root / "broker") as broker, running_vehicle(broker.url, config) as vehicle:
        yield vehicle, root / "state"


HOSTILE: list[tuple[str, bytes, str]] = [
    ("not_json", b"{version: 6", "not JSON"),
    ("not_utf8", b'{"version": 6, "vehicle_id": "\xff\xfe"}', "not UTF-8"),
    ("json_array", b'[{"version": 6}]', "must be a JSON object, got list"),
    ("json_string", b'"version 6"', "must be a JSON object, got str"),
    ("nan", b'{"config": {"version": 6, "inputs": {"nominal_hz": NaN}}, "signature": "x"}', "NaN is not valid"),
    ("duplicate_keys", b'{"config": {"version": 6, "version": 7}, "signature": "x"}', "duplicate key 'version'"),
    ("deep_nesting", b"[" * 60_000, "nested too deeply"),
    ("huge", signed({"version": 6, "pad": "x" * 70_000}), "over the 65536 byte cap"),
    ("wrong_type", signed({"version": 6, "spool": {"max_mb": "lots"}}), "spool.max_mb"),
    ("unknown_key", signed({"version": 6, "scoring": {"colour": "red"}}), "scoring.colour"),
    ("out_of_range", signed({"version": 6, "scoring": {"camera": {"blur_min_ratio": 7}}}),
     "scoring.camera.blur_min_ratio"),
    ("section_not_mapping", signed({"version": 6, "policy": [1, 2]}), "invalid config: policy"),
    ("null_value", signed({"version": 6, "inputs": None}), "invalid config: inputs"),
    ("no_version", signed({"inputs": {"nominal_hz": 5.0}}), "integer version"),
    ("bool_version", signed({"version": True}), "integer version"),
    ("stale_version", signed({"version": 3}), "stale version 3: must be above 5"),
    ("replayed_version", signed({"version": 5}), "replayed version 5"),
    ("forbidden_vehicle_id", signed({"version": 6, "vehicle_id": "car-x"}), "not remotely changeable: vehicle_id"),
    ("forbidden_spool_path", signed({"version": 6, "spool": {"path": "/"}}), "not remotely changeable: spool.path"),
    ("forbidden_broker", signed({"version": 6, "uplink": {"broker": "mqtt://evil:1883"}}), "uplink.broker"),
    ("forbidden_public_key", signed({"version": 6, "remote": {"public_key": public_key_text(OTHER_KEY)}}),
     "remote.public_key"),
    ("forbidden_disable", signed({"version": 6, "remote": {"enabled": False}}), "remote.enabled"),
    ("forbidden_model_file", signed({"version": 6, "model": {"camera": {"path": "/etc/shadow"}}}), "model.camera.path"),
    ("bad_signature", signed({"version": 6}, OTHER_KEY), "bad signature"),
    ("tampered", envelope({"version": 6, "policy": {"camera": {"keep_harmful": True}}}, "t",
                          sign_config(KEY, {"version": 6})), "bad signature"),
    ("garbage_signature", envelope({"version": 6}, "g", "!!!not base64!!!"), "bad signature"),
    ("unsigned_bare", json.dumps({"version": 6}).encode(), "unsigned config"),
    ("unsigned_envelope", envelope({"version": 6}, "u"), "unsigned config"),
    ("envelope_extra_key", b'{"config": {"version": 6}, "signature": "x", "exec": "rm"}',
     "unknown envelope keys: exec"),
    ("envelope_config_not_object", b'{"config": "version: 6", "signature": "x"}', "config must be a JSON object"),
    ("whitespace", b"  \n", "not JSON"),
]


@pytest.mark.parametrize(("payload", "reason"), [(p, r) for _n, p, r in HOSTILE], ids=[n for n, _p, _r in HOSTILE])
def test_hostile_message_is_rejected_with_reason_and_changes_nothing(
    car: tuple[Vehicle, Path], payload: bytes, reason: str
) -> None:
    vehicle, state_dir = car
    before = vehicle.store.current
    report = vehicle.send(payload)
    assert report.status == "rejected", report
    assert reason in (report.error or ""), report.error
    assert report.version == 5
    assert vehicle.store.current is before  # the very same object: nothing was swapped, even briefly
    assert not (state_dir / STATE_FILE).exists()


def test_signed_update_is_accepted_after_all_that(car: tuple[Vehicle, Path]) -> None:
    """Runs last in this module: the channel still works and the counters saw every rejection."""
    vehicle, state_dir = car
    rejected_before = vehicle.manager.counters.rejected
    assert rejected_before >= len(HOSTILE)
    report = vehicle.send(signed({"version": 6, "inputs": {"nominal_hz": 12.0}}))
    assert (report.status, report.version, report.request_id) == ("accepted", 6, "hostile")
    assert vehicle.store.current.inputs.nominal_hz == 12.0
    assert (state_dir / STATE_FILE).exists()

"""Hostile config/set messages over a real broker: each is rejected with its reason, nothing changes or persists.

The vehicle requires signatures, so content checks are exercised with correctly signed documents: a valid
signature never makes a bad config acceptable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from mqtt_broker import Broker, find_mosquitto
from remote_support import Vehicle, envelope, publish, running_vehicle, vehicle_config
from uplink_support import wait_for

from agent.remote.hardening import REFUSED_PATH
from agent.remote.persist import STATE_FILE
from agent.remote.signing import public_key_text, sign_config, signed_envelope

KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()


def signed(config: dict[str, Any], key: Ed25519PrivateKey = KEY, target: str = "vehicle:car-h",
           valid_s: float = 3600.0, reset: bool = False) -> bytes:
    doc = signed_envelope(key, config, target=target, not_after=int(time.time() + valid_s), reset=reset,
                          request_id="hostile")
    return json.dumps(doc).encode()


@pytest.fixture(scope="module")
def car(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Vehicle, Path]]:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (scripts/setup.sh installs it)")
    root = tmp_path_factory.mktemp("hostile")
    config = vehicle_config("car-h", root / "state", public_key=public_key_text(KEY))
    with Broker(root / "broker") as broker, running_vehicle(broker.url, config) as vehicle:
        yield vehicle, root / "state"


def _swap(payload: bytes, **changes: Any) -> bytes:
    """A signed envelope with some of its fields replaced after signing (a tampering relay)."""
    return json.dumps({**json.loads(payload), **changes}).encode()


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
    ("tampered", _swap(signed({"version": 6}), config={"version": 6, "policy": {"camera": {"keep_harmful": True}}}),
     "bad signature"),
    ("garbage_signature", _swap(signed({"version": 6}), signature="!!!not base64!!!"), "bad signature"),
    ("legacy_signature_without_addressing", envelope({"version": 6}, "l", sign_config(KEY, {"version": 6})),
     "must carry target and not_after"),
    ("signed_for_another_vehicle", signed({"version": 6}, target="vehicle:car-2"), "addressed to vehicle:car-2"),
    ("signed_for_a_group_sent_direct", signed({"version": 6}, target="group:fleet-a"), "addressed to group:fleet-a"),
    ("retargeted", _swap(signed({"version": 6}, target="vehicle:car-2"), target="vehicle:car-h"), "bad signature"),
    ("expired", signed({"version": 6}, valid_s=-5), "expired"),
    ("extended", _swap(signed({"version": 6}, valid_s=-5), not_after=2**40), "bad signature"),
    ("version_jump_2_53", signed({"version": 2**53}), "remote.max_version_jump"),
    ("restart_only_uplink", signed({"version": 6, "uplink": {"retry_no_subscribers": False}}),
     "restart-only, set in the local file: uplink.retry_no_subscribers"),
    ("restart_only_spool", signed({"version": 6, "spool": {"max_mb": 10}}), "restart-only, set in the local file: "
     "spool.max_mb"),
    ("unsigned_reset", b'{"config": {"version": 1}, "reset": true}', "unsigned config"),
    ("targets_missing_file", signed({"version": 6, "model": {"camera": {"targets": ["/etc/shadow.png"]}}}),
     REFUSED_PATH),
    ("targets_existing_file", signed({"version": 6, "model": {"camera": {"targets": ["/etc/passwd"]}}}),
     REFUSED_PATH),
    ("exemplars_escape", signed({"version": 6, "model": {"lidar": {"exemplars": ["../state/x.npy"]}}}),
     REFUSED_PATH),
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


def test_signed_reset_unlocks_a_vehicle_and_a_burst_coalesces_to_the_newest(tmp_path: Path) -> None:
    """A signed administrative reset sets any version (lower too); a burst behind a slow apply ends on the newest
    version, the overflow reported as superseded."""
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (scripts/setup.sh installs it)")
    config = vehicle_config("car-r", tmp_path / "state", public_key=public_key_text(KEY), queue_size=2)
    with Broker(tmp_path / "broker") as broker, running_vehicle(broker.url, config) as vehicle:
        assert vehicle.send(signed({"version": 1000}, target="vehicle:car-r")).status == "accepted"
        refused = vehicle.send(signed({"version": 7}, target="vehicle:car-r", reset=True, valid_s=-1))
        assert refused.status == "rejected" and "expired" in (refused.error or "")
        report = vehicle.send(signed({"version": 7}, target="vehicle:car-r", reset=True))
        assert (report.status, report.version) == ("accepted", 7) and vehicle.store.version_floor == 7
        assert vehicle.send(signed({"version": 8}, target="vehicle:car-r")).status == "accepted"

        vehicle.store.subscribe(lambda _new, _old: time.sleep(0.4), name="slow")  # the worker falls behind
        vehicle.watcher.mark()
        for version in range(9, 17):
            publish(vehicle.watcher.collector.client, "edgesift/car-r/config/set",
                    signed({"version": version, "inputs": {"nominal_hz": float(version)}}, target="vehicle:car-r"))
        wait_for(lambda: vehicle.store.current.version == 16, 20, "the newest version of the burst")
        time.sleep(0.5)
        assert vehicle.store.current.inputs.nominal_hz == 16.0
        reports = vehicle.watcher.reports()[-8:]
        assert sum(r.status == "accepted" for r in reports) < 8  # coalesced: not every version was applied
        assert all(r.status == "accepted" or "superseded" in (r.error or "") or "stale" in (r.error or "")
                   for r in reports), reports

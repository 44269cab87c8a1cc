"""Remote configuration end to end over a real mosquitto: accept, persist, restart, merge, roll back, groups."""

from __future__ import annotations

import json
from pathlib import Path

from remote_support import TIMEOUT, StateWatcher, running_vehicle, vehicle_config, watcher_client

from agent.config import AgentConfig
from agent.fleet.collect import TopicCollector
from agent.remote import ConfigStore
from agent.remote.persist import STATE_FILE


def test_accepted_update_is_applied_reported_persisted_and_wins_after_restart(broker, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    config = vehicle_config("car-1", state_dir)
    with running_vehicle(broker.url, config) as car:
        report = car.send({"version": 6, "policy": {"camera": {"keep_min_score": 0.4}}})
        assert (report.status, report.version, report.requested_version, report.error) == ("accepted", 6, 6, None)
        assert car.store.current.version == 6
        assert car.store.current.policy.camera.keep_min_score == 0.4
        saved = json.loads((state_dir / STATE_FILE).read_text())
        assert saved["config"]["version"] == 6 and saved["version_floor"] == 6
        assert car.manager.counters.accepted == 1

    # The report is retained: a fleet tool connecting later still sees it.
    with watcher_client(broker.url) as client:
        retained = TopicCollector(client, ["edgesift/car-1/config/state"]).start(TIMEOUT)
        message = retained.wait_for(lambda m: m.retained, TIMEOUT)
        assert message is not None and json.loads(message.payload)["status"] == "accepted"

    # Restart from the same (older) file config: the persisted version 6 wins, and 6 cannot be replayed.
    assert ConfigStore.open(config).current.policy.camera.keep_min_score == 0.4
    with running_vehicle(broker.url, config) as car:
        assert car.store.current.version == 6
        assert car.watcher.reports()[0].version == 6  # the startup report
        replay = car.send({"version": 6, "policy": {"camera": {"keep_min_score": 0.9}}})
        assert replay.status == "rejected" and "replayed version 6" in (replay.error or "")
        assert car.store.current.policy.camera.keep_min_score == 0.4


def test_partial_update_is_deep_merged_onto_the_running_config(broker, tmp_path: Path) -> None:
    config = AgentConfig.model_validate({
        **vehicle_config("car-2", tmp_path / "state").model_dump(mode="json"),
        "policy": {"camera": {"keep_min_score": 0.2, "budget": {"frames_per_min": 30}}},
        "scoring": {"memory_size": 99},
    })
    with running_vehicle(broker.url, config) as car:
        report = car.send({"version": 7, "policy": {"camera": {"budget": {"mb_per_min": 12.5}}}})
        assert report.status == "accepted", report
        new = car.store.current
        assert new.policy.camera.budget.mb_per_min == 12.5
        assert new.policy.camera.budget.frames_per_min == 30  # sibling key kept
        assert new.policy.camera.keep_min_score == 0.2  # parent's other keys kept
        assert new.scoring.memory_size == 99  # other sections untouched
        assert new.vehicle_id == "car-2"


def test_guardrail_breach_rolls_back_to_last_good_and_persists_it(broker, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    guard = {"enabled": True, "keep_rate_min": 0.05, "keep_rate_max": 0.5, "window_frames": 50, "min_frames": 10}
    config = vehicle_config("car-3", state_dir, guardrails=guard)
    with running_vehicle(broker.url, config) as car:
        good = car.store.current
        report = car.send({"config": {"version": 8, "policy": {"lidar": {"keep_harmful": True}}}, "id": "r8"})
        assert report.status == "accepted"
        # The new config keeps almost everything: 45 of 50 decisions are "keep".
        verdicts = [car.manager.observe(i % 10 != 0, 1_000_000_000 + i * 100_000_000) for i in range(50)]
        assert verdicts[:-1] == [None] * 49 and verdicts[-1] is not None and not verdicts[-1].ok
        rolled = car.watcher.next()
        assert (rolled.status, rolled.version, rolled.requested_version, rolled.request_id, rolled.via) == (
            "rolled_back", 5, 8, "r8", "guardrails")
        assert "above max 0.5" in (rolled.error or "")
        assert car.store.current == good
        saved = json.loads((state_dir / STATE_FILE).read_text())
        assert saved["config"]["version"] == 5 and saved["version_floor"] == 8
        # After the window the monitor is idle: more decisions change nothing.
        assert car.manager.observe(True, 10_000_000_000) is None
        # The bad version cannot be replayed; a new one is accepted and judged again.
        assert car.send({"version": 8}).status == "rejected"
        assert car.send({"version": 9, "policy": {"lidar": {"keep_harmful": True}}}).status == "accepted"
        verdicts = [car.manager.observe(i % 4 == 0, 20_000_000_000 + i) for i in range(50)]
        assert verdicts[-1] is not None and verdicts[-1].ok
        assert car.store.current.version == 9
    assert ConfigStore.open(config).current.version == 9


def test_failing_subscriber_rolls_the_update_back(broker, tmp_path: Path) -> None:
    config = vehicle_config("car-4", tmp_path / "state")
    with running_vehicle(broker.url, config) as car:
        before = car.store.current
        seen: list[int] = []
        car.store.subscribe(lambda new, _old: seen.append(new.version), name="recorder")

        def scorer_rebuild(new: AgentConfig, _old: AgentConfig) -> None:
            if new.scoring.memory_size == 13:
                raise RuntimeError("cannot allocate 13 slots")

        car.store.subscribe(scorer_rebuild, name="scorer")
        report = car.send({"version": 6, "scoring": {"memory_size": 13}})
        assert report.status == "rolled_back" and report.version == 5 and report.requested_version == 6
        assert "scorer failed: RuntimeError: cannot allocate 13 slots" in (report.error or "")
        assert car.store.current is before
        assert seen == [6, 5]  # the recorder was told to go back
        assert not (tmp_path / "state" / STATE_FILE).exists()
        # Same version again, fixed: accepted (a rolled-back subscriber failure does not burn the version).
        assert car.send({"version": 6, "scoring": {"memory_size": 14}}).status == "accepted"


def test_group_update_reaches_its_members_only(broker, tmp_path: Path) -> None:
    configs = [
        vehicle_config("car-a", tmp_path / "a", groups=["fleet-a"]),
        vehicle_config("car-b", tmp_path / "b", groups=["night", "fleet-a"]),
        vehicle_config("car-c", tmp_path / "c", groups=["fleet-b"]),
    ]
    with running_vehicle(broker.url, configs[0]) as a, running_vehicle(broker.url, configs[1]) as b, \
            running_vehicle(broker.url, configs[2]) as c:
        report_a = a.send({"version": 6, "inputs": {"nominal_hz": 20.0}}, topic="edgesift/group/fleet-a/config/set")
        report_b = b.watcher.next()
        assert report_a.status == report_b.status == "accepted"
        assert report_a.via == report_b.via == "group/fleet-a"
        assert a.store.current.inputs.nominal_hz == b.store.current.inputs.nominal_hz == 20.0
        # A direct update to c is answered; had c seen the group update, its report would have come first.
        assert c.send({"version": 6}).via == "vehicle"
        assert [r.via for r in c.watcher.reports()] == ["startup", "vehicle"]
        assert c.store.current.inputs.nominal_hz == 10.0

        # Group membership is itself remote config: b leaves fleet-a and stops hearing it.
        assert b.send({"version": 7, "remote": {"groups": ["night"]}}).status == "accepted"
        report = a.send({"version": 8}, topic="edgesift/group/fleet-a/config/set")
        assert report.status == "accepted"
        assert b.send({"version": 9}).requested_version == 9
        assert [r.requested_version for r in b.watcher.reports()] == [5, 6, 7, 9]  # never saw 8


def test_retained_push_is_applied_once_and_not_reported_again_on_reconnect(broker, tmp_path: Path) -> None:
    config = vehicle_config("car-5", tmp_path / "state")
    with running_vehicle(broker.url, config) as car, watcher_client(broker.url) as client:
        info = client.publish("edgesift/car-5/config/set", json.dumps({"version": 6}).encode(), qos=1, retain=True)
        info.wait_for_publish(TIMEOUT)
        assert car.watcher.next().status == "accepted"
    with running_vehicle(broker.url, config) as car:
        # The retained push arrives again on subscribe, is recognised as applied, and no report follows it.
        assert car.send({"version": 7}).requested_version == 7
        assert car.manager.counters.ignored_retained == 1
        # Clearing the retained push (an empty retained message) is not an update either.
        info = car.watcher.collector.client.publish("edgesift/car-5/config/set", b"", qos=1, retain=True)
        info.wait_for_publish(TIMEOUT)
        assert car.send({"version": 8}).requested_version == 8
        assert car.manager.counters.ignored_empty == 1
        assert [r.requested_version for r in car.watcher.reports()] == [6, 7, 8]  # startup (running 6), 7, 8


def test_manager_shares_an_existing_client(broker, tmp_path: Path) -> None:
    """The daemon's seam: one connection for uplink and remote config; the owner forwards on_connect."""
    from agent.remote import RemoteConfigManager

    store = ConfigStore.open(vehicle_config("car-6", tmp_path / "state"))
    with watcher_client(broker.url) as shared, watcher_client(broker.url) as tool:
        watcher = StateWatcher(tool, "car-6")
        manager = RemoteConfigManager(shared, store)
        manager.start()  # already connected: subscribes at once
        try:
            assert watcher.next().via == "startup"
            watcher.mark()
            tool.publish("edgesift/car-6/config/set", b'{"version": 6}', qos=1).wait_for_publish(TIMEOUT)
            assert watcher.next().status == "accepted"
        finally:
            manager.stop()


def test_manager_from_store_connects_with_the_uplink_settings(broker, tmp_path: Path) -> None:
    from agent.remote import RemoteConfigManager

    config = AgentConfig.model_validate({**vehicle_config("car-7", tmp_path / "state").model_dump(mode="json"),
                                         "uplink": {"broker": broker.url}})
    manager = RemoteConfigManager.from_store(ConfigStore.open(config))
    with watcher_client(broker.url) as tool:
        watcher = StateWatcher(tool, "car-7")
        manager.start()
        try:
            assert watcher.next().via == "startup"
        finally:
            manager.stop()

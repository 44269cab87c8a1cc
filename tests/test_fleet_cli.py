"""`edgesift fleet ...` against live vehicles (managers in this process) on a real mosquitto."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from remote_support import TIMEOUT, running_vehicle, vehicle_config, watcher_client

from agent.cli import main
from agent.remote.signing import load_public_key


def write(path: Path, doc: dict) -> str:
    path.write_text(json.dumps(doc) if path.suffix == ".json" else "\n".join(f"{k}: {json.dumps(v)}"
                                                                              for k, v in doc.items()))
    return str(path)


def test_push_to_a_vehicle_reports_accepted_then_rejects_the_same_version(broker, tmp_path: Path, capsys) -> None:
    update = write(tmp_path / "update.yaml", {"version": 6, "policy": {"camera": {"keep_min_score": 0.3}}})
    with running_vehicle(broker.url, vehicle_config("car-1", tmp_path / "state")) as car:
        code = main(["fleet", "config", "push", "--broker", broker.url, "--vehicle", "car-1", update])
        out = capsys.readouterr().out.strip()
        assert code == 0, out
        assert out == "car-1 accepted (running version 6, requested 6)"
        assert car.store.current.policy.camera.keep_min_score == 0.3

        code = main(["fleet", "config", "push", "--broker", broker.url, "--vehicle", "car-1", update])
        out = capsys.readouterr().out.strip()
        assert code == 1 and out.startswith("car-1 rejected (running version 6, requested 6): replayed version 6")
        assert len(out.splitlines()) == 1


def test_push_to_a_group_collects_every_member(broker, tmp_path: Path, capsys) -> None:
    update = write(tmp_path / "update.json", {"version": 7, "inputs": {"nominal_hz": 15.0}})
    a = vehicle_config("car-a", tmp_path / "a", groups=["fleet-a"])
    b = vehicle_config("car-b", tmp_path / "b", groups=["fleet-a"])
    with running_vehicle(broker.url, a), running_vehicle(broker.url, b):
        code = main(["fleet", "config", "push", "--broker", broker.url, "--group", "fleet-a", "--expect", "2", update])
        out = capsys.readouterr().out.strip()
    assert code == 0, out
    assert out.startswith("group fleet-a: 2 answered, 2 accepted: car-a accepted")
    assert "car-b accepted" in out


def test_push_refuses_an_invalid_file_before_touching_the_broker(tmp_path: Path, capsys) -> None:
    bad = write(tmp_path / "bad.yaml", {"version": 6, "scoring": {"memory_size": -1}})
    no_version = write(tmp_path / "nov.yaml", {"inputs": {"nominal_hz": 5.0}})
    for path, words in ((bad, "scoring.memory_size"), (no_version, "integer version")):
        # Port 9 (discard) on loopback: nothing listens, so reaching the broker would fail differently.
        code = main(["fleet", "config", "push", "--broker", "mqtt://127.0.0.1:9", "--vehicle", "car-1", path])
        err = capsys.readouterr().err
        assert code == 1 and words in err and "Traceback" not in err


def test_push_without_an_answer_times_out_non_zero(broker, tmp_path: Path, capsys) -> None:
    update = write(tmp_path / "u.yaml", {"version": 6})
    code = main(["fleet", "config", "push", "--broker", broker.url, "--vehicle", "nobody", "--timeout", "0.5",
                 update])
    assert code == 3 and "nobody: no answer to version 6" in capsys.readouterr().out


def test_signed_push_with_a_keygen_key(broker, tmp_path: Path, capsys) -> None:
    assert main(["fleet", "keygen", "--out", str(tmp_path / "fleet")]) == 0
    assert (tmp_path / "fleet.key").stat().st_mode & 0o777 == 0o600
    public = (tmp_path / "fleet.pub").read_text()
    load_public_key(public)
    update = write(tmp_path / "u.yaml", {"version": 6, "inputs": {"nominal_hz": 7.0}})
    config = vehicle_config("car-s", tmp_path / "state", public_key=public)
    with running_vehicle(broker.url, config) as car:
        args = ["fleet", "config", "push", "--broker", broker.url, "--vehicle", "car-s", update]
        assert main(args) == 1 and "unsigned config" in capsys.readouterr().out
        assert main([*args, "--sign-key", str(tmp_path / "fleet.key")]) == 0
        assert "car-s accepted" in capsys.readouterr().out
        assert car.store.current.inputs.nominal_hz == 7.0
    assert main(["fleet", "keygen", "--out", str(tmp_path / "fleet")]) == 1  # never overwrites a key


def test_status_lists_online_vehicles_with_version_and_stats(broker, tmp_path: Path, capsys) -> None:
    with running_vehicle(broker.url, vehicle_config("car-1", tmp_path / "state")) as car, \
            watcher_client(broker.url) as uplink:
        car.send({"version": 6})
        # Stand-in for the uplink: retained online status, periodic stats (not retained).
        uplink.publish("edgesift/car-1/status", b"online", qos=1, retain=True).wait_for_publish(TIMEOUT)
        uplink.publish("edgesift/car-9/status", b"offline", qos=1, retain=True).wait_for_publish(TIMEOUT)
        stop = threading.Event()

        def stats() -> None:
            n = 0
            while not stop.wait(0.05):
                n += 1
                uplink.publish("edgesift/car-1/stats", json.dumps({"frames_kept": n, "keep_rate": 0.25}).encode())

        thread = threading.Thread(target=stats)
        thread.start()
        try:
            code = main(["fleet", "status", "--broker", broker.url, "--window", "0.6"])
            out = capsys.readouterr().out
            assert main(["fleet", "status", "--broker", broker.url, "--window", "0.3", "--json"]) == 0
            records = {r["vehicle"]: r for r in json.loads(capsys.readouterr().out)}
        finally:
            stop.set()
            thread.join()
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert lines["car-1"].split()[1:4] == ["online", "v6", "(accepted)"]
    assert '"keep_rate":0.25' in lines["car-1"]
    assert lines["car-9"].split()[1:3] == ["offline", "v?"]
    assert records["car-1"]["version"] == 6 and records["car-1"]["stats"]["keep_rate"] == 0.25


@pytest.mark.parametrize("url", ["http://x", "mqtt://user:secret@host:1883", "mqtt://:1883"])
def test_bad_broker_urls_are_one_line_errors(url: str, tmp_path: Path, capsys) -> None:
    assert main(["fleet", "status", "--broker", url, "--window", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("edgesift: error: ") and len(err.strip().splitlines()) == 1
    assert "secret" not in err

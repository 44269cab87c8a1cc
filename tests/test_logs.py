"""What the logs say: one line per remote update, a refused change as one warning without a traceback, no ERROR
for an expected disconnect, and the reason when TLS refuses the broker."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from mqtt_broker import Broker, find_mosquitto, free_port
from remote_support import running_vehicle, vehicle_config
from uplink_support import open_spool, uplink_config

from agent.errors import ConfigError
from agent.uplink.uplink import Uplink

REPO = Path(__file__).resolve().parents[1]


def _lines(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(name)]


def test_remote_updates_one_line_each_and_a_refusal_without_traceback(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (scripts/setup.sh installs it)")
    config = vehicle_config("car-l", tmp_path / "state")

    def refuse_sources(new, _old) -> None:  # as the daemon does for a remote `sources` change (boot vs new)
        if new.inputs != config.inputs:
            raise ConfigError("sources can only change in the local file, with a restart")

    caplog.set_level(logging.INFO, logger="agent")
    with Broker(tmp_path / "broker") as broker, running_vehicle(broker.url, config) as vehicle:
        vehicle.store.subscribe(refuse_sources, "daemon")
        caplog.clear()
        assert vehicle.send({"version": 6, "policy": {"camera": {"keep_harmful": True}}}).status == "accepted"
        assert vehicle.send({"version": 7, "inputs": {"nominal_hz": 5.0}}).status == "rolled_back"
        assert vehicle.send({"version": 6}).status == "rejected"
    lines = [r for r in _lines(caplog, "agent.remote") if r.levelno >= logging.INFO]
    assert [(r.levelname, r.getMessage().split(":")[0]) for r in lines] == [
        ("INFO", "config update accepted (vehicle)"),
        ("WARNING", "config update rolled back (vehicle)"),
        ("WARNING", "config update rejected (vehicle)"),
    ]
    assert "version 6 now runs" in lines[0].getMessage()
    assert "version 7" in lines[1].getMessage() and "sources can only change" in lines[1].getMessage()
    assert all(r.exc_info is None for r in caplog.records)


def test_broker_down_is_not_an_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="paho")
    caplog.set_level(logging.INFO, logger="agent")
    url = f"mqtt://127.0.0.1:{free_port()}"
    with open_spool(tmp_path / "spool") as spool:
        uplink = Uplink(spool, uplink_config(url, reconnect_min_s=0.2, reconnect_max_s=0.4), "car-d")
        uplink.start()
        time.sleep(2.5)
        uplink.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
    warnings = [r.getMessage() for r in _lines(caplog, "agent.uplink") if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Connection refused" in warnings[0]  # once per outage, with the reason


def test_tls_refusal_reason_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if find_mosquitto() is None or shutil.which("openssl") is None:
        pytest.skip("mosquitto / openssl are not installed")
    pki, other = tmp_path / "pki", tmp_path / "other"
    for folder in (pki, other):
        subprocess.run(["bash", str(REPO / "scripts" / "make_test_certs.sh"), str(folder), "car-t"], check=True,
                       capture_output=True)
    tls = [f"cafile {pki / 'ca.crt'}", f"certfile {pki / 'server.crt'}", f"keyfile {pki / 'server.key'}"]
    caplog.set_level(logging.INFO, logger="agent")
    with Broker(tmp_path / "broker", extra_conf=tls) as broker, open_spool(tmp_path / "spool") as spool:
        # A CA that did not sign the broker's certificate: the handshake must fail, and the log must say so.
        uplink = Uplink(spool, uplink_config(broker.url, tls_ca=str(other / "ca.crt"), reconnect_max_s=0.5), "car-t")
        uplink.start()
        time.sleep(1.5)
        uplink.stop()
    messages = [r.getMessage() for r in _lines(caplog, "agent.uplink") if r.levelno == logging.WARNING]
    assert messages and "TLS certificate rejected: self-signed certificate in certificate chain" in messages[0]

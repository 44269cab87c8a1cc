"""The shipped broker example (config/mosquitto.conf + config/acl) with the test PKI: mutual TLS, passwords, ACL.

mosquitto runs with the example's own lines (paths and port rewritten), so these tests check the files we ship.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from mqtt_broker import Broker, find_mosquitto
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from remote_support import TIMEOUT, running_vehicle, vehicle_config

from agent.cli import main
from agent.fleet.collect import TopicCollector
from agent.remote import BrokerError, BrokerSettings
from agent.remote.mqttconn import connected, make_client

REPO = Path(__file__).resolve().parent.parent
USERS = ("vehicle-a", "vehicle-b", "fleet", "ingest")
NOT_AUTHORIZED = 0x87
SKIPPED_KEYS = {"listener", "persistence", "persistence_location", "log_dest", "allow_anonymous"}


def example_conf_lines(pki: Path, secrets: Path) -> list[str]:
    """config/mosquitto.conf without what the test Broker sets itself, with /etc paths pointed at tmp."""
    lines = []
    for raw in (REPO / "config" / "mosquitto.conf").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or line.split()[0] in SKIPPED_KEYS:
            continue
        lines.append(line.replace("/etc/mosquitto/certs", str(pki)).replace("/etc/mosquitto", str(secrets)))
    if os.geteuid() == 0:
        lines.append("user root")  # else mosquitto drops to its own user, who cannot read pytest's 0700 tmp dirs
    return lines


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    for tool in ("openssl", "mosquitto_passwd"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (scripts/setup.sh installs it)")
    root = tmp_path_factory.mktemp("secure")
    pki, secrets = root / "pki", root / "etc"
    secrets.mkdir()
    subprocess.run(["bash", str(REPO / "scripts" / "make_test_certs.sh"), str(pki), *USERS], check=True,
                   capture_output=True, timeout=60)
    shutil.copy(REPO / "config" / "acl", secrets / "acl")
    for i, user in enumerate(USERS):
        password = f"pw-{user}"
        (root / f"{user}.pw").write_text(password + "\n")
        flags = ["-b", "-c"] if i == 0 else ["-b"]
        subprocess.run(["mosquitto_passwd", *flags, str(secrets / "passwd"), user, password], check=True,
                       capture_output=True, timeout=30)
    with Broker(root / "broker", extra_conf=example_conf_lines(pki, secrets), allow_anonymous=False) as broker:
        yield {"broker": broker, "pki": pki, "root": root}


def settings(secure: dict[str, Any], user: str, cert: bool = True, password: str | None = None) -> BrokerSettings:
    pki = secure["pki"]
    return BrokerSettings.from_url(
        secure["broker"].url, cafile=str(pki / "ca.crt"), certfile=str(pki / f"{user}.crt") if cert else None,
        keyfile=str(pki / f"{user}.key") if cert else None, username=user, password=password or f"pw-{user}",
    )


def publish_reason(client: mqtt.Client, topic: str) -> int:
    """Publish QoS 1 and return the PUBACK reason code (MQTT 5)."""
    acks: dict[int, Any] = {}
    client.on_publish = lambda _c, _u, mid, reason, _p: acks.__setitem__(mid, reason)
    info = client.publish(topic, b"payload", qos=1)
    info.wait_for_publish(TIMEOUT)
    return int(acks[info.mid].value)


def test_vehicle_writes_only_its_own_topics(secure: dict[str, Any]) -> None:
    with connected(settings(secure, "ingest")) as ingest, connected(settings(secure, "vehicle-a")) as car:
        seen = TopicCollector(ingest, ["edgesift/+/frames/#"]).start(TIMEOUT)
        assert publish_reason(car, "edgesift/vehicle-a/frames/cam") < 0x80
        assert seen.wait_for(lambda m: m.topic == "edgesift/vehicle-a/frames/cam", TIMEOUT) is not None
        assert publish_reason(car, "edgesift/vehicle-b/frames/cam") == NOT_AUTHORIZED
        assert publish_reason(car, "edgesift/vehicle-a/config/set") == NOT_AUTHORIZED  # only the fleet commands
        assert publish_reason(car, "edgesift/group/fleet-a/config/set") == NOT_AUTHORIZED
        assert publish_reason(car, "edgesift/vehicle-a/frames/cam2") < 0x80  # a fence, and still connected
        assert seen.wait_for(lambda m: m.topic.endswith("cam2"), TIMEOUT) is not None
        assert [m.topic for m in seen.messages()] == ["edgesift/vehicle-a/frames/cam", "edgesift/vehicle-a/frames/cam2"]


def test_vehicle_reads_its_own_and_its_groups_config_set_only(secure: dict[str, Any]) -> None:
    with connected(settings(secure, "vehicle-a")) as a, connected(settings(secure, "vehicle-b")) as b, \
            connected(settings(secure, "fleet")) as fleet:
        a_seen = TopicCollector(a, ["edgesift/vehicle-a/config/set", "edgesift/vehicle-b/config/set",
                                    "edgesift/group/+/config/set"]).start(TIMEOUT)
        b_seen = TopicCollector(b, ["edgesift/vehicle-b/config/set"]).start(TIMEOUT)
        for topic in ("edgesift/vehicle-b/config/set", "edgesift/group/fleet-b/config/set",
                      "edgesift/group/fleet-a/config/set", "edgesift/vehicle-a/config/set"):
            assert publish_reason(fleet, topic) < 0x80, topic
        assert a_seen.wait_for(lambda m: m.topic == "edgesift/vehicle-a/config/set", TIMEOUT) is not None
        assert b_seen.wait_for(lambda m: True, TIMEOUT) is not None
        # Delivery is in order: by the time a has its own (last) message, anything it could read has arrived.
        assert [m.topic for m in a_seen.messages()] == ["edgesift/group/fleet-a/config/set",
                                                        "edgesift/vehicle-a/config/set"]


@pytest.mark.parametrize("case", ["no_certificate", "plain_mqtt"])
def test_connections_without_certificate_fail(secure: dict[str, Any], case: str) -> None:
    bad = {
        "no_certificate": lambda: settings(secure, "vehicle-a", cert=False),
        "plain_mqtt": lambda: BrokerSettings.from_url(f"mqtt://127.0.0.1:{secure['broker'].port}"),
    }[case]()
    with pytest.raises(BrokerError, match="closed the connection before accepting it"), connected(bad, timeout=5):
        pass


def test_another_vehicles_password_is_worthless_with_this_certificate(secure: dict[str, Any]) -> None:
    """The identity is the certificate's CN: B's user name and password with A's certificate act as A."""
    as_b = settings(secure, "vehicle-a")
    as_b = BrokerSettings.from_url(secure["broker"].url, cafile=as_b.cafile, certfile=as_b.certfile,
                                   keyfile=as_b.keyfile, username="vehicle-b", password="pw-vehicle-b")
    with connected(as_b) as car:
        assert publish_reason(car, "edgesift/vehicle-b/frames/cam") == NOT_AUTHORIZED
        assert publish_reason(car, "edgesift/vehicle-a/frames/cam") < 0x80


def _take_over(secure: dict[str, Any], user: str, client_id: str) -> None:
    """Connect as `user` asking for `client_id`, clean start, session expiry 0: a takeover attempt."""
    s = settings(secure, user)
    client = make_client(s, client_id)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    client.connect(s.host, s.port, clean_start=True, properties=props)
    client.loop_start()
    time.sleep(0.3)
    client.disconnect()
    client.loop_stop()


def test_client_id_takeover_of_the_ingest_or_another_vehicle_is_refused(secure: dict[str, Any],
                                                                         tmp_path: Path) -> None:
    """The broker forces client id = identity: a vehicle asking for the offline ingest's id (or another vehicle's)
    gets its own session instead, so the ingest's queued frames survive and vehicle B is not kicked off."""
    from uplink_support import IngestThread, fill_spool, open_spool, uplink_config, wait_for

    from agent.uplink import Uplink

    broker, pki = secure["broker"], secure["pki"]

    def tls(user: str) -> dict[str, str]:
        return {"tls_ca": str(pki / "ca.crt"), "tls_cert": str(pki / f"{user}.crt"),
                "tls_key": str(pki / f"{user}.key")}

    with IngestThread(broker.url, tmp_path / "ingest", shared=False, **tls("ingest")):
        pass  # subscribed once; now offline, its persistent session queues the frames
    with open_spool(tmp_path / "spool") as spool:
        ids = set(fill_spool(spool, 20))
        uplink = Uplink(spool, uplink_config(broker.url, delete_on="puback", **tls("vehicle-a")), "vehicle-a")
        uplink.start()
        try:
            wait_for(lambda: uplink.stats().acked >= len(ids), 20, "the broker to acknowledge every frame")
        finally:
            uplink.stop()
    with connected(settings(secure, "vehicle-b"), client_id="vehicle-b") as b:
        for client_id in ("edgesift-ingest", "ingest", "vehicle-b"):
            _take_over(secure, "vehicle-a", client_id)
        assert b.is_connected() and publish_reason(b, "edgesift/vehicle-b/status") < 0x80  # B was not kicked
    with IngestThread(broker.url, tmp_path / "ingest", shared=False, **tls("ingest")) as ingest:
        ingest.wait_frames(len(ids))  # every frame the broker acknowledged is still delivered
        assert ingest.stat("duplicates") == 0


def test_remote_config_round_trip_through_tls_and_the_acl(secure: dict[str, Any], capsys) -> None:
    root, pki, broker = secure["root"], secure["pki"], secure["broker"]
    vehicle = settings(secure, "vehicle-a")
    config = vehicle_config("vehicle-a", root / "state", groups=["fleet-a"])
    options = {"cafile": vehicle.cafile, "certfile": vehicle.certfile, "keyfile": vehicle.keyfile,
               "username": "vehicle-a", "password": "pw-vehicle-a"}
    update = root / "update.yaml"
    update.write_text("version: 6\ninputs:\n  nominal_hz: 5.0\n")
    tls = ["--broker", broker.url, "--cafile", str(pki / "ca.crt"), "--cert", str(pki / "fleet.crt"),
           "--key", str(pki / "fleet.key"), "--username", "fleet", "--password-file", str(root / "fleet.pw")]
    fleet = settings(secure, "fleet")
    watcher = {"cafile": fleet.cafile, "certfile": fleet.certfile, "keyfile": fleet.keyfile, "username": "fleet",
               "password": "pw-fleet"}
    with running_vehicle(broker.url, config, watcher, **options) as car:
        assert main(["fleet", "config", "push", "--group", "fleet-a", "--expect", "1", *tls, str(update)]) == 0
        assert "vehicle-a accepted" in capsys.readouterr().out
        assert car.store.current.inputs.nominal_hz == 5.0
        started = time.monotonic()
        assert main(["fleet", "status", "--window", "0.2", *tls]) == 0
        assert time.monotonic() - started < 5
        assert "v6 (accepted)" in capsys.readouterr().out


def test_receipts_flow_through_the_shipped_acl(secure: dict[str, Any], tmp_path: Path) -> None:
    """The ingest may write receipts for any vehicle and each vehicle reads its own: delete-on-receipt drains."""
    from uplink_support import IngestThread, fill_spool, open_spool, uplink_config

    from agent.uplink import Uplink

    broker, pki = secure["broker"], secure["pki"]

    def tls(user: str) -> dict[str, str]:
        return {"tls_ca": str(pki / "ca.crt"), "tls_cert": str(pki / f"{user}.crt"),
                "tls_key": str(pki / f"{user}.key")}

    with open_spool(tmp_path / "spool") as spool, \
            IngestThread(broker.url, tmp_path / "ingest", shared=False, **tls("ingest")) as ingest:  # fmt: skip
        ids = set(fill_spool(spool, 10))
        uplink = Uplink(spool, uplink_config(broker.url, delete_on="receipt", **tls("vehicle-a")), "vehicle-a")
        uplink.start()
        try:
            assert uplink.drain(20), uplink.stats()
        finally:
            stats = uplink.stop()
        assert stats.receipted == len(ids) and stats.bad_receipts == 0 and len(spool) == 0
        assert ingest.stat("receipted_frames") >= len(ids)

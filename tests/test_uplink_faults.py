"""The uplink under faults, against a real mosquitto: broker restarts and crashes, an agent killed mid-stream,
the spool filling up while offline, bad credentials, mutual TLS. Delivery is at least once on the wire; the
ingest index must end up with every frame exactly once."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mqtt_broker import find_mosquitto
from uplink_support import (
    FlakyLink,
    IngestThread,
    fill_spool,
    indexed,
    make_broker,
    open_spool,
    received_headers,
    uplink_config,
    wait_for,
)

from agent.uplink import Uplink

REPO = Path(__file__).resolve().parents[1]
FRAMES = 300  # ~95 KB real camera frames: ~1.5 s of streaming on loopback, long enough to cut it in the middle


@pytest.fixture(scope="module")
def backlog_spool(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """A spool of FRAMES real camera frames, filled once (a put is fsync'd: ~1 s) and copied by each test."""
    root = tmp_path_factory.mktemp("backlog") / "spool"
    with open_spool(root) as spool:
        ids = set(fill_spool(spool, FRAMES))
    return root, ids


def _copy(backlog: tuple[Path, set[str]], tmp_path: Path) -> set[str]:
    shutil.copytree(backlog[0], tmp_path / "spool")
    return set(backlog[1])


def _assert_exactly_once(out: Path, expected: set[str]) -> None:
    rows = indexed(out)
    assert {r["frame_id"] for r in rows} == expected  # nothing lost
    assert len(rows) == len(expected)
    headers = received_headers(out)
    assert set(headers) == expected and set(headers.values()) == {1}  # and written to the MCAP files once


def test_broker_restart_mid_stream_loses_nothing(tmp_path: Path, backlog_spool: tuple[Path, set[str]]) -> None:
    """SIGTERM: mosquitto saves sessions and queued messages and restores them. Shared subscriptions are not
    restored (mosquitto 2.0): until the ingest re-subscribes the uplink gets 'no matching subscribers' and resends."""
    expected = _copy(backlog_spool, tmp_path)
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    with make_broker(tmp_path / "broker") as broker, open_spool(tmp_path / "spool") as spool:
        with IngestThread(broker.url, tmp_path / "ingest") as ingest:
            uplink = Uplink(spool, uplink_config(broker.url), "car-1")
            uplink.start()
            try:
                ingest.wait_frames(20)
                assert len(spool) > 100  # the restart really is mid-stream
                broker.restart(down_s=0.3)
                assert uplink.drain(30), uplink.stats()
                ingest.wait_frames(len(expected))
            finally:
                stats = uplink.stop()
        assert stats.connects >= 2 and stats.disconnects >= 1
        # Every frame left the spool on the ingest's receipt. A PUBACK lost with the broker can be overtaken by the
        # receipt of the frame it acknowledged (the frame is then done, never counted as acked): CI saw 299 of 300.
        assert stats.receipted == FRAMES and stats.spool_frames == 0, stats
        assert ingest.final["connects"] >= 2
    _assert_exactly_once(tmp_path / "ingest", expected)


def test_network_cut_mid_stream_loses_nothing(broker, tmp_path: Path, backlog_spool: tuple[Path, set[str]]) -> None:
    """The link dies under the uplink (connections reset, bytes in transit lost, reconnects refused for a while):
    the unacknowledged messages are resent on the resumed session and the frames stay spooled until acked."""
    expected = _copy(backlog_spool, tmp_path)
    link = FlakyLink(broker.port)
    with open_spool(tmp_path / "spool") as spool, IngestThread(broker.url, tmp_path / "ingest") as ingest:
        uplink = Uplink(spool, uplink_config(link.url), "car-1")
        uplink.start()
        try:
            ingest.wait_frames(20)
            link.cut()
            time.sleep(0.5)
            assert uplink.state == "offline" and len(spool) > 100
            link.restore()
            assert uplink.drain(30), uplink.stats()
            ingest.wait_frames(len(expected))
        finally:
            stats = uplink.stop()
            link.close()
        assert stats.connects >= 2 and ingest.stat("connects") == 1
    _assert_exactly_once(tmp_path / "ingest", expected)


@pytest.mark.parametrize("delete_on", ["receipt", "puback"])
def test_broker_crash_loses_nothing_with_receipts(tmp_path: Path, backlog_spool: tuple[Path, set[str]],
                                                  delete_on: str) -> None:
    """SIGKILL: mosquitto restarts from its last save, so a frame it acknowledged but had neither saved nor
    delivered is gone from the broker. With delete_on: puback the agent had deleted it (lost: at most its unsaved
    window); with receipts it is still in the spool and sent again after receipt_timeout_s. Never a duplicate."""
    expected = _copy(backlog_spool, tmp_path)
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    extra = ["autosave_interval 1", "autosave_on_changes true"]
    with make_broker(tmp_path / "broker", extra) as broker, open_spool(tmp_path / "spool") as spool, \
            IngestThread(broker.url, tmp_path / "ingest", shared=False) as ingest:  # fmt: skip
        uplink = Uplink(spool, uplink_config(broker.url, delete_on=delete_on, receipt_timeout_s=1.0), "car-1")
        uplink.start()
        try:
            ingest.wait_frames(20)
            broker.stop(signal.SIGKILL)
            seen_at_crash = {r["frame_id"] for r in indexed(tmp_path / "ingest")}
            assert len(spool) > 100
            broker.start()
            assert uplink.drain(30), uplink.stats()
            wait_for(lambda: len(indexed(tmp_path / "ingest")) >= len(expected) - uplink.config.max_in_flight,
                     20, "the ingest to catch up")
            time.sleep(0.5)
        finally:
            uplink.stop()
    rows = indexed(tmp_path / "ingest")
    lost = expected - {r["frame_id"] for r in rows}
    assert len(rows) == len(expected) - len(lost)  # no duplicates
    if delete_on == "receipt":
        assert not lost
    else:
        assert not lost & seen_at_crash and len(lost) <= uplink.config.max_in_flight


def test_agent_killed_mid_stream_loses_nothing(broker, tmp_path: Path, backlog_spool: tuple[Path, set[str]]) -> None:
    """SIGKILL the process running the uplink: unacknowledged frames are still in the spool and go out again."""
    expected = _copy(backlog_spool, tmp_path)
    config = tmp_path / "agent.yaml"
    config.write_text("vehicle_id: car-2\nuplink:\n  reconnect_min_s: 0.05\n  poll_interval_s: 0.05\n")
    command = [sys.executable, "-m", "agent", "uplink", "--spool", str(tmp_path / "spool"), "--config", str(config),
               "--broker", broker.url, "--until-empty", "--timeout", "60"]
    with IngestThread(broker.url, tmp_path / "ingest") as ingest:
        child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(lambda: ingest.stat("frames") >= 30 or child.poll() is not None, 30, "the upload to start")
        child.kill()
        child.wait()
        assert ingest.stat("frames") < FRAMES  # killed mid-stream
        again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=90)
        assert again.returncode == 0, again.stderr
        ingest.wait_frames(len(expected))
    with open_spool(tmp_path / "spool") as spool:
        assert len(spool) == 0
    _assert_exactly_once(tmp_path / "ingest", expected)


@pytest.mark.parametrize("order", ["score", "oldest"])
def test_offline_spool_evicts_lowest_scores_then_drains_in_order(tmp_path: Path, order: str) -> None:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    broker = make_broker(tmp_path / "broker")
    # The ingest's persistent session, so that the broker queues frames for it from the moment it is back, in
    # order, whoever reconnects first. A plain subscription: mosquitto 2.0 does not restore shared ones from its
    # persistence file (the uplink then gets 'no matching subscribers' and resends: correct, but out of order).
    with broker, IngestThread(broker.url, tmp_path / "ingest", shared=False):
        pass
    with open_spool(tmp_path / "spool", max_mb=2.0) as spool:  # the broker is down: the vehicle is offline
        uplink = Uplink(spool, uplink_config(broker.url, order=order), "car-3")
        uplink.start()
        scores = {n: ((n * 37) % 60) / 60 for n in range(60)}  # distinct scores, unordered in time
        kept = fill_spool(spool, 60, score=scores.__getitem__)
        stats = spool.stats()
        assert stats.evicted_frames + stats.rejected_frames > 0 and stats.bytes <= stats.budget_bytes
        survivors = sorted(kept[e.frame_id] for e in spool.entries())
        assert survivors == sorted(scores.values())[-len(survivors):]  # the lowest scores went first
        assert uplink.state in ("connecting", "offline") and uplink.stats().connect_failures >= 1
        expected = {e.frame_id: (e.score, e.t_ns) for e in spool.entries()}
        with broker, IngestThread(broker.url, tmp_path / "ingest", shared=False) as ingest:
            ingest.wait_frames(len(expected))
            assert uplink.stop().acked == len(expected)
    rows = indexed(tmp_path / "ingest")
    assert [r["frame_id"] for r in rows] == sorted(
        expected, key=lambda fid: (-expected[fid][0], expected[fid][1]) if order == "score" else expected[fid][1]
    )


def test_bad_credentials_stop_reconnecting_with_a_clear_error(tmp_path: Path) -> None:
    if find_mosquitto() is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto / mosquitto_passwd are not installed")
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "car-4", "right"], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "ingest", "right"], check=True)
    (tmp_path / "wrong").write_text("wrong\n")
    (tmp_path / "right").write_text("right\n")
    broker = make_broker(tmp_path / "broker", allow_anonymous=False, extra_conf=[f"password_file {passwords}"])
    with broker, open_spool(tmp_path / "spool") as spool:
        fill_spool(spool, 3)
        bad = Uplink(spool, uplink_config(broker.url, username="car-4", password_file=str(tmp_path / "wrong")),
                     "car-4")
        bad.start()
        wait_for(lambda: bad.state == "auth_failed", 5, "the refusal")
        time.sleep(1.5)  # at 0.05-0.5 s backoff a reconnect storm would make 5+ attempts by now
        stats = bad.stop()
        assert stats.state == "auth_failed" and stats.connect_refused == 1 and stats.connects == 0
        assert "bad user name or password" in (stats.error or "") or "not authorized" in (stats.error or "")
        assert broker.log_path.read_text().count("not authorised") <= 1
        with IngestThread(broker.url, tmp_path / "ingest", username="ingest", password_file=str(tmp_path / "right")):
            good = Uplink(spool, uplink_config(broker.url, username="car-4", password_file=str(tmp_path / "right")),
                          "car-4")
            good.start()
            assert good.drain(10)
            assert good.stop().acked == 3


def test_mutual_tls(tmp_path: Path) -> None:
    if find_mosquitto() is None or shutil.which("openssl") is None:
        pytest.skip("mosquitto / openssl are not installed")
    pki = tmp_path / "pki"
    subprocess.run(["bash", str(REPO / "scripts" / "make_test_certs.sh"), str(pki), "car-5", "ingest"], check=True,
                   capture_output=True)
    tls = [f"cafile {pki / 'ca.crt'}", f"certfile {pki / 'server.crt'}", f"keyfile {pki / 'server.key'}",
           "require_certificate true"]
    with make_broker(tmp_path / "broker", extra_conf=tls) as broker, open_spool(tmp_path / "spool") as spool:
        expected = set(fill_spool(spool, 5, kind="lidar"))
        ca = {"tls_ca": str(pki / "ca.crt")}
        with IngestThread(broker.url, tmp_path / "ingest", tls_cert=str(pki / "ingest.crt"),
                          tls_key=str(pki / "ingest.key"), **ca) as ingest:
            no_cert = Uplink(spool, uplink_config(broker.url, **ca), "car-5")
            no_cert.start()
            time.sleep(0.5)
            assert no_cert.stop().acked == 0  # the broker requires a client certificate
            uplink = Uplink(spool, uplink_config(broker.url, tls_cert=str(pki / "car-5.crt"),
                                                 tls_key=str(pki / "car-5.key"), **ca), "car-5")
            uplink.start()
            assert uplink.drain(20)
            uplink.stop()
            ingest.wait_frames(len(expected))
    _assert_exactly_once(tmp_path / "ingest", expected)


def test_nobody_listening_keeps_frames_and_backs_off(broker, tmp_path: Path) -> None:
    """PUBACK 0x10 (no matching subscribers): the broker would drop the frame, so it stays in the spool; the uplink
    pauses, probes with one frame at a time, and drains in order once an ingest subscribes."""
    with open_spool(tmp_path / "spool") as spool:
        scores = fill_spool(spool, 10, score=lambda n: n / 10)
        uplink = Uplink(spool, uplink_config(broker.url, retry_delay_s=0.2, reconnect_max_s=0.4), "car-6")
        uplink.start()
        try:
            wait_for(lambda: uplink.stats().no_subscribers >= 10, 10, "the first window to come back unheard")
            first = uplink.stats()
            wait_for(lambda: uplink.stats().no_subscribers >= first.no_subscribers + 2, 10, "two probes")
            later = uplink.stats()
            assert len(spool) == 10 and later.acked == 0
            # then it probes with one frame at a time instead of resending the whole window
            assert later.published - first.published <= later.no_subscribers - first.no_subscribers + 1
            with IngestThread(broker.url, tmp_path / "ingest") as ingest:
                assert uplink.drain(10)
                ingest.wait_frames(10)
        finally:
            uplink.stop()
    rows = indexed(tmp_path / "ingest")
    assert [scores[r["frame_id"]] for r in rows] == sorted(scores.values(), reverse=True)


def test_mqtt_311_fallback(broker, tmp_path: Path) -> None:
    """protocol "3.1.1": persistent session through clean_session=0, no properties, same payloads."""
    with open_spool(tmp_path / "spool") as spool, \
            IngestThread(broker.url, tmp_path / "ingest", protocol="3.1.1") as ingest:  # fmt: skip
        expected = set(fill_spool(spool, 6, kind="lidar"))
        uplink = Uplink(spool, uplink_config(broker.url, protocol="3.1.1", max_payload_bytes=300_000), "car-8")
        uplink.start()
        try:
            assert uplink.drain(20)
            ingest.wait_frames(len(expected))
        finally:
            uplink.stop()
    _assert_exactly_once(tmp_path / "ingest", expected)


def test_missing_pubacks_time_out_and_the_frames_are_sent_again(broker, tmp_path: Path) -> None:
    """A link that silently stops carrying bytes: after ack_timeout_s the uplink drops it, reconnects and resends."""
    link = FlakyLink(broker.port)
    with open_spool(tmp_path / "spool") as spool, IngestThread(broker.url, tmp_path / "ingest") as ingest:
        expected = set(fill_spool(spool, 40))
        uplink = Uplink(spool, uplink_config(link.url, ack_timeout_s=0.5, max_in_flight=4), "car-1")
        link.stall()
        uplink.start()
        try:
            time.sleep(0.3)  # the CONNECT is held back too: let the first attempt hang, then let bytes through
            link.restore()
            wait_for(lambda: uplink.stats().published >= 4, 10, "the first frames")
            link.stall()
            wait_for(lambda: uplink.stats().timeouts >= 1, 10, "an ack timeout")
            assert len(spool) > 0 and uplink.stats().acked < 40
            link.restore()
            assert uplink.drain(20), uplink.stats()
            ingest.wait_frames(len(expected))
        finally:
            stats = uplink.stop()
            link.close()
    assert stats.timeouts >= 1 and stats.retried >= 1 and stats.connects >= 2
    _assert_exactly_once(tmp_path / "ingest", expected)

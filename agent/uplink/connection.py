"""ConnectionConfig -> a paho-mqtt 2.x client: protocol, TLS (mutual), credentials, persistent session, backoff."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.config.uplink import ConnectionConfig, parse_broker_url
from agent.errors import EdgesiftError
from agent.uplink.fast_publish import client_class as fast_publish_client

# CONNACK reasons that no retry can fix: retrying only hammers the broker (and may get the client banned).
# MQTT 3.1.1 return codes 4 and 5 reach on_connect already mapped to 0x86 / 0x87 by paho.
FATAL_CONNACK = {
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x8A: "banned",
    0x8C: "bad authentication method",
}


class UplinkError(EdgesiftError):
    """The broker cannot be used: bad settings, refused credentials, or frames left unacknowledged."""


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def fatal_reason(reason: ReasonCode | int) -> str | None:
    """A human explanation when this CONNACK reason means 'stop reconnecting', else None."""
    value = reason.value if isinstance(reason, ReasonCode) else int(reason)
    return FATAL_CONNACK.get(value)


def read_password(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise UplinkError(f"cannot read password_file {path}: {exc}") from exc


def make_client(
    config: ConnectionConfig, client_id: str, *, will: Will | None = None, manual_ack: bool = False,
    fast_publish: bool = False,
) -> mqtt.Client:
    """A configured, not yet connected client. Raises UplinkError for unusable TLS files or credentials.
    fast_publish: incoming PUBLISH packets decoded without paho's copy per MQTT 5 property (fast_publish.py)."""
    mqtt5 = config.protocol == "5"
    client = (fast_publish_client() if fast_publish else mqtt.Client)(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
        clean_session=None if mqtt5 else False,  # 3.1.1: a persistent session (MQTT 5 uses clean_start)
        manual_ack=manual_ack,
    )
    client.suppress_exceptions = True  # a bug in a callback must never kill the network thread
    paho_log = logging.getLogger("paho")
    client.enable_logger(paho_log)  # ... but it must be seen: paho logs it at error level
    if not any(isinstance(f, _ExpectedDisconnect) for f in paho_log.filters):
        paho_log.addFilter(_ExpectedDisconnect())
    if parse_broker_url(config.broker).tls:
        _set_tls(client, config)
    if config.username:
        client.username_pw_set(config.username, read_password(config.password_file))
    if will is not None:
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    # paho doubles the delay from min to max on each failed attempt and resets it after a CONNACK.
    client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)  # type: ignore[arg-type]
    return client


class _ExpectedDisconnect(logging.Filter):
    """paho logs "Client is not connected" at ERROR whenever its loop runs without a socket: during every
    reconnect backoff and at shutdown. That is expected (our own lines say the broker is away), so it is DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith("Client is not connected"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger("paho").isEnabledFor(logging.DEBUG)
        return True


def connect_failure_reason() -> str:
    """Why the connection attempt paho is reporting failed (call from on_connect_fail: paho calls it inside its
    `except OSError`), e.g. the TLS certificate or hostname check that refused the broker."""
    exc = sys.exc_info()[1]
    if exc is None:
        return "no reason given"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate rejected: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
    return f"{type(exc).__name__}: {detail}"


def _set_tls(client: mqtt.Client, config: ConnectionConfig) -> None:
    for path in (config.tls_ca, config.tls_cert, config.tls_key):
        if path and not Path(path).is_file():
            raise UplinkError(f"TLS file not found: {path}")
    try:
        client.tls_set(
            ca_certs=config.tls_ca, certfile=config.tls_cert, keyfile=config.tls_key,
            cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )  # fmt: skip
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise UplinkError(f"cannot load TLS files: {exc}") from exc


def connect_async(client: mqtt.Client, config: ConnectionConfig) -> None:
    """Start connecting in the background (loop_start() retries with backoff until the broker answers)."""
    address = parse_broker_url(config.broker)
    properties = None
    clean_start: bool | int = mqtt.MQTT_CLEAN_START_FIRST_ONLY
    if config.protocol == "5":
        # Resume the session on every connect, also the first one after a process restart: QoS 1 messages the
        # broker queued for us while we were away are only delivered to a resumed session.
        clean_start = False
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = config.session_expiry_s
    client.connect_async(
        address.host, address.port, keepalive=config.keepalive_s, clean_start=clean_start, properties=properties
    )


def drop_link(client: mqtt.Client) -> None:
    """Close the socket under paho so that its loop notices, reconnects and retransmits unacknowledged messages."""
    sock = client.socket()
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]

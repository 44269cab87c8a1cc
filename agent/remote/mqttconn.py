"""Broker address, TLS and credentials -> a configured paho-mqtt 2.x client (MQTT 5, callback API v2)."""

from __future__ import annotations

import contextlib
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.errors import EdgesiftError

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


class BrokerError(EdgesiftError):
    """The broker cannot be reached, refuses us, or does not answer in time."""


@dataclass(frozen=True)
class BrokerSettings:
    host: str
    port: int
    tls: bool = False
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:  # never show the password in logs or tracebacks
        scheme = "mqtts" if self.tls else "mqtt"
        return f"BrokerSettings({scheme}://{self.host}:{self.port}, user={self.username!r})"

    @classmethod
    def from_url(cls, url: str, **options: Any) -> BrokerSettings:
        """mqtt://host[:port] or mqtts://host[:port]; options: cafile, certfile, keyfile, username, password."""
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise BrokerError(f"broker URL must look like mqtt://host:port or mqtts://host:port, got {url!r}")
        if parts.password:
            raise BrokerError("put the broker password in a file (--password-file), not in the URL")
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError as exc:
            raise BrokerError(f"bad port in broker URL {url!r}") from exc
        tls = parts.scheme == "mqtts" or any(options.get(k) for k in ("cafile", "certfile"))
        username = options.pop("username", None) or parts.username
        return cls(parts.hostname, port, tls, username=username, **options)

    @classmethod
    def from_connection(cls, conn: Any) -> BrokerSettings:
        """From the uplink's connection section (broker, username, password_file, tls_ca/cert/key)."""
        password_file = getattr(conn, "password_file", None)
        password = read_password_file(password_file) if password_file else None
        return cls.from_url(conn.broker, cafile=getattr(conn, "tls_ca", None),
                            certfile=getattr(conn, "tls_cert", None), keyfile=getattr(conn, "tls_key", None),
                            username=getattr(conn, "username", None), password=password)


def read_password_file(path: str | Path) -> str:
    """The first line of a password file (kept out of configs and command lines on purpose)."""
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError, UnicodeDecodeError) as exc:
        raise BrokerError(f"cannot read the broker password from {path}") from exc


def make_client(settings: BrokerSettings, client_id: str | None = None) -> mqtt.Client:
    """A paho client set up for these settings; not connected yet."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id or f"edgesift-{uuid.uuid4().hex[:12]}",
        protocol=mqtt.MQTTv5,
    )
    if settings.tls:
        for path in (settings.cafile, settings.certfile, settings.keyfile):
            if path and not Path(path).is_file():
                raise BrokerError(f"TLS file not found: {path}")
        try:
            client.tls_set(ca_certs=settings.cafile, certfile=settings.certfile, keyfile=settings.keyfile,
                           cert_reqs=ssl.CERT_REQUIRED)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise BrokerError(f"cannot load TLS files: {exc}") from exc
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


@contextlib.contextmanager
def connected(settings: BrokerSettings, client_id: str | None = None, timeout: float = 10.0) -> Iterator[mqtt.Client]:
    """A connected client with its network loop running, for short-lived tools; disconnects on exit."""
    client = make_client(settings, client_id)
    done = threading.Event()
    result: dict[str, Any] = {}

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        result.setdefault("reason", reason)
        done.set()

    def on_disconnect(_c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        # A TLS peer that rejects our certificate often shows up only as the connection closing.
        result.setdefault("reason", reason)
        result.setdefault("closed", True)
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect(settings.host, settings.port, keepalive=30)
    except (OSError, ssl.SSLError) as exc:
        raise BrokerError(f"cannot connect to {settings.host}:{settings.port}: {exc}") from exc
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise BrokerError(f"no CONNACK from {settings.host}:{settings.port} in {timeout:g} s")
        reason = result["reason"]
        if reason.is_failure and not result.get("closed"):
            raise BrokerError(f"broker refused the connection: {reason}")
        if result.get("closed"):
            raise BrokerError(f"broker closed the connection before accepting it ({reason}): a TLS mismatch or a "
                              "missing client certificate?")
        client.on_disconnect = None
        yield client
    finally:
        client.disconnect()
        client.loop_stop()

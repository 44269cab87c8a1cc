"""Config sections for the MQTT uplink: the broker connection (shared with the ingest) and the frame stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from agent.config.base import StrictModel

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
_TOPIC_UNSAFE = set("+#/\x00")


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool


def parse_broker_url(url: str) -> BrokerAddress:
    """mqtt://host[:port] or mqtts://host[:port] -> BrokerAddress; raises ValueError with the reason."""
    parts = urlsplit(url.strip())
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"must look like mqtt://host[:port] or mqtts://host[:port], got {url!r}")
    if parts.username or parts.password:
        raise ValueError("put credentials in username / password_file, not in the URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"must not have a path, query or fragment: {url!r}")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}") from exc
    return BrokerAddress(parts.hostname, port, parts.scheme == "mqtts")


class ConnectionConfig(StrictModel):
    """How to reach and authenticate to the broker; the uplink and the ingest both use it."""

    broker: str = Field("mqtt://127.0.0.1:1883", max_length=2048, description="Broker URL: mqtt:// or mqtts://.")
    topic_prefix: str = Field("edgesift", min_length=1, max_length=128, description="First topic level.")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version; 3.1.1 only as a fallback.")
    username: str | None = Field(None, max_length=256, description="Broker user name (None = anonymous).")
    password_file: str | None = Field(
        None, max_length=4096, description="File holding the broker password (kept out of this file on purpose)."
    )
    tls_ca: str | None = Field(None, max_length=4096, description="CA bundle that signed the broker certificate "
                               "(None = the system trust store); mqtts:// only.")
    tls_cert: str | None = Field(None, max_length=4096, description="Client certificate for mutual TLS (PEM).")
    tls_key: str | None = Field(None, max_length=4096, description="Private key of tls_cert (PEM; None = inside "
                                "tls_cert).")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive: a dead link is noticed after ~1.5x this.")
    session_expiry_s: int = Field(
        86_400, ge=0, le=4_294_967_295, description="How long the broker keeps our session (subscriptions, "
        "queued QoS 1 messages) after a disconnect; MQTT 5 only (3.1.1 sessions never expire)."
    )
    reconnect_min_s: float = Field(1.0, ge=0.01, le=600.0, description="First reconnect delay; it doubles on each "
                                   "failure up to reconnect_max_s.")
    reconnect_max_s: float = Field(60.0, ge=0.01, le=3600.0, description="Cap of the reconnect delay.")

    @field_validator("broker")
    @classmethod
    def _broker_url_parses(cls, value: str) -> str:
        parse_broker_url(value)
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_topic_safe(cls, value: str) -> str:
        # Wildcards or an empty level in the prefix would make every subscription and ACL wrong.
        if _TOPIC_UNSAFE & set(value) or value.startswith("$") or value != value.strip():
            raise ValueError("must not contain '+', '#', '/', NUL or surrounding spaces, nor start with '$'")
        return value

    @model_validator(mode="after")
    def _tls_and_auth_are_consistent(self) -> ConnectionConfig:
        tls = parse_broker_url(self.broker).tls
        if not tls and (self.tls_ca or self.tls_cert or self.tls_key):
            raise ValueError("tls_ca / tls_cert / tls_key need an mqtts:// broker URL")
        if self.tls_key and not self.tls_cert:
            raise ValueError("tls_key needs tls_cert")
        if self.password_file and not self.username:
            raise ValueError("password_file needs username")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self


class UplinkConfig(ConnectionConfig):
    enabled: bool = Field(False, description="Stream kept frames to the broker.")
    order: Literal["score", "oldest"] = Field(
        "score", description="Upload order when the spool holds a backlog: highest score first, or oldest first."
    )
    max_in_flight: int = Field(
        32, ge=1, le=10_000, description="Most QoS 1 messages (frames or chunks) published and not yet acknowledged."
    )
    max_payload_bytes: int = Field(
        262_144, ge=4096, le=268_435_455, description="Largest MQTT payload sent; bigger frames are split into "
        "chunks that the ingest reassembles."
    )
    ack_timeout_s: float = Field(
        30.0, ge=0.1, le=3600.0, description="No PUBACK for this long on a live connection: the link is treated "
        "as dead, reconnected, and the frame is retransmitted (counted as a timeout)."
    )
    retry_delay_s: float = Field(
        5.0, ge=0.0, le=3600.0, description="Wait before re-sending a frame the broker refused (PUBACK reason code "
        ">= 0x80, e.g. not authorised by the ACL or quota exceeded)."
    )
    delete_on: Literal["receipt", "puback"] = Field(
        "receipt", description="When a sent frame leaves the spool: 'receipt' once the ingest says it stored it "
        "durably (its <prefix>/<vehicle>/receipts message, sent by `edgesift ingest` after each commit); "
        "'puback' as soon as the broker acknowledges it (for consumers that send no receipts; a broker crash or "
        "a session takeover can then lose acknowledged frames)."
    )
    receipt_timeout_s: float = Field(
        300.0, ge=0.1, le=86_400.0, description="A frame acknowledged by the broker but without a receipt after "
        "this long is sent again (the ingest deduplicates); the wait doubles per frame, up to 8x."
    )
    max_awaiting_receipt: int = Field(
        5000, ge=1, le=1_000_000, description="Most frames sent and awaiting their receipt; beyond it the uplink "
        "sends nothing new until receipts arrive."
    )
    retry_no_subscribers: bool = Field(
        True, description="Treat PUBACK 'no matching subscribers' (0x10) as not delivered: the frame stays in the "
        "spool and is sent again after retry_delay_s, until an ingest subscribes."
    )
    poll_interval_s: float = Field(
        1.0, ge=0.01, le=60.0, description="How often the spool is checked for new frames when nobody calls "
        "Uplink.notify()."
    )
    stats_interval_s: float = Field(
        60.0, ge=0.0, le=86_400.0, description="Publish counters on <prefix>/<vehicle>/stats this often (0 = off)."
    )
    drain_timeout_s: float = Field(
        120.0, ge=0.0, le=86_400.0, description="`replay --broker` waits this long for every kept frame to be "
        "acknowledged."
    )

"""Fail fast when the broker cannot be reached at all, instead of retrying for minutes and then failing.

A TCP connect is enough to tell "nothing listens there" (refused, no route, no DNS name) from a broker that is
up; TLS and credentials are checked by the MQTT client itself, which logs why it was refused.
"""

from __future__ import annotations

import socket

from agent.config.uplink import parse_broker_url
from agent.uplink.connection import UplinkError

PROBE_TIMEOUT_S = 5.0


def require_broker(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Return when something accepts TCP connections at the broker URL; UplinkError (one line) otherwise."""
    address = parse_broker_url(url)
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout_s):
            return
    except TimeoutError as exc:
        raise UplinkError(f"broker {url} did not answer within {timeout_s:g} s") from exc
    except OSError as exc:
        raise UplinkError(f"broker {url} cannot be reached: {exc.strerror or exc}") from exc

"""Decode a config/set payload into a config document, refusing anything malformed before it is used.

Accepted payloads (UTF-8 JSON, at most `max_bytes`):
- an envelope `{"config": {...}, "signature": "<base64 Ed25519>", "id": "<request id>"}` (signature and id
  optional unless a fleet public key is configured, then the signature is required);
- a bare config document `{...}` when no public key is configured.
The document must carry an integer `version`; everything else is left to the AgentConfig model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.errors import ConfigError
from agent.remote.signing import verify_config

ENVELOPE_KEYS = frozenset({"config", "signature", "id"})
MAX_REQUEST_ID = 128


class MessageRejected(ConfigError):
    """A config message that cannot be applied; carries what is known of the request for the state report."""

    def __init__(self, reason: str, *, request_id: str | None = None, requested_version: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.request_id = request_id
        self.requested_version = requested_version


@dataclass(frozen=True)
class ConfigRequest:
    document: dict[str, Any]
    version: int
    request_id: str | None
    signed: bool


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate keys make "what was signed" and "what is applied" ambiguous between parsers: refuse them.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_object(payload: bytes, max_bytes: int) -> dict[str, Any]:
    """Strict JSON object parse with a size cap checked before any decoding."""
    if len(payload) > max_bytes:
        raise MessageRejected(f"payload of {len(payload)} bytes is over the {max_bytes} byte cap")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MessageRejected(f"payload is not UTF-8 (byte {exc.start})") from None
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except RecursionError:
        raise MessageRejected("payload is not JSON: nested too deeply") from None
    except ValueError as exc:
        raise MessageRejected(f"payload is not JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, dict):
        raise MessageRejected(f"payload must be a JSON object, got {type(doc).__name__}")
    return doc


def _envelope_parts(doc: dict[str, Any]) -> tuple[dict[str, Any], str | None, str | None, bool]:
    """(config, signature, request_id, is_envelope)."""
    if "config" not in doc:
        return doc, None, None, False
    unknown = sorted(set(doc) - ENVELOPE_KEYS)
    request_id = doc.get("id")
    if request_id is not None and (not isinstance(request_id, str) or len(request_id) > MAX_REQUEST_ID):
        raise MessageRejected(f"envelope id must be a string of at most {MAX_REQUEST_ID} characters")
    if unknown:
        raise MessageRejected(f"unknown envelope keys: {', '.join(unknown)}", request_id=request_id)
    config = doc["config"]
    if not isinstance(config, dict):
        raise MessageRejected("envelope config must be a JSON object", request_id=request_id)
    signature = doc.get("signature")
    if signature is not None and not isinstance(signature, str):
        raise MessageRejected("envelope signature must be a base64 string", request_id=request_id)
    return config, signature, request_id, True


def _requested_version(config: dict[str, Any]) -> int | None:
    version = config.get("version")
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def decode_config_message(
    payload: bytes, *, max_bytes: int, public_key: Ed25519PublicKey | None = None
) -> ConfigRequest:
    """Return the request, or raise MessageRejected saying why."""
    doc = parse_json_object(payload, max_bytes)
    config, signature, request_id, _ = _envelope_parts(doc)
    version = _requested_version(config)
    ids = {"request_id": request_id, "requested_version": version}
    if public_key is not None:
        if signature is None:
            raise MessageRejected("unsigned config: this vehicle requires a fleet signature", **ids)
        if not verify_config(public_key, config, signature):
            raise MessageRejected("bad signature: does not match the fleet public key", **ids)
    if version is None:
        raise MessageRejected("config must carry an integer version", **ids)
    return ConfigRequest(config, version, request_id, signature is not None and public_key is not None)

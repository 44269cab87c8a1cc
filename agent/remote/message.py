"""Decode a config/set payload into a config document, refusing anything malformed before it is used.

Accepted payloads (UTF-8 JSON, at most `max_bytes`):
- an envelope `{"config": {...}, "target": "vehicle:<id>" | "group:<name>", "not_after": <unix s>,
  "reset": false, "signature": "<base64 Ed25519>", "id": "<request id>"}`; with a fleet public key configured
  the signature, target and not_after are required and the signature covers all of config, target, not_after and
  reset (so a message signed for car-2, or last year, is refused by car-1, or today);
- a bare config document `{...}` when no public key is configured.
The document must carry an integer `version`; everything else is left to the AgentConfig model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.errors import ConfigError
from agent.remote.signing import signed_content, verify_config

ENVELOPE_KEYS = frozenset({"config", "signature", "id", "target", "not_after", "reset"})
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
    reset: bool = False  # a signed administrative reset: its version may be below the floor


@dataclass(frozen=True)
class Addressee:
    """Who is reading: the vehicle, and the group whose topic the message came on (None: its own topic)."""

    vehicle: str
    group: str | None
    now: float

    @property
    def target(self) -> str:
        return f"group:{self.group}" if self.group else f"vehicle:{self.vehicle}"




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
        if "target" in doc or "not_after" in doc:
            raise MessageRejected("target / not_after belong in an envelope next to config, not in the document")
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


def _addressing(doc: dict[str, Any], ids: dict[str, Any]) -> tuple[str | None, int | None, bool]:
    target, not_after, reset = doc.get("target"), doc.get("not_after"), doc.get("reset", False)
    if target is not None and (not isinstance(target, str) or len(target) > 200):
        raise MessageRejected("envelope target must be 'vehicle:<id>' or 'group:<name>'", **ids)
    if not_after is not None and (not isinstance(not_after, int) or isinstance(not_after, bool) or not_after < 0):
        raise MessageRejected("envelope not_after must be a unix time in whole seconds", **ids)
    if not isinstance(reset, bool):
        raise MessageRejected("envelope reset must be true or false", **ids)
    return target, not_after, reset


def decode_config_message(
    payload: bytes, *, max_bytes: int, public_key: Ed25519PublicKey | None = None, reader: Addressee | None = None
) -> ConfigRequest:
    """Return the request, or raise MessageRejected saying why."""
    doc = parse_json_object(payload, max_bytes)
    config, signature, request_id, _ = _envelope_parts(doc)
    version = _requested_version(config)
    ids = {"request_id": request_id, "requested_version": version}
    target, not_after, reset = _addressing(doc, ids)
    if public_key is not None:
        if signature is None:
            raise MessageRejected("unsigned config: this vehicle requires a fleet signature", **ids)
        if target is None or not_after is None:
            raise MessageRejected("signed config must carry target and not_after (edgesift fleet config push "
                                  "adds them)", **ids)
        if not verify_config(public_key, signed_content(config, target, not_after, reset), signature):
            raise MessageRejected("bad signature: does not match the fleet public key", **ids)
    elif reset:
        raise MessageRejected("an administrative reset must be signed (remote.public_key)", **ids)
    if reader is not None and target is not None and target != reader.target:
        raise MessageRejected(f"addressed to {target[:80]}, not to {reader.target}", **ids)
    if reset and (reader is None or reader.group is not None):
        raise MessageRejected("an administrative reset must be addressed to one vehicle", **ids)
    if reader is not None and not_after is not None and reader.now > not_after:
        raise MessageRejected(f"expired: not_after {not_after} is {int(reader.now - not_after)} s ago", **ids)
    if version is None:
        raise MessageRejected("config must carry an integer version", **ids)
    return ConfigRequest(config, version, request_id, signature is not None and public_key is not None, reset)

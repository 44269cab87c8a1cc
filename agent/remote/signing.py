"""Ed25519 signatures over the canonical JSON of a config document.

Canonical form: `json.dumps(config, sort_keys=True, separators=(",", ":"))` (ASCII-escaped, Python's float
repr), encoded as UTF-8. Signer and verifier both canonicalise the parsed document, so whitespace and key order
in transit do not matter.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

RAW_KEY_BYTES = 32
SIGNATURE_BYTES = 64


def canonical_json(config: Any) -> bytes:
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{what} is neither PEM nor base64") from exc


def load_public_key(text: str) -> Ed25519PublicKey:
    """Parse an Ed25519 public key given as PEM (SubjectPublicKeyInfo) or as the raw 32 bytes in base64."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise ValueError(f"public key PEM does not parse: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"public key is {type(key).__name__}, not Ed25519")
        return key
    raw = _b64(text, "public key")
    if len(raw) != RAW_KEY_BYTES:
        raise ValueError(f"raw Ed25519 public key must be {RAW_KEY_BYTES} bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def load_private_key(text: str) -> Ed25519PrivateKey:
    """Parse an Ed25519 private key given as unencrypted PEM (PKCS#8) or the raw 32-byte seed in base64."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        except (ValueError, TypeError, UnicodeEncodeError) as exc:
            raise ValueError(f"private key PEM does not parse: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"private key is {type(key).__name__}, not Ed25519")
        return key
    raw = _b64(text, "private key")
    if len(raw) != RAW_KEY_BYTES:
        raise ValueError(f"raw Ed25519 private key must be {RAW_KEY_BYTES} bytes, got {len(raw)}")
    return Ed25519PrivateKey.from_private_bytes(raw)


def load_private_key_file(path: str | Path) -> Ed25519PrivateKey:
    return load_private_key(Path(path).read_text(encoding="ascii"))


def sign_config(key: Ed25519PrivateKey, config: Any) -> str:
    return base64.b64encode(key.sign(canonical_json(config))).decode("ascii")


def signed_content(config: Any, target: str | None, not_after: int | None, reset: bool = False) -> Any:
    """What the signature covers: the document alone (legacy form) or with its addressing (required when a
    vehicle has a public key): the target ("vehicle:<id>" / "group:<name>"), the not-after time, the reset flag."""
    if target is None and not_after is None and not reset:
        return config
    return {"config": config, "target": target, "not_after": not_after, "reset": reset}


def signed_envelope(key: Ed25519PrivateKey, config: dict[str, Any], *, target: str, not_after: int,
                    reset: bool = False, request_id: str | None = None) -> dict[str, Any]:
    """The config/set envelope of a signed, addressed document."""
    envelope: dict[str, Any] = {"config": config, "target": target, "not_after": not_after,
                                "signature": sign_config(key, signed_content(config, target, not_after, reset))}
    if reset:
        envelope["reset"] = True
    if request_id is not None:
        envelope["id"] = request_id
    return envelope


def verify_config(key: Ed25519PublicKey, config: Any, signature: str) -> bool:
    """True only for a well-formed signature that matches; never raises on hostile input."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(raw) != SIGNATURE_BYTES:
        return False
    try:
        key.verify(raw, canonical_json(config))
    except InvalidSignature:
        return False
    return True


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public half as PEM, for config.remote.public_key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode("ascii")

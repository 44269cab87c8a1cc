"""Ed25519 config signatures and config/set payload decoding (pure)."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from agent.config import AgentConfig
from agent.remote.message import Addressee, MessageRejected, decode_config_message
from agent.remote.signing import (
    canonical_json,
    load_private_key,
    load_public_key,
    public_key_text,
    sign_config,
    signed_envelope,
    verify_config,
)

KEY = Ed25519PrivateKey.generate()


def raw_b64(key: Ed25519PrivateKey, public: bool) -> str:
    raw = (key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) if public
           else key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                  serialization.NoEncryption()))
    return base64.b64encode(raw).decode()


def test_canonical_json_ignores_key_order_and_whitespace() -> None:
    assert canonical_json({"b": 1, "a": {"y": [1, 2], "x": "é"}}) == b'{"a":{"x":"\\u00e9","y":[1,2]},"b":1}'
    doc = {"version": 3, "policy": {"camera": {"keep_min_score": 0.5}}}
    reordered = json.loads(json.dumps(doc, indent=4, sort_keys=False))
    assert verify_config(KEY.public_key(), reordered, sign_config(KEY, doc))


@pytest.mark.parametrize("form", ["pem", "raw"])
def test_keys_load_from_pem_or_raw_base64(form: str) -> None:
    if form == "pem":
        pem = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        private, public = load_private_key(pem), load_public_key(public_key_text(KEY))
    else:
        private, public = load_private_key(raw_b64(KEY, False)), load_public_key(raw_b64(KEY, True))
    assert verify_config(public, {"version": 1}, sign_config(private, {"version": 1}))
    assert not verify_config(public, {"version": 2}, sign_config(private, {"version": 1}))


@pytest.mark.parametrize("text", ["", "not base64!", base64.b64encode(b"short").decode(),
                                  "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"])
def test_bad_public_keys_are_config_errors(text: str) -> None:
    with pytest.raises(ValidationError, match=r"remote\.public_key|public key"):
        AgentConfig.model_validate({"remote": {"public_key": text or "   x"}})


def test_malformed_signatures_never_raise() -> None:
    public = KEY.public_key()
    for signature in ("", "====", "a" * 200, base64.b64encode(b"x" * 64).decode()):
        assert not verify_config(public, {"version": 1}, signature)


def test_decode_accepts_bare_and_envelope_without_key_and_requires_signature_with_key() -> None:
    bare = decode_config_message(b'{"version": 4}', max_bytes=1024)
    assert (bare.version, bare.request_id, bare.signed) == (4, None, False)
    doc = {"version": 4, "inputs": {"nominal_hz": 2.0}}
    envelope = signed_envelope(KEY, doc, target="vehicle:car-1", not_after=2_000_000_000, request_id="abc")
    payload = json.dumps(envelope).encode()
    reader = Addressee("car-1", None, 1_900_000_000.0)
    signed = decode_config_message(payload, max_bytes=1024, public_key=KEY.public_key(), reader=reader)
    assert (signed.document, signed.request_id, signed.signed) == (doc, "abc", True)
    with pytest.raises(MessageRejected, match="addressed to vehicle:car-1, not to vehicle:car-2"):
        decode_config_message(payload, max_bytes=1024, public_key=KEY.public_key(),
                              reader=Addressee("car-2", None, 1_900_000_000.0))
    with pytest.raises(MessageRejected, match="expired"):
        decode_config_message(payload, max_bytes=1024, public_key=KEY.public_key(),
                              reader=Addressee("car-1", None, 2_000_000_001.0))
    legacy = json.dumps({"config": doc, "id": "abc", "signature": sign_config(KEY, doc)}).encode()
    with pytest.raises(MessageRejected, match="must carry target and not_after"):
        decode_config_message(legacy, max_bytes=1024, public_key=KEY.public_key(), reader=reader)
    with pytest.raises(MessageRejected, match="unsigned") as err:
        decode_config_message(b'{"version": 4}', max_bytes=1024, public_key=KEY.public_key())
    assert err.value.requested_version == 4


def test_size_cap_is_checked_before_decoding() -> None:
    with pytest.raises(MessageRejected, match="over the 100 byte cap"):
        decode_config_message(b"\xff" * 101, max_bytes=100)
    with pytest.raises(MessageRejected, match="envelope id"):
        decode_config_message(json.dumps({"config": {"version": 1}, "id": "x" * 500}).encode(), max_bytes=1024)

"""`edgesift fleet ...`: push configs to vehicles or groups, list the fleet, make a signing key.

Kept import-light: the MQTT and crypto modules load only when a fleet command runs.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_NO_ANSWER = 3


def _broker_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", required=True, metavar="URL", help="mqtt://host:port or mqtts://host:port")
    parser.add_argument("--prefix", default="edgesift", help="first topic level (default: edgesift)")
    parser.add_argument("--cafile", metavar="FILE", help="CA certificate that signed the broker's certificate")
    parser.add_argument("--cert", metavar="FILE", help="client certificate (mutual TLS)")
    parser.add_argument("--key", metavar="FILE", help="client private key (mutual TLS)")
    parser.add_argument("--username", help="broker user name")
    parser.add_argument("--password-file", metavar="FILE", help="file whose first line is the broker password")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S", help="seconds to wait (default: 10)")


def _settings(args: argparse.Namespace) -> Any:
    from agent.remote.mqttconn import BrokerSettings, read_password_file

    password = read_password_file(args.password_file) if args.password_file else None
    return BrokerSettings.from_url(args.broker, cafile=args.cafile, certfile=args.cert, keyfile=args.key,
                                   username=args.username, password=password)


def _cmd_push(args: argparse.Namespace) -> int:
    from agent.fleet.push import Target, load_document, push_config

    doc = load_document(args.file)
    target = Target(vehicle=args.vehicle, group=args.group)
    outcome = push_config(_settings(args), target, doc, prefix=args.prefix, sign_key=args.sign_key,
                          timeout=args.timeout, retain=args.retain, expect=args.expect, valid_s=args.valid,
                          reset=args.reset)
    print(outcome.summary())
    if not outcome.answers:
        return EXIT_NO_ANSWER
    return EXIT_OK if outcome.ok else EXIT_REJECTED


def _cmd_status(args: argparse.Namespace) -> int:
    from agent.fleet.status import collect_status

    records = collect_status(_settings(args), prefix=args.prefix, window=args.window, timeout=args.timeout)
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2, sort_keys=True))
    elif not records:
        print(f"no vehicles seen under {args.prefix}/ in {args.window:g} s")
    else:
        for record in records:
            print(record.line())
    return EXIT_OK


def _cmd_keygen(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.errors import ConfigError
    from agent.remote.signing import public_key_text

    key = Ed25519PrivateKey.generate()
    private_path, public_path = Path(f"{args.out}.key"), Path(f"{args.out}.pub")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    # Create the private key 0600 from the start: never a moment where others can read it.
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot create {private_path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public_path.write_text(public_key_text(key), encoding="ascii")
    print(f"signing key: {private_path} (keep it off the vehicles); public key for remote.public_key: {public_path}")
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    from agent.errors import ConfigError

    try:
        from agent.fleet.web import serve
    except ImportError as exc:
        raise ConfigError(f"the fleet page needs its extra ({exc}): pip install 'edgesift[fleet]'") from exc

    token = None
    if args.token_file:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            raise ConfigError(f"cannot read a token from {args.token_file}") from exc
        if len(token) < 16:
            raise ConfigError(f"the token in {args.token_file} is shorter than 16 characters")
    serve(args.db, Path(args.store) if args.store else None, args.host, args.port, token)
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `fleet` command tree to the top-level parser's subcommands."""
    fleet = sub.add_parser("fleet", help="remote configuration and status of a vehicle fleet over MQTT")
    fleet_sub = fleet.add_subparsers(dest="fleet_command", required=True)

    config = fleet_sub.add_parser("config", help="push configuration")
    config_sub = config.add_subparsers(dest="fleet_config_command", required=True)
    push = config_sub.add_parser("push", help="publish a (partial) config and wait for the vehicles' answers")
    push.add_argument("file", metavar="FILE", help="config document (YAML or JSON) with a higher version")
    where = push.add_mutually_exclusive_group(required=True)
    where.add_argument("--vehicle", metavar="ID", help="one vehicle")
    where.add_argument("--group", metavar="NAME", help="every vehicle in this group")
    push.add_argument("--sign-key", metavar="FILE", help="Ed25519 private key (PEM or raw base64) to sign with")
    push.add_argument("--expect", type=int, default=0, metavar="N",
                      help="group push: stop waiting after N answers (default: wait the whole timeout)")
    push.add_argument("--retain", action="store_true",
                      help="retain the push so vehicles offline now get it when they reconnect")
    push.add_argument("--valid", type=float, default=3600.0, metavar="S",
                      help="a signed push expires this many seconds from now (default 3600; signed as not_after)")
    push.add_argument("--reset", action="store_true",
                      help="signed administrative reset of one vehicle: its version may be any, lower included")
    _broker_args(push)
    push.set_defaults(func=_cmd_push)

    status = fleet_sub.add_parser("status", help="list vehicles: online state, config version, latest stats")
    status.add_argument("--window", type=float, default=2.0, metavar="S", help="seconds to listen (default: 2)")
    status.add_argument("--json", action="store_true", help="print JSON instead of one line per vehicle")
    _broker_args(status)
    status.set_defaults(func=_cmd_status)

    web = fleet_sub.add_parser("serve", help="the fleet page: vehicles, sensors, alerts, targets (read-only web app)")
    web.add_argument("--db", metavar="URL", help="the ingest index: postgresql://... or a SQLite file "
                     "(default <store>/index.sqlite3)")
    web.add_argument("--store", metavar="DIR", help="the ingest's storage root (thumbnails are read from its MCAP)")
    web.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    web.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    web.add_argument("--token-file", metavar="FILE", help="file whose first line is the access token (required "
                     "beyond localhost): Bearer token, or basic auth with the token as password")
    web.set_defaults(func=_cmd_serve)

    keygen = fleet_sub.add_parser("keygen", help="make an Ed25519 key pair for signing configs")
    keygen.add_argument("--out", required=True, metavar="PREFIX", help="writes PREFIX.key and PREFIX.pub")
    keygen.set_defaults(func=_cmd_keygen)

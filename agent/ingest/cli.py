"""`edgesift ingest`: run the reference cloud receiver until SIGINT/SIGTERM (or --count / --timeout)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from agent.uplink.cli import broker_url

_OPTIONS = {  # flag -> IngestConfig field
    "broker": "broker", "prefix": "topic_prefix", "group": "group", "client_id": "client_id",
    "protocol": "protocol", "username": "username", "password_file": "password_file", "tls_ca": "tls_ca",
    "tls_cert": "tls_cert", "tls_key": "tls_key", "batch_ms": "batch_ms", "session_expiry": "session_expiry_s",
    "reassembly_timeout": "reassembly_timeout_s", "max_partial_mb": "max_partial_mb",
    "reconnect_max": "reconnect_max_s", "db": "db", "segment_mb": "segment_mb", "segment_s": "segment_s",
}  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = sub.add_parser("ingest", help="receive frames from the fleet: dedup index + per-vehicle MCAP files")
    cmd.add_argument("--broker", required=True, type=broker_url, metavar="URL", help="mqtt://host[:port] or mqtts://host[:port]")
    cmd.add_argument("--out", required=True, metavar="DIR",
                     help="storage root every worker writes (<vehicle>/*.mcap; index.sqlite3 without --db)")
    cmd.add_argument("--db", metavar="URL", help="index: postgresql://user@host/db (shared by workers on several "
                     "machines; password from PGPASSWORD or ~/.pgpass) or a SQLite file (default <out>/index.sqlite3)")
    cmd.add_argument("--segment-mb", type=float, metavar="MB", help="start a new MCAP segment at this size (512)")
    cmd.add_argument("--segment-s", type=float, metavar="S", help="... or at this age (3600)")
    cmd.add_argument("--group", metavar="NAME", help="shared-subscription group (workers in a group split the load)")
    cmd.add_argument("--client-id", metavar="ID", help="MQTT client id, stable per worker (default edgesift-ingest)")
    cmd.add_argument("--prefix", metavar="P", help="topic prefix (default edgesift)")
    cmd.add_argument("--protocol", choices=("5", "3.1.1"))
    cmd.add_argument("--no-share", dest="shared", action="store_false", default=None,
                     help="plain subscription (brokers without $share; run one worker only)")
    cmd.add_argument("--no-receipts", dest="receipts", action="store_false", default=None,
                     help="publish no receipts (vehicles must then use uplink.delete_on: puback)")
    cmd.add_argument("--username", metavar="USER")
    cmd.add_argument("--password-file", metavar="FILE")
    cmd.add_argument("--tls-ca", metavar="FILE")
    cmd.add_argument("--tls-cert", metavar="FILE")
    cmd.add_argument("--tls-key", metavar="FILE")
    cmd.add_argument("--batch-ms", type=float, metavar="MS", help="group-commit window (default 20)")
    cmd.add_argument("--session-expiry", type=int, metavar="S", help="broker keeps our session this long")
    cmd.add_argument("--reassembly-timeout", type=float, metavar="S", help="abandon partial frames after this")
    cmd.add_argument("--max-partial-mb", type=float, metavar="MB", help="bound of the reassembly buffer")
    cmd.add_argument("--reconnect-max", type=float, metavar="S", help="cap of the reconnect backoff")
    cmd.add_argument("--count", type=int, metavar="N", help="exit after N new frames (tests)")
    cmd.add_argument("--timeout", type=float, metavar="S", help="exit after S seconds (tests)")
    cmd.set_defaults(func=_cmd_ingest)


def ingest_config(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from agent.config.load import issues_from_validation
    from agent.errors import ConfigError
    from agent.ingest.config import IngestConfig

    values = {field: getattr(args, flag) for flag, field in _OPTIONS.items() if getattr(args, flag) is not None}
    if args.shared is not None:
        values["shared"] = args.shared
    if args.receipts is not None:
        values["receipts"] = args.receipts
    if args.reconnect_max is not None:  # a short cap implies a short first delay
        values["reconnect_min_s"] = min(args.reconnect_max, IngestConfig.model_fields["reconnect_min_s"].default)
    try:
        return IngestConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError("; ".join(str(i) for i in issues_from_validation(exc))) from exc


def _cmd_ingest(args: argparse.Namespace) -> int:
    from agent.ingest.receiver import Ingest
    from agent.uplink.probe import require_broker

    settings = ingest_config(args)
    require_broker(settings.broker)  # a dead broker is an error now, not an exit 0 after --timeout
    ingest = Ingest(settings, Path(args.out))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())  # finish the MCAP files cleanly instead of dying mid-write
    ingest.start()
    try:
        reached = ingest.run(count=args.count, timeout=args.timeout, stop=stop)
    finally:
        stats = ingest.stop()
    print(json.dumps(stats, sort_keys=True), flush=True)
    if stats["state"] == "auth_failed":
        print(f"edgesift: error: {stats['error']}", file=sys.stderr)
        return 1
    return 0 if args.count is None or reached else 1

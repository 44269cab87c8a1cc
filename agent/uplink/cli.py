"""`edgesift uplink` (stream a spool folder to the broker) and `edgesift replay --broker` (drain after a replay)."""

from __future__ import annotations

import argparse
import json
import math
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the heavy imports are deferred: this module is imported by `edgesift --help`
    from agent.config.model import AgentConfig
    from agent.config.uplink import UplinkConfig
    from agent.uplink.uplink import UplinkStats


def broker_url(value: str) -> str:
    """argparse type: a broker URL, checked before any work starts."""
    from agent.config.uplink import parse_broker_url

    try:
        parse_broker_url(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return value


def add_broker_option(replay: argparse.ArgumentParser) -> None:
    replay.add_argument("--broker", type=broker_url, metavar="URL",
                        help="after the replay, stream the kept frames to this broker (mqtt:// or mqtts://; TLS and "
                        "credentials from the config's uplink section)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = sub.add_parser("uplink", help="stream a spool folder to the MQTT broker (QoS 1, deleted once acked)")
    cmd.add_argument("--spool", required=True, metavar="DIR", help="spool folder")
    cmd.add_argument("--config", metavar="FILE", help="agent config (YAML): vehicle_id and the uplink section")
    cmd.add_argument("--broker", type=broker_url, metavar="URL", help="broker URL (overrides uplink.broker)")
    cmd.add_argument("--until-empty", action="store_true", help="exit once the spool is drained")
    cmd.add_argument("--timeout", type=float, default=0.0, metavar="S",
                     help="with --until-empty: give up after this many seconds (0 = uplink.drain_timeout_s)")
    cmd.set_defaults(func=_cmd_uplink)


def uplink_config(config: AgentConfig, broker: str | None) -> UplinkConfig:
    """The config's uplink section, with --broker applied (validated like the file)."""
    from pydantic import ValidationError

    from agent.config.load import issues_from_validation
    from agent.config.uplink import UplinkConfig
    from agent.errors import ConfigError

    if broker is None:
        return config.uplink
    try:
        return UplinkConfig.model_validate({**config.uplink.model_dump(), "broker": broker})
    except ValidationError as exc:
        raise ConfigError("; ".join(str(i) for i in issues_from_validation(exc))) from exc


def stream_spool(root: Path, config: AgentConfig, broker: str | None, timeout: float | None,
                 scorer: str = "heuristic", stop: threading.Event | None = None) -> UplinkStats:
    """Stream the spool at `root` until it is empty (timeout given) or `stop` is set; returns the counters."""
    from agent.spool import Spool
    from agent.uplink.connection import UplinkError
    from agent.uplink.uplink import Uplink

    settings = uplink_config(config, broker)
    with Spool.open(root, config.spool) as spool:
        uplink = Uplink(spool, settings, config.vehicle_id, scorer=scorer)
        uplink.start()
        try:
            _wait(uplink, timeout, stop or threading.Event())
        finally:
            stats = uplink.stop()
    if stats.state == "auth_failed":
        raise UplinkError(stats.error or "the broker refused the connection")
    return stats


def _wait(uplink: Any, timeout: float | None, stop: threading.Event) -> None:
    """Until drained (when a timeout is given), stopped, refused for good, or out of time."""
    deadline = math.inf if timeout is None else time.monotonic() + timeout
    while uplink.state != "auth_failed" and not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        if timeout is None:
            stop.wait(0.2)
        elif uplink.drain(min(0.2, remaining)):
            return


def check_broker_first(args: argparse.Namespace, config: AgentConfig) -> None:
    """`replay --broker`: refuse in seconds, before the replay, when nothing listens at the broker's address."""
    if getattr(args, "broker", None) is not None:
        from agent.uplink.probe import require_broker

        require_broker(uplink_config(config, args.broker).broker)


def after_replay(args: argparse.Namespace, config: AgentConfig, summary: dict[str, Any]) -> None:
    """`replay --broker`: send what the replay kept, wait for every ack, say how it went."""
    if getattr(args, "broker", None) is None:
        return
    from agent.uplink.connection import UplinkError

    root = Path(config.spool.path)
    root = root if root.is_absolute() else Path(args.out) / root
    started = time.monotonic()
    stats = stream_spool(root, config, args.broker, config.uplink.drain_timeout_s, str(summary.get("scorer")))
    print(
        f"uplink: sent {stats.published} frames ({stats.messages} messages, {stats.bytes / 1e6:.1f} MB acked) "
        f"to {args.broker}, acked {stats.acked}, retried {stats.retried}, in {time.monotonic() - started:.1f} s; "
        f"{stats.spool_frames} left in the spool"
    )
    if stats.spool_frames:
        raise UplinkError(f"{stats.spool_frames} kept frames were not acknowledged within "
                          f"{config.uplink.drain_timeout_s:g} s (they stay in {root})")


def _cmd_uplink(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.errors import InputError
    from agent.uplink.probe import require_broker

    config = load_config(args.config)
    if not Path(args.spool).is_dir():  # opening would create an empty spool and "send" nothing
        raise InputError(f"spool folder {args.spool} does not exist")
    require_broker(uplink_config(config, args.broker).broker)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    timeout = (args.timeout or config.uplink.drain_timeout_s) if args.until_empty else None
    stats = stream_spool(Path(args.spool), config, args.broker, timeout, stop=stop)
    print(json.dumps(asdict(stats), sort_keys=True))
    return 0 if not args.until_empty or stats.spool_frames == 0 else 1

"""Durable file operations for spool blobs: write to a temp name, fsync, rename into place, fsync the folder."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from pathlib import Path

from agent.spool.codec import BLOB_SUFFIX

TEMP_SUFFIX = ".tmp"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def blob_name(frame_id: str, encoding: str) -> str:
    """A file name for a frame's blob: readable, safe on any filesystem, unique per frame id."""
    digest = hashlib.blake2b(frame_id.encode("utf-8"), digest_size=8).hexdigest()
    readable = _UNSAFE.sub("_", frame_id)[:96].lstrip(".")
    return f"{readable}.{digest}{BLOB_SUFFIX.get(encoding, '.bin')}"


def write_temp(directory: Path, name: str, data: bytes, sync: bool = True) -> Path:
    """Write `data` to a fresh temp file beside `name` and fsync it (unless not `sync`); the caller renames it with
    `publish`."""
    temp = directory / f"{name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    try:
        try:
            _write_all(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        remove_quietly(temp)
        raise
    return temp


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def publish(temp: Path, final: Path, sync: bool = True) -> None:
    """Atomically rename a fsync'd temp file into place and make the rename itself durable (unless not `sync`)."""
    os.replace(temp, final)
    if sync:
        fsync_dir(final.parent)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (creates, renames, unlinks) to disk; a no-op where folders cannot be opened."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_quietly(path: Path) -> bool:
    """Unlink a file; False when it was already gone."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def file_size(path: Path) -> int | None:
    with contextlib.suppress(FileNotFoundError):
        return path.stat().st_size
    return None


def flush_disk() -> None:
    """Write all cached file data to disk (one sync for a batch of writes made without fsync)."""
    if hasattr(os, "sync"):
        os.sync()

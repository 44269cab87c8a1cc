"""A real PostgreSQL for tests: the Debian package's initdb into a temporary folder, started on a free port.

scripts/setup.sh installs `postgresql` where apt-get is available; tests that need it skip with the reason when
its binaries are missing or the server does not start. As root the server runs as the `postgres` user (PostgreSQL
refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_broker import free_port


def find_pg_bin() -> Path | None:
    for candidate in [os.environ.get("EDGESIFT_PG_BIN", ""), *sorted(glob.glob("/usr/lib/postgresql/*/bin"))[::-1]]:
        if candidate and (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found and shutil.which("pg_ctl") else None


class PostgresServer:
    def __init__(self, bin_dir: Path, root: Path, durable: bool = False) -> None:
        # durable: fsync on, as a deployment runs it (benchmarks); tests run without it, for speed
        self.bin_dir, self.root, self.port, self.durable = bin_dir, root, free_port(), durable
        self.data = root / "data"
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        done = self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", self.user, "--no-sync", "-E", "UTF8")
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()[-500:]}")
        self.start_again()

    def start_again(self) -> None:
        """Start the server on the existing data folder (after stop())."""
        fsync = "on" if self.durable else "off"
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync={fsync} -c max_connections=60"
        done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options,
                         "-w", "-t", "60", "start")
        if done.returncode:
            log = (self.root / "server.log").read_text(errors="replace")[-800:] if (self.root / "server.log").exists() \
                else ""
            raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip()[-300:]} {log}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")


def postgres_server() -> Iterator[PostgresServer]:
    """Body of the session fixture `postgres` (conftest.py): skip with the reason when PostgreSQL is unusable."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -e '.[fleet]'; scripts/setup.sh does it)")
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql; scripts/setup.sh does it)")
    root = Path(tempfile.mkdtemp(prefix="edgesift-pg-"))
    server = PostgresServer(bin_dir, root)
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {exc}")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

"""Read-only queries of the ingest index for the fleet page (SQLite or PostgreSQL, same SQL).

The page never writes: SQLite is opened read-only, PostgreSQL sessions are read-only transactions. An index on an
older schema is not migrated from here (that is the ingest's job): the page says so and stops.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.ingest.schema import SCHEMA_VERSION
from agent.ingest.store import SQLITE_FILE, is_postgres, one_line, redact

HOUR_NS = 3_600_000_000_000
MAX_ROWS = 500


class FleetReader:
    def __init__(self, db: str | None, store: Path | None) -> None:
        self.store = store
        self._lock = threading.Lock()  # one connection, shared by the server's worker threads
        self._pg = is_postgres(db)
        if self._pg:
            import psycopg

            self.errors: tuple[type[BaseException], ...] = (psycopg.Error,)
            try:
                self.conn: Any = psycopg.connect(str(db), autocommit=True, application_name="edgesift-fleet",
                                                 options="-c default_transaction_read_only=on")
            except psycopg.Error as exc:
                raise ConfigError(f"cannot connect to the index {redact(str(db))}: {one_line(exc)}") from exc
        else:
            path = Path(db[len("sqlite:///"):] if db and db.startswith("sqlite:///") else db or
                        Path(store or ".") / SQLITE_FILE)
            if not path.is_file():
                raise ConfigError(f"no ingest index at {path}")
            self.errors = (sqlite3.Error,)
            self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        found = self._version()
        if found != SCHEMA_VERSION:
            self.conn.close()
            raise ConfigError(f"ingest index schema {found}, the fleet page reads {SCHEMA_VERSION}: "
                              "run `edgesift ingest` with this edgesift once to migrate it")

    def _version(self) -> int:
        if not self._pg:
            return int(self.conn.execute("PRAGMA user_version").fetchone()[0])
        row = self.conn.execute("SELECT MAX(version) FROM edgesift_schema").fetchone()
        return int(row[0] or 0)

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        if self._pg:
            sql = sql.replace("?", "%s")
        with self._lock:
            cursor = self.conn.execute(sql, args)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def close(self) -> None:
        self.conn.close()

    # ---- the fleet

    def fleet(self, now_ns: int | None = None) -> list[dict[str, Any]]:
        now_ns = now_ns or time.time_ns()
        hour = now_ns - HOUR_NS
        vehicles = {r["vehicle"]: r for r in self.rows("SELECT * FROM vehicles")}
        traffic = {r["vehicle"]: r for r in self.rows(
            "SELECT vehicle, COUNT(*) AS frames, COALESCE(SUM(bytes), 0) AS bytes, MAX(received_ns) AS last_ns, "
            "SUM(CASE WHEN received_ns >= ? THEN 1 ELSE 0 END) AS frames_hour, "
            "SUM(CASE WHEN received_ns >= ? THEN bytes ELSE 0 END) AS bytes_hour FROM frames GROUP BY vehicle",
            (hour, hour))}
        alerts = {r["vehicle"]: int(r["n"]) for r in self.rows(
            "SELECT vehicle, COUNT(*) AS n FROM alerts WHERE cleared_ns IS NULL GROUP BY vehicle")}
        out = []
        for name in sorted(set(vehicles) | set(traffic)):
            v, t = vehicles.get(name, {}), traffic.get(name, {})
            out.append({
                "vehicle": name, "online": v.get("status") or "unknown", "status_ns": v.get("status_ns"),
                "config_version": v.get("config_version"), "config_status": v.get("config_status"),
                "config_error": v.get("config_error"),
                "frames": int(t.get("frames") or 0), "mb": round(int(t.get("bytes") or 0) / 1e6, 3),
                "frames_last_hour": int(t.get("frames_hour") or 0),
                "mb_last_hour": round(int(t.get("bytes_hour") or 0) / 1e6, 3),
                "last_frame_ns": t.get("last_ns"), "keep_rate": keep_rate(_stats(v)),
                "open_alerts": alerts.get(name, 0),
            })  # fmt: skip
        return out

    # ---- one vehicle

    def vehicle(self, name: str, buckets: int = 12, bucket_ns: int = HOUR_NS // 6) -> dict[str, Any] | None:
        fleet = {v["vehicle"]: v for v in self.fleet()}
        if name not in fleet:
            return None
        rows = self.rows("SELECT sensor, modality, verdict, reasons, received_ns FROM frames WHERE vehicle = ? "
                         "ORDER BY received_ns DESC LIMIT 5000", (name,))
        mix: dict[str, dict[str, Any]] = {}
        latest = max((r["received_ns"] for r in rows), default=0)
        for row in rows:
            slot = (latest - row["received_ns"]) // bucket_ns
            if slot >= buckets:
                continue
            sensor = mix.setdefault(row["sensor"], {"modality": row["modality"], "frames": 0, "verdicts": {},
                                                    "reasons": {}, "timeline": {}})
            sensor["frames"] += 1
            sensor["verdicts"][row["verdict"]] = sensor["verdicts"].get(row["verdict"], 0) + 1
            for reason in json.loads(row["reasons"]):
                sensor["reasons"][reason] = sensor["reasons"].get(reason, 0) + 1
            start = latest - (slot + 1) * bucket_ns
            sensor["timeline"].setdefault(int(start), {}).setdefault(row["verdict"], 0)
            sensor["timeline"][int(start)][row["verdict"]] += 1
        for sensor in mix.values():
            sensor["timeline"] = [{"start_ns": k, **v} for k, v in sorted(sensor["timeline"].items())]
        stats = _stats((self.rows("SELECT stats FROM vehicles WHERE vehicle = ?", (name,)) or [{}])[0])
        thumbs = self.rows("SELECT frame_id, sensor, t_ns, score, reasons, received_ns FROM frames "
                           "WHERE vehicle = ? AND modality = 'camera' ORDER BY received_ns DESC LIMIT 8", (name,))
        for thumb in thumbs:
            thumb["reasons"] = json.loads(thumb["reasons"])
        return {
            "vehicle": fleet[name], "sensors": mix, "decided": (stats.get("daemon") or {}),
            "thumbnails": thumbs,
            "config_history": self.rows("SELECT t_ns, status, version, requested_version, error, via, request_id "
                                        "FROM config_events WHERE vehicle = ? ORDER BY t_ns DESC LIMIT 100", (name,)),
            "alerts": self.alerts(name),
        }

    def frame_location(self, vehicle: str, frame_id: str) -> str | None:
        found = self.rows("SELECT mcap FROM frames WHERE vehicle = ? AND frame_id = ?", (vehicle, frame_id))
        return found[0]["mcap"] if found else None

    # ---- across the fleet

    def alerts(self, vehicle: str | None = None) -> list[dict[str, Any]]:
        where, args = ("WHERE vehicle = ? ", (vehicle,)) if vehicle else ("", ())
        return self.rows(  # open first, then the newest
            "SELECT vehicle, sensor, modality, reason, message, harmful_rate, raised_ns, cleared_ns FROM alerts "  # noqa: S608
            f"{where}ORDER BY CASE WHEN cleared_ns IS NULL THEN 0 ELSE 1 END, raised_ns DESC LIMIT {MAX_ROWS}", args)

    def targets(self) -> list[dict[str, Any]]:
        """Frames matched per pushed target: frames the vehicles kept with the `target` reason."""
        return self.rows(
            "SELECT vehicle, sensor, COUNT(*) AS frames, MAX(received_ns) AS last_ns FROM frames "
            "WHERE reasons LIKE ? GROUP BY vehicle, sensor ORDER BY vehicle, sensor", ('%"target"%',))


def _stats(row: dict[str, Any]) -> dict[str, Any]:
    try:
        doc = json.loads(row.get("stats") or "{}")
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def keep_rate(stats: dict[str, Any]) -> float | None:
    """Kept / decided over the daemon's counters in the vehicle's latest stats message (None when unknown)."""
    daemon = stats.get("daemon") or {}
    kept = sum(v for v in (daemon.get("kept") or {}).values() if isinstance(v, int | float))
    dropped = sum(v for v in (daemon.get("dropped") or {}).values() if isinstance(v, int | float))
    return round(kept / (kept + dropped), 4) if kept + dropped else None

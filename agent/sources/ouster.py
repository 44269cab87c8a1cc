"""Ouster LiDAR data decoded with ouster-sdk: packet captures with their metadata JSON, and packets from bags.

ouster-sdk is an optional dependency (`pip install 'edgesift[ouster]'`); without it an Ouster input is refused
with that instruction. A scan's points are the returns with RANGE > 0, x/y/z from the sensor's own lookup table
(metadata beam intrinsics), intensity REFLECTIVITY / 255; its time is the host time of its first packet.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import DecodeError, InputError
from agent.frame import Frame, Item, Modality, Skip
from agent.sources.base import Source, safe_name
from agent.sources.limits import DEFAULT_LIMITS, InputLimits, TooLarge, check_points
from agent.sources.pcap_salvage import repair

INSTALL_HINT = "Ouster data needs ouster-sdk: pip install 'edgesift[ouster]'"


def _core() -> Any:
    try:
        from ouster.sdk import core
    except ImportError as exc:
        raise InputError(INSTALL_HINT) from exc
    return core


def looks_like_metadata(path: Path) -> bool:
    """An Ouster sensor metadata JSON (as written by the sensor, ouster-cli or the ROS driver)?"""
    try:
        with path.open("rb") as fh:
            head = fh.read(65536)
        text = head.decode("utf-8", errors="replace")
    except OSError:
        return False
    keys = ('"lidar_data_format"', '"beam_intrinsics"', '"sensor_info"', '"beam_altitude_angles"')
    return any(key in text for key in keys)


def metadata_for(pcap: Path) -> Path | None:
    """The metadata JSON beside a pcap: same stem, else the longest JSON stem that starts the pcap's stem."""
    same = pcap.with_suffix(".json")
    if same.is_file() and looks_like_metadata(same):
        return same
    candidates = [p for p in pcap.parent.glob("*.json") if pcap.stem.startswith(p.stem) and looks_like_metadata(p)]
    return max(candidates, key=lambda p: len(p.stem)) if candidates else None


def frame_points(core: Any, lut: Any, scan: Any) -> np.ndarray:
    """Nx4 float32 x, y, z, intensity of one LidarFrame's valid returns."""
    rng = np.asarray(scan.field("RANGE"))
    xyz = np.asarray(lut(rng), dtype=np.float32).reshape(-1, 3)
    valid = rng.reshape(-1) > 0
    out = np.zeros((int(valid.sum()), 4), dtype=np.float32)
    out[:, :3] = xyz[valid]
    if scan.has_field("REFLECTIVITY"):
        out[:, 3] = np.asarray(scan.field("REFLECTIVITY"), dtype=np.float32).reshape(-1)[valid] / 255.0
    return out


def _first_stamp(scan: Any) -> int:
    stamps = np.asarray(scan.packet_timestamp)
    nonzero = stamps[stamps > 0]
    return int(nonzero[0]) if nonzero.size else 0


def ouster_frame(sensor: str, seq: int, t_ns: int, points: np.ndarray, nbytes: int, source: str) -> Frame:
    return Frame(sensor=sensor, modality=Modality.LIDAR, t_ns=t_ns, seq=seq, nbytes=nbytes, source=source,
                 array=points, meta={"points": str(len(points))})


def check_scan_size(info: Any, limits: InputLimits) -> None:
    """TooLarge when the metadata sizes a scan (columns x beams) past inputs.max_points, before one is allocated."""
    fmt = info.format
    check_points(int(fmt.columns_per_frame) * int(fmt.pixels_per_column), limits)


class PacketBatcher:
    """Packets of one sensor (raw UDP payloads) into complete scans, for packets carried in bags."""

    def __init__(self, metadata_json: str, limits: InputLimits = DEFAULT_LIMITS) -> None:
        self._core = core = _core()
        try:
            self.info = core.SensorInfo(metadata_json)
        except Exception as exc:  # the SDK raises RuntimeError/ValueError on metadata it cannot parse
            raise DecodeError(f"Ouster metadata does not parse: {exc}") from exc
        check_scan_size(self.info, limits)
        self._format = core.PacketFormat(self.info)
        self._lut = core.XYZLut(self.info)
        self._batcher = core.FrameBatcher(self.info)
        self._scan = core.LidarFrame(self.info)
        self._packets = 0
        self.packet_bytes = int(self._format.lidar_packet_size)

    def add(self, buf: bytes, t_ns: int) -> tuple[int, np.ndarray, int] | None:
        """Feed one packet; (time, points, packets) when it completed a scan."""
        if len(buf) != self.packet_bytes:
            raise DecodeError(f"{len(buf)}-byte packet, the metadata's profile has {self.packet_bytes}-byte ones")
        packet = self._core.LidarPacket(self._format)
        packet.buf[:] = np.frombuffer(buf, dtype=np.uint8)
        packet.host_timestamp = t_ns
        self._packets += 1
        if not self._batcher.batch(packet, self._scan):
            return None
        return self._take()

    def finish(self) -> tuple[int, np.ndarray, int] | None:
        """The last, partial scan (a bag cut mid-rotation), if any packet went into it."""
        return self._take() if self._packets else None

    def _take(self) -> tuple[int, np.ndarray, int]:
        done = (_first_stamp(self._scan), frame_points(self._core, self._lut, self._scan), self._packets)
        self._scan = self._core.LidarFrame(self.info)
        self._packets = 0
        return done


class OusterPcapSource(Source):
    """An Ouster packet capture decoded with its metadata JSON; one scan per rotation, named after the file."""

    kind = "ouster"
    clock = "capture host clock"
    wall_clock = True

    def __init__(self, path: str, metadata: Path | None = None) -> None:
        super().__init__(path)
        self._core = _core()
        self.metadata = metadata or metadata_for(Path(path))
        if self.metadata is None:
            raise InputError(f"{path}: no Ouster metadata JSON beside it (same name with .json)")
        try:
            json.loads(self.metadata.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.metadata}: not readable JSON metadata: {exc}") from exc
        self.sensor = safe_name(Path(path).stem) or "ouster"

    def __iter__(self) -> Iterator[Item]:
        from ouster.sdk import open_source

        with tempfile.TemporaryDirectory(prefix="edgesift-pcap-") as scratch:
            path = yield from self._repaired(Path(scratch))
            yield from self._scans(open_source, self._core, path)

    def _repaired(self, scratch: Path) -> Generator[Skip, None, str]:
        """The capture to read: ouster-sdk stops at the first damaged record and says nothing, so a classic pcap
        with damage is read from a copy without it (pcap_salvage), each damaged stretch a counted skip."""
        try:
            damage = repair(Path(self.path), scratch / "repaired.pcap")
        except (OSError, ValueError):  # not classic pcap (pcapng): the SDK reads it as it can
            return self.path
        for found in damage:
            yield Skip(self.sensor, -1, 0, self.path, "corrupt_recording", found.detail)
        return str(scratch / "repaired.pcap") if damage else self.path

    def _scans(self, open_source: Any, core: Any, path: str) -> Iterator[Item]:
        source = None
        try:
            source = open_source(path, meta=[str(self.metadata)])
            check_scan_size(source.sensor_info[0], self.limits)
            lut = core.XYZLut(source.sensor_info[0])
            packet_bytes = core.PacketFormat(source.sensor_info[0]).lidar_packet_size
        except TooLarge as exc:
            _close(source)
            yield Skip(self.sensor, 0, 0, self.path, "too_large", str(exc))
            return
        except Exception as exc:  # the SDK raises RuntimeError/ValueError on captures it cannot open
            _close(source)
            yield Skip(self.sensor, 0, 0, self.path, "decode_error", f"{type(exc).__name__}: {exc}")
            return
        seq, last_t = 0, 0
        try:
            for frames in source:
                scan = frames[0] if frames is not None else None
                if scan is None:
                    continue
                t_ns = _first_stamp(scan) or last_t
                points = frame_points(core, lut, scan)
                yield ouster_frame(self.sensor, seq, t_ns, points, int(scan.packet_count) * packet_bytes, self.path)
                seq, last_t = seq + 1, t_ns
        except Exception as exc:  # a damaged capture ends the read; what came before stays
            yield Skip(self.sensor, seq, last_t, self.path, "corrupt_recording", f"{type(exc).__name__}: {exc}")
        finally:
            _close(source)


def _close(source: Any) -> None:
    close = getattr(source, "close", None)
    if close is not None:
        close()

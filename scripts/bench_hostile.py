#!/usr/bin/env python3
"""Hostile local input: each case runs `edgesift` in its own process; prints its outcome and peak RSS as JSON.

Cases (the issue's): YAML nesting, alias expansion ("billion laughs"), a 5000-digit integer, duplicate keys
(`config validate`); a 20000x20000 PNG bomb, a TIFF whose directory says 20000x20000, a 1x1 PNG, a symlink loop
and a non-UTF-8 folder name (`replay` of an image folder); an MCAP chunk that decompresses to 1 GiB while
claiming 1 MiB and one claiming 3 GB, a PointCloud2 with point_step 2^32-1 (`replay` of an MCAP); a 200 MB KITTI
.bin (sparse file); a truncated Velodyne pcap. Peak RSS is the child's own VmHWM (reported by the child at exit).
`outcome` is `error` (exit 1, the error on stderr, no traceback), `skipped` (exit 0, the summary's skipped
reasons), `recorded` (exit 0, frames with an `error:<kind>` decision), `ok` (exit 0) or `crash`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import zlib
from pathlib import Path
from typing import Any

import zstandard

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample_drive.mcap"
PCAP = REPO.parent / "shared" / "data" / "pcap" / "velodyne_hdl32e_monterey_first_packets.pcap"
MAGIC = b"\x89MCAP0\r\n"


def _png(width: int, height: int, rows: Any) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    comp = zlib.compressobj(9)
    idat = [comp.compress(row) for row in rows]
    idat.append(comp.flush())
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(idat)) + chunk(b"IEND", b"")


def tiff_claiming(width: int, height: int, tiff: bytes | None = None) -> bytes:
    """A real little-endian TIFF (`tiff`, or a 64x48 16-bit one) whose directory says it is width x height (a
    decoder would size its buffer so)."""
    import cv2
    import numpy as np

    data = bytearray(tiff or cv2.imencode(".tiff", np.full((48, 64), 4000, np.uint16))[1].tobytes())
    (offset,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[offset:offset + 2])
    for k in range(count):
        entry = offset + 2 + 12 * k
        (tag,) = struct.unpack("<H", data[entry:entry + 2])
        if tag in (256, 257):
            data[entry + 2:entry + 12] = struct.pack("<HII", 4, 1, width if tag == 256 else height)
    return bytes(data)


def _record(opcode: int, body: bytes) -> bytes:
    return struct.pack("<BQ", opcode, len(body)) + body


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<I", len(raw)) + raw


def _mcap_chunk_bomb(path: Path, decompressed: int, claim: int) -> None:
    """Schema + Channel, then one zstd chunk of `decompressed` zero bytes that says it holds `claim` bytes."""
    from agent.replay.msgs import COMPRESSED_IMAGE

    schema = _record(0x03, struct.pack("<H", 1) + _s("sensor_msgs/msg/CompressedImage") + _s("ros2msg")
                     + _s(COMPRESSED_IMAGE))
    channel = _record(0x04, struct.pack("<HH", 1, 1) + _s("/cam/compressed") + _s("cdr") + struct.pack("<I", 0))
    comp = zstandard.ZstdCompressor(level=3).compressobj()
    block = bytes(1 << 20)
    parts = [comp.compress(block) for _ in range(decompressed >> 20)]
    parts.append(comp.flush())
    data = b"".join(parts)
    chunk = _record(0x06, struct.pack("<QQQI", 0, 0, claim, 0) + _s("zstd") + struct.pack("<Q", len(data)) + data)
    header = _record(0x01, _s("") + _s("edgesift-hostile"))
    path.write_bytes(MAGIC + header + schema + channel + chunk + _record(0x0F, struct.pack("<I", 0)) + MAGIC)


def _mcap_bad_pointcloud(path: Path) -> None:
    from mcap_ros2.writer import Writer

    from agent.replay.msgs import POINT_CLOUD2

    with path.open("wb") as fh:
        writer = Writer(fh)
        schema = writer.register_msgdef("sensor_msgs/msg/PointCloud2", POINT_CLOUD2)
        fields = [{"name": n, "offset": 4 * i, "datatype": 7, "count": 1} for i, n in enumerate("xyz")]
        msg = {"header": {"stamp": {"sec": 1, "nanosec": 0}, "frame_id": "velo"}, "height": 1, "width": 1000,
               "fields": fields, "is_bigendian": False, "point_step": 2**32 - 1, "row_step": 0,
               "data": bytes(16_000), "is_dense": True}
        writer.write_message("/velo/points", schema, msg, log_time=1_000_000_000)
        writer.finish()


def make_cases(root: Path) -> list[dict[str, Any]]:
    """Write the hostile files under root; each case: name, argv (after `edgesift`)."""
    root.mkdir(parents=True, exist_ok=True)
    cases: list[dict[str, Any]] = []

    def yaml_case(name: str, text: str) -> None:
        (root / f"{name}.yaml").write_text(text)
        cases.append({"name": name, "argv": ["config", "validate", str(root / f"{name}.yaml")]})

    yaml_case("yaml_nesting", "inputs: " + "[" * 100_000 + "]" * 100_000 + "\n")
    laughs = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    yaml_case("yaml_aliases", laughs)
    yaml_case("yaml_huge_int", "version: " + "9" * 5000 + "\n")
    yaml_case("yaml_duplicate_key", "spool:\n  path: /data/spool\nspool:\n  max_mb: 100\n")

    def folder_case(name: str, files: dict[str, bytes | None], folder: str | bytes | None = None) -> None:
        base = root / name
        base.mkdir(exist_ok=True)
        target = base / os.fsdecode(folder) if folder is not None else base / "images"
        target.mkdir(exist_ok=True)
        for file_name, data in files.items():
            if data is None:
                (target / file_name).symlink_to(target / file_name)  # a link to itself: ELOOP
            else:
                (target / file_name).write_bytes(data)
        cases.append({"name": name, "argv": ["replay", str(target), "--out", str(base / "out"), "-q"]})

    real_png = (REPO / "tests" / "data").glob("**/*.png")
    small = next(real_png, None)
    ok = small.read_bytes() if small is not None else _png(64, 48, (b"\x00" + bytes(range(64)) for _ in range(48)))
    folder_case("png_bomb_20000x20000", {"bomb.png": _png(20000, 20000, (bytes(20001) for _ in range(20000))),
                                         "ok.png": ok})
    folder_case("png_1x1", {"a.png": _png(1, 1, [b"\x00\x80"]), "ok.png": ok})
    folder_case("tiff_says_20000x20000", {"bomb.tiff": tiff_claiming(20000, 20000), "ok.png": ok})
    folder_case("symlink_loop", {"loop.png": None, "ok.png": ok})
    folder_case("non_utf8_folder_name", {"ok.png": ok}, folder=b"cam\xff\xfe")

    for name, decompressed, claim in (("mcap_chunk_lies_1gib", 1 << 30, 1 << 20),
                                      ("mcap_chunk_claims_3gb", 1 << 20, 3_000_000_000)):
        _mcap_chunk_bomb(root / f"{name}.mcap", decompressed, claim)
        cases.append({"name": name, "argv": ["replay", str(root / f"{name}.mcap"), "--out", str(root / name),
                                             "-q"]})
    _mcap_bad_pointcloud(root / "pointcloud_step.mcap")
    cases.append({"name": "pointcloud2_point_step_2^32-1", "argv": ["replay", str(root / "pointcloud_step.mcap"),
                  "--out", str(root / "pc"), "-q"]})

    velo = root / "kitti_bin" / "2011_09_26_drive_0001_sync" / "velodyne_points" / "data"
    velo.mkdir(parents=True)
    with (velo / "0000000000.bin").open("wb") as fh:
        fh.truncate(200 * 1024 * 1024)  # sparse: 200 MB of zeros without the disk space
    cases.append({"name": "kitti_bin_200mb", "argv": ["replay", str(velo.parent.parent), "--out",
                  str(root / "kb"), "-q"]})
    if PCAP.exists():
        data = PCAP.read_bytes()
        (root / "cut.pcap").write_bytes(data[: len(data) // 2 + 7])
        cases.append({"name": "pcap_truncated", "argv": ["replay", str(root / "cut.pcap"), "--out",
                      str(root / "pcap"), "-q"]})
    return cases


# The child reports its own VmHWM at exit: ru_maxrss from wait4 also counts the forked copy of the parent before
# exec, which inside a big test process is hundreds of MB that the child never used.
_WRAPPER = """
import atexit, os, runpy, sys
def _hwm():
    try:
        with open('/proc/self/status') as fh:
            kb = next(line.split()[1] for line in fh if line.startswith('VmHWM'))
        with open(os.environ['EDGESIFT_HWM_OUT'], 'w') as out:
            out.write(kb)
    except (OSError, StopIteration):
        pass
atexit.register(_hwm)
sys.argv = ['edgesift', *sys.argv[1:]]
runpy.run_module('agent', run_name='__main__', alter_sys=True)
"""


def run_case(case: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
    """Run one case in its own process; outcome, stderr's last line, skipped reasons and the child's peak RSS."""
    argv = [sys.executable, "-c", _WRAPPER, *case["argv"]]
    with tempfile.TemporaryFile() as err, tempfile.TemporaryDirectory() as tmp:
        hwm = Path(tmp) / "hwm"
        env = {**os.environ, "EDGESIFT_HWM_OUT": str(hwm)}
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, cwd=REPO, env=env)
        killer = threading.Timer(timeout, proc.kill)  # a case that hangs is a crash, not a stuck benchmark
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
            proc.returncode = 0  # reaped by wait4: stop Popen from waiting again
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
        peak_kb = int(hwm.read_text()) if hwm.exists() else usage.ru_maxrss  # killed: wait4's (an upper bound)
    code = os.waitstatus_to_exitcode(status)
    lines = [line for line in stderr.splitlines() if line.strip()]
    result: dict[str, Any] = {"name": case["name"], "exit": code, "peak_rss_mb": round(peak_kb / 1024, 1),
                              "stderr_first": lines[0][:300] if lines else "",
                              "stderr_last": lines[-1][:300] if lines else ""}
    if "--out" in case["argv"]:
        summary = Path(case["argv"][case["argv"].index("--out") + 1]) / "summary.json"
        if summary.exists():
            doc = json.loads(summary.read_text())
            result["skipped"] = doc["skipped"]["by_reason"]
            result["errors"] = {k: v for k, v in doc["by_rule"].items() if k.startswith("error:")}
    traceback = "Traceback" in stderr
    if code == 1 and not traceback and lines:  # config validate lists each issue on its own line
        result["outcome"] = "error"
    elif code == 0 and not traceback and result.get("skipped"):
        result["outcome"] = "skipped"
    elif code == 0 and not traceback and result.get("errors"):
        result["outcome"] = "recorded"  # decision records with an error:<kind> rule
    elif code == 0 and not traceback:
        result["outcome"] = "ok"
    else:
        result["outcome"] = "crash"
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated case names")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgesift-hostile-") as tmp:
        cases = make_cases(Path(tmp))
        if args.only:
            cases = [c for c in cases if c["name"] in args.only.split(",")]
        baseline = run_case({"name": "baseline_config_validate", "argv": ["config", "validate",
                             str(REPO / "config" / "agent.yaml")]})
        results = [run_case(case) for case in cases]
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"baseline_rss_mb": baseline["peak_rss_mb"], "cases": results}, indent=1))
    return 0 if all(r["outcome"] != "crash" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

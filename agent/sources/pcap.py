"""A Velodyne packet capture (pcap or pcapng) decoded into one LiDAR scan per rotation with velodyne_decoder.

The sensor model is detected from the packets themselves (the decoder reads the factory bytes; HDL-64E
calibration is read from its status bytes in classic pcap files). Scan times are the capture host's clock
(`TimePair.host`, the pcap record time of the scan's packets): it is the clock other inputs recorded on the same
machine use, while the device clock only counts within the hour unless the sensor has GPS.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from agent.errors import InputError
from agent.frame import PARTIAL_ROTATION, Frame, Item, Modality, Skip
from agent.sources.base import NS_PER_S, Source, safe_name
from agent.sources.pcap_salvage import PCAP_MAGICS, PcapDamage, read_format, records

if TYPE_CHECKING:
    import velodyne_decoder as vd

PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
PACKET_BYTES = 1206  # UDP payload of a Velodyne data packet (velodyne_decoder.PACKET_SIZE)
# A last rotation with fewer packets than this share of the capture's typical one is partial (a rotation's
# count varies by a packet or two: 154-156 for an HDL-32 at 10 Hz).
PARTIAL_PACKETS = 0.9
_PROBE_PACKETS = 2000  # how far into the file open() looks for a Velodyne data packet
_DLT_LINUX_SLL = 113


def _dpkt() -> Any:
    # dpkt and velodyne_decoder load on first use: only a Velodyne capture needs them, and importing them costs
    # every process that reads any input (each pool or Ray worker, each CLI run) about 70 ms.
    import dpkt

    return dpkt


def _vd() -> Any:
    import velodyne_decoder

    return velodyne_decoder


def velodyne_xyzi(points: np.ndarray) -> np.ndarray:
    """velodyne_decoder's points -> Nx4 float32 x, y, z, intensity on KITTI's 0..1 scale (Velodyne reports
    0..255; the proxy models were trained on KITTI's reflectance, so the raw scale would put every return in
    their "bright" channel)."""
    xyzi = np.array(points[:, :4], dtype=np.float32)
    xyzi[:, 3] /= 255.0
    return xyzi


def is_pcap_magic(head: bytes) -> bool:
    return head[:4] in PCAP_MAGICS or head[:4] == PCAPNG_MAGIC


def _reader(fh: BinaryIO) -> Any:
    head = fh.read(4)
    fh.seek(0)
    dpkt = _dpkt()
    return dpkt.pcapng.Reader(fh) if head == PCAPNG_MAGIC else dpkt.pcap.Reader(fh)


def _payload(frame: bytes, link_type: int) -> bytes | None:
    """The innermost payload (the UDP data) of a captured link-layer frame, None if it does not parse."""
    dpkt = _dpkt()
    try:
        packet: Any = dpkt.sll.SLL(frame) if link_type == _DLT_LINUX_SLL else dpkt.ethernet.Ethernet(frame)
    except (dpkt.dpkt.UnpackError, dpkt.dpkt.NeedData):
        return None
    while isinstance(getattr(packet, "data", None), dpkt.Packet):
        packet = packet.data
    data = getattr(packet, "data", None)
    return bytes(data) if isinstance(data, bytes | bytearray) else None


def velodyne_packets(path: str) -> Iterator[tuple[float, bytes] | PcapDamage]:
    """(host time s, 1206-byte payload) of every Velodyne data packet; position/GPS packets are left out.

    Classic pcap is read record by record (pcap_salvage): damage is reported as a PcapDamage and reading resumes.
    """
    with open(path, "rb") as fh:
        if fh.read(4) == PCAPNG_MAGIC:
            fh.seek(0)
            reader = _dpkt().pcapng.Reader(fh)
            link_type, stream = reader.datalink(), iter(reader)
        else:
            size = fh.seek(0, 2)
            link_type, stream = read_format(fh).link_type, records(fh, size)
        for record in stream:
            if isinstance(record, PcapDamage):
                yield record
                continue
            stamp, frame = record
            data = _payload(frame, link_type)
            if data is not None and len(data) == PACKET_BYTES:
                yield float(stamp), data


def _is_hdl64e(path: str) -> bool:
    # The last two bytes (return mode, model id) are constant for every model except the HDL-64E.
    tails = []
    for _, data in velodyne_packets(path):
        tails.append(data[-2:])
        if len(tails) == 5:
            break
    return len(tails) == 5 and len(set(tails)) > 1


class PcapSource(Source):
    """One LiDAR scan per rotation; the sensor is named after the file.

    `array` is x, y, z, intensity (Nx4 float32) of the decoded points. `nbytes` is the raw size of the scan:
    the number of data packets fed to the decoder since the previous scan times 1206 bytes (the packet that
    closes a rotation is counted with the scan it closes, so a scan may be off by one packet).
    """

    kind = "pcap"
    clock = "capture host clock"

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.sensor = safe_name(Path(path).stem) or "velodyne"
        try:
            probe = self._probe()
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except (ValueError, _dpkt().dpkt.Error) as exc:
            raise InputError(f"{path} is not a readable pcap file: {exc}") from exc
        if not probe:
            raise InputError(
                f"{path} holds no Velodyne data packets (1206-byte UDP payloads) in its first {_PROBE_PACKETS} "
                "packets: only Velodyne captures are supported"
            )

    def _probe(self) -> bool:
        with open(self.path, "rb") as fh:
            reader = _reader(fh)
            link_type = reader.datalink()
            for n, (_, frame) in enumerate(reader):
                data = _payload(frame, link_type)
                if data is not None and len(data) == PACKET_BYTES:
                    return True
                if n >= _PROBE_PACKETS:
                    break
        return False

    def _config(self) -> vd.Config:
        vd = _vd()
        config = vd.Config()
        if _is_hdl64e(self.path):
            # Only the HDL-64E needs a calibration, carried in its status bytes; the library reads classic pcap.
            config.model, config.calibration = vd.hdl64e.read_calibration_from_pcap(self.path)
        return config

    def __iter__(self) -> Iterator[Item]:
        seq, last_t = 0, 0
        try:
            decoder = _vd().StreamDecoder(self._config())
        except (ValueError, RuntimeError) as exc:
            yield Skip(self.sensor, 0, 0, self.path, "decode_error", f"sensor model/calibration: {exc}")
            return
        packets, bad, why = 0, 0, ""
        closed: deque[int] = deque(maxlen=64)  # data packets of recent rotations closed by the azimuth wrapping
        stream = velodyne_packets(self.path)
        while True:
            try:
                record = next(stream)
            except StopIteration:
                break
            except Exception as exc:  # dpkt reports a damaged capture with many exception types
                yield Skip(self.sensor, seq, last_t, self.path, "corrupt_recording", f"{type(exc).__name__}: {exc}")
                break
            if isinstance(record, PcapDamage):  # counted; reading resumes at the next plausible record
                yield Skip(self.sensor, seq, last_t, self.path, "corrupt_recording", record.detail)
                continue
            stamp, data = record
            try:
                result = decoder.decode(stamp, data, False)
            except (ValueError, RuntimeError) as exc:  # a damaged packet (a zeroed model byte): left out, counted
                bad, why = bad + 1, why or f"{type(exc).__name__}: {exc}"
                continue
            packets += 1
            if bad:
                yield self._left_out(seq, last_t, bad, why)
                bad, why = 0, ""
            if result is not None:
                frame = self._frame(result, seq, packets)
                yield frame
                closed.append(packets)
                seq, last_t, packets = seq + 1, frame.t_ns, 0
        if bad:
            yield self._left_out(seq, last_t, bad, why)
        # The decoder holds the last rotation until told that the stream has ended: the capture stopped during it,
        # so it is partial unless it holds about as many packets as the capture's recent closed rotations.
        result = decoder.finish(False)
        if result is not None:
            frame = self._frame(result, seq, packets)
            if not closed or packets < PARTIAL_PACKETS * float(np.median(closed)):
                frame.meta[PARTIAL_ROTATION] = "1"
            yield frame

    def _left_out(self, seq: int, last_t: int, bad: int, why: str) -> Skip:
        return Skip(self.sensor, seq, last_t, self.path, "decode_error",
                    f"{bad} packet{'s' if bad > 1 else ''} left out: {why}")

    def _frame(self, result: tuple[Any, np.ndarray], seq: int, packets: int) -> Frame:
        stamp, points = result
        xyzi = velodyne_xyzi(points)
        return Frame(
            sensor=self.sensor,
            modality=Modality.LIDAR,
            t_ns=round(stamp.host * NS_PER_S),  # float seconds: about 0.2 us resolution at today's epoch
            seq=seq,
            nbytes=max(packets, 1) * PACKET_BYTES,
            source=self.path,
            array=xyzi,
            meta={"points": str(len(xyzi)), "packets": str(packets)},
        )

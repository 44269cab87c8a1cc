"""The ingest's PUBLISH decoding (agent/uplink/fast_publish.py) gives what paho's own decoder gives."""

from __future__ import annotations

import struct

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.uplink import wire
from agent.uplink.fast_publish import FastPublishClient, client_class, split_publish
from agent.uplink.uplink import frame_properties


def _header() -> wire.FrameHeader:
    return wire.FrameHeader(
        frame_id="0000000000000000042-cam-7", vehicle="car-1", sensor="cam", modality="camera", t_ns=42, seq=7,
        verdict="helpful", score=0.9, reasons=["novel"], rule="keep", encoding="jpeg", scorer="heuristic",
        sha256="0" * 64, size=3, sent_ns=1,
    )  # fmt: skip


def _packet_of(topic: bytes, qos: int, props: Properties | None, payload: bytes, mid: int = 513) -> bytes:
    packed = props.pack() if props is not None else b"\x00"
    return struct.pack("!H", len(topic)) + topic + (struct.pack("!H", mid) if qos else b"") + packed + payload


def _big_properties() -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("k" * 100, "v" * 100)] * 2  # > 127 bytes: a two-byte property length
    props.MessageExpiryInterval = 30
    return props


CASES = [
    (1, frame_properties(_header()), b"\x00\x00\x00\x02{}" + b"x" * 100_000),  # the uplink's frame message
    (0, frame_properties(_header()), b"payload"),
    (1, None, b"no properties"),
    (1, _big_properties(), b""),  # empty payload
]


@pytest.mark.parametrize(("qos", "props", "payload"), CASES)
def test_split_and_lazy_properties_match_paho(qos: int, props: Properties | None, payload: bytes) -> None:
    command = 0x30 | (qos << 1) | 0x01  # retained
    packet = _packet_of(b"edgesift/car-1/frames/cam", qos, props, payload)
    theirs = _packet.decode_publish(command, packet, MQTTProtocolVersion.MQTTv5)

    client = FastPublishClient(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, manual_ack=True)
    got: list[mqtt.MQTTMessage] = []
    client.on_message = lambda _c, _u, message: got.append(message)
    client._in_packet["command"], client._in_packet["packet"] = command, packet
    assert client._handle_publish() == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
    (ours,) = got
    assert (ours.topic.encode(), ours.mid, ours.qos, ours.retain, ours.dup) == \
        (theirs.topic, theirs.mid, theirs.qos, theirs.retain, theirs.dup)
    assert bytes(ours.payload) == theirs.payload
    assert str(ours.properties) == str(theirs.properties)  # decoded by paho when first read
    assert ours.properties is ours.properties  # once


def test_truncated_packets_are_reported_by_paho() -> None:
    packet = _packet_of(b"edgesift/car-1/frames/cam", 1, frame_properties(_header()), b"data")
    for cut in (1, 10, 28, 30, 40):
        assert split_publish(packet[:cut], 1) is None
        client = FastPublishClient(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client._in_packet["command"], client._in_packet["packet"] = 0x32, packet[:cut]
        with pytest.raises(_packet.MalformedPacket):
            client._handle_publish()


def test_the_installed_paho_has_the_hooks() -> None:
    assert client_class() is FastPublishClient  # else the ingest silently runs paho's slower decoding


def test_fixed_headers_are_read_ahead_only_within_their_packet() -> None:
    import socket

    client = FastPublishClient(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, manual_ack=True)
    ours, theirs = socket.socketpair()
    try:
        ours.setblocking(False)
        client._sock = ours  # type: ignore[assignment]
        bodies = [b"\x00\x01", b"x" * 200, b"y" * 100_000]  # remaining lengths of 1-, 2- and 3-byte encodings
        stream = b"".join(bytes([0x32]) + _vbi(len(body)) + body for body in bodies)
        theirs.sendall(stream)
        got = b""
        for body in bodies:
            assert client._sock_recv(1) == b"\x32"
            client._in_packet["command"] = 0x32  # as paho's _packet_read records it
            length = b""
            while not length or length[-1] & 0x80:
                length += client._sock_recv(1)
            assert length == _vbi(len(body))
            read = b""
            while len(read) < len(body):
                read += client._sock_recv(len(body) - len(read))
            got += bytes([0x32]) + length + read
            client._in_packet["command"] = 0  # the next packet
        assert got == stream
    finally:
        client._sock = None
        ours.close()
        theirs.close()


def test_ack_all_queues_the_pubacks_paho_would_send() -> None:
    client = FastPublishClient(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, manual_ack=True)
    client.ack_all([1, 513, 65535])
    (packet,) = client._out_packet
    assert packet["packet"] == b"\x40\x02\x00\x01" + b"\x40\x02\x02\x01" + b"\x40\x02\xff\xff"


def _vbi(value: int) -> bytes:
    out = b""
    while True:
        value, byte = divmod(value, 128)
        out += bytes([byte | (0x80 if value else 0)])
        if not value:
            return out


def test_packed_frame_properties_are_the_uplinks() -> None:
    from agent.uplink.fast_publish import packed_frame_properties

    for header in (_header(), wire.FrameHeader(**{**_header().to_dict(), "frame_id": "é" * 200, "chunk": 3,
                                                  "chunks": 12})):
        packed = packed_frame_properties(wire.CONTENT_TYPE.encode(), header.frame_id,
                                         f"{header.chunk}/{header.chunks}")
        assert packed.pack() == frame_properties(header).pack()
        assert str(packed) == str(frame_properties(header))


def test_a_plain_puback_completes_the_publish_as_paho_would() -> None:
    results = []
    for cls in (mqtt.Client, FastPublishClient):
        client = cls(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        seen: list[tuple[int, bool, str]] = []
        client.on_publish = lambda _c, _u, mid, reason, props, seen=seen: seen.append(
            (mid, reason.is_failure, str(props)))
        client._sock = None
        info = client.publish("t/x", b"payload", qos=1)  # not connected: queued, waits for its PUBACK
        for packet in (struct.pack("!H", info.mid), struct.pack("!HB", info.mid, 0x10)):  # plain, then with a code
            client._in_packet["command"], client._in_packet["packet"] = 0x40, packet
            client._handle_pubackcomp("PUBACK")
        results.append((seen, info._published, len(client._out_messages)))
    assert results[0] == results[1] and results[1][0][0][:2] == (1, False) and results[1][1]

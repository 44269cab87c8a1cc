"""paho's MQTT client with incoming MQTT 5 PUBLISH packets decoded cheaply: properties parsed when read.

paho (2.x) builds a `Properties` object for every incoming MQTT 5 PUBLISH, and hands it the whole rest of the
packet, which it slices (copies) again per property: a 95 KB frame with the uplink's 3 properties (content type,
frame id, chunk) costs ~110-140 us of CPU to decode, most of it in `Properties`, against ~10 us for topic, packet
id and payload. The ingest never reads a frame's properties (the payload's header carries what it needs). So here
the topic, packet id and the extent of the properties are read from the packet (the properties' length must fit
in it, else paho's own decoder reports the malformed packet as usual), the payload is sliced once, and the
properties' bytes are kept: paho's own `Properties.unpack` decodes them the first time `message.properties` is
read. Same MQTTMessage otherwise, same callback, same acks. QoS 2, MQTT 3.1.1 and a paho without the hooks used
here take paho's own path unchanged.
"""

from __future__ import annotations

import logging
import socket
import struct
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

try:  # private hooks of paho 2.x: their absence (another paho) leaves paho's own decoding in place
    _SLOT: Any = mqtt.MQTTMessage.__dict__["properties"]  # the slot that holds the decoded Properties
    _HOOKS = all(hasattr(mqtt.Client, name) for name in ("_handle_publish", "_handle_on_message", "_send_puback",
                                                         "_sock_recv", "_packet_queue", "_handle_pubackcomp",
                                                         "_do_on_publish"))
except KeyError:  # pragma: no cover - depends on the installed paho
    _HOOKS = False

log = logging.getLogger(__name__)
_U16 = struct.Struct("!H")
_PUBACK_SUCCESS = ReasonCode(PacketTypes.PUBACK)  # shared by every plain PUBACK's on_publish: read, never change
_NO_PROPERTIES = Properties(PacketTypes.PUBACK)
_PUBACK = struct.Struct("!BBH")  # PUBACK, remaining length 2, packet id (MQTT 5: no reason code = success)


def split_publish(packet: bytes, qos: int) -> tuple[bytes, int, int, int] | None:
    """(topic, packet id, start of the properties (at their length), start of the payload) of an MQTT 5
    PUBLISH's variable part; None when the packet is shorter than its lengths say (then paho's decoder reports
    it)."""
    size = len(packet)
    if size < 2:
        return None
    pos = 2 + ((packet[0] << 8) | packet[1])
    topic = packet[2:pos]
    mid = 0
    if qos:
        if pos + 2 > size:
            return None
        mid = (packet[pos] << 8) | packet[pos + 1]
        pos += 2
    props_at, length, shift = pos, 0, 0
    for _ in range(4):  # the property length: a variable byte integer of at most 4 bytes
        if pos >= size:
            return None
        byte = packet[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            pos += length
            return (topic, mid, props_at, pos) if pos <= size else None
    return None


class LazyPropertiesMessage(mqtt.MQTTMessage):
    """An MQTTMessage whose MQTT 5 properties are decoded by paho when first read (and never when not)."""

    __slots__ = ("_raw_properties",)

    @property  # type: ignore[override]
    def properties(self) -> Properties | None:
        raw = getattr(self, "_raw_properties", None)
        if raw is not None:
            self._raw_properties = None
            decoded = Properties(PacketTypes.PUBLISH)
            decoded.unpack(raw)  # raises MalformedPacket, as paho would have on receipt
            _SLOT.__set__(self, decoded)
        return _SLOT.__get__(self, type(self))

    @properties.setter
    def properties(self, value: Properties | None) -> None:
        self._raw_properties = None
        _SLOT.__set__(self, value)


class FastPublishClient(mqtt.Client):
    """mqtt.Client whose MQTT 5 QoS 0/1 PUBLISH decoding skips the properties (see the module's docstring), which
    reads a packet's fixed header with one peek and one read (paho reads it a byte at a time: 4 system calls for
    a 95 KB frame), which takes a plain PUBACK without building its reason code and properties, and which sends
    many PUBACKs as one write (ack_all)."""

    _head: tuple[Any, bytes] = (None, b"")  # (socket, fixed-header bytes of the current packet read ahead)

    def _sock_recv(self, bufsize: int) -> bytes:
        sock, head = self._head
        if head and sock is self._sock:
            self._head = (sock, head[bufsize:])
            return head[:bufsize]
        sock = self._sock
        if bufsize != 1 or self._in_packet["command"] != 0 or type(sock) is not socket.socket:
            return super()._sock_recv(bufsize)  # the packet's body; TLS; another transport
        # A new packet: its command byte and remaining length (1-4 bytes), all of which paho asks for next, one
        # byte a call. Only bytes of this packet's fixed header are taken from the socket.
        peek = sock.recv(5, socket.MSG_PEEK)  # BlockingIOError, OSError: as paho's recv would raise
        size = 1
        while size < len(peek):
            size += 1
            if not peek[size - 1] & 0x80:
                break
        data = sock.recv(size)
        self._head = (sock, data[1:])
        return data[:1]

    def _handle_pubackcomp(self, cmd: Any) -> mqtt.MQTTErrorCode:
        # A plain MQTT 5 PUBACK (packet id only: success, no properties), the broker's answer to nearly every QoS 1
        # publish: paho builds a ReasonCode and a Properties for it (~15 us); here one shared pair stands for them.
        packet = self._in_packet["packet"]
        if cmd != "PUBACK" or self._protocol != mqtt.MQTTv5 or len(packet) != 2:
            return super()._handle_pubackcomp(cmd)
        mid = (packet[0] << 8) | packet[1]
        with self._out_message_mutex:
            if mid in self._out_messages:
                return self._do_on_publish(mid, _PUBACK_SUCCESS, _NO_PROPERTIES)
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_all(self, mids: list[int]) -> None:
        """Acknowledge QoS 1 messages (manual_ack) with one queued write and one wake-up of the network loop, not
        one per message; the broker reads the same PUBACK packets."""
        if self._protocol != mqtt.MQTTv5 or not self._manual_ack or not _HOOKS:
            for mid in mids:
                self.ack(mid, 1)
            return
        if mids:
            self._packet_queue(mqtt.PUBACK, b"".join([_PUBACK.pack(mqtt.PUBACK, 2, mid) for mid in mids]), 0, 0)

    def _handle_publish(self) -> mqtt.MQTTErrorCode:
        command, packet = self._in_packet["command"], self._in_packet["packet"]
        qos = (command & 0x06) >> 1
        parts = split_publish(packet, qos) if self._protocol == mqtt.MQTTv5 and qos < 2 else None
        if parts is None:
            return super()._handle_publish()
        topic, mid, props_at, payload_at = parts
        message = LazyPropertiesMessage(mid=mid, topic=topic)
        message.dup, message.qos, message.retain = bool(command & 0x08), qos, bool(command & 0x01)
        message._raw_properties = packet[props_at:payload_at]  # with their length, which unpack() reads first
        message.payload = packet[payload_at:]
        message.timestamp = mqtt.time_func()
        self._handle_on_message(message)
        if qos == 0 or self._manual_ack:
            return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        return self._send_puback(mid)


def client_class() -> type[mqtt.Client]:
    """FastPublishClient where the installed paho has its hooks, else paho's Client."""
    if not _HOOKS:
        log.warning("this paho-mqtt lacks the hooks of the fast PUBLISH decoding: using paho's own")
        return mqtt.Client
    return FastPublishClient


class PackedProperties(Properties):
    """PUBLISH properties given as their packed bytes: paho's publish() only packs them (building a Properties
    attribute by attribute costs ~30 us a message). Used by the benchmark's load generator."""

    def __init__(self, packed: bytes) -> None:  # no Properties.__init__: the bytes are all publish() needs
        object.__setattr__(self, "packetType", PacketTypes.PUBLISH)
        object.__setattr__(self, "_packed", packed)

    def pack(self) -> bytes:
        return self._packed  # type: ignore[no-any-return]

    def __str__(self) -> str:
        decoded = Properties(PacketTypes.PUBLISH)
        decoded.unpack(self._packed)
        return str(decoded)


def packed_frame_properties(content_type: bytes, frame_id: str, chunk: str) -> PackedProperties:
    """uplink.frame_properties() packed directly: content type, then the user properties frame_id and chunk."""
    body = b"".join((
        b"\x03", _U16.pack(len(content_type)), content_type,
        *_user_property(b"frame_id", frame_id.encode()), *_user_property(b"chunk", chunk.encode()),
    ))  # fmt: skip
    size, length = len(body), b""
    while True:  # the variable byte integer of the properties' length
        size, byte = divmod(size, 128)
        length += bytes([byte | (0x80 if size else 0)])
        if not size:
            return PackedProperties(length + body)


def _user_property(key: bytes, value: bytes) -> tuple[bytes, ...]:
    return b"\x26", _U16.pack(len(key)), key, _U16.pack(len(value)), value

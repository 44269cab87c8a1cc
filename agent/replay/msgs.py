"""ROS 2 message definitions (as stored in rosbag2 MCAP files) for the messages edgesift reads and writes."""

from __future__ import annotations

_SEP = "=" * 80

TIME = "int32 sec\nuint32 nanosec\n"
HEADER = "builtin_interfaces/Time stamp\nstring frame_id\n"
POINT_FIELD = (
    "uint8 INT8    = 1\nuint8 UINT8   = 2\nuint8 INT16   = 3\nuint8 UINT16  = 4\nuint8 INT32   = 5\n"
    "uint8 UINT32  = 6\nuint8 FLOAT32 = 7\nuint8 FLOAT64 = 8\n"
    "string name\nuint32 offset\nuint8  datatype\nuint32 count\n"
)


def _with_deps(body: str, *deps: tuple[str, str]) -> str:
    parts = [body]
    for name, text in deps:
        parts.append(f"{_SEP}\nMSG: {name}\n{text}")
    return "\n".join(parts)


COMPRESSED_IMAGE = _with_deps(
    "std_msgs/Header header\nstring format\nuint8[] data\n",
    ("std_msgs/Header", HEADER),
    ("builtin_interfaces/Time", TIME),
)

IMAGE = _with_deps(
    "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\nuint32 step\n"
    "uint8[] data\n",
    ("std_msgs/Header", HEADER),
    ("builtin_interfaces/Time", TIME),
)

POINT_CLOUD2 = _with_deps(
    "std_msgs/Header header\nuint32 height\nuint32 width\nsensor_msgs/PointField[] fields\nbool is_bigendian\n"
    "uint32 point_step\nuint32 row_step\nuint8[] data\nbool is_dense\n",
    ("std_msgs/Header", HEADER),
    ("builtin_interfaces/Time", TIME),
    ("sensor_msgs/PointField", POINT_FIELD),
)

XYZI_FIELDS = [
    {"name": name, "offset": 4 * i, "datatype": 7, "count": 1} for i, name in enumerate(("x", "y", "z", "intensity"))
]


def stamp(t_ns: int) -> dict[str, int]:
    return {"sec": t_ns // 1_000_000_000, "nanosec": t_ns % 1_000_000_000}


def compressed_image_msg(t_ns: int, frame_id: str, jpeg: bytes, fmt: str = "jpeg") -> dict[str, object]:
    return {"header": {"stamp": stamp(t_ns), "frame_id": frame_id}, "format": fmt, "data": jpeg}


def point_cloud2_msg(t_ns: int, frame_id: str, xyzi_le_f32: bytes) -> dict[str, object]:
    n = len(xyzi_le_f32) // 16
    return {
        "header": {"stamp": stamp(t_ns), "frame_id": frame_id},
        "height": 1,
        "width": n,
        "fields": XYZI_FIELDS,
        "is_bigendian": False,
        "point_step": 16,
        "row_step": 16 * n,
        "data": xyzi_le_f32,
        "is_dense": False,
    }

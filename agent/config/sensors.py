"""What each LiDAR model can physically deliver, from its data sheet: the absolute limits a scan is judged by.

Everything else about a scan (point count, ring coverage, sectors, roughness) is judged against the sensor's own
recent history (see lidar_checks.LidarBaseline): a VLP-16 in a car park is not a sparse HDL-64. The table only
holds what no healthy unit of that model can do: ranges beyond its reach, returns closer than it measures, an
elevation span it does not have, a spinning unit that covers less than half its circle.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SensorModel:
    name: str
    beams: int
    elevation_deg: tuple[float, float]  # lowest and highest beam
    max_range_m: float  # data-sheet reach with a margin for retro-reflectors
    near_field_m: float  # returns closer than this come from something on or at the sensor, not the scene
    spinning: bool = True  # a 360-degree unit (False: a forward-looking solid-state field of view)

    @property
    def vertical_fov(self) -> float:
        return self.elevation_deg[1] - self.elevation_deg[0]


_MODELS = (
    SensorModel("velodyne-vlp16", 16, (-15.0, 15.0), 150.0, 1.0),
    SensorModel("velodyne-vlp32c", 32, (-25.0, 15.0), 300.0, 1.0),
    SensorModel("velodyne-hdl32", 32, (-30.67, 10.67), 150.0, 1.0),
    SensorModel("velodyne-hdl64", 64, (-24.9, 2.0), 180.0, 1.0),
    SensorModel("velodyne-vls128", 128, (-25.0, 15.0), 400.0, 1.0),
    SensorModel("ouster-os0", 128, (-45.0, 45.0), 300.0, 0.5),
    SensorModel("ouster-os1", 128, (-22.5, 22.5), 300.0, 0.5),
    SensorModel("ouster-os2", 128, (-11.25, 11.25), 500.0, 1.0),
    SensorModel("hesai-pandar40p", 40, (-25.0, 15.0), 300.0, 1.0),
    SensorModel("hesai-pandar64", 64, (-25.0, 15.0), 300.0, 1.0),
    SensorModel("hesai-ot128", 128, (-25.0, 15.0), 300.0, 1.0),
    SensorModel("hesai-qt64", 64, (-52.1, 52.1), 90.0, 0.3),
    SensorModel("hesai-qt128", 128, (-52.6, 52.6), 90.0, 0.3),
    SensorModel("hesai-xt16", 16, (-15.0, 15.0), 180.0, 1.0),
    SensorModel("hesai-xt32", 32, (-16.0, 15.0), 180.0, 1.0),
    SensorModel("hesai-xt32m", 32, (-20.8, 19.5), 450.0, 1.0),
    SensorModel("hesai-at128", 128, (-12.5, 12.9), 300.0, 1.0, spinning=False),
)
MODELS: dict[str, SensorModel] = {m.name: m for m in _MODELS}
MODEL_NAMES = tuple(MODELS)


def sensor_model(name: str | None) -> SensorModel | None:
    return MODELS.get(name) if name else None

"""The first scorer: image/scan quality checks plus descriptor redundancy against recently kept frames."""

from __future__ import annotations

import numpy as np

from agent.config.model import ScoringConfig
from agent.config.model_cfg import ModelConfig
from agent.config.sensors import sensor_model
from agent.errors import DecodeError
from agent.frame import PARTIAL_ROTATION, STILL, Frame, Modality
from agent.scoring import camera_checks, lidar_checks
from agent.scoring.base import Label, Verdict
from agent.scoring.context import SceneContext
from agent.scoring.measure import LocalMeasurer, Measurer
from agent.scoring.memory import DescriptorMemory
from agent.scoring.trust import frame_sensor_model
from agent.scoring.unfamiliar import UnfamiliarSampler
from agent.scoring.usefulness import Pending, resolve
from agent.sources.decode import points_of

FROZEN_SAMPLE_STRIDE = 61  # every 61st point of a scan is hashed for the repeat check


class HeuristicScorer:
    """Per-frame verdicts from cheap signals, each sensor judged against its own recent history and its sensor
    model, with the vehicle's other sensors as evidence; stateful per sensor (previous frame, baselines, kept
    memory). Unfamiliar conditions are never harmful by themselves: they raise a helpful frame's score (`rare`)."""

    name = "heuristic"

    def __init__(self, config: ScoringConfig, model: ModelConfig | None = None) -> None:
        self._cfg = config
        # Unfamiliar scenes ranked up by sampling the camera model (hybrid and proxy run it on every frame).
        self._unfamiliar = (UnfamiliarSampler(config, model)
                            if model is not None and config.rank_unfamiliar_every_s > 0 else None)
        self._memory = DescriptorMemory(config.memory_size)
        self._previous_data: dict[str, bytes] = {}
        self._previous_signals: dict[str, camera_checks.CameraSignals] = {}
        self._lidar_baseline = lidar_checks.LidarBaseline()
        self._camera_baseline = camera_checks.CameraBaseline()
        self.context = SceneContext()
        self.measurer: Measurer = LocalMeasurer()  # the daemon may hand the measuring to other processes

    def measure_ahead(self, frame: Frame) -> None:
        """Start measuring a camera frame that is judged next on its sensor, where the measurer can (the daemon's
        measuring processes): the same signals `assess` then collects."""
        ahead = getattr(self.measurer, "ahead", None)
        if frame.modality is Modality.CAMERA and callable(ahead):
            own = self._cfg.for_sensor(frame.sensor)
            ahead(frame, (own.camera or self._cfg.camera).analysis_width)

    def score(self, frame: Frame) -> Verdict:
        return self.complete(frame, self.assess(frame))

    def complete(self, frame: Frame, assessed: Verdict | Pending) -> Verdict:
        """Finish an assessed frame against what this scorer has been told was kept so far."""
        return resolve(assessed, lambda descriptor: self._memory.nearest(frame.sensor, descriptor))

    def assess(self, frame: Frame) -> Verdict | Pending:
        """Everything but the distance to the kept memory: a harmful Verdict, or a Pending one (see usefulness)."""
        try:
            if frame.modality is Modality.CAMERA:
                return self._score_camera(frame)
            return self._score_lidar(frame)
        except DecodeError:
            self.context.note(frame.sensor, frame.modality, frame.t_ns, False)
            return Verdict(Label.HARMFUL, 0.0, ("undecodable",))

    def remember(self, frame: Frame, verdict: Verdict) -> None:
        if verdict.descriptor is not None and verdict.label is not Label.HARMFUL:
            self._memory.add(frame.sensor, verdict.descriptor)

    def _repeated(self, frame: Frame, data: bytes | None) -> bool:
        """A bit-identical repeat of this sensor's previous frame: real sensor noise never repeats itself. The
        previous bytes are kept (a reference to the frame's payload, not a copy) and compared: exact, and a
        comparison stops at the first differing byte, where a hash reads every byte of every frame."""
        repeated = bool(data) and self._previous_data.get(frame.sensor) == data
        self._previous_data[frame.sensor] = data or b""
        return repeated

    def _score_camera(self, frame: Frame) -> Verdict | Pending:
        own = self._cfg.for_sensor(frame.sensor)
        cfg = own.camera or self._cfg.camera
        repeated = self._repeated(frame, frame.payload)
        signals = self.measurer.camera(frame, cfg.analysis_width)
        grey = signals.grey
        # A still from a folder of unrelated pictures is judged on its own, like the first frame of a stream.
        still = frame.meta.get(STILL) == "1"
        previous = self._previous_signals.get(frame.sensor)
        cut = still or camera_checks.scene_cut(signals, previous, cfg)
        typical = None if cut else self._camera_baseline.typical(frame.sensor)
        # The brightness level across views only matters where this view has no medians (after a scene cut).
        level = None if still or typical is not None else self._camera_baseline.level(frame.sensor)
        last = None if cut else self._camera_baseline.last(frame.sensor)
        # How much this camera's lower rows usually break from one frame to the next: judged only against the frame
        # just before (after a frame called harmful, the last healthy one is further back and breaks more). Such a
        # frame's own break, if it is healthy, still joins the usual ones: it raises the bar after a fault (with
        # them left out, clean frames after the evaluation's tears were called harmful: 10 of 553, against 7).
        usual_break = self._camera_baseline.usual_break(frame.sensor) if last is not None and last is previous else None
        found = camera_checks.faults(signals, cfg, typical, last, level, usual_break)
        if not still and (repeated or camera_checks.frozen(previous.grey if previous else None, grey, cfg)):
            found.insert(0, "frozen")
        if not found and signals.structure <= cfg.blind_max_std and (
                (typical is not None and typical.structure > 3 * cfg.blind_max_std)
                or (self._cfg.cross_sensor and self.context.other_modality_sees(frame.sensor, Modality.CAMERA,
                                                                                 frame.t_ns))):
            found.append("blind")  # nothing in view while it saw a scene a moment ago, or while the LiDAR does
        self._previous_signals[frame.sensor] = signals
        if cut:
            self._camera_baseline.reset(frame.sensor)
        if not found:
            self._camera_baseline.update(frame.sensor, signals)
        self.context.note(frame.sensor, Modality.CAMERA, frame.t_ns,
                          not found and signals.structure > cfg.blind_max_std)
        rare = camera_checks.conditions(signals) if not found else ()
        verdict = self._verdict(found, signals.descriptor, signals.as_dict(), cfg.redundant_max_distance, rare)
        if self._unfamiliar is not None and isinstance(verdict, Pending):
            return self._unfamiliar.rank(frame, verdict)
        return verdict

    def _score_lidar(self, frame: Frame) -> Verdict | Pending:
        own = self._cfg.for_sensor(frame.sensor)
        cfg = own.lidar or self._cfg.lidar
        model = sensor_model(frame_sensor_model(self._cfg, frame))
        points = points_of(frame)
        # A strided sample is enough to tell a bit-identical repeat: real scans differ in every coordinate.
        repeated = self._repeated(frame, points[::FROZEN_SAMPLE_STRIDE].tobytes() + str(points.shape).encode()
                                  if points.size else None)
        signals = self.measurer.lidar(points, cfg, model)
        # A scan from a folder of unrelated snapshots (other units, other models) is judged on its own, by the
        # absolute limits, as the first scan of a stream is: no history of "its" sensor is its own.
        still = frame.meta.get(STILL) == "1"
        found = lidar_checks.faults(signals, cfg, None if still else self._lidar_baseline.typical(frame.sensor),
                                    model, partial=frame.meta.get(PARTIAL_ROTATION) == "1")
        if repeated and not still:
            found.insert(0, "frozen")
        if not found and not still:
            self._lidar_baseline.update(frame.sensor, signals)
        self.context.note(frame.sensor, Modality.LIDAR, frame.t_ns, not found and signals.valid >= cfg.min_points)
        return self._verdict(found, signals.descriptor, signals.as_dict(), cfg.redundant_max_distance, ())

    def _verdict(self, found: list[str], descriptor: np.ndarray | None, signals: dict[str, float], thr: float,
                 rare: tuple[str, ...]) -> Verdict | Pending:
        if found or descriptor is None:
            return Verdict(Label.HARMFUL, 0.0, tuple(found) or ("empty",), descriptor, signals)
        boosts = ((("rare", self._cfg.rare_boost), *((name, 0.0) for name in rare))
                  if rare and self._cfg.rare_boost > 0 else ())
        return Pending(descriptor, signals, thr, boosts=boosts)

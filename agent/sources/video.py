"""A video file (mp4, avi, mkv, mov...) decoded frame by frame with OpenCV: one camera."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import cv2

from agent.errors import InputError
from agent.frame import Frame, Item, Modality, Skip
from agent.sources.base import NS_PER_S, Source, safe_name
from agent.sources.imageinfo import image_meta

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".wmv"})

# Frame counts in container headers are estimates for some formats (mkv, ts): only a clear shortfall is damage.
_SHORTFALL_FRAMES = 2
_SHORTFALL_FRACTION = 0.02


def _open(path: str) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        capture.release()
        raise InputError(f"{path} cannot be opened as a video")
    return capture


class VideoSource(Source):
    """Frames as decoded BGR arrays; t_ns from the stream's timestamps (or index / fps), from 0.

    `nbytes` is an estimate: the compressed size of one frame is not known to OpenCV, so every frame gets the
    file size divided by the frame count (the raw frame size when the container does not give a count).
    """

    kind = "video"
    wall_clock = False
    clock = "frame times from 0"

    def __init__(self, path: str, nominal_hz: float) -> None:
        super().__init__(path)
        capture = _open(path)
        try:
            fps = capture.get(cv2.CAP_PROP_FPS)
            count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        finally:
            capture.release()
        # Some containers report 0, NaN or absurd rates; the configured nominal rate is the better guess then.
        self.fps = fps if math.isfinite(fps) and 0.0 < fps <= 1000.0 else nominal_hz
        self.frame_count = int(count) if math.isfinite(count) and count > 0 else 0
        self.sensor = safe_name(Path(path).stem) or "video"
        self._file_size = os.path.getsize(path)

    def __iter__(self) -> Iterator[Item]:
        capture = _open(self.path)
        try:
            yield from self._frames(capture)
        finally:
            capture.release()  # also when the consumer stops early (max_frames)

    def _frames(self, capture: cv2.VideoCapture) -> Iterator[Item]:
        period_ns = NS_PER_S / self.fps
        per_frame = self._file_size // self.frame_count if self.frame_count else 0
        index, last_t = 0, -1
        while True:
            ok, image = capture.read()
            if not ok or image is None:
                break
            t_ns = self._time_of(capture, index, last_t, period_ns)
            yield Frame(
                sensor=self.sensor,
                modality=Modality.CAMERA,
                t_ns=t_ns,
                seq=index,
                nbytes=per_frame or image.nbytes,
                source=self.path,
                array=image,
                meta=image_meta(image.shape[1], image.shape[0]),
            )
            index, last_t = index + 1, t_ns
        missing = self.frame_count - index
        if missing > max(_SHORTFALL_FRAMES, _SHORTFALL_FRACTION * self.frame_count):
            detail = f"decoding stopped after {index} of {self.frame_count} frames"
            yield Skip(self.sensor, index, max(last_t, 0), self.path, "corrupt_recording", detail)

    @staticmethod
    def _time_of(capture: cv2.VideoCapture, index: int, last_t: int, period_ns: float) -> int:
        # After read(), POS_MSEC is the presentation time of the frame just read. It is trusted only while it
        # moves forward: some backends return 0 or repeat values for streams without timestamps.
        msec = capture.get(cv2.CAP_PROP_POS_MSEC)
        if math.isfinite(msec) and msec >= 0.0:
            t_ns = round(msec * 1_000_000)
            if t_ns > last_t:
                return t_ns
        return round(index * period_ns) if last_t < 0 else max(round(index * period_ns), last_t + 1)

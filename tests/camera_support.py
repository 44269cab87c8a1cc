"""Camera frames for scorer tests: a real picture as the JPEG frame a camera source yields, and judging it as the
pipeline does (a frame not called harmful joins the camera's history); the sample drive's pictures, and at night."""

from __future__ import annotations

import cv2
import numpy as np
from conftest import sample_frames

from agent.frame import Encoding, Frame, Modality
from agent.scoring.base import Label, Verdict
from agent.scoring.heuristic import HeuristicScorer


def jpeg(image: np.ndarray, sensor: str = "cam", seq: int = 0) -> Frame:
    data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
    h, w = image.shape[:2]
    return Frame(sensor, Modality.CAMERA, seq * 100_000_000, seq, len(data), "test", Encoding.JPEG, data,
                 meta={"width": str(w), "height": str(h)})


def judge(scorer: HeuristicScorer, frame: Frame) -> Verdict:
    verdict = scorer.score(frame)
    if verdict.label is not Label.HARMFUL:
        scorer.remember(frame, verdict)
    return verdict


def sample_images(n: int = 8) -> list[np.ndarray]:
    """The sample drive's first `n` camera pictures at 640 px wide."""
    from agent.sources.decode import image_of

    return [cv2.resize(image_of(f), (640, 193), interpolation=cv2.INTER_AREA) for f in sample_frames("camera")[:n]]


def night(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The picture as a camera at night sees it: dark (gamma 2.2, a third of the light) and grainy."""
    f = 255.0 * (image / 255.0) ** 2.2 * 0.3 + rng.normal(0, 2.5, image.shape)
    return np.clip(f, 0, 255).astype(np.uint8)

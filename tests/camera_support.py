"""Camera frames for scorer tests: a real picture as the JPEG frame a camera source yields, and judging it as the
pipeline does (a frame not called harmful joins the camera's history)."""

from __future__ import annotations

import cv2
import numpy as np

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

"""Score a recording once: every frame's assessed verdict (see agent.scoring.usefulness) plus baseline features.

A tune run saves them in its output folder (scores.cache), keyed by the input files (size, mtime), the scoring
and model config and the edgesift version, so that sweeping the same drives again for another target does not
score them again. Only what a sweep needs is kept per frame (a payload-free Frame, the verdict or pending verdict
with its descriptor, small differencing images): 10-15 KB per frame, so a 10-minute drive at 20 frames/s takes
about 150 MB.
"""

from __future__ import annotations

import itertools
import os
import pickle
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
from tqdm import tqdm

from agent.config.model import AgentConfig
from agent.errors import DecodeError
from agent.frame import Frame, Modality, Skip
from agent.processes import opencv_one_thread
from agent.scoring.base import Verdict
from agent.scoring.factory import make_scorer
from agent.scoring.usefulness import Pending
from agent.sources import merge, open_inputs
from agent.spool.codec import FrameCodec
from agent.tune.features import FeatureExtractor, Features


@dataclass(slots=True)
class CachedFrame:
    frame: Frame  # payload and array dropped
    assessed: Verdict | Pending
    features: Features


@dataclass
class ScoreCache:
    frames: list[CachedFrame]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    scorer: str = ""
    score_s: float = 0.0

    def of(self, modality: Modality) -> list[int]:
        """Indices of this modality's frames, in time order."""
        return [i for i, c in enumerate(self.frames) if c.frame.modality is modality]

    def sensors_at_once(self, modality: Modality) -> float:
        """How many of this modality's sensors record at the same time (all of them, in one recording)."""
        return max(1, len({c.frame.sensor for c in self.frames if c.frame.modality is modality}))

    @property
    def duration_s(self) -> float:
        """Span of the recording, plus one median frame gap so that a one-frame drive is not 0 s long."""
        times = sorted(c.frame.t_ns for c in self.frames)
        if len(times) < 2:
            return 1.0
        gaps = sorted(b - a for a, b in itertools.pairwise(times) if b > a)
        step = gaps[len(gaps) // 2] if gaps else 0
        return max(1e-3, (times[-1] - times[0] + step) / 1e9)


def score_recording(
    inputs: list[str], config: AgentConfig, baselines: bool = True, progress: bool | None = None
) -> ScoreCache:
    """Run every input frame through the configured scorer's history-independent step, once."""
    sources = open_inputs(inputs, config.inputs)
    opencv_one_thread()  # as in a replay: it was slower in wall time too with OpenCV's pool on
    scorer = make_scorer(config)
    assess = scorer.assess  # type: ignore[attr-defined]  # every shipped scorer is a SplitScorer
    extract = FeatureExtractor(config, with_model=baselines)
    codec = FrameCodec(config.spool.jpeg_quality, config.spool.zstd_level)
    started = time.perf_counter()
    frames: list[CachedFrame] = []
    skipped: list[dict[str, Any]] = []
    with tqdm(desc="score", unit="frame", disable=None if progress is None else not progress, leave=False) as bar:
        for item in merge(sources, config.inputs.max_frames):
            if isinstance(item, Skip):
                skipped.append(item.as_dict())
                continue
            features = extract(item) if baselines else Features(None, None, None)
            assessed = assess(item)
            # The sweep counts what keeping a frame costs in the spool and on the uplink, so nbytes becomes the
            # stored (encoded) size; the input size stays in meta["input_bytes"].
            stored = _stored_size(codec, item)
            meta = {**item.meta, "input_bytes": str(item.nbytes)}
            frames.append(CachedFrame(replace(item, payload=None, array=None, nbytes=stored, meta=meta), assessed,
                                      features))
            bar.update()
    return ScoreCache(frames, skipped, scorer.name, time.perf_counter() - started)


def _stored_size(codec: FrameCodec, frame: Frame) -> int:
    try:
        return len(codec.encode(frame)[1])
    except (DecodeError, ValueError, cv2.error):
        return frame.nbytes  # the spool would refuse it; any figure will do for a frame never stored


def input_bytes(frame: Frame) -> int:
    return int(frame.meta.get("input_bytes", frame.nbytes))


CACHE_FILE = "scores.cache"
CACHE_FORMAT = 2  # 2: nbytes is the stored size


def cache_key(inputs: list[str], config: AgentConfig, baselines: bool) -> dict[str, Any]:
    """What the cached scores depend on: the inputs as files on disk, the scoring and model config, the code."""
    from agent import __version__
    from agent.fingerprint import code_fingerprint

    files = []
    for raw in inputs:
        path = Path(raw)
        paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        files.append([str(path.resolve()), [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in paths]])
    return {"format": CACHE_FORMAT, "edgesift": __version__, "code": code_fingerprint(), "inputs": files,
            "baselines": baselines, "scoring": config.scoring.model_dump(mode="json"),
            "model": config.model.model_dump(mode="json"),
            "spool_codec": [config.spool.jpeg_quality, config.spool.zstd_level],
            "inputs_config": config.inputs.model_dump(mode="json")}


def load_cached(path: Path, key: dict[str, Any]) -> ScoreCache | None:
    """The scores saved by an earlier tune run into the same folder, if they were made from the same things."""
    try:
        with path.open("rb") as fh:
            saved_key, cache = pickle.load(fh)  # noqa: S301  # our own output folder, written by save_cached
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, AttributeError, ImportError, TypeError):
        return None
    return cache if saved_key == key and isinstance(cache, ScoreCache) else None


def save_cached(path: Path, key: dict[str, Any], cache: ScoreCache) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        pickle.dump((key, cache), fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)

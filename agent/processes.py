"""Where the agent's worker processes come from (the corpus pool, the daemon's measuring processes)."""

from __future__ import annotations

import multiprocessing
from typing import Any


def fork_server(preload: list[str]) -> Any:
    """A multiprocessing context that forks workers from a fork server with `preload` imported, or spawn where
    there is none. Not fork: a forked child would inherit the parent's threads (sources, scoring, progress bar,
    logging) in whatever state; a fork server imports the code once and forks clean workers from it, where spawn
    would import NumPy, OpenCV and the agent again in every worker. Python has one fork server per process: the
    first caller to start it sets what it preloads (both callers work either way)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(preload)
        return context
    return multiprocessing.get_context("spawn")


def opencv_one_thread() -> None:
    """OpenCV runs each call on the calling thread only. The agent's parallelism is across frames (the daemon's
    scoring threads and measuring processes, replay's assess-ahead lanes, corpus workers); OpenCV's own pool
    split 320-px images over the cores as well, and its threads' spinning between calls cost more than it saved:
    a 720p camera frame's verdict took 6.3-7.2 ms of CPU (5.3-6.1 ms wall) with it and 4.3-4.7 ms (4.4-4.7 ms
    wall) without. Process-wide: call it where the process's work is set up (the daemon's start, a replay)."""
    import cv2

    cv2.setNumThreads(1)

"""Where the agent's worker processes come from (the corpus pool, the daemon's measuring processes)."""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

# What a corpus pool's workers run (agent.corpus.job.run_drive and the replay and tune code under it): the fork
# server imports it once. Here, not in agent.corpus, so that the CLI can start the server before it imports them.
CORPUS_PRELOAD = ["agent.corpus.job", "agent.replay.runner", "agent.tune.cache",
                  "agent.model.proxy_model"]  # the default scorer samples the camera model (ONNX Runtime)


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


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


def start_fork_server(preload: list[str]) -> None:
    """Start the fork server now (it imports `preload` in its own process), not at the first worker: a job that
    will fork workers calls this before its own imports, so the two import side by side on two cores (0.3 s
    each; on a 2-core machine that start was a tenth of a short corpus job's wall time)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        import multiprocessing.forkserver as forkserver

        fork_server(preload)
        forkserver.ensure_running()


def opencv_one_thread() -> None:
    """OpenCV runs each call on the calling thread only. The agent's parallelism is across frames (the daemon's
    scoring threads and measuring processes, replay's assess-ahead lanes, corpus workers); OpenCV's own pool
    split 320-px images over the cores as well, and its threads' spinning between calls cost more than it saved:
    a 720p camera frame's verdict took 6.3-7.2 ms of CPU (5.3-6.1 ms wall) with it and 4.3-4.7 ms (4.4-4.7 ms
    wall) without. Process-wide: call it where the process's work is set up (the daemon's start, a replay)."""
    import cv2

    cv2.setNumThreads(1)

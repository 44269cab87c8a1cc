"""Where drives run: in this process, in a local process pool (the embedded default), or as Ray tasks.

Every executor takes DriveJobs and yields (job, result) as drives finish, in any order; the driver writes the
outputs and the summary. A local pool process that dies (killed, out of memory) breaks the pool: it is rebuilt
and the unfinished drives are submitted again, up to `retries` times per drive. On Ray the task is retried by
Ray itself (`max_retries`) on another worker or node.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from agent.corpus.job import DriveJob, count_frames_into, run_drive
from agent.errors import ConfigError
from agent.processes import CORPUS_PRELOAD, fork_server

log = logging.getLogger(__name__)

Done = tuple[DriveJob, dict[str, Any]]
TASK_EVENTS_ENV = "RAY_task_events_report_interval_ms"  # read by Ray's core worker when ray.init starts it


def failed(job: DriveJob, reason: str) -> dict[str, Any]:
    d = job.drive
    return {"id": d.id, "vehicle": d.vehicle, "condition": d.condition, "ok": False, "error": reason}


class Executor(Protocol):
    name: str
    slots: int  # drives that run at once
    counter: Any  # a multiprocessing.Value of the frames decided so far, or None (counted per finished drive)

    def run(self, jobs: Sequence[DriveJob]) -> Iterator[Done]: ...

    def close(self) -> None: ...


class InlineExecutor:
    """One drive after the other in this process: the reference every other executor must equal."""

    name = "inline"
    slots = 1

    def __init__(self, counter: Any = None) -> None:
        self.counter = counter

    def run(self, jobs: Sequence[DriveJob]) -> Iterator[Done]:
        count_frames_into(self.counter)
        try:
            for job in jobs:
                yield job, run_drive(job)
        finally:
            count_frames_into(None)

    def close(self) -> None:
        return None


class PoolExecutor:
    """A local process pool; drives side by side, one per process."""

    name = "local"

    def __init__(self, workers: int, retries: int = 2) -> None:
        self.slots = workers
        self._retries = retries
        self.counter: Any = None
        self._context = fork_server(CORPUS_PRELOAD)
        self.counter = self._context.Value("q", 0)  # frames decided by every worker: the progress bar

    def run(self, jobs: Sequence[DriveJob]) -> Iterator[Done]:
        attempts: dict[str, int] = {}
        pending = list(jobs)
        while pending:
            pool = ProcessPoolExecutor(max_workers=self.slots, mp_context=self._context,
                                       initializer=count_frames_into, initargs=(self.counter,))
            futures: dict[Future[dict[str, Any]], DriveJob] = {pool.submit(run_drive, job): job for job in pending}
            pending = []
            try:
                while futures:
                    finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in finished:
                        job = futures.pop(future)
                        try:
                            yield job, future.result()
                        except BrokenProcessPool:
                            attempts[job.drive.id] = attempts.get(job.drive.id, 0) + 1
                            if attempts[job.drive.id] > self._retries:
                                yield job, failed(job, "worker process died (killed or out of memory)")
                            else:
                                log.warning("event=worker_lost drive=%s attempt=%d", job.drive.id,
                                            attempts[job.drive.id])
                                pending.append(job)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        return None


class RayExecutor:
    """Drives as Ray tasks on an existing cluster (`address`: host:port, or `auto` for RAY_ADDRESS / the local
    one). Inputs must be on a path every node sees; results, with the output files, come back to the driver."""

    name = "ray"

    def __init__(self, address: str, max_retries: int = 3) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("--ray needs Ray: pip install 'edgesift[fleet]'") from None
        self._ray = ray
        if not ray.is_initialized():
            # The driver's own task events (a task submitted, waiting for its arguments) only feed Ray's state
            # API and dashboard, and flushing them made every job's shutdown wait 0.27 s; the workers still
            # report the events of the tasks they run. A user's own setting wins.
            os.environ.setdefault(TASK_EVENTS_ENV, "0")
            try:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
        self._task = ray.remote(num_cpus=1, max_retries=max_retries)(run_drive)
        self.counter = None
        self.slots = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def run(self, jobs: Sequence[DriveJob]) -> Iterator[Done]:
        ray = self._ray
        queue = list(reversed(jobs))
        refs: dict[Any, DriveJob] = {}
        # Bounded: a finished drive's files wait in the object store until the driver has written them.
        limit = 2 * self.slots
        while queue or refs:
            while queue and len(refs) < limit:
                job = queue.pop()
                refs[self._task.remote(job)] = job
            ready, _ = ray.wait(list(refs), num_returns=1)
            job = refs.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except Exception as exc:  # retries exhausted (RayTaskError, WorkerCrashedError, ...)
                result = failed(job, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}")
            yield job, result

    def close(self) -> None:
        self._ray.shutdown()

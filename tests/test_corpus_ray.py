"""Corpus replay on a real local Ray cluster (a head node and a second worker node, both on this machine): the same
decisions as the inline run, and a worker killed mid-job changes nothing (Ray retries its drive)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import REPO
from corpus_support import corpus_config, corpus_files, decisions_of

from agent.corpus.manifest import Drive
from agent.corpus.runner import run_corpus

ray_cluster_utils = pytest.importorskip("ray.cluster_utils", reason="Ray is not installed (pip install '.[fleet]')")

pytestmark = pytest.mark.slow
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
STORE = 150 * 1024 * 1024  # object store per node: results and their files pass through it


@pytest.fixture(scope="module")
def ray_cluster():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    cluster = ray_cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "object_store_memory": STORE},
    )
    cluster.add_node(num_cpus=1, object_store_memory=STORE)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The corpus, its config and the inline (one drive after the other, in-process) reference decisions."""
    root = tmp_path_factory.mktemp("corpus")
    drives, manifest, config = corpus_files(root)
    run_corpus([Drive.model_validate(d) for d in drives], root / "inline", corpus_config(config), workers=1,
               progress=False)
    return manifest, config, decisions_of(root / "inline"), [d["id"] for d in drives]


def _replay_on_ray(manifest: Path, config: Path, out: Path, address: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "agent", "replay", "-q", "--manifest", str(manifest), "--out", str(out),
            "--config", str(config), "--ray", address]
    return subprocess.Popen(args, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_ray_cluster_gives_the_inline_decisions(ray_cluster, corpus, tmp_path: Path) -> None:
    manifest, config, reference, ids = corpus
    proc = _replay_on_ray(manifest, config, tmp_path / "out", ray_cluster.address)
    _stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert decisions_of(tmp_path / "out") == reference
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["run"]["executor"] == "ray" and summary["run"]["slots"] == 2
    assert summary["drives"]["ok"] == len(ids)


def _task_workers() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if cmdline.startswith("ray::run_drive"):
            found.append(proc)
    return found


def _parent(proc: psutil.Process) -> int | None:
    try:
        return proc.ppid()
    except psutil.Error:  # it ended since it was listed
        return None


def _mid_job(proc: subprocess.Popen, find, act, timeout: float = 120.0):
    """While the job runs, wait until `find()` returns something, then `act()` on it; returns it (None: never)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        found = find()
        if found is not None:
            act(found)
            return found
        time.sleep(0.02)
    return None


def test_a_worker_killed_mid_job_changes_nothing(ray_cluster, corpus, tmp_path: Path) -> None:
    manifest, config, reference, ids = corpus
    out = tmp_path / "out"
    proc = _replay_on_ray(manifest, config, out, ray_cluster.address)
    # SIGKILL: the worker process dies with its drive half done
    killed = _mid_job(proc, lambda: (_task_workers() or [None])[0], lambda worker: worker.kill())
    _stdout, stderr = proc.communicate(timeout=300)
    assert killed is not None, "no Ray worker was seen running a drive"
    assert proc.returncode == 0, stderr
    assert decisions_of(out) == reference  # no drive lost, none changed
    assert sorted(p.name for p in (out / "drives").iterdir()) == sorted(ids)  # none doubled, no partial left
    summary = json.loads((out / "summary.json").read_text())
    assert summary["drives"] == {"total": len(ids), "ok": len(ids), "failed": 0, "reused": 0, "replayed": len(ids)}


def test_a_node_lost_mid_job_changes_nothing(ray_cluster, corpus, tmp_path: Path) -> None:
    manifest, config, reference, ids = corpus
    node = next(n for n in ray_cluster.list_all_nodes() if n is not ray_cluster.head_node)
    raylet = node.all_processes["raylet"][0].process.pid

    def worker_node():  # as soon as a drive runs there: a task worker is a child of its node's raylet
        return node if any(_parent(w) == raylet for w in _task_workers()) else None

    # Ray places the drives: a job can end with none of them seen on the second node (a worker that started late
    # there, the head taking the rest), which tests no loss, so such a run (its decisions still checked) is done
    # again: two CI runs on a fresh clone failed so.
    for attempt in range(3):
        out = tmp_path / f"out{attempt}"
        proc = _replay_on_ray(manifest, config, out, ray_cluster.address)
        # its raylet and workers die with their drives
        lost = _mid_job(proc, worker_node, lambda node: ray_cluster.remove_node(node, allow_graceful=False))
        try:
            stdout, stderr = proc.communicate(timeout=300)
        finally:
            if lost is not None:
                ray_cluster.add_node(num_cpus=1, object_store_memory=STORE)  # back to two nodes for any later test
        if lost is not None:
            break
        assert proc.returncode == 0 and decisions_of(out) == reference, stderr
    assert lost is not None, "never saw a drive running on each node"
    assert proc.returncode == 0, stderr
    assert decisions_of(out) == reference
    assert sorted(p.name for p in (out / "drives").iterdir()) == sorted(ids)
    assert f"{len(ids)} drives: {len(ids)} replayed, 0 already done, 0 failed" in stdout

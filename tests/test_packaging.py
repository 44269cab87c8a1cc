"""An installed edgesift works outside the checkout: the wheel carries the proxy models, and `replay` with the
hybrid scorer runs from a folder that has no models/ beside it."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_installed_wheel_replays_with_hybrid_outside_the_checkout(tmp_path: Path, sample_drive: Path) -> None:
    wheels = tmp_path / "wheels"
    # Build isolation fetches the build backend pyproject.toml asks for (pip's cache makes it quick).
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels),
                            str(REPO)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(wheels.glob("edgesift-*.whl"))
    # A fresh environment holding only the wheel; its dependencies come from this venv through a .pth file (a
    # path added so is not a site folder, so the checkout's editable-install hook is not loaded).
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    python = env / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    (purelib / "_edgesift_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "hybrid.yaml").write_text("scoring:\n  kind: hybrid\n")
    where = subprocess.run([str(python), "-c", "import agent; print(agent.__file__)"], cwd=work,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(purelib)), where  # the installed copy, not the checkout
    done = subprocess.run([str(env / "bin" / "edgesift"), "replay", str(sample_drive), "--out", "out", "--config",
                           "hybrid.yaml", "-q"], cwd=work, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((work / "out" / "summary.json").read_text())
    assert summary["scorer"] == "hybrid" and summary["frames_in"] == 47
    resolved = subprocess.run([str(python), "-c", "from agent.config import load_config; "
                               "print(load_config('hybrid.yaml').model.camera.path)"],
                              cwd=work, capture_output=True, text=True, check=True).stdout.strip()
    assert resolved.startswith(str(env)) and "share/edgesift/models" in resolved

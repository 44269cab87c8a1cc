"""What the code that made a saved result was: the key part that tells a tune score cache or a finished corpus
drive made by other code from one this code would make.

The version string alone is not enough: it changes at a release, while a check's setting or a source's reading
can change between two (a checkout updated with `git pull`, an editable install). So the package's own Python
sources are hashed, with the versions of the libraries that decode and measure frames.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import metadata
from pathlib import Path

# Libraries whose version can change a score: decoding (OpenCV's libjpeg/libpng), arithmetic, the model runtime.
_LIBRARIES = ("numpy", "opencv-python-headless", "onnxruntime")


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """fingerprint of this package; computed once per process (about 1 MB read, 40 ms)."""
    return fingerprint(Path(__file__).resolve().parent)


def fingerprint(root: Path) -> str:
    """sha256 over the .py files under `root` (relative path and bytes, in path order) and _LIBRARIES'
    versions."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    for name in _LIBRARIES:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "-"
        digest.update(f"{name}={version}\0".encode())
    return digest.hexdigest()

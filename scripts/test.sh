#!/usr/bin/env bash
# Set up, lint, and run the whole test suite (tests that need ../shared/data skip when it is absent).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check agent tests scripts
.venv/bin/python -m pytest -q "$@"

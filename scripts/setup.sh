#!/usr/bin/env bash
# Create .venv (if missing) and install edgesift into it with the dev tools. Idempotent and quiet.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
# The MQTT tests run against a real mosquitto broker.
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto) >/dev/null 2>&1 \
      || echo "setup: could not install mosquitto; broker tests will be skipped" >&2
  else
    echo "setup: mosquitto not found; install it (e.g. apt-get install mosquitto) to run the broker tests" >&2
  fi
fi
# The fleet tests run a real PostgreSQL (initdb in a temporary folder) and the fleet page in headless Chromium.
missing=""
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
command -v chromium >/dev/null || missing="$missing chromium"
command -v chromedriver >/dev/null || missing="$missing chromium-driver"
if [ -n "$missing" ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing) >/dev/null 2>&1 \
      || echo "setup: could not install$missing; the PostgreSQL / browser tests will be skipped" >&2
  else
    echo "setup: missing$missing (apt-get install$missing); the PostgreSQL / browser tests will be skipped" >&2
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# Reinstall only when pyproject.toml changed since the last install.
stamp=.venv/.edgesift-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  # pip's notes about this machine's index configuration are noise here; errors still show.
  .venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install --quiet -e ".[dev]" 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c "import agent, cv2, onnxruntime, paho.mqtt, mcap_ros2, velodyne_decoder, rosbags, pypcd4, plyfile" \
    || { echo "setup: installing edgesift failed" >&2; exit 1; }
  # Ouster pcaps and packet topics are decoded with ouster-sdk (an optional extra: it is large); without it the
  # Ouster tests skip and say so.
  .venv/bin/python -m pip install --quiet -e ".[ouster]" 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c "import ouster.sdk" 2>/dev/null \
    || echo "setup: ouster-sdk did not install; Ouster inputs and their tests are unavailable" >&2
  # The [fleet] extra: Ray runs corpus replays on a cluster; psycopg, Starlette, Jinja2 and uvicorn run the ingest
  # on PostgreSQL and the fleet page; selenium drives Chromium in its tests. Without them those tests skip and say why.
  .venv/bin/python -m pip install --quiet -e ".[fleet]" 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c "import ray" 2>/dev/null || echo "setup: could not install Ray; the Ray tests will be skipped" >&2
  .venv/bin/python -c "import psycopg, starlette, uvicorn, jinja2, selenium" 2>/dev/null \
    || echo "setup: could not install the fleet page / PostgreSQL packages; their tests will be skipped" >&2
  # The [ingest] extra: ISA-L's CRC-32 for the ingest's MCAP chunks; without it the ingest uses zlib's (slower).
  .venv/bin/python -m pip install --quiet -e ".[ingest]" 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c "import isal" 2>/dev/null || echo "setup: isal did not install; the ingest uses zlib's CRC-32" >&2
  touch "$stamp"
fi
# Byte-compile the package: an editable install does not, and where PYTHONDONTWRITEBYTECODE is set every process
# (each pool or Ray worker, each CLI run, each test's subprocess) would compile agent/ again (0.1-0.2 CPU-s each).
.venv/bin/python -m compileall -q agent >/dev/null || echo "setup: could not byte-compile agent/ (imports still work)" >&2

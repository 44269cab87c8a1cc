# syntax=docker/dockerfile:1
# edgesift agent image: `edgesift run` with the example config and the proxy models.
#
#   docker build -t edgesift .                                           # CPU onnxruntime (x86_64 or aarch64)
#   docker build -t edgesift:gpu --build-arg ORT_PACKAGE=onnxruntime-gpu .  # CUDA execution provider (x86_64)
#   sudo install -d -o 10001 -g 10001 /var/lib/edgesift   # the volume belongs to the image's user (uid 10001)
#   docker run --network host -v /var/lib/edgesift:/var/lib/edgesift -v /etc/edgesift:/etc/edgesift:ro \
#       edgesift run --config /etc/edgesift/agent.yaml
#
# Jetson (aarch64 + JetPack): build FROM an l4t base instead and install NVIDIA's onnxruntime-gpu wheel; see the
# README section "Running on a vehicle". --network host lets the daemon receive Velodyne UDP broadcasts and reach a
# broker on the vehicle computer; cameras need --device /dev/video0 (and the video group).

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ARG ORT_PACKAGE=onnxruntime
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
RUN python -m venv /opt/edgesift
ENV PATH=/opt/edgesift/bin:$PATH
COPY pyproject.toml README.md ./
COPY agent ./agent
# The models are wheel data (share/edgesift/models in the venv): a volume on the working folder cannot hide them.
COPY models ./models
# The project depends on onnxruntime; the GPU variant replaces it with the package named by ORT_PACKAGE, pinned
# to the version pip resolved for the CPU package (dependency versions are bounded in pyproject.toml).
# hadolint ignore=DL3013
RUN pip install . \
    && if [ "${ORT_PACKAGE}" != "onnxruntime" ]; then \
         ORT_VERSION="$(pip show onnxruntime | sed -n 's/^Version: //p')" \
         && pip uninstall -y onnxruntime && pip install "${ORT_PACKAGE}==${ORT_VERSION}"; \
       fi

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
# libglib: OpenCV's runtime needs; tini reaps children and forwards SIGTERM / SIGHUP to the daemon. Versions
# come from the pinned Debian release of the base image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 tini \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 edgesift \
    && useradd --system --uid 10001 --gid edgesift --groups video --home-dir /var/lib/edgesift --create-home edgesift
COPY --from=build /opt/edgesift /opt/edgesift
COPY config/agent.yaml /etc/edgesift/agent.yaml
ENV PATH=/opt/edgesift/bin:$PATH PYTHONUNBUFFERED=1
# Relative paths in the config (spool, state) resolve against the working folder, the volume of the README's
# `docker run`; models/... found nowhere else resolve to the package's copy.
WORKDIR /var/lib/edgesift
VOLUME ["/var/lib/edgesift"]
USER 10001:10001
EXPOSE 9108
ENTRYPOINT ["/usr/bin/tini", "--", "edgesift"]
CMD ["run", "--config", "/etc/edgesift/agent.yaml"]

# syntax=docker/dockerfile:1
# GenBench Kit: `dvc repro` on a mounted checkout, on NVIDIA GPUs or the CPU.
#
#   docker build -t genbench-kit .                      add --build-arg WITH_XFORMERS=1 for xformers,
#                                                       --build-arg UID=$(id -u) --build-arg GID=$(id -g)
#                                                       to own the files it writes in the mounted checkout
#   docker run --rm --gpus all --shm-size=8g -v "$PWD":/workspace -v hf-cache:/cache/huggingface \
#       -e MLFLOW_TRACKING_URI genbench-kit             runs `dvc repro` (see docs/scale-out.md)
#
# Base image: python:3.11-slim, not nvidia/cuda. The torch 2.14.1 wheel from PyPI brings its own
# CUDA 13 user-space libraries (cuda-toolkit, cuDNN, NCCL wheels, pinned in requirements.lock),
# so a CUDA base image would only add a second, unused copy (several GB). The host needs an NVIDIA
# driver that supports CUDA 13 and the NVIDIA Container Toolkit, which mounts the driver into the
# container for `--gpus`. The same image runs on a machine without GPUs (torch falls back to CPU).
#
# Two targets: `kit` (the default, last) and `mlflow-server` (the tracking server of compose.yaml).

FROM python:3.11-slim-bookworm AS mlflow-server
# mlflow comes at the kit's own version: requirements.lock is the constraints file (pip -c).
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir -c /tmp/requirements.lock mlflow "psycopg2-binary==2.9.13" \
 && useradd --create-home --uid 1000 mlflow \
 && mkdir -p /mlflow/artifacts \
 && chown -R mlflow:mlflow /mlflow
USER 1000:1000
WORKDIR /mlflow
EXPOSE 5000
# Standalone: SQLite on the /mlflow volume. compose.yaml points it at PostgreSQL instead.
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000", \
     "--backend-store-uri", "sqlite:////mlflow/mlflow.db", "--artifacts-destination", "/mlflow/artifacts"]


FROM python:3.11-slim-bookworm AS kit

ARG UID=1000
ARG GID=1000

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg \
    HF_HOME=/cache/huggingface \
    RAY_USAGE_STATS_ENABLED=0 \
    CUDA_DEVICE_ORDER=PCI_BUS_ID \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# git: DVC needs it, and the mounted checkout belongs to another user, hence safe.directory.
# make: the image installs through `make install`, the target CI runs.
# Their apt versions are not pinned: Debian drops superseded versions from its mirrors (.hadolint.yaml).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends git make \
 && rm -rf /var/lib/apt/lists/* \
 && git config --system --add safe.directory '*' \
 && groupadd --gid "${GID}" genbench \
 && useradd --uid "${UID}" --gid "${GID}" --create-home --shell /bin/bash genbench \
 && mkdir -p /opt/genbench /cache/huggingface /workspace \
 && chown genbench:genbench /opt/genbench /cache/huggingface /workspace

USER ${UID}:${GID}
WORKDIR /opt/genbench
COPY --chown=${UID}:${GID} . .
RUN make install

# Declared here, so switching xformers on or off reuses the layer of `make install` above.
ARG WITH_XFORMERS=0
ARG XFORMERS_VERSION=0.0.35
# A layer of its own for the same reason. xformers' wheel names torch as a dependency: torch is
# named too, so pip can never swap the pinned one.
RUN if [ "${WITH_XFORMERS}" = "1" ]; then \
      .venv/bin/python -m pip install --no-cache-dir "xformers==${XFORMERS_VERSION}" "torch==2.14.1"; \
    fi

# The mounted checkout's code comes first on the path, the image's copy serves when none is mounted.
ENV PATH=/opt/genbench/.venv/bin:${PATH} \
    PYTHONPATH=/workspace
WORKDIR /workspace
VOLUME ["/cache/huggingface"]
CMD ["dvc", "repro"]

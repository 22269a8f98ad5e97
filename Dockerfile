# fedpipe: the image every pipeline task runs in (this repository in the pinned environment).
# Build with `make image` (docker or podman). Tasks call `python3 -m kfp.dsl.executor_main`, which
# resolves to the venv through PATH.
# The base is pinned by digest (the multi-arch index of python:3.11-slim); bump it deliberately.
ARG PYTHON_BASE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# ---- builder: compilers and pip live only here --------------------------------------------------
FROM ${PYTHON_BASE} AS builder
# Compilers for the few pinned packages without a cp311 wheel; the versions come with the pinned base.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The same lock files, in the same order and with the same flags, as `make install` (.venv).
COPY pipelines/locks/ pipelines/locks/
RUN python -m venv /opt/fedpipe \
    && /opt/fedpipe/bin/pip install --no-cache-dir -r pipelines/locks/runtime.txt \
    && /opt/fedpipe/bin/pip install --no-cache-dir --no-deps -r pipelines/locks/no-deps.txt
COPY pyproject.toml README.md ./
COPY components/ components/
COPY pipelines/ pipelines/
RUN /opt/fedpipe/bin/pip install --no-cache-dir --no-deps --no-build-isolation . \
    && find /opt/fedpipe -name '__pycache__' -type d -prune -exec rm -rf {} +

# ---- runtime: the venv only, non-root ------------------------------------------------------------
FROM ${PYTHON_BASE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/fedpipe/fedpipe
LABEL org.opencontainers.image.title="fedpipe" \
      org.opencontainers.image.description="Residency-aware federated learning as Kubeflow Pipelines: the task image" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}"
RUN groupadd --system --gid 10001 fedpipe \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/fedpipe fedpipe
COPY --from=builder /opt/fedpipe /opt/fedpipe
ENV PATH=/opt/fedpipe/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /home/fedpipe
# Numeric, so Kubernetes can verify runAsNonRoot (Pod Security "restricted").
USER 10001:10001
CMD ["fedpipe", "--help"]

# syntax=docker/dockerfile:1
# QF Sentinel's Python services in one image: `qf migrate`, `qf index`, `qf serve`, `qf train`, ...
#
#   docker build -t qf-sentinel:local .
#   docker run --rm qf-sentinel:local env        # the environment variables it reads
#
# The entry point is `qf`: the container's command is the subcommand. No secret is
# baked in; docker-compose.yml passes them as Docker secrets at run time.
#
# Dependencies come from uv.lock (the same lock as `make setup`). The project itself is
# installed as the wheel built from this checkout, not as an editable checkout: migrations,
# ABIs and the Round 9 sample are package data (qf/package_data.py), so the runtime image
# carries /opt/venv and nothing of the source tree.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# -- builder: dependencies first, so that this layer is reused until pyproject.toml or uv.lock changes
FROM ${PYTHON_IMAGE} AS builder

# uv installs into /opt/venv, from uv.lock only (--locked refuses a lock pyproject.toml has
# moved past), with the interpreter of the image, copying files rather than linking a cache.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_NO_CACHE=1 \
    PATH=/opt/venv/bin:$PATH

WORKDIR /app
# uv itself, hash-pinned from the same lock (scripts/lock_bootstrap.py), into the builder only.
COPY requirements/uv.txt requirements/uv.txt
RUN pip install --no-deps --require-hashes -r requirements/uv.txt
# The runtime dependencies exactly as locked (not the dev group), without the project yet: the
# extras of every deployable the image runs (pyproject.toml's `all`: indexer, sidecar, training, console).
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --extra all --no-install-project

# The source of the wheel: the folders the one package `qf_sentinel` links to (qf_sentinel/qf ->
# ../qf and so on; the build copies what the links point at), and the README setuptools reads.
COPY README.md ./
COPY qf/ qf/
COPY indexer/ indexer/
COPY scorer/ scorer/
COPY console/ console/
COPY qf_sentinel/ qf_sentinel/
COPY sql/ sql/
COPY contracts_abi/ contracts_abi/
COPY data/ data/
# Build the wheel (its build backend pinned by [tool.uv] build-constraint-dependencies) and
# install it alone: every dependency is already there, at the locked version.
RUN uv build --wheel --out-dir /dist \
    && uv pip install --python /opt/venv/bin/python --no-deps /dist/qf_sentinel-*.whl

# -- runtime
FROM ${PYTHON_IMAGE}

# libgomp1: LightGBM's wheel links the system OpenMP runtime (`qf train`).
RUN apt-get update \
    && apt-get install --yes --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 qf \
    && useradd --system --uid 10001 --gid qf --home-dir /home/qf --create-home --shell /usr/sbin/nologin qf \
    && install --directory --owner qf --group qf /var/lib/qf /var/lib/qf/models

COPY --from=builder /opt/venv /opt/venv
COPY --chmod=0755 ops/docker/with-pgpassword /usr/local/bin/with-pgpassword

# QF_HOME and QF_MODELS_DIR: writable state outside the read-only code (models/ is a volume in compose).
# NUMBA_CACHE_DIR: the numba kernels cache their compiled code; site-packages is not writable by the qf user.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    QF_HOME=/var/lib/qf \
    QF_MODELS_DIR=/var/lib/qf/models \
    NUMBA_CACHE_DIR=/home/qf/.cache/numba \
    MPLCONFIGDIR=/home/qf/.config/matplotlib

WORKDIR /var/lib/qf
USER 10001:10001

# gRPC of `qf serve`, /metrics of `qf index` and of `qf serve`, the pages of `qf console`.
EXPOSE 50051 9101 9102 8088

ENTRYPOINT ["qf"]
CMD ["--help"]

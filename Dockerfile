# syntax=docker/dockerfile:1
#
# flowleaks as a batch-job image: `docker run IMAGE scan --as-admin --db /data/tenant.duckdb …`.
#
#   docker build -t flowleaks:0.1.0 .
#   docker run --rm --env-file flowleaks.env -v flowleaks-data:/data flowleaks:0.1.0 \
#       scan --as-admin --db /data/tenant.duckdb --summary-json /data/last.json --quiet
#
# No credential, key or token is baked in: every FLOWLEAKS_* secret comes from the runtime
# (`--env-file`, a Kubernetes Secret, a Container Apps secret, a managed identity). Only scanner/,
# detectors/, pyproject.toml, README.md and LICENSE enter the build (see .dockerignore); the runtime
# stage holds the installed package, not the source tree.
#
# The base is pinned by tag; pin it by digest for reproducible builds:
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest> .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------------
# build: a wheel of flowleaks plus wheels of every dependency (hyperscan only on x86-64: its marker in
# pyproject.toml skips it elsewhere, and the portable matcher gives the same findings)
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY scanner ./scanner
COPY detectors ./detectors
RUN python -m pip wheel --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------------
# runtime
FROM ${PYTHON_IMAGE}
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/flowleaks \
    XDG_CACHE_HOME=/cache

# A fixed, numeric, non-root user: Kubernetes' runAsNonRoot can only verify a numeric USER, and the
# uid must be the same in every shard and in the merge job (the databases are created mode 0600).
RUN groupadd --system --gid 10001 flowleaks \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/flowleaks --create-home \
            --shell /usr/sbin/nologin flowleaks \
 && install -d -o 10001 -g 10001 -m 0700 /data /cache

# Only the wheels built above (--no-index): the versions are the ones that stage resolved.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links /wheels flowleaks

USER 10001:10001

# Fail the build, not the first night, if the installed package is incomplete: every module and the
# rule catalogue (detectors/rules/*.toml) must have been packaged. Runs as the runtime user, from /,
# so that only the installed copy can be imported; anything cached goes to a throwaway folder.
WORKDIR /
RUN export XDG_CACHE_HOME=/tmp/flowleaks-build-check \
 && python -c "import scanner.files, scanner.cli; from detectors import catalogue; n = len(catalogue.load()); assert n > 0, 'the rule catalogue (detectors/rules/*.toml) is missing from the installed package'; print('flowleaks image: %d catalogue rules' % n)" \
 && flowleaks --version \
 && rm -rf /tmp/flowleaks-build-check

WORKDIR /data
# Databases, their spill folders and summaries. Kubernetes ignores VOLUME: mount a volume at /data
# there, and an emptyDir at /cache when the root filesystem is read-only (the compiled Hyperscan
# database is cached under $XDG_CACHE_HOME/flowleaks; an unwritable cache only costs compile time).
VOLUME ["/data"]

ENTRYPOINT ["flowleaks"]
CMD ["--help"]

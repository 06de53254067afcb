# Stand-in for python:3.11-slim, from the local Debian base (no registry is needed).
# Python in a venv on the PATH, as in the official images: `pip install` needs no flags.
# Built by docker/build-local.sh.
ARG BASE_IMAGE=nightshift-local/debian:bookworm
FROM ${BASE_IMAGE}

ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LANG=C.UTF-8

# curl for health checks; tini to reap and forward signals as PID 1. Versions: those of the
# Debian release the base was bootstrapped from.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates curl tini \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
    && python3 -m venv /opt/venv

CMD ["python3"]

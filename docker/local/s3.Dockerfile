# The S3-compatible server of the local stack: moto's standalone server (the one the tests
# use), at the locked version, on the local Python base. Stands in for MinIO, which needs a
# registry. Keeps its buckets in memory. Built by docker/build-local.sh.
ARG BASE_IMAGE=nightshift-local/python:3.11
FROM ${BASE_IMAGE}

ARG PIP_INDEX_URL
ARG MOTO_VERSION
RUN test -n "${MOTO_VERSION}" \
    && pip install --no-cache-dir "moto[server]==${MOTO_VERSION}" \
    && useradd --uid 10002 --no-create-home --shell /usr/sbin/nologin s3
USER 10002
ENTRYPOINT ["/usr/bin/tini", "--", "moto_server"]
CMD ["-H", "0.0.0.0", "-p", "9000"]

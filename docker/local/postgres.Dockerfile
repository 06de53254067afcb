# Stand-in for postgres:<version>: Debian's PostgreSQL on the local Debian base, with the
# official image's POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB first-start convention and
# its data folder. Built by docker/build-local.sh.
ARG BASE_IMAGE=nightshift-local/debian:bookworm
FROM ${BASE_IMAGE}

# The official image's uid/gid (999), so that a data volume moves between the two. Versions:
# those of the Debian release the base was bootstrapped from.
# hadolint ignore=DL3008
RUN groupadd --system --gid 999 postgres \
    && useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --shell /bin/bash postgres \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql

ENV PGDATA=/var/lib/postgresql/data
COPY docker/local/postgres-entrypoint.sh /entrypoint
USER 999:999
ENTRYPOINT ["/entrypoint"]

# Stand-in for apache/airflow:<version>-python3.11, on the local Python base: the same user
# (airflow, uid 50000, group 0), AIRFLOW_HOME, AIRFLOW_VERSION and entrypoint convention
# (`IMAGE scheduler` runs `airflow scheduler`; `IMAGE bash -c …` runs bash), with Airflow and
# its PostgreSQL driver installed from the locked wheels. Built by docker/build-local.sh.
ARG BASE_IMAGE=nightshift-local/python:3.11
FROM ${BASE_IMAGE}

ARG PIP_INDEX_URL
ARG AIRFLOW_VERSION
ARG POSTGRES_PROVIDER_VERSION
ENV AIRFLOW_HOME=/opt/airflow \
    AIRFLOW_VERSION=${AIRFLOW_VERSION} \
    AIRFLOW_UID=50000

# The venv belongs to airflow: images built on this one `pip install` as that user.
RUN test -n "${AIRFLOW_VERSION}" \
    && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
        "apache-airflow-providers-postgres==${POSTGRES_PROVIDER_VERSION}" \
    && useradd --uid 50000 --gid 0 --create-home --shell /bin/bash airflow \
    && mkdir -p /opt/airflow/dags /opt/airflow/logs /opt/airflow/plugins \
    && chown -R airflow:0 /opt/airflow /opt/venv

COPY docker/local/airflow-entrypoint.sh /entrypoint
USER 50000
WORKDIR /opt/airflow
ENTRYPOINT ["/usr/bin/tini", "--", "/entrypoint"]
CMD ["--help"]

# Airflow with nightshift: the providers, mlcore (with CPU TensorFlow for the `local` train
# backend), and the repo's dags/ and plugins/.
#
#   docker build -f docker/airflow.Dockerfile -t nightshift-airflow .      (from the repo root)
#
# The repo's layout is kept under /opt/airflow (AIRFLOW_HOME): mlcore finds sql/ and
# expectations/ beside its package, and Airflow finds dags/ and plugins/ where it looks.
ARG BASE_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${BASE_IMAGE}

# A package mirror for builds without PyPI (docker/build-local.sh serves the locked wheels
# there); unset, pip uses PyPI.
ARG PIP_INDEX_URL
WORKDIR /opt/airflow
COPY --chown=airflow:0 pyproject.toml README.md ./
COPY --chown=airflow:0 mlcore/ mlcore/
COPY --chown=airflow:0 sql/ sql/
COPY --chown=airflow:0 expectations/ expectations/

# Pinning apache-airflow to the image's version (AIRFLOW_VERSION is set by the base image)
# keeps pip from upgrading Airflow while it resolves the providers. Editable, so that mlcore
# stays beside sql/ and expectations/.
# The warehouse folder exists in the image so that the volume mounted there is airflow's.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" --editable ".[airflow,cpu]" \
    && mkdir -p /opt/airflow/warehouse

COPY --chown=airflow:0 dags/ dags/
COPY --chown=airflow:0 plugins/ plugins/

ENV PYTHONPATH=/opt/airflow/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    NIGHTSHIFT_WAREHOUSE=/opt/airflow/warehouse/nightshift.duckdb \
    TF_CPP_MIN_LOG_LEVEL=2

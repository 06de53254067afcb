# The GPU trainer: `nightshift train <pipeline> --ds YYYY-MM-DD`, in a container or a pod.
# It reads and writes the lake only, so it carries mlcore's core dependencies and no Airflow:
# `pip install .` leaves out the `airflow` and `cpu` extras (the base brings CUDA TensorFlow).
#
#   docker build -f docker/trainer.Dockerfile -t nightshift-trainer .      (from the repo root)
#
# The base must have Python 3.11 (pyproject's requires-python); pass another with
# --build-arg BASE_IMAGE=... (a JAX or PyTorch image works too: the models are Keras 3).
ARG BASE_IMAGE=tensorflow/tensorflow:2.21.0-gpu
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2

# A package mirror for builds without PyPI (docker/build-local.sh serves the locked wheels
# there); unset, pip uses PyPI.
ARG PIP_INDEX_URL
WORKDIR /opt/nightshift
COPY pyproject.toml README.md ./
COPY mlcore/ mlcore/
# Fail the build, not the first night, if the package or the GPU TensorFlow does not import.
# A numeric non-root user: Kubernetes can verify runAsNonRoot only for a numeric USER.
RUN pip install --no-cache-dir . \
    && python -c "import mlcore.cli, tensorflow" \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin nightshift
USER 10001:10001
WORKDIR /home/nightshift

ENTRYPOINT ["nightshift"]
CMD ["train", "--help"]

# Stand-in for tensorflow/tensorflow:<version>-gpu: the locked TensorFlow (its CPU build: this
# machine has no GPU) on the local Python base. Built by docker/build-local.sh, which serves the
# locked wheels at PIP_INDEX_URL.
ARG BASE_IMAGE=nightshift-local/python:3.11
FROM ${BASE_IMAGE}

ARG PIP_INDEX_URL
ARG TENSORFLOW_VERSION
RUN test -n "${TENSORFLOW_VERSION}" \
    && pip install --no-cache-dir "tensorflow-cpu==${TENSORFLOW_VERSION}" \
    && python -c "import tensorflow"

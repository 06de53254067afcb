#!/bin/bash
# The official Airflow image's convention: `IMAGE <airflow command>` runs `airflow <command>`,
# `IMAGE bash|python|airflow …` runs that program as given.
set -euo pipefail
case "${1:-}" in
    bash | sh | python | python3 | airflow) exec "$@" ;;
    *) exec airflow "$@" ;;
esac

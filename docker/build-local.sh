#!/usr/bin/env bash
# Build nightshift's images on a machine with no image registry: `make images`.
#
# 1. Starts dockerd when none answers (root only; vfs storage, no bridge and no iptables: what
#    runs in a sandbox without kernel overlay or netfilter). Containers then use the host network.
# 2. Makes the Debian base once: debootstrap (mirror from this machine's apt sources) + docker import.
# 3. Downloads the wheels pinned in uv.lock for the images' Python into docker/.wheels and
#    serves them on 127.0.0.1 as a package index; builds reach it with --network host and
#    PIP_INDEX_URL, the same build argument a company's package mirror would use.
# 4. Builds the local stand-ins for the registry bases (docker/local/*.Dockerfile), then the
#    production Dockerfiles on them: docker/trainer.Dockerfile and docker/airflow.Dockerfile,
#    with BASE_IMAGE pointing at the stand-ins. Prints build times and image sizes.
#
# Settings (environment): NIGHTSHIFT_DOCKER_STATE (dockerd's log and pid; /tmp/nightshift-docker),
# DEBIAN_MIRROR (default: read from /etc/apt), NIGHTSHIFT_WHEEL_PORT (the wheel index's port
# on 127.0.0.1; 3141).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${NIGHTSHIFT_DOCKER_STATE:-/tmp/nightshift-docker}
WHEELS=$REPO/docker/.wheels
DEBIAN_IMAGE=nightshift-local/debian:bookworm
PYTHON_IMAGE=nightshift-local/python:3.11
export DOCKER_BUILDKIT=0  # the engine's own builder: no buildx plugin is needed

say() { printf '\033[1mnightshift images:\033[0m %s\n' "$*" >&2; }
die() { printf 'nightshift images: error: %s\n' "$*" >&2; exit 1; }
have_image() { docker image inspect "$1" > /dev/null 2>&1; }
apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" > "$STATE/apt.log" 2>&1 \
        || die "apt-get install $* failed (log: $STATE/apt.log)"
}

# --- 1. the engine ------------------------------------------------------------------------------
ensure_engine() {
    if [ "$(id -u)" = 0 ] && ! command -v docker-compose > /dev/null \
        && ! docker compose version > /dev/null 2>&1; then
        say "installing Debian's docker-compose (for make stack-up)"
        apt_install docker-compose
    fi
    if docker info > /dev/null 2>&1; then return; fi
    [ "$(id -u)" = 0 ] || die "no Docker engine answers and only root can start one: start dockerd"
    if ! command -v dockerd > /dev/null || ! command -v docker > /dev/null; then
        say "installing Debian's docker.io"
        apt_install docker.io
    fi
    mkdir -p "$STATE"
    say "starting dockerd (vfs storage, host network only; log: $STATE/dockerd.log)"
    setsid dockerd --storage-driver=vfs --iptables=false --bridge=none \
        --pidfile "$STATE/dockerd.pid" > "$STATE/dockerd.log" 2>&1 < /dev/null &
    for _ in $(seq 60); do
        docker info > /dev/null 2>&1 && return
        sleep 1
    done
    tail -5 "$STATE/dockerd.log" >&2
    die "dockerd did not answer within 60 s (log: $STATE/dockerd.log)"
}

# --- 2. the Debian base -------------------------------------------------------------------------
debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
    # deb822 sources (URIs: …) or one-line sources (deb URI suite …), the main Debian archive.
    local uri
    uri=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2> /dev/null \
        | sed -nE 's#^(URIs:|deb)[[:space:]]+(\[[^]]*\][[:space:]]+)?(https?://[^[:space:]]+/debian)/?([[:space:]].*)?$#\3#p' \
        | head -1)
    echo "${uri:-http://deb.debian.org/debian}"
}

build_debian_base() {
    if have_image "$DEBIAN_IMAGE"; then return; fi
    command -v debootstrap > /dev/null || apt_install debootstrap
    local rootfs mirror
    rootfs=$(mktemp -d "$STATE/rootfs.XXXXXX")
    chmod 755 "$rootfs"  # it becomes the image's /: mktemp's 0700 would lock out non-root users
    mirror=$(debian_mirror)
    say "debootstrap bookworm from $mirror (once; about 30 s)"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > "$STATE/debootstrap.log" 2>&1 \
        || { tail -5 "$STATE/debootstrap.log" >&2; die "debootstrap failed (log: $STATE/debootstrap.log)"; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import --change 'CMD ["bash"]' - "$DEBIAN_IMAGE" > /dev/null
    rm -rf "$rootfs"
}

# --- 3. the locked wheels, served as a package index --------------------------------------------
locked_version() {  # the version uv.lock pins for a package
    awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' \
        "$REPO/uv.lock"
}

download_wheels() {
    local stamp python_version
    python_version=$(docker run --rm --network none "$PYTHON_IMAGE" \
        python3 -c 'import platform; print(platform.python_version())')
    stamp="$(sha256sum "$REPO/uv.lock" | cut -d' ' -f1) python-$python_version"
    if [ -f "$WHEELS/stamp" ] && [ "$(cat "$WHEELS/stamp")" = "$stamp" ]; then return; fi
    say "downloading the wheels pinned in uv.lock for the images' Python $python_version into docker/.wheels"
    mkdir -p "$WHEELS/files"
    (cd "$REPO" && uv export --frozen --all-extras --all-groups --no-hashes --no-emit-project \
        --format requirements-txt --quiet -o "$WHEELS/uv-export.txt")
    # uv.lock forks some packages by Python version (soupsieve 4 needs 3.11.5; Debian has 3.11.2),
    # and pip would judge the markers by the Python that runs it here: pick the lines for the
    # image's Python and platform first, then download exactly those, without re-resolving.
    "$REPO/.venv/bin/python" - "$python_version" "$WHEELS/uv-export.txt" \
        > "$WHEELS/requirements.txt" << 'PY'
import platform
import sys

from packaging.requirements import Requirement

version, path = sys.argv[1:]
env = {"python_version": version.rsplit(".", 1)[0], "python_full_version": version,
       "implementation_version": version, "sys_platform": "linux", "os_name": "posix",
       "platform_system": "Linux", "platform_machine": platform.machine()}
for line in open(path):
    line = line.strip()
    if line and not line.startswith("#"):
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            print(f"{req.name}{req.specifier}")
PY
    # Every manylinux tag that the images' glibc (2.36) runs: pip does not expand them itself.
    local arch platforms=()
    arch=$(uname -m)
    for tag in manylinux1 manylinux2010 manylinux2014 $(printf 'manylinux_2_%d ' $(seq 17 36)); do
        platforms+=(--platform "${tag}_$arch")
    done
    local pip_download=(python3 -m pip download --quiet --disable-pip-version-check
        --only-binary=:all: --python-version "$python_version" --implementation cp
        "${platforms[@]}" -d "$WHEELS/files")
    "${pip_download[@]}" --no-deps -r "$WHEELS/requirements.txt" 2> >(grep -v "^WARNING: Location" >&2)
    # The project's build backend (hatchling, and editables for `pip install --editable`): the
    # images build the project from source.
    "${pip_download[@]}" hatchling editables 2> >(grep -v "^WARNING: Location" >&2)
    # A PEP 503 index (simple/<normalised name>/<file>) over the same files.
    rm -rf "$WHEELS/simple"
    local file name
    for file in "$WHEELS"/files/*.whl; do
        name=$(basename "$file" | cut -d- -f1 | tr 'A-Z_.' 'a-z--')
        mkdir -p "$WHEELS/simple/$name"
        ln -f "$file" "$WHEELS/simple/$name/"
    done
    echo "$stamp" > "$WHEELS/stamp"
}

serve_wheels() {
    # A fixed port: the index URL is a build argument, so it is part of every layer's cache key.
    local port=${NIGHTSHIFT_WHEEL_PORT:-3141}
    INDEX_URL="http://127.0.0.1:$port/simple/"
    if curl -sf "$INDEX_URL" > /dev/null; then
        die "port $port is taken (another build-local.sh?); set NIGHTSHIFT_WHEEL_PORT"
    fi
    python3 -m http.server --bind 127.0.0.1 --directory "$WHEELS" "$port" > "$STATE/wheels.log" 2>&1 &
    WHEEL_SERVER=$!
    trap 'kill $WHEEL_SERVER 2> /dev/null || true' EXIT
    for _ in $(seq 50); do
        curl -sf "$INDEX_URL" > /dev/null && return
        sleep 0.1
    done
    die "the wheel index did not start on 127.0.0.1:$port (log: $STATE/wheels.log)"
}

# --- 4. the images ------------------------------------------------------------------------------
BUILT=()
build() {  # build <tag> <dockerfile> [--build-arg …]: from the repo root, with the index
    local tag=$1 dockerfile=$2 start
    shift 2
    say "building $tag ($dockerfile)"
    start=$(date +%s.%N)
    docker build --force-rm --network host --build-arg "PIP_INDEX_URL=$INDEX_URL" -f "$REPO/$dockerfile" \
        -t "$tag" "$@" "$REPO" > "$STATE/build-${tag//[:\/]/_}.log" 2>&1 \
        || { tail -20 "$STATE/build-${tag//[:\/]/_}.log" >&2; die "building $tag failed (log: $STATE/build-${tag//[:\/]/_}.log)"; }
    BUILT+=("$tag $(awk "BEGIN { print $(date +%s.%N) - $start }")")
}

build_images() {
    build nightshift-local/tensorflow:cpu docker/local/tensorflow.Dockerfile \
        --build-arg "BASE_IMAGE=$PYTHON_IMAGE" \
        --build-arg "TENSORFLOW_VERSION=$(locked_version tensorflow-cpu)"
    build nightshift-local/airflow:python3.11 docker/local/airflow.Dockerfile \
        --build-arg "BASE_IMAGE=$PYTHON_IMAGE" \
        --build-arg "AIRFLOW_VERSION=$(locked_version apache-airflow)" \
        --build-arg "POSTGRES_PROVIDER_VERSION=$(locked_version apache-airflow-providers-postgres)"
    build nightshift-local/postgres:15 docker/local/postgres.Dockerfile \
        --build-arg "BASE_IMAGE=$DEBIAN_IMAGE"
    build nightshift-local/s3:moto docker/local/s3.Dockerfile \
        --build-arg "BASE_IMAGE=$PYTHON_IMAGE" --build-arg "MOTO_VERSION=$(locked_version moto)"
    # The production Dockerfiles, unchanged, on the stand-in bases.
    build nightshift-trainer:latest docker/trainer.Dockerfile \
        --build-arg BASE_IMAGE=nightshift-local/tensorflow:cpu
    build nightshift-airflow:latest docker/airflow.Dockerfile \
        --build-arg BASE_IMAGE=nightshift-local/airflow:python3.11
}

report() {
    printf '\n%-40s %10s %10s\n' image "build s" "size MB"
    local entry tag secs
    for entry in "${BUILT[@]}"; do
        tag=${entry% *}
        secs=${entry##* }
        printf '%-40s %10.1f %10d\n' "$tag" "$secs" \
            "$(( $(docker image inspect -f '{{.Size}}' "$tag") / 1000000 ))"
    done
}

main() {
    mkdir -p "$STATE"
    ensure_engine
    command -v uv > /dev/null || PATH=$HOME/.local/bin:$PATH
    build_debian_base
    INDEX_URL=  # the Python base needs no wheels; its Python decides which ones the others get
    build "$PYTHON_IMAGE" docker/local/python.Dockerfile --build-arg "BASE_IMAGE=$DEBIAN_IMAGE"
    download_wheels
    serve_wheels
    build_images
    # The images this build replaced (untagged now): with vfs each of their layers is a full copy.
    docker image prune --force > /dev/null
    report
}

# One line: bash reads a script while it runs it, so nothing after this runs even if edited.
main "$@"; exit

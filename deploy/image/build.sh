#!/usr/bin/env bash
# `make image`: builds deploy/Dockerfile with podman, as `docker build` would, without a daemon.
# With no settings it uses the Dockerfile's defaults, as a real build does. These settings let a
# machine without access to a container registry or to the PyTorch index build it too:
#   IMAGE_BASE=NAME   the base image of the build stages (the PYTHON_IMAGE build argument), e.g.
#                     the one `deploy/image/base.sh build` makes with debootstrap
#   IMAGE_RUNTIME_BASE=NAME  the final stage's (RUNTIME_IMAGE; default IMAGE_BASE), e.g. the one
#                     `deploy/image/base.sh runtime` makes
#   IMAGE_PIP=machine pip in the build uses this machine's index configuration (machine_pip.py)
# Usage: deploy/image/build.sh [TAG]
#   IMAGE_DATA: the benchmark folder the baked router is built from (the `routerdata` build
#   context; default, as docker-compose.yaml: ../shared/data/routerbench-subset)
set -euo pipefail
cd "$(dirname "$0")/../.."

PODMAN=${PODMAN:-podman}
tag=${1:-llm-router:local}
data=${IMAGE_DATA:-../shared/data/routerbench-subset}

# docker format: the OCI format has no HEALTHCHECK
args=(--isolation chroot --format docker -f deploy/Dockerfile --build-context "routerdata=$data" -t "$tag")
if [ -n "${IMAGE_BASE:-}" ]; then
  args+=(--build-arg "PYTHON_IMAGE=$IMAGE_BASE" --build-arg "RUNTIME_IMAGE=${IMAGE_RUNTIME_BASE:-$IMAGE_BASE}")
fi
if [ "${IMAGE_PIP:-}" = machine ]; then
  conf=$(mktemp -d)
  trap 'rm -rf "$conf"' EXIT
  "${PYTHON:-python3}" deploy/image/machine_pip.py "$conf" > "$conf/args"
  mapfile -t machine < "$conf/args"
  args+=("${machine[@]}")
elif [ -n "${IMAGE_PIP:-}" ]; then
  echo "IMAGE_PIP=$IMAGE_PIP: only 'machine' is known" >&2
  exit 2
fi

start=$SECONDS
$PODMAN build "${args[@]}" .
echo "image $tag: built in $((SECONDS - start)) s"

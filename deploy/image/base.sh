#!/usr/bin/env bash
# A local stand-in for the Dockerfile's base images (python:3.11-slim-bookworm) on a machine that
# reaches Debian's archive but no container registry: Debian bookworm's own Python 3.11, installed
# by debootstrap and turned into an image by `podman import`. The image is kept in podman's storage
# under a tag derived from this recipe, so later runs on the same machine reuse it.
#   base.sh build    (the default) for the build stages: also venv, pip and the C headers
#                    (hnswlib compiles against them), as python:3.11-slim has them
#   base.sh runtime  for the final stage: Python and CA certificates only (the environment is
#                    copied in from a build stage, so no headers, venv or pip), and, as in Debian's
#                    slim images (python:3.11-slim's base), no documentation, manual pages or locales
# Prints the image's name on stdout (progress goes to stderr).
set -euo pipefail

PODMAN=${PODMAN:-podman}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
kind=${1:-build}
case $kind in
  build) PACKAGES=python3,python3-venv,python-is-python3,libpython3.11-dev,ca-certificates ;;
  runtime) PACKAGES=python3,python-is-python3,ca-certificates ;;
  *) echo "base.sh: build or runtime, not $kind" >&2; exit 2 ;;
esac

recipe=$( { echo "$SUITE $MIRROR $PACKAGES"; cat "$0"; } | sha256sum | cut -c1-12)
tag="localhost/llm-router-base:$SUITE-$kind-$recipe"
if $PODMAN image exists "$tag"; then
  echo "base image $tag: cached" >&2
  echo "$tag"
  exit 0
fi

root=$(mktemp -d /var/tmp/llm-router-base.XXXXXX)
# --one-file-system: never follow a mount that an interrupted debootstrap left inside the tree
trap 'umount -R "$root/proc" "$root/sys" 2>/dev/null || true; rm -rf --one-file-system "$root"' EXIT
echo "base image $tag: debootstrap $SUITE ($PACKAGES) from $MIRROR" >&2
start=$SECONDS
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >&2
# as in a slim image: no package lists or downloaded packages
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin
if [ "$kind" = runtime ]; then
  # what debian:bookworm-slim leaves out (copyright files stay)
  find "$root"/usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
fi
tar --numeric-owner -C "$root" -c . | $PODMAN import --change 'CMD ["python3"]' - "$tag" >&2
echo "base image $tag: built in $((SECONDS - start)) s" >&2
echo "$tag"

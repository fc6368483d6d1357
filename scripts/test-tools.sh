#!/usr/bin/env bash
# The system tools `make test` needs besides Python: promtool (unit-tests the alert rules) and
# prometheus (scrapes a live gateway in tests/deploy). Those tests fail, not skip, without them.
# Installs Debian's `prometheus` package (it ships both) where apt-get can run as root or through
# password-less sudo; otherwise says what is missing and how to get it, and exits 1.
set -euo pipefail

missing=()
for tool in promtool prometheus; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if command -v apt-get >/dev/null 2>&1; then
  sudo=none
  if [ "$(id -u)" -eq 0 ]; then
    sudo=""
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  fi
  if [ "$sudo" != none ]; then
    echo "test-tools: installing Debian's prometheus package for ${missing[*]}" >&2
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends prometheus
    exit 0
  fi
fi

cat >&2 <<MSG
make test needs ${missing[*]} on PATH (tests/deploy run promtool on the alert rules and a real
Prometheus against the gateway). Install them, then run make test again:
  Debian/Ubuntu:  sudo apt-get install prometheus        (ships prometheus and promtool)
  elsewhere:      the prometheus-*.tar.gz release from https://prometheus.io/download/ (both binaries
                  are in it); put the folder on PATH
MSG
exit 1

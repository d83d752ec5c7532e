#!/usr/bin/env bash
# Installs the system packages the build needs (Debian 12), skipping those already present.
# Non-interactive and idempotent; runs as root directly, or through sudo otherwise. CI calls it.
#
#   libclang1-14, libclang-common-14-dev  codegen's binding generator (libclang-14.so.1 and
#                                         clang's builtin headers such as stddef.h)
#   cmake, ninja-build, g++               the native build (backends/)
#   libgtest-dev                          the native tests (backends/common/tests)
set -euo pipefail

packages=(libclang1-14 libclang-common-14-dev cmake ninja-build g++ libgtest-dev)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present (${packages[*]})"
  exit 0
fi

run_as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "setup: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
  run_as_root=(sudo)
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${run_as_root[@]}" apt-get update -qq
"${run_as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"

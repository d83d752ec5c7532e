#!/usr/bin/env bash
# Installs the system packages the build needs (Debian 12), skipping those already present.
# Non-interactive and idempotent; runs as root directly, or through sudo otherwise. CI calls it.
#
#   libclang1-14, libclang-common-14-dev  codegen's binding generator (libclang-14.so.1 and
#                                         clang's builtin headers such as stddef.h)
#   cmake, ninja-build, g++               the native build (backends/)
#   libgtest-dev                          the native tests (backends/common/tests)
#
# tools/setup.sh --cuda  (opt-in; CI does not use it) also installs Debian's CUDA 11.8 compiler
# for compile-checking the CUDA backends on a machine without a GPU:
#
#   nvidia-cuda-toolkit   nvcc 11.8 (from Debian's non-free component: this mode writes
#                         /etc/apt/sources.list.d/debian-contrib-non-free.sources, a deb822
#                         file adding "contrib non-free" for bookworm)
#   clang-14              nvcc 11.8's host compiler: it rejects Debian's g++ 12, so pass
#                         `-ccbin clang-14` to nvcc, or configure CMake with
#                         -DCMAKE_CUDA_HOST_COMPILER=clang++-14 (or CUDAHOSTCXX=clang++-14);
#                         tools/device/gpu-check.sh does that when it finds an nvcc older than 12
#
# The GPU machine has its own nvcc 13 (tools/device/README.md); this local nvcc only checks that
# kernels compile (sm_80 … sm_90; 11.8 has no sm_90a features beyond what it knows).
#
# tools/setup.sh --rocm  (CI uses it) also installs what compiles the ROCm backend
# (backends/rocm_ck) without an AMD GPU, all from Debian bookworm's main component:
#
#   hipcc                 HIP 5.2: hipcc, the HIP headers (/usr/include/hip), libamdhip64 and
#                         the ROCm device libraries 5.2; its clang 15 compiles gfx90a (MI200)
#   clang-19, lld-19      a clang that knows gfx942 (MI300), and the linker of its AMDGPU
#                         device code; backends/rocm_ck/CMakeLists.txt builds gfx90a + gfx942 with it
#   clang-tools-19        clang-offload-bundler-19, which clang-19 runs to bundle the device
#                         code objects into each host object
#   llvm-19               llvm-dis-19 / llvm-as-19: the build derives the gfx942 ISA-version
#                         bitcode that device libs 5.2 lack (oclc_isa_version_942.bc)
set -euo pipefail

cuda=0
rocm=0
for arg in "$@"; do
  case "$arg" in
    --cuda) cuda=1 ;;
    --rocm) rocm=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "setup: unknown argument '$arg' (usage: tools/setup.sh [--cuda] [--rocm])" >&2
      exit 2
      ;;
  esac
done

packages=(libclang1-14 libclang-common-14-dev cmake ninja-build g++ libgtest-dev)
if [ "$cuda" -eq 1 ]; then
  packages+=(nvidia-cuda-toolkit clang-14)
fi
if [ "$rocm" -eq 1 ]; then
  packages+=(hipcc clang-19 clang-tools-19 lld-19 llvm-19)
fi

run_as_root=()
need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "setup: need root (or sudo) to $1" >&2
      exit 1
    fi
    run_as_root=(sudo)
  fi
}

if [ "$cuda" -eq 1 ]; then
  # Debian's contrib and non-free components for bookworm (nvidia-cuda-toolkit lives in non-free).
  sources=/etc/apt/sources.list.d/debian-contrib-non-free.sources
  wanted="# Written by tools/setup.sh --cuda: Debian's contrib and non-free components (nvidia-cuda-toolkit).
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
  if [ ! -f "$sources" ] || [ "$(cat "$sources")" != "$wanted" ]; then
    need_root "write $sources"
    printf '%s\n' "$wanted" | "${run_as_root[@]}" tee "$sources" >/dev/null
    echo "setup: wrote $sources"
  fi
  # An earlier hand-made file for the same components; ours replaces it (two would duplicate entries).
  probe=/etc/apt/sources.list.d/nonfree-probe.sources
  if [ -f "$probe" ]; then
    need_root "remove $probe"
    "${run_as_root[@]}" rm -f "$probe"
    echo "setup: removed $probe (replaced by $sources)"
  fi
fi

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

need_root "install: ${missing[*]}"

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${run_as_root[@]}" apt-get update -qq
"${run_as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# Prepares .device/ (git-ignored) for a GPU run: everything tools/device/gpu-check.sh needs that the
# GPU machine lacks. Runs HERE (the development machine, with the .NET SDK); then name ".device" in
# the run's carry. See tools/device/README.md.
#
#   .device/dotnet-rt.tar.xz   this machine's .NET runtime (../shared/device/pack-dotnet-runtime.sh),
#                              repacked only when missing or when the installed runtime changed
#   .device/tests/             tests/FlashAttention.Tests published (Release, framework-dependent): an
#                              xunit.v3 self-hosted runner, run as `dotnet .device/tests/FlashAttention.Tests.dll`
#   .device/cli/               src/Cli published (flashattn.dll: bench, plot, info, run)
#   .device/gtest/             Debian's GoogleTest (headers, static libraries, CMake config) for the native
#                              tests (FA_BUILD_TESTS), in case the GPU machine has none
#   .device/fonts/             DejaVu Sans for `flashattn plot` where the GPU machine has no fonts
#   .device/source.txt         the commit and local changes the run is built from (no .git travels)
#   .device/prebuilt/          (kept) native libraries from an earlier run's $OUT/prebuilt.tar.gz
#
# Usage: tools/device/prepare.sh [--no-publish]   (--no-publish: only the runtime, gtest, fonts, source.txt)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
dev="$root/.device"
limit_mib=64
publish=1
for arg in "$@"; do
  case "$arg" in
    --no-publish) publish=0 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "prepare: unknown argument '$arg'" >&2
      exit 2
      ;;
  esac
done
mkdir -p "$dev"

# --- .NET runtime -------------------------------------------------------------------------------
pack=${FA_PACK_RUNTIME:-$root/../shared/device/pack-dotnet-runtime.sh}
runtime=$(dotnet --list-runtimes | awk '/^Microsoft.NETCore.App /{v=$2} END{print v}')
if [ -f "$dev/dotnet-rt.tar.xz" ] && [ "$(cat "$dev/dotnet-rt.version" 2>/dev/null)" = "$runtime" ]; then
  echo "prepare: runtime $runtime already packed"
else
  [ -x "$pack" ] || [ -f "$pack" ] || { echo "prepare: $pack not found (set FA_PACK_RUNTIME)" >&2; exit 1; }
  bash "$pack" "$dev/dotnet-rt.tar.xz"
  echo "$runtime" >"$dev/dotnet-rt.version"
fi

# --- published tests and CLI ----------------------------------------------------------------------
# Framework-dependent, linux-x64 (only that RID's native assets). xunit.v3 needs its app host for the
# test project; the CLI runs as `dotnet flashattn.dll`, so it gets none.
trim() {
  # Not needed to run: debug symbols are kept (stack traces with lines), XML docs and the
  # code-coverage collector of Microsoft.NET.Test.Sdk (30 MB) are not.
  rm -rf "$1/Microsoft.CodeCoverage" "$1"/*.xml
  find "$1" -name '*.xml' ! -name 'xunit.runner.json' -delete
}
if [ "$publish" -eq 1 ]; then
  rm -rf "$dev/tests" "$dev/cli"
  echo "prepare: publishing tests/FlashAttention.Tests → .device/tests"
  dotnet publish tests/FlashAttention.Tests -c Release -r linux-x64 --self-contained false \
    -o "$dev/tests" -nologo -v quiet
  trim "$dev/tests"
  echo "prepare: publishing src/Cli → .device/cli"
  dotnet publish src/Cli -c Release -r linux-x64 --self-contained false -p:UseAppHost=false \
    -o "$dev/cli" -nologo -v quiet
  trim "$dev/cli"
fi

# --- GoogleTest (Debian's libgtest-dev, relocatable CMake package) --------------------------------
multiarch=x86_64-linux-gnu
if [ -f "/usr/lib/$multiarch/libgmock.a" ] && [ -d /usr/include/gtest ] && [ -d /usr/include/gmock ]; then
  rm -rf "$dev/gtest"
  mkdir -p "$dev/gtest/usr/include" "$dev/gtest/usr/lib/$multiarch"
  cp -r /usr/include/gtest /usr/include/gmock "$dev/gtest/usr/include/"
  cp "/usr/lib/$multiarch"/lib{gtest,gtest_main,gmock,gmock_main}.a "$dev/gtest/usr/lib/$multiarch/"
  mkdir -p "$dev/gtest/usr/lib/$multiarch/cmake"
  cp -r "/usr/lib/$multiarch/cmake/GTest" "$dev/gtest/usr/lib/$multiarch/cmake/"
else
  echo "prepare: no libgtest-dev/libgmock-dev here (tools/setup.sh installs libgtest-dev); the native tests need GoogleTest on the GPU machine"
fi

# --- fonts for the plot ----------------------------------------------------------------------------
mkdir -p "$dev/fonts"
for font in DejaVuSans.ttf DejaVuSans-Bold.ttf; do
  src=$(find /usr/share/fonts -name "$font" -print -quit 2>/dev/null || true)
  [ -n "$src" ] && cp "$src" "$dev/fonts/"
done

# --- what the run is built from ----------------------------------------------------------------------
{
  echo "commit $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)"
  echo "prepared $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
  echo "runtime $runtime"
  git status --short 2>/dev/null | sed 's/^/changed /'
} >"$dev/source.txt"

# --- size of what travels -------------------------------------------------------------------------------
tree_bytes=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
dev_bytes=$(du -sb "$dev" | cut -f1)
total=$((tree_bytes + dev_bytes))
echo "prepare: .device contents:"
du -sh "$dev"/* | sed 's/^/  /'
awk -v t="$tree_bytes" -v d="$dev_bytes" -v l="$limit_mib" 'BEGIN {
  printf "prepare: travels: working tree %.1f MiB + .device %.1f MiB = %.1f MiB of %d MiB\n", t / 1048576, d / 1048576, (t + d) / 1048576, l }'
if [ "$total" -gt $((limit_mib * 1048576)) ]; then
  echo "prepare: over the $limit_mib MiB the run may carry: remove .device/prebuilt or other large files" >&2
  exit 1
fi

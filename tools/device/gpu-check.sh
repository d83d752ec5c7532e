#!/usr/bin/env bash
# shellcheck disable=SC2317 # the stage functions are called through `stage NAME SECONDS FUNCTION`
# Build, test, sanitize and benchmark a GPU backend in ONE call on the GPU machine (tools/device/README.md).
# Runs from the repository root of the copy the device tool sends, with .device/ carried (made by
# tools/device/prepare.sh here). Everything it prints goes to $OUT/log too; it stays inside --deadline
# (default 570 s, under the 10-minute limit of one command) by giving each stage what time is left and
# skipping stages that no longer fit, then prints a summary. Exit status 0 only when no stage failed.
#
#   tools/device/gpu-check.sh [options]
#
#   --stages LIST      comma-separated, in this order: build, native-tests, dotnet-tests, sanitize, bench,
#                      decode, profile [default: all but profile]. A stage that fails does not stop the next ones; stages that
#                      need the backend's library are skipped (not failed) when there is none.
#   --backend NAME     cuda_sm80 [default] or hopper_sm90 (cmake FA_BUILD_<NAME>=ON, tests, bench); cpu
#                      skips the build and benchmarks the managed backend (pipeline checks without a GPU)
#   --hdims LIST       FA_HDIMS filter and the benchmark's --headdim [default: 64,128]; "all" = no filter
#   --dtypes LIST      FA_DTYPES filter and the benchmark's --dtype [default: bf16]; "all" = no filter
#   --cuda-archs LIST  FA_CUDA_ARCHITECTURES: compile for these compute capabilities only [default: the
#                      GPU's, from nvidia-smi; 90 on an H100/H200]; "all" = every target of the backend
#   --prebuilt PATH    a folder or .tar.gz holding an earlier run's $OUT/prebuilt.tar.gz contents: the build
#                      is skipped when its STAMP (hash of backends/ and the filters) matches this tree's,
#                      else rebuilt (--trust-prebuilt skips the build anyway)
#   --jobs N           ninja -j [default: 16]
#   --cmake-args "ARGS"  extra configure arguments, after the script's (e.g. "-DFA_CUDA_SM80_FWD_ONLY=ON")
#   --tests MODE       dotnet-tests: gpu [default] = the backend's rows of the test matrix only, with
#                      skips counted as failures (a skip there means the backend was not available);
#                      all = the whole suite (CPU matrix too); or --test-args "ARGS" = raw xunit.v3 runner
#                      arguments (e.g. '-method "*KvCache*"')
#   --sanitize-tools LIST  compute-sanitizer tools [default: memcheck,racecheck]
#   --driver-args "ARGS"   the kernel drivers' arguments under compute-sanitizer [default: --quick]
#   --bench-args "ARGS"    extra arguments for `flashattn bench` and bench/peers/torch_sdpa.py alike (their
#                          shared options: --seqlen --causal --direction --warmup --iters --tokens --model-dim)
#   --decode-args "ARGS"   the same for the decode grid (--seqlen = kv lengths, --batch, --kv-heads, --iters …)
#   --no-peers         benchmark ours only (no PyTorch SDPA)
#   --rounds N         bench/decode: N rounds of ours then the peers, each configuration's median over the rounds
#                      reported (its per-round times kept as ms_rounds): the GPU's speed drifts by up to 10-17 %
#                      between minutes of one call, which a single round puts between ours and a peer [default: 1]
#   --also-backend NAME  build this backend too and benchmark it in the same grid (merged into bench.json
#                      as ours:NAME, a peer of --backend in ratios.md), e.g. cuda_sm80 next to hopper_sm90
#   --profile-args "ARGS"  the profile stage's problem, as `flashattn bench` options [default: "--seqlen 4096
#                      --causal false --direction bwd"]; one profile per --hdims head dim and --dtypes dtype
#   --deadline SECONDS total time to plan for [default: 570]
#
# Stages and what they leave in $OUT (at most 8 files come back; this writes at most these 8):
#   (always) environment: .NET runtime from .device/dotnet-rt.tar.xz, PATH for CUDA/cmake/python, GPU summary
#   build         cmake -G Ninja of backends/ with FA_BUILD_<BACKEND>=ON (and FA_BUILD_TESTS with GoogleTest),
#                 per-file compile times from .ninja_log, registers/stack per kernel (cuobjdump -res-usage);
#                 the libraries and driver executables → prebuilt.tar.gz (carry them next time: --prebuilt)
#   native-tests  ctest of the build tree, then the kernel drivers when built (see below)
#   dotnet-tests  `flashattn info`, then .device/tests/FlashAttention.Tests.dll (xunit.v3 in-process runner)
#                 with FLASHATTN_NATIVE_DIR = the built libraries → tests.trx
#   sanitize      compute-sanitizer (memcheck, racecheck) on the kernel drivers with --quick, or, without
#                 drivers, on `flashattn run` with small problems (forward + backward, causal, KV cache)
#   bench         `flashattn bench --backend B` on the standard grid filtered to --hdims/--dtypes, PyTorch SDPA
#                 (flash, cuDNN) merged into the same file, `flashattn plot` → bench.json, bench.png
#   decode        `flashattn bench --decode` (q = 1 row, kv 8k–64k, batch 8–64, GB/s vs a device copy), the
#                 SDPA peers likewise → decode.json, decode.png
#   profile       Nsight Compute (ncu --set full, clocks left alone) on the hot kernel of ours and of PyTorch's
#                 flash backend (FlashAttention 2) for the --profile-args problem, one launch each, so
#                 that instruction counts, stall reasons and shared-memory traffic compare side by side
#                 → profile.txt, and ours per SASS instruction → profile-sass-d<D>-<dtype>.csv (one per
#                 head dim and dtype: mind the 8 files that come back) (not in the default stages)
#   (always) ratios.md: bench/ratios.py over the JSON files (peer ms / ours ms, also stored in each file)
#   (always) log: everything printed, ending with the summary
#
# Kernel drivers (optional; the backend's CMake builds them when FA_BUILD_TESTS / FA_<BACKEND>_TESTS is
# ON, both of which this script sets): executables whose names end in fwd_check or bwd_check (e.g.
# fa_sm80_fwd_check, bwd_check) anywhere in the build tree. Interface: no arguments = their full set of
# cases (native-tests); `--quick` = a few small cases that finish in seconds under compute-sanitizer
# (sanitize; FA_CHECK_SMALL=1 is set as well); exit status 0 = all cases passed; output is free text.
# They run with LD_LIBRARY_PATH and FLASHATTN_NATIVE_DIR pointing at the built libraries.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
root=$(pwd)

# ------------------------------------------------------------------------------------------ options
all_stages=(build native-tests dotnet-tests sanitize bench decode profile)
stages=build,native-tests,dotnet-tests,sanitize,bench,decode
backend=cuda_sm80
also_backend=""
hdims=64,128
dtypes=bf16
cuda_archs=auto
prebuilt=""
trust_prebuilt=0
jobs=16
cmake_args=""
tests=gpu
test_args=""
sanitize_tools=memcheck,racecheck
driver_args=--quick
bench_args=""
decode_args=""
profile_args="--seqlen 4096 --causal false --direction bwd"
peers=1
rounds=1
deadline=570

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
need() {
  if [ $# -lt 2 ]; then
    echo "gpu-check: $1 needs a value" >&2
    exit 2
  fi
}
while [ $# -gt 0 ]; do
  case "$1" in
    --stages) need "$@"; stages=$2; shift ;;
    --backend) need "$@"; backend=$2; shift ;;
    --also-backend) need "$@"; also_backend=$2; shift ;;
    --hdims) need "$@"; hdims=$2; shift ;;
    --dtypes) need "$@"; dtypes=$2; shift ;;
    --cuda-archs) need "$@"; cuda_archs=$2; shift ;;
    --prebuilt) need "$@"; prebuilt=$2; shift ;;
    --trust-prebuilt) trust_prebuilt=1 ;;
    --jobs) need "$@"; jobs=$2; shift ;;
    --cmake-args) need "$@"; cmake_args=$2; shift ;;
    --tests) need "$@"; tests=$2; shift ;;
    --test-args) need "$@"; test_args=$2; tests=custom; shift ;;
    --sanitize-tools) need "$@"; sanitize_tools=$2; shift ;;
    --driver-args) need "$@"; driver_args=$2; shift ;;
    --bench-args) need "$@"; bench_args=$2; shift ;;
    --decode-args) need "$@"; decode_args=$2; shift ;;
    --profile-args) need "$@"; profile_args=$2; shift ;;
    --no-peers) peers=0 ;;
    --rounds) need "$@"; rounds=$2; shift ;;
    --deadline) need "$@"; deadline=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "gpu-check: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for s in ${stages//,/ }; do
  case " ${all_stages[*]} " in *" $s "*) ;; *) echo "gpu-check: unknown stage '$s' (stages: ${all_stages[*]})" >&2; exit 2 ;; esac
done
case "$tests" in gpu | all | custom) ;; *) echo "gpu-check: --tests is gpu or all" >&2; exit 2 ;; esac
[ "$hdims" = all ] && hdims=""
[ "$dtypes" = all ] && dtypes=""

# ------------------------------------------------------------------------------------------ output
OUT=${OUT:-$root/build/gpu-check-out}
mkdir -p "$OUT"
# Only the files this script writes (OUT may be a folder with other things in it, here).
rm -f "$OUT"/{log,prebuilt.tar.gz,tests.trx,bench.json,bench.png,decode.json,decode.png,ratios.md,profile.txt} "$OUT"/profile-sass-*.csv
log="$OUT/log"
: >"$log"
exec > >(tee -a "$log") 2>&1
tee_pid=$!

build_dir="$root/build/device"
lib_dir="$root/build/device-lib"
dev="$root/.device"
summary=()
any_failed=0
note=""
budget=0
stage_t0=0

want() { [[ ",$stages," == *",$1,"* ]]; }
hr() { printf '%s\n' "==================================================================================="; }
# limit SECONDS CMD...: runs CMD, killed after SECONDS (TERM, then KILL 10 s later); 124 on timeout.
limit() {
  local seconds=$1
  shift
  timeout --kill-after=10 "$seconds" "$@"
  local rc=$?
  [ "$rc" -eq 124 ] && echo "gpu-check: '$*' stopped after ${seconds}s (time limit)"
  return "$rc"
}
# Seconds left of the running stage's budget (at least 10).
remaining() {
  local r=$((budget - (SECONDS - stage_t0)))
  echo $((r < 10 ? 10 : r))
}
# stage NAME PLANNED_SECONDS FUNCTION: runs a stage when selected and while time is left. The function
# returns 0 (PASS), 77 (SKIP) or anything else (FAIL) and may set $note; it reads $budget (seconds)
# and `remaining`.
stage() {
  local name=$1 planned=$2 fn=$3
  want "$name" || return 0
  local left=$((deadline - SECONDS - 10))
  if [ "$left" -lt 20 ]; then
    summary+=("$(printf '%-13s %-5s %5s  %s' "$name" SKIP - "no time left (--deadline $deadline)")")
    return 0
  fi
  budget=$((planned < left ? planned : left))
  hr
  echo "== stage $name (up to ${budget}s; $((deadline - SECONDS))s of the deadline left)"
  hr
  note=""
  stage_t0=$SECONDS
  "$fn"
  local rc=$? verdict
  case $rc in
    0) verdict=PASS ;;
    77) verdict=SKIP ;;
    *) verdict=FAIL any_failed=1 ;;
  esac
  local took=$((SECONDS - stage_t0))
  echo "== stage $name: $verdict in ${took}s${note:+ — $note}"
  summary+=("$(printf '%-13s %-5s %4ss  %s' "$name" "$verdict" "$took" "$note")")
}

# ------------------------------------------------------------------------------------------ environment
hr
echo "== gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname): backend $backend, hdims ${hdims:-all}, dtypes ${dtypes:-all}, stages $stages"
hr
[ -f "$dev/source.txt" ] && sed 's/^/source: /' "$dev/source.txt" | head -20
if [ -f "$dev/source.txt" ]; then
  FLASHATTN_GIT_COMMIT=$(awk '/^commit /{print $2; exit}' "$dev/source.txt")
  export FLASHATTN_GIT_COMMIT
fi

# .NET: the carried runtime (the GPU machine has none), else one on PATH (a development machine).
if [ -f "$dev/dotnet-rt.tar.xz" ]; then
  export DOTNET_ROOT=${FA_DOTNET_DIR:-/tmp/dotnet}
  if [ ! -x "$DOTNET_ROOT/dotnet" ] || [ "$dev/dotnet-rt.tar.xz" -nt "$DOTNET_ROOT/dotnet" ]; then
    rm -rf "$DOTNET_ROOT" && mkdir -p "$DOTNET_ROOT" && tar -xJf "$dev/dotnet-rt.tar.xz" -C "$DOTNET_ROOT"
    touch "$DOTNET_ROOT/dotnet"
  fi
  export PATH="$DOTNET_ROOT:$PATH"
fi
export PATH="/usr/local/cuda/bin:$PATH:/opt/torch/.venv/bin"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 PYTHONUNBUFFERED=1
unset FLASHATTN_BACKEND FLASHATTN_DISABLE
python=${FA_PYTHON:-/opt/torch/.venv/bin/python3}
[ -x "$python" ] || python=$(command -v python3 || echo python3)
cli=(dotnet "$dev/cli/flashattn.dll")

echo "kernel $(uname -r), $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) memory"
have_gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  have_gpu=1
  nvidia-smi -L
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit,temperature.gpu,utilization.gpu --format=csv
else
  echo "no GPU: nvidia-smi is missing or sees no device"
fi
if [ "$cuda_archs" = auto ]; then
  cuda_archs=""
  [ "$have_gpu" -eq 1 ] && cuda_archs=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
fi
[ "$cuda_archs" = all ] && cuda_archs=""
for tool in nvcc cmake ninja compute-sanitizer dotnet "$python"; do
  if command -v "$tool" >/dev/null 2>&1; then
    case "$tool" in
      nvcc) echo "nvcc: $(nvcc --version | tail -2 | head -1)" ;;
      cmake) echo "cmake: $(cmake --version | head -1)" ;;
      ninja) echo "ninja: $(ninja --version)" ;;
      compute-sanitizer) echo "compute-sanitizer: $(compute-sanitizer --version 2>&1 | tail -1)" ;;
      dotnet) echo "dotnet: $(dotnet --list-runtimes 2>&1 | grep NETCore | head -1) (DOTNET_ROOT=${DOTNET_ROOT:-})" ;;
      *) echo "python: $("$tool" --version 2>&1) at $tool" ;;
    esac
  else
    echo "$tool: not found"
  fi
done
[ -f "$dev/tests/FlashAttention.Tests.dll" ] || echo "WARNING: .device/tests is missing: run tools/device/prepare.sh here first and carry .device"
# `flashattn plot` (SkiaSharp) draws no text without fonts: give it the carried ones (or matplotlib's).
if ! find /usr/share/fonts -name '*.ttf' -print -quit 2>/dev/null | grep -q . && [ -w /usr/share ] ; then
  mkdir -p /usr/share/fonts/truetype/carried
  cp "$dev"/fonts/*.ttf /usr/share/fonts/truetype/carried/ 2>/dev/null ||
    cp /opt/torch/.venv/lib/python3*/site-packages/matplotlib/mpl-data/fonts/ttf/DejaVuSans*.ttf /usr/share/fonts/truetype/carried/ 2>/dev/null ||
    echo "no fonts for the plot: its labels will be empty"
fi

backend_lib="$lib_dir/libfa_$backend.so"
# Whether the backend can run here: its library was built (or carried) and there is a GPU.
needs_lib() {
  [ "$backend" = cpu ] && return 0
  if [ ! -f "$backend_lib" ]; then
    note="no $(basename "$backend_lib") (the build failed or did not run)"
    return 1
  fi
  if [ "$have_gpu" -eq 0 ]; then
    note="no GPU here"
    return 1
  fi
}

# ------------------------------------------------------------------------------------------ build
# A hash of everything the native build reads, and of the filters: the STAMP of a prebuilt folder.
source_stamp() {
  {
    find backends -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    echo "backend=$backend also=$also_backend hdims=$hdims dtypes=$dtypes archs=$cuda_archs cmake=$cmake_args"
  } | sha256sum | cut -c1-16
}

stage_build() {
  if [ "$backend" = cpu ]; then
    note="the cpu backend has no native library"
    return 77
  fi
  local stamp
  stamp=$(source_stamp)
  echo "source stamp $stamp"
  rm -rf "$lib_dir"
  mkdir -p "$lib_dir"
  if [ -n "$prebuilt" ]; then
    local from=$prebuilt
    if [ -f "$prebuilt" ]; then
      from=$(mktemp -d)
      tar -xzf "$prebuilt" -C "$from"
    fi
    local theirs
    theirs=$(cat "$from/STAMP" 2>/dev/null || echo none)
    if [ "$theirs" = "$stamp" ] || [ "$trust_prebuilt" -eq 1 ]; then
      cp -a "$from"/. "$lib_dir"/
      ls -la "$lib_dir"
      note="prebuilt $prebuilt (stamp $theirs$([ "$theirs" = "$stamp" ] || echo ", NOT this tree's $stamp: --trust-prebuilt"))"
      return 0
    fi
    echo "prebuilt $prebuilt has stamp $theirs, this tree $stamp (sources or filters changed): rebuilding"
  fi
  if ! command -v nvcc >/dev/null 2>&1; then
    note="nvcc not found"
    return 1
  fi

  local upper=${backend^^}
  # A build tree left by an earlier run (another backend, an A/B run's --cmake-args "-DCMAKE_CUDA_FLAGS=-D...",
  # FA_CUDA_SM80_FWD_ONLY) would keep those cached values in this one: configure from an empty cache, so that
  # only this run's arguments count (ninja still reuses the objects whose commands did not change).
  rm -f "$build_dir/CMakeCache.txt"
  local args=(-S backends -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "-DFA_BUILD_$upper=ON"
    ${also_backend:+"-DFA_BUILD_${also_backend^^}=ON"})
  args+=("-DFA_HDIMS=${hdims//,/;}" "-DFA_DTYPES=${dtypes//,/;}" "-DFA_CUDA_ARCHITECTURES=${cuda_archs//,/;}"
    "-DCMAKE_CUDA_COMPILER=$(command -v nvcc)")
  # nvcc 11.8 (Debian's, on the development machine) rejects g++ 12: use clang 14 as its host compiler.
  local nvcc_major
  nvcc_major=$(nvcc --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')
  if [ "${nvcc_major:-99}" -lt 12 ] && command -v clang++-14 >/dev/null 2>&1; then
    args+=(-DCMAKE_CUDA_HOST_COMPILER=clang++-14)
  fi
  # GoogleTest for FA_BUILD_TESTS: the system's, else the one prepare.sh carried, else no native tests.
  # FA_<BACKEND>_TESTS: the backend's own tests and kernel drivers (e.g. FA_CUDA_SM80_TESTS).
  if [ -d /usr/include/gtest ] || compgen -G "/usr/lib*/cmake/GTest" >/dev/null || compgen -G "/usr/lib/*/cmake/GTest" >/dev/null; then
    args+=(-DFA_BUILD_TESTS=ON "-DFA_${upper}_TESTS=ON")
  elif [ -d "$dev/gtest/usr/lib/x86_64-linux-gnu/cmake/GTest" ]; then
    args+=(-DFA_BUILD_TESTS=ON "-DFA_${upper}_TESTS=ON" "-DGTest_DIR=$dev/gtest/usr/lib/x86_64-linux-gnu/cmake/GTest")
  else
    echo "no GoogleTest here or in .device/gtest: building without FA_BUILD_TESTS"
  fi
  local extra=()
  read -ra extra <<<"$cmake_args"
  args+=("${extra[@]}")
  echo "+ cmake ${args[*]}"
  local t0=$SECONDS
  limit 120 cmake "${args[@]}" || { note="cmake configure failed"; return 1; }
  echo "configure: $((SECONDS - t0))s"
  t0=$SECONDS
  # -k 0: a target that fails (a test, a driver) does not stop the others, so the library still comes out.
  limit $(($(remaining) - 10)) cmake --build "$build_dir" -j "$jobs" -- -k 0
  local rc=$?
  echo "build: $((SECONDS - t0))s, exit $rc"

  # Per-output compile times (.ninja_log v5: start end mtime output hash, milliseconds), longest first.
  if [ -f "$build_dir/.ninja_log" ]; then
    echo "-- compile times (seconds, longest first; ninja ran up to $jobs at once)"
    awk -F'\t' '!/^#/ { t[$4] = ($2 - $1) / 1000 } END { for (o in t) { printf "%8.1f  %s\n", t[o], o; s += t[o]; n++ } printf "%8.1f  TOTAL of %d outputs\n", s, n }' \
      "$build_dir/.ninja_log" | sort -rn | head -60
  fi

  # What came out: libraries, driver executables (*fwd_check, *bwd_check), the ABI probe.
  # Only from this run's backends: the build tree keeps another backend's outputs from an earlier run (its
  # cache is reset, its files are not), and a stale library or driver must not be tested again.
  local built_dirs=("$build_dir/$backend")
  [ -n "$also_backend" ] && built_dirs+=("$build_dir/$also_backend")
  find "${built_dirs[@]}" -type f \( -name 'libfa_*.so' -o -name '*fwd_check' -o -name '*bwd_check' \) -perm -u+r -exec cp {} "$lib_dir"/ \;
  echo "$stamp" >"$lib_dir/STAMP"
  ls -la "$lib_dir"
  if [ -f "$backend_lib" ] && command -v cuobjdump >/dev/null 2>&1; then
    echo "-- per-kernel resources (cuobjdump -res-usage; spills show as LOCAL/STACK > 0)"
    cuobjdump -res-usage "$backend_lib" 2>&1 | awk '/arch = / { print "  " $0 } /Function/ { f = $2 } /REG:/ { print f; print "    " $0 }' | cut -c1-220 | head -120
  fi
  tar -czf "$OUT/prebuilt.tar.gz" -C "$lib_dir" .
  local size
  size=$(stat -c %s "$OUT/prebuilt.tar.gz")
  echo "prebuilt.tar.gz: $((size / 1024)) KiB (stamp $stamp)"
  [ "$size" -le $((16 * 1048576)) ] || echo "WARNING: prebuilt.tar.gz is over 16 MiB and will not come back from \$OUT"
  if [ "$rc" -ne 0 ]; then
    note="the build failed (exit $rc)"
    return 1
  fi
  if [ ! -f "$backend_lib" ]; then
    note="the build produced no $(basename "$backend_lib") (does backends/$backend/CMakeLists.txt exist?)"
    return 1
  fi
  note="$(basename "$backend_lib") $(($(stat -c %s "$backend_lib") / 1024)) KiB, stamp $stamp"
}

# ------------------------------------------------------------------------------------------ native tests
# The kernel drivers among the built files.
drivers() { find "$lib_dir" -maxdepth 1 -type f -perm -u+x \( -name '*fwd_check' -o -name '*bwd_check' \) 2>/dev/null | sort; }

run_driver() { # run_driver SECONDS NAME [ARGS...]
  local seconds=$1 name=$2
  shift 2
  echo "+ $name $*"
  LD_LIBRARY_PATH="$lib_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" FLASHATTN_NATIVE_DIR="$lib_dir" \
    limit "$seconds" "$lib_dir/$name" "$@"
}

stage_native_tests() {
  local ran=0 failed=()
  if [ -f "$build_dir/CTestTestfile.cmake" ]; then
    ran=1
    # Only results and failures (ctest -j prints a "Start" line per test besides).
    limit $((budget / 2)) ctest --test-dir "$build_dir" --output-on-failure -j 8 2>&1 | grep -vE '^ +Start +[0-9]+: '
    [ "${PIPESTATUS[0]}" -eq 0 ] || failed+=(ctest)
  else
    echo "no build tree ($build_dir): ctest skipped (a prebuilt run has only the libraries)"
  fi
  local list
  list=$(drivers)
  [ -n "$list" ] || echo "no kernel drivers (*fwd_check, *bwd_check) built (absent is fine)"
  if [ -n "$list" ] && [ "$have_gpu" -eq 0 ]; then
    echo "no GPU: not running the kernel drivers ($(echo "$list" | xargs -n1 basename | xargs))"
    list=""
  fi
  for driver in $list; do
    ran=1
    run_driver $(($(remaining) / 2)) "$(basename "$driver")" || failed+=("$(basename "$driver")")
  done
  [ "$ran" -eq 1 ] || { note="nothing to run"; return 77; }
  [ ${#failed[@]} -eq 0 ] || { note="failed: ${failed[*]}"; return 1; }
}

# ------------------------------------------------------------------------------------------ dotnet tests
stage_dotnet_tests() {
  if [ ! -f "$dev/tests/FlashAttention.Tests.dll" ]; then
    note=".device/tests missing: run tools/device/prepare.sh"
    return 1
  fi
  if [ "$tests" = gpu ] && ! needs_lib; then return 77; fi
  export FLASHATTN_NATIVE_DIR="$lib_dir" FLASHATTN_ABI_PROBE="$lib_dir/libfa_abi_probe.so"
  echo "+ flashattn info"
  limit 60 "${cli[@]}" info
  local filter=()
  case "$tests" in
    gpu) filter=(-preEnumerateTheories -displayName "*\"$backend\"*" -failSkips) ;;
    all) filter=() ;;
    custom) eval "filter=($test_args)" ;;
  esac
  echo "+ dotnet .device/tests/FlashAttention.Tests.dll ${filter[*]}"
  local console="$build_dir-tests.txt"
  mkdir -p "$(dirname "$console")"
  # The log leaves out skipped tests (other backends' rows: hundreds of lines); tests.trx has every test.
  limit "$(remaining)" dotnet "$dev/tests/FlashAttention.Tests.dll" -noColor -result-trx "$OUT/tests.trx" "${filter[@]}" 2>&1 |
    tee "$console" | awk '/\[SKIP\]$/ { n++; s = 1; next } s && /^      / { next } { s = 0; print }
      END { if (n) print "  (" n " skipped tests not listed here: see tests.trx)" }'
  local rc=${PIPESTATUS[0]}
  # "   FlashAttention.Tests  Total: 971, Errors: 0, Failed: 0, Skipped: 539, Not Run: 0, Time: 31.412s"
  note=$(grep -E 'Total: [0-9]+, Errors: ' "$console" | tail -1 | sed 's/^ *//')
  [ "$rc" -ne 124 ] || note="stopped at the time limit${note:+ (last summary seen: $note)}"
  return "$rc"
}

# ------------------------------------------------------------------------------------------ sanitizers
stage_sanitize() {
  if ! command -v compute-sanitizer >/dev/null 2>&1 || [ "$have_gpu" -eq 0 ]; then
    note="needs compute-sanitizer and a GPU"
    return 77
  fi
  needs_lib || return 77
  [ "$backend" != cpu ] || { note="nothing to sanitize on the cpu backend"; return 77; }
  local targets=() failed=() d=${hdims%%,*} t=${dtypes%%,*}
  d=${d:-64} t=${t:-bf16}
  for driver in $(drivers); do
    targets+=("$driver $driver_args")
  done
  if [ ${#targets[@]} -eq 0 ]; then
    echo "no kernel drivers: sanitizing \`flashattn run\` on small problems instead"
    local run="dotnet $dev/cli/flashattn.dll run --backend $backend --dtype $t --headdim $d --heads 2 --batch 2 --iters 1 --warmup 0"
    targets=("$run --seqlen-q 128 --seqlen-k 192 --causal --backward" "$run --kvcache --seqlen-q 1 --seqlen-k 512 --seqlen-new 1")
  fi
  local n=$((${#targets[@]} * $(tr ',' '\n' <<<"$sanitize_tools" | wc -l)))
  local each=$(($(remaining) / n))
  for tool in ${sanitize_tools//,/ }; do
    for target in "${targets[@]}"; do
      echo "+ compute-sanitizer --tool $tool $target"
      # shellcheck disable=SC2086 # the target is a command line
      FA_CHECK_SMALL=1 LD_LIBRARY_PATH="$lib_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" FLASHATTN_NATIVE_DIR="$lib_dir" \
        limit "$each" compute-sanitizer --tool "$tool" --error-exitcode 86 --print-limit 20 --target-processes all $target ||
        failed+=("$tool:$(basename "${target%% *}")")
    done
  done
  note="${#targets[@]} target(s) × ${sanitize_tools}"
  [ ${#failed[@]} -eq 0 ] || { note="failed: ${failed[*]}"; return 1; }
}

# ------------------------------------------------------------------------------------------ benchmarks
# bench_round JSON SECONDS EXTRA_ARGS...: ours, the --also-backend and the peers, all into JSON, within SECONDS.
bench_round() {
  local json=$1 seconds=$2 t0=$SECONDS r0=$SECONDS
  shift 2
  rm -f "$json"
  echo "+ flashattn bench --backend $backend $*"
  # Ours gets half the round, the --also-backend a quarter, the peers what is left.
  limit $((seconds / 2)) "${cli[@]}" bench --backend "$backend" "$@" --out "$json" || failed+=(ours)
  echo "ours: $((SECONDS - t0))s"
  if [ -n "$also_backend" ] && [ -f "$json" ]; then
    t0=$SECONDS
    echo "+ flashattn bench --backend $also_backend $* (merged into $(basename "$json"))"
    limit $((seconds / 4)) "${cli[@]}" bench --backend "$also_backend" "$@" --out "$json.also" || failed+=("$also_backend")
    [ -f "$json.also" ] && "$python" - "$json" "$json.also" <<'PY' || failed+=("merge $also_backend")
import json, sys
main, extra = (json.load(open(p)) for p in sys.argv[1:3])
main["results"] += extra.get("results", [])
main["skipped"] = main.get("skipped", []) + extra.get("skipped", [])
json.dump(main, open(sys.argv[1], "w"), indent=1)
PY
    rm -f "$json.also"
    echo "$also_backend: $((SECONDS - t0))s"
  fi
  if [ "$peers" -eq 1 ]; then
    t0=$SECONDS
    echo "+ $python bench/peers/torch_sdpa.py --merge $json $*"
    limit $((seconds - (SECONDS - r0) > 10 ? seconds - (SECONDS - r0) : 10)) "$python" bench/peers/torch_sdpa.py --merge "$json" "$@" ||
      failed+=(peers)
    echo "peers: $((SECONDS - t0))s"
  fi
}

# bench_grid NAME JSON PNG EXTRA_ARGS...: --rounds rounds of ours and the peers (bench_round), each round's
# timings kept and the median per configuration reported (bench/median_rounds.py), then the plot.
bench_grid() {
  local name=$1 json=$2 png=$3
  shift 3
  needs_lib || return 77
  [ -f "$dev/cli/flashattn.dll" ] || { note=".device/cli missing: run tools/device/prepare.sh"; return 1; }
  export FLASHATTN_NATIVE_DIR="$lib_dir"
  rm -f "$json" "$png"
  local failed=() r files=()
  for ((r = 1; r <= rounds; r++)); do
    # An equal share of what is left for each round still to run, 30 s kept for the plot.
    local left=$(($(remaining) - 30))
    echo "-- round $r of $rounds (${left}s left)"
    bench_round "$json.round$r" $((left / (rounds - r + 1))) "$@"
    [ -f "$json.round$r" ] && files+=("$json.round$r")
  done
  if [ ${#files[@]} -gt 0 ]; then
    "$python" bench/median_rounds.py --out "$json" "${files[@]}" || failed+=("median of rounds")
    rm -f "${files[@]}"
  fi
  if [ -f "$json" ]; then
    limit 60 "${cli[@]}" plot --in "$json" --out "$png" || failed+=(plot)
    # Fails when the file holds no result of ours (everything skipped or refused).
    "$python" bench/ratios.py --ours "ours:$backend" "$json" >/dev/null || failed+=("no results of ours:$backend")
    local n_ours
    n_ours=$(grep -c "\"impl\": \"ours:$backend\"" "$json")
    note="$name: $n_ours entries of ours:$backend (results and skips)${rounds:+, $rounds round(s)}"
  fi
  [ ${#failed[@]} -eq 0 ] || { note="${note:+$note; }failed: ${failed[*]}"; return 1; }
}

stage_bench() {
  local filters=()
  [ -n "$hdims" ] && filters+=(--headdim "$hdims")
  [ -n "$dtypes" ] && filters+=(--dtype "$dtypes")
  local extra=()
  read -ra extra <<<"$bench_args"
  bench_grid "standard grid" "$OUT/bench.json" "$OUT/bench.png" "${filters[@]}" "${extra[@]}"
}

stage_decode() {
  # d = 128 when it was built (the decode grid's default), else the first built head dim; the first dtype.
  local d=128 t=${dtypes%%,*}
  [ -z "$hdims" ] || [[ ",$hdims," == *",128,"* ]] || d=${hdims%%,*}
  local filters=(--decode --headdim "$d" --dtype "${t:-bf16}")
  local extra=()
  read -ra extra <<<"$decode_args"
  bench_grid "decode grid" "$OUT/decode.json" "$OUT/decode.png" "${filters[@]}" "${extra[@]}"
}

stage_profile() {
  needs_lib || return 77
  command -v ncu >/dev/null 2>&1 || { note="ncu not found"; return 1; }
  export FLASHATTN_NATIVE_DIR="$lib_dir"
  # The hot kernel of each implementation, by direction (ours per backend, then FlashAttention 2's).
  local direction ours_kernel fa2_kernel
  direction=$(sed -n 's/.*--direction \([a-z+]*\).*/\1/p' <<<"$profile_args")
  case "$backend:${direction:-fwd}" in
    cuda_sm80:bwd) ours_kernel=bwd_main_kernel ;;
    cuda_sm80:*) ours_kernel=flash_fwd_kernel ;;
    hopper_sm90:*) ours_kernel=flash_fwd_sm90_kernel ;;
    *) ours_kernel=kernel ;;
  esac
  case "${direction:-fwd}" in
    bwd) fa2_kernel=flash_bwd_dq_dk_dv ;;
    *) fa2_kernel=flash_fwd_kernel ;;
  esac
  local ncu=(ncu --clock-control none --set full --import-source no --launch-count 1 -f)
  local failed=() extra=() d t pairs=0
  read -ra extra <<<"$profile_args"
  for d in ${hdims//,/ }; do for t in ${dtypes//,/ }; do pairs=$((pairs + 1)); done; done
  local per=$(($(remaining) / (2 * (pairs > 0 ? pairs : 1))))
  # profile_one LABEL KERNEL REPORT COMMAND...: one launch of KERNEL under ncu into REPORT.ncu-rep, its
  # details appended to profile.txt.
  profile_one() {
    local label=$1 kernel=$2 rep=$3
    shift 3
    echo "=== $label $profile_args (kernel ~ $kernel)" >>"$OUT/profile.txt"
    limit "$per" "${ncu[@]}" -o "$rep" -k "regex:$kernel" "$@" >>"$OUT/profile.txt" 2>&1 || return 1
    ncu -i "$rep.ncu-rep" --page details --print-details all >>"$OUT/profile.txt" 2>&1
  }
  for d in ${hdims//,/ }; do
    for t in ${dtypes//,/ }; do
      local shape=(--headdim "$d" --dtype "$t" "${extra[@]}" --warmup 1 --iters 1)
      if profile_one "ours:$backend d=$d $t" "$ours_kernel" "/tmp/profile-ours-d$d-$t" \
        "${cli[@]}" bench --backend "$backend" "${shape[@]}" --out /tmp/profile-ours.json; then
        # Per-SASS-instruction counters of ours (shared-memory excess wavefronts, stalls by instruction):
        # the place a bank conflict or a stall comes from. Best effort: an older ncu without the source
        # page just leaves its message in the file.
        ncu -i "/tmp/profile-ours-d$d-$t.ncu-rep" --page source --print-source sass --csv >"$OUT/profile-sass-d$d-$t.csv" 2>&1 ||
          echo "(ncu --page source failed: see profile-sass-d$d-$t.csv)" >>"$OUT/profile.txt"
      else
        failed+=("ours d$d $t")
      fi
      profile_one "torch-sdpa-flash d=$d $t" "$fa2_kernel" "/tmp/profile-flash-d$d-$t" \
        "$python" bench/peers/torch_sdpa.py --impl flash "${shape[@]}" --out /tmp/profile-peer.json || failed+=("flash d$d $t")
    done
  done
  note="profile.txt $(wc -c <"$OUT/profile.txt") bytes"
  [ ${#failed[@]} -eq 0 ] || { note="$note; failed: ${failed[*]}"; return 1; }
}

# ------------------------------------------------------------------------------------------ run
if ! want build && [ -n "$prebuilt" ]; then
  # No build stage: use the prebuilt libraries as they are (warning when their stamp differs).
  trust_prebuilt=1 stages="build,$stages" stage build 60 stage_build
fi
stage build 420 stage_build
stage native-tests 150 stage_native_tests
stage dotnet-tests 240 stage_dotnet_tests
stage sanitize 240 stage_sanitize
stage bench 200 stage_bench
stage decode 120 stage_decode
stage profile 300 stage_profile

ratio_files=()
for f in "$OUT/bench.json" "$OUT/decode.json"; do [ -f "$f" ] && ratio_files+=("$f"); done
if [ ${#ratio_files[@]} -gt 0 ]; then
  "$python" bench/ratios.py --ours "ours:$backend" --write "${ratio_files[@]}" >"$OUT/ratios.md"
  cat "$OUT/ratios.md"
fi

hr
echo "== summary ($(date -u +%H:%M:%SZ), ${SECONDS}s): backend $backend, hdims ${hdims:-all}, dtypes ${dtypes:-all}, archs ${cuda_archs:-all}"
printf '%s\n' "${summary[@]}"
files=$(find "$OUT" -type f | wc -l)
echo "-- \$OUT ($files files; at most 8 come back, 16 MiB each):"
find "$OUT" -type f -printf '  %10s  %P\n' | sort -k2
[ "$files" -le 8 ] || echo "WARNING: more than 8 files under \$OUT: some will not come back"
hr
status=$any_failed
exec >&- 2>&-
wait "$tee_pid" 2>/dev/null
exit "$status"

#!/usr/bin/env bash
# One GPU-machine call for developing the hopper_sm90 kernels (issue 5): build + correctness through
# gpu-check.sh (stages build,native-tests: fa_sm90_fwd_check against the fp64 reference), then the
# primitives self-test, the SASS facts of every kernel (HGMMA / UTMALDG / local memory), our own
# TFLOP/s from fa_sm90_fwd_check --bench, and optionally compute-sanitizer.
#
#   bash tools/device/hopper-dev.sh [--hdims all|64,128] [--dtypes all|bf16] [--bench-d 64,128,256|none]
#                                   [--sanitize] [--toolchain] [--tune "ARGS"]
#
#   --tune ARGS  also run fa_sm90_fwd_tune (alternative tile traits side by side) with ARGS
#   --toolchain  also pack this machine's ptxas / nvdisasm / cuobjdump (CUDA 13) into $OUT, so sm_90a
#                SASS can be inspected on the development machine (nvcc 11.8 there has no sm_90a).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
hdims=all dtypes=all bench_d=64,128,256 sanitize=0 toolchain=0 tune=""
while [ $# -gt 0 ]; do
  case $1 in
    --hdims) hdims=$2; shift ;;
    --dtypes) dtypes=$2; shift ;;
    --bench-d) bench_d=$2; shift ;;
    --sanitize) sanitize=1 ;;
    --toolchain) toolchain=1 ;;
    --tune) tune=${2:- }; shift ;;
    *) echo "unknown option $1"; exit 2 ;;
  esac
  shift
done
OUT=${OUT:-$PWD/build/hopper-dev-out}
mkdir -p "$OUT"
export PATH=/usr/local/cuda/bin:$PATH
lib=build/device-lib
log="$OUT/hopper-dev.log"
exec > >(tee -a "$log") 2>&1

timeout 420 bash tools/device/gpu-check.sh --backend hopper_sm90 --hdims "$hdims" --dtypes "$dtypes" \
  --stages build,native-tests --deadline 400 | grep -vE '^(PASS|SKIP) '
echo "== primitives self-test"
nvcc -std=c++17 -O2 -gencode arch=compute_90a,code=sm_90a -Ibackends/hopper_sm90/include \
  backends/hopper_sm90/tests/sm90_primitives_test.cu -o /tmp/sm90_test -lcuda && timeout 60 /tmp/sm90_test | tail -5

echo "== SASS facts per kernel (HGMMA, or QGMMA for e4m3; UTMALDG, LDL/STL = local memory)"
if [ -f "$lib/libfa_hopper_sm90.so" ]; then
  cuobjdump -sass "$lib/libfa_hopper_sm90.so" > /tmp/sm90.sass
  awk '/Function :/ { if (f) printf "%-90s HGMMA %4d UTMALDG %3d LDL %3d STL %3d\n", f, h, t, l, s; f = $3; h = t = l = s = 0 }
       /HGMMA|QGMMA/ { h++ } /UTMALDG/ { t++ } /LDL/ { l++ } /STL/ { s++ }
       END { if (f) printf "%-90s HGMMA %4d UTMALDG %3d LDL %3d STL %3d\n", f, h, t, l, s }' /tmp/sm90.sass | cut -c1-160
  cuobjdump -res-usage "$lib/libfa_hopper_sm90.so" 2>&1 | grep -E "Function|REG" | paste - - | sed 's/Resource usage://' | cut -c1-200
  xz -9 -T0 -c /tmp/sm90.sass > "$OUT/sm90.sass.xz"
fi

echo "== our forward TFLOP/s (fa_sm90_fwd_check --bench)"
for d in ${dtypes//all/bf16}; do :; done
# (constant inputs: quick, optimistic; the standard grid with random inputs is gpu-check's bench stage)
[ "$bench_d" != none ] && [ -x "$lib/fa_sm90_fwd_check" ] && LD_LIBRARY_PATH=$lib timeout 120 "$lib/fa_sm90_fwd_check" --bench --d "$bench_d" --iters 20

if [ -n "$tune" ]; then
  echo "== fa_sm90_fwd_tune $tune"
  tuner=$(find build/device -name fa_sm90_fwd_tune -type f | head -1)
  # shellcheck disable=SC2086 # ARGS are words
  [ -n "$tuner" ] && timeout 300 "$tuner" $tune | tee "$OUT/tune.txt"
fi

if [ "$sanitize" = 1 ] && [ -x "$lib/fa_sm90_fwd_check" ]; then
  for tool in memcheck racecheck; do
    echo "== compute-sanitizer --tool $tool fa_sm90_fwd_check --quick"
    LD_LIBRARY_PATH=$lib FA_CHECK_SMALL=1 timeout 150 compute-sanitizer --tool $tool --print-limit 20 "$lib/fa_sm90_fwd_check" --quick | tail -15
  done
fi

if [ "$toolchain" = 1 ]; then
  tar -C /usr/local/cuda -cJf "$OUT/cuda-sass-tools.tar.xz" bin/ptxas bin/nvdisasm bin/cuobjdump 2>/dev/null
  ls -la "$OUT"
fi

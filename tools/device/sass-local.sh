#!/usr/bin/env bash
# SASS of one kernel instance file on the development machine, which has no GPU and only Debian's nvcc 11.8
# (no sm_90a, no red.global.add.v4.f32): nvcc 11.8 writes PTX for compute_90, the CUDA 13 ptxas and cuobjdump
# that `tools/device/hopper-dev.sh --toolchain` brings back assemble it for sm_90 (cuda_sm80 instances) or
# sm_90a (hopper_sm90 instances, through a stand-in for the CUDA 12 tensor-map declarations).
#
#   tools/device/sass-local.sh [--tools DIR] [--out DIR] INSTANCE.cu [-DNAME=VALUE ...]
#
#   INSTANCE.cu  e.g. backends/cuda_sm80/generated/fa_sm80_bwd_hdim64_bf16.cu
#   --tools DIR  where ptxas and cuobjdump (CUDA >= 12.1) are [default: $FA_SASS_TOOLS, else
#                build/cuda-sass-tools/bin: `tar -C build/cuda-sass-tools -xJf cuda-sass-tools.tar.xz`;
#                not under .device, which travels to the GPU machine]
#   --out DIR    where NAME.ptx, NAME.cubin, NAME.sass go [default: build/sass-local]
#   -D...        passed to nvcc (A/B switches such as -DFA_SM80_BWD_DQ_INTERLEAVE=0)
#
# Prints ptxas's registers and spills per kernel and, per kernel, the static count of instructions, tensor
# instructions (HMMA / HGMMA / QGMMA), shared loads (LDSM), TMA (UTMALDG / UTMASTG), reductions (REDG) and local
# memory (LDL / STL). What differs from the GPU machine's build: the nvcc front end (11.8 vs 13), so register
# allocation and spills can differ (Hopper kernels spill more here); the v4 dQ reductions of sm_90 compile to
# scalar ones with 11.8. Use it to compare two variants, not to certify one.
set -euo pipefail
cd "$(dirname "$0")/../.."
tools=${FA_SASS_TOOLS:-$PWD/build/cuda-sass-tools/bin}
out=build/sass-local
while [ $# -gt 0 ]; do
  case $1 in
    --tools) tools=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "usage: $0 [--tools DIR] [--out DIR] INSTANCE.cu [-D...]" >&2; exit 2; }
src=$1
shift
[ -f "$src" ] || { echo "sass-local: $src not found" >&2; exit 2; }
for t in ptxas cuobjdump; do
  [ -x "$tools/$t" ] || { echo "sass-local: no $tools/$t (run hopper-dev.sh --toolchain and unpack it, or pass --tools)" >&2; exit 2; }
done
command -v nvcc >/dev/null || { echo "sass-local: nvcc not found" >&2; exit 2; }

backend=$(sed -n 's#.*backends/\([a-z0-9_]*\)/.*#\1#p' <<<"$src")
[ -n "$backend" ] || { echo "sass-local: $src is not under backends/<backend>/" >&2; exit 2; }
name=$(basename "$src" .cu)
mkdir -p "$out"
flags=(-ccbin=clang++-14 -std=c++17 -O3 -DNDEBUG -arch=compute_90 -ptx --expt-relaxed-constexpr
  -I"backends/$backend" -I"backends/$backend/include" -I"backends/$backend/generated"
  -Ibackends/common/include -Ibackends/common/generated)
target=sm_90
if [ "$backend" = hopper_sm90 ]; then
  target=sm_90a
  # CUDA 11.8's cuda.h has no tensor maps: declare the few the host code names (never run).
  shim="$out/tensor-map-shim.h"
  cat >"$shim" <<'EOF'
#pragma once
#include <cuda.h>
#if CUDA_VERSION < 12000
typedef struct alignas(64) CUtensorMap_st { unsigned long long opaque[16]; } CUtensorMap;
enum CUtensorMapDataType { CU_TENSOR_MAP_DATA_TYPE_UINT8, CU_TENSOR_MAP_DATA_TYPE_FLOAT16, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 };
enum CUtensorMapInterleave { CU_TENSOR_MAP_INTERLEAVE_NONE };
enum CUtensorMapSwizzle { CU_TENSOR_MAP_SWIZZLE_128B };
enum CUtensorMapL2promotion { CU_TENSOR_MAP_L2_PROMOTION_L2_128B };
enum CUtensorMapFloatOOBfill { CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE };
inline CUresult cuTensorMapEncodeTiled(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                       const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                       CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill) {
  return CUDA_SUCCESS;
}
#endif
EOF
  flags+=(-DSM90_LOCAL_SYNTAX_CHECK -include "$shim")
fi

nvcc "${flags[@]}" "$@" -x cu "$src" -o "$out/$name.ptx" 2> >(grep -v "warning #" >&2)
# 11.8 writes PTX ISA 7.8; the sm_90 features used need 8.0, which the CUDA 13 ptxas reads.
sed -i 's/^\.version 7\.[0-9]*$/.version 8.0/; s/^\.target sm_90$/.target '"$target"'/' "$out/$name.ptx"
"$tools/ptxas" -arch="$target" -O3 -v "$out/$name.ptx" -o "$out/$name.cubin" 2>&1 |
  awk '/Compiling entry function/ { match($0, /'"'"'[^'"'"']*'"'"'/); f = substr($0, RSTART + 1, RLENGTH - 2) }
       /bytes stack frame/ { s = $0; sub(/^ */, "", s) }
       /Used [0-9]+ registers/ { match($0, /Used [0-9]+ registers/); printf "%-100s %s; %s\n", substr(f, 1, 100), substr($0, RSTART, RLENGTH), s }'
"$tools/cuobjdump" -sass "$out/$name.cubin" >"$out/$name.sass"
awk '/Function :/ { if (f) report(); f = $3; n = mma = ldsm = tma = red = ldl = stl = 0; next }
     /\/\*[0-9a-f][0-9a-f][0-9a-f][0-9a-f]\*\// { n++ }
     /HMMA|HGMMA|QGMMA/ { mma++ } /LDSM/ { ldsm++ } /UTMALDG|UTMASTG/ { tma++ } /REDG|RED\./ { red++ } /LDL/ { ldl++ } /STL/ { stl++ }
     function report() { printf "%-100s instr %5d  mma %4d  ldsm %4d  tma %3d  red %3d  LDL %3d  STL %3d\n", substr(f, 1, 100), n, mma, ldsm, tma, red, ldl, stl }
     END { if (f) report() }' "$out/$name.sass"
echo "sass-local: $out/$name.sass"

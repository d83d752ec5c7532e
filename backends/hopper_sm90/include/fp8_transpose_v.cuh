/*
 * fp8_transpose_v.cuh — V of an e4m3 forward, transposed into the workspace before the FA3 kernel runs.
 *
 * fp8 wgmma reads B only K-major (sm90_primitives.cuh F9), and in O += P·V the K dimension is the keys, so the
 * kernel needs V as dv × keys with the keys contiguous. FA3 transposes each V tile in shared memory inside its
 * producer warpgroup; here one small kernel writes Vᵀ once per call (V read once and written once, a pass over
 * 1/dv of the forward's bytes per FLOP) and the FA3 kernel loads its tiles with TMA exactly like K's.
 *
 * On the way it does two more things:
 *  - Within every 32-key chunk the keys are permuted so that P, converted in place from the S accumulators
 *    (F7), is the k32 A fragment (F9) without a shuffle: A's k index 4q + j (or 16 + 4q + j) of a thread with
 *    quad q holds S column pv_key(k) = 2q + (j & 1) + 8·(j >> 1) (+ 16), so column k of Vᵀ holds key pv_key(k).
 *  - Keys past a sequence's used keys (seqused_k) and up to its last key block are written as zeros: their P is
 *    0, and 0 · NaN would be NaN.
 *
 * Layout in the workspace: per kv head, headdim_v rows of `cols` bytes; sequence b's keys from column
 * vt_start(k_start, b), k_start being its first row in k/v (b·seqlen_k dense, cu_seqlens_k[b] varlen). The
 * starts are kVtGap apart beyond the keys and rounded up to 16 bytes, so each sequence's padded range is its own.
 */
#ifndef FA_SM90_FP8_TRANSPOSE_V_CUH
#define FA_SM90_FP8_TRANSPOSE_V_CUH

#include <cstdint>

#include "flash_attn_abi.h"

namespace fa_sm90 {

constexpr int kFp8BlockN = 128;            /* FwdTileFp8::kBlockN */
constexpr int kVtGap = kFp8BlockN + 16;    /* ≥ the padding of a sequence plus the 16-byte rounding of its start */

/* Key (within its 32-key chunk) whose V row column k of Vᵀ holds; see above. */
__host__ __device__ constexpr int pv_key(int k) {
    const int j = k & 3, quad = (k >> 2) & 3;
    return (k & 16) + 2 * quad + (j & 1) + 8 * (j >> 1);
}

__host__ __device__ __forceinline__ int64_t vt_start(int64_t k_start, int b) {
    return (k_start + static_cast<int64_t>(b) * kVtGap + 15) & ~int64_t{15};
}

/* Columns (bytes) of a Vᵀ row, and the workspace it takes. */
inline int64_t vt_cols(const fa_params& p) {
    const int64_t keys = p.cu_seqlens_k != nullptr ? p.total_k : static_cast<int64_t>(p.batch) * p.seqlen_k;
    return (keys + static_cast<int64_t>(kVtGap) * p.batch + 15) & ~int64_t{15};
}
inline uint64_t vt_bytes(const fa_params& p) { return static_cast<uint64_t>(p.nheads_kv) * p.headdim_v * vt_cols(p); }

struct VtArgs {
    const uint8_t* v; /* e4m3, (batch, seqlen_k, nheads_kv, headdim) or varlen (total_k, nheads_kv, headdim) */
    int64_t v_batch_stride, v_row_stride, v_head_stride;
    uint8_t* vt;
    int64_t cols;
    const int32_t* cu_seqlens_k;
    const int32_t* seqused_k;
    int seqlen_k;
    int headdim; /* headdim_v: a multiple of 16, ≤ 256 */
};

/* Grid (⌈round_up(seqlen_k, kFp8BlockN) / kVtKeys⌉, nheads_kv, batch), 256 threads: kVtKeys keys of one (sequence,
   kv head) through shared memory, read as 16-byte pieces of V rows, written as 16-byte pieces of Vᵀ rows. A
   template so that only the e4m3 instances compile it. */
template <int kVtKeys>
__global__ void __launch_bounds__(256) transpose_v_fp8_kernel(const VtArgs a) {
    static_assert(kFp8BlockN % kVtKeys == 0 && kVtKeys % 32 == 0, "whole 32-key chunks of whole key blocks");
    __shared__ __align__(16) uint8_t tile[kVtKeys][256 + 16];
    const int b = blockIdx.z, hk = blockIdx.y, j0 = blockIdx.x * kVtKeys;
    int64_t k_start;
    int keys;
    if (a.cu_seqlens_k != nullptr) {
        k_start = a.cu_seqlens_k[b];
        keys = a.cu_seqlens_k[b + 1] - a.cu_seqlens_k[b];
    } else {
        k_start = static_cast<int64_t>(b) * a.seqlen_k;
        keys = a.seqlen_k;
    }
    const int padded = (keys + kFp8BlockN - 1) / kFp8BlockN * kFp8BlockN;
    if (j0 >= padded) return;
    const int used = a.seqused_k != nullptr ? min(a.seqused_k[b], keys) : keys;
    const int chunks = a.headdim / 16;
    const uint8_t* v_seq = a.v + (a.cu_seqlens_k != nullptr ? k_start * a.v_row_stride : b * a.v_batch_stride) +
                           hk * a.v_head_stride;
    for (int i = threadIdx.x; i < kVtKeys * chunks; i += blockDim.x) {
        const int r = i / chunks, piece = i - r * chunks;
        const int key = j0 + (r & ~31) + pv_key(r & 31);
        uint4 x = make_uint4(0, 0, 0, 0);
        if (key < used) x = *reinterpret_cast<const uint4*>(v_seq + key * a.v_row_stride + 16 * piece);
        *reinterpret_cast<uint4*>(&tile[r][16 * piece]) = x;
    }
    __syncthreads();
    uint8_t* vt_seq = a.vt + static_cast<int64_t>(hk) * a.headdim * a.cols + vt_start(k_start, b) + j0;
    for (int i = threadIdx.x; i < a.headdim * (kVtKeys / 16); i += blockDim.x) {
        const int d = i / (kVtKeys / 16), part = i - d * (kVtKeys / 16);
        uint32_t w[4];
#pragma unroll
        for (int x = 0; x < 4; ++x) {
            const int r = 16 * part + 4 * x;
            w[x] = static_cast<uint32_t>(tile[r][d]) | static_cast<uint32_t>(tile[r + 1][d]) << 8 |
                   static_cast<uint32_t>(tile[r + 2][d]) << 16 | static_cast<uint32_t>(tile[r + 3][d]) << 24;
        }
        *reinterpret_cast<uint4*>(vt_seq + d * a.cols + 16 * part) = make_uint4(w[0], w[1], w[2], w[3]);
    }
}

}  // namespace fa_sm90

#endif  // FA_SM90_FP8_TRANSPOSE_V_CUH

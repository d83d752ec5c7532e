/*
 * flash_fwd_kvcache.cuh — the small kernels around the split / kv-cache forward:
 *   kvcache_append_kernel  k_new (rotated) and v_new into the cache at cache_seqlens[b] + t
 *   rotate_q_kernel        q rotated into a contiguous workspace copy the attention reads
 *   split_combine_kernel   the split partials merged by LSE (and the sink, if any)
 * docs/semantics.md "KV cache" defines the positions and the rotation; rotation is done in
 * fp32 and rounded once; V is copied bit-exactly.
 */
#ifndef FA_SM80_FLASH_FWD_KVCACHE_CUH
#define FA_SM80_FLASH_FWD_KVCACHE_CUH

#include <cstdint>

#include "flash_fwd_args.cuh"
#include "flash_fwd_kernel.cuh"
#include "sm80_primitives.cuh"

namespace fa_sm80 {

struct RotaryArgs {
    const void* cos; /* (seqlen_rotary, rotary_dim / 2), dtype, contiguous */
    const void* sin;
    int rotary_dim;  /* 0 = none */
    int interleaved;
};

template <typename Element>
FA_DEVICE float to_float(Element x);
template <>
FA_DEVICE float to_float<__half>(__half x) { return __half2float(x); }
template <>
FA_DEVICE float to_float<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename Element>
FA_DEVICE Element from_float(float x);
template <>
FA_DEVICE __half from_float<__half>(float x) { return __float2half_rn(x); }
template <>
FA_DEVICE __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

/*
 * Copies one row of `width` elements from src to dst, rotating the first rotary_dim columns
 * at `position`. One warp per row; a lane handles column pairs, so the two elements of a
 * rotated pair are always in the same lane.
 */
template <typename Element>
FA_DEVICE void copy_rotated_row(const Element* src, Element* dst, int width, const RotaryArgs& rot, int position, int lane) {
    const int pairs = rot.rotary_dim / 2;
    const Element* cos_row = static_cast<const Element*>(rot.cos) + static_cast<int64_t>(position) * pairs;
    const Element* sin_row = static_cast<const Element*>(rot.sin) + static_cast<int64_t>(position) * pairs;
    for (int i = lane; i < pairs; i += 32) {
        const int xi = rot.interleaved ? 2 * i : i;
        const int yi = rot.interleaved ? 2 * i + 1 : i + pairs;
        const float x = to_float(src[xi]), y = to_float(src[yi]);
        const float c = to_float(cos_row[i]), s = to_float(sin_row[i]);
        // Explicitly rounded products (no FMA contraction), as the CPU backend computes them.
        dst[xi] = from_float<Element>(__fsub_rn(__fmul_rn(x, c), __fmul_rn(y, s)));
        dst[yi] = from_float<Element>(__fadd_rn(__fmul_rn(x, s), __fmul_rn(y, c)));
    }
    for (int c = rot.rotary_dim + lane; c < width; c += 32) dst[c] = src[c];
}

struct AppendArgs {
    const void* k_new;
    const void* v_new;
    int64_t kn_batch_stride, kn_row_stride, kn_head_stride;
    int64_t vn_batch_stride, vn_row_stride, vn_head_stride;
    int seqlen_new;
};

/* grid (seqlen_new, batch), one warp per kv head (looping). */
template <typename Element>
__global__ void kvcache_append_kernel(const __grid_constant__ FwdArgs a, const __grid_constant__ AppendArgs n,
                                      const __grid_constant__ RotaryArgs rot) {
    const int t = blockIdx.x, b = blockIdx.y;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    const int position = a.cache_seqlens[b] + t; /* raw cache row (before leftpad) */
    int64_t k_row, v_row;
    if (a.block_table != nullptr) {
        const int page = a.block_table[static_cast<int64_t>(b) * a.block_table_batch_stride + position / a.page_size];
        const int r = position % a.page_size;
        k_row = static_cast<int64_t>(page) * a.k_batch_stride + static_cast<int64_t>(r) * a.k_row_stride;
        v_row = static_cast<int64_t>(page) * a.v_batch_stride + static_cast<int64_t>(r) * a.v_row_stride;
    } else {
        const int entry = a.cache_batch_idx != nullptr ? a.cache_batch_idx[b] : b;
        k_row = static_cast<int64_t>(entry) * a.k_batch_stride + static_cast<int64_t>(position) * a.k_row_stride;
        v_row = static_cast<int64_t>(entry) * a.v_batch_stride + static_cast<int64_t>(position) * a.v_row_stride;
    }
    for (int hk = warp; hk < a.nheads_kv; hk += nwarps) {
        const Element* ks = static_cast<const Element*>(n.k_new) + b * n.kn_batch_stride + t * n.kn_row_stride + hk * n.kn_head_stride;
        const Element* vs = static_cast<const Element*>(n.v_new) + b * n.vn_batch_stride + t * n.vn_row_stride + hk * n.vn_head_stride;
        Element* kd = static_cast<Element*>(const_cast<void*>(a.k)) + k_row + hk * a.k_head_stride;
        Element* vd = static_cast<Element*>(const_cast<void*>(a.v)) + v_row + hk * a.v_head_stride;
        copy_rotated_row(ks, kd, a.headdim_qk, rot, position, lane);
        for (int c = lane; c < a.headdim_v; c += 32) vd[c] = vs[c];
    }
}

/* grid (seqlen_q, batch): q row t of sequence b, every head, into the contiguous (b, sq, hq, d) copy. */
template <typename Element>
__global__ void rotate_q_kernel(const __grid_constant__ FwdArgs a, Element* q_out, const __grid_constant__ RotaryArgs rot,
                                int local) {
    const int t = blockIdx.x, b = blockIdx.y;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    const int position = a.cache_seqlens[b] + (local ? t : 0);
    for (int h = warp; h < a.nheads_q; h += nwarps) {
        const Element* src = static_cast<const Element*>(a.q) + b * a.q_batch_stride + t * a.q_row_stride + h * a.q_head_stride;
        Element* dst = q_out + ((static_cast<int64_t>(b) * a.seqlen_q + t) * a.nheads_q + h) * a.headdim_qk;
        copy_rotated_row(src, dst, a.headdim_qk, rot, position, lane);
    }
}

/*
 * grid (ceil(seqlen_q / 4), nheads_q, batch), 4 warps, one query row per warp:
 *   M = max(max_s LSE_s, sink); w_s = exp(LSE_s − M); D = Σ w_s + exp(sink − M)
 *   out = Σ (w_s / D) · O_s;  LSE = M + log D  (+inf and out = 0 when nothing was seen)
 * Decoding has few rows and up to kMaxSplits splits, so the pass is latency-bound: the lanes
 * share the splits for M and D, lane s % 32 computes w_s / D once and broadcasts it, and the
 * loads of O_s (float2 per lane, column pairs 2·lane + 64·j) are independent across an
 * unrolled group of splits, so that several are in flight at once.
 */
template <typename Element>
__global__ void split_combine_kernel(const __grid_constant__ FwdArgs a) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int i = blockIdx.x * 4 + warp, h = blockIdx.y, b = blockIdx.z;
    const FwdSequence seq = resolve_sequence(a, b, h);
    if (i >= seq.sq) return;
    const int64_t rows = static_cast<int64_t>(a.batch) * a.nheads_q * a.seqlen_q;
    const int64_t flat = seq.flat0 + i;
    const int splits = a.num_splits;
    const float* lse_row = a.lse_partial + flat; /* split s at lse_row[s · rows] */
    float top = kNegInf;
    for (int s = lane; s < splits; s += 32) top = fmaxf(top, lse_row[s * rows]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) top = fmaxf(top, __shfl_xor_sync(0xffffffffu, top, o));
    const bool has_sink = a.sink_logits != nullptr;
    const float sink = has_sink ? a.sink_logits[h] : kNegInf;
    top = fmaxf(top, sink);
    Element* out = static_cast<Element*>(a.out) + seq.o0 + static_cast<int64_t>(i) * a.o_row_stride;
    if (top == kNegInf) {
        for (int c = lane; c < a.headdim_v; c += 32) out[c] = from_float<Element>(0.0f);
        if (lane == 0 && a.lse != nullptr) a.lse[seq.lse0 + i] = kPosInf;
        return;
    }
    float part = 0.0f; /* exp(−∞ − M) = 0 for an empty split */
    for (int s = lane; s < splits; s += 32) part += expf(lse_row[s * rows] - top);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) part += __shfl_xor_sync(0xffffffffu, part, o);
    const float denominator = part + (has_sink ? expf(sink - top) : 0.0f);
    const float inv = 1.0f / denominator;

    constexpr int kPairs = 4; /* headdim_v ≤ 256 = 4 × 64 columns */
    float2 acc[kPairs];
#pragma unroll
    for (int j = 0; j < kPairs; ++j) acc[j] = make_float2(0.0f, 0.0f);
    const float* o_row = a.o_partial + flat * a.headdim_v;
    const int64_t split_stride = rows * a.headdim_v;
    for (int s0 = 0; s0 < splits; s0 += 32) {
        const int mine = s0 + lane;
        const float w_mine = mine < splits ? expf(lse_row[mine * rows] - top) * inv : 0.0f;
        const int count = min(32, splits - s0);
#pragma unroll 4
        for (int k = 0; k < count; ++k) {
            const float w = __shfl_sync(0xffffffffu, w_mine, k);
            if (w == 0.0f) continue; /* empty split (warp-uniform): its O_s is never read */
            const float* src = o_row + (s0 + k) * split_stride;
#pragma unroll
            for (int j = 0; j < kPairs; ++j) {
                const int c = 2 * lane + 64 * j;
                if (c < a.headdim_v) {
                    const float2 x = *reinterpret_cast<const float2*>(src + c);
                    acc[j].x = fmaf(w, x.x, acc[j].x);
                    acc[j].y = fmaf(w, x.y, acc[j].y);
                }
            }
        }
    }
#pragma unroll
    for (int j = 0; j < kPairs; ++j) {
        const int c = 2 * lane + 64 * j;
        if (c < a.headdim_v) {
            out[c] = from_float<Element>(acc[j].x);
            out[c + 1] = from_float<Element>(acc[j].y);
        }
    }
    if (lane == 0 && a.lse != nullptr) a.lse[seq.lse0 + i] = top + logf(denominator);
}

}  // namespace fa_sm80

#endif  // FA_SM80_FLASH_FWD_KVCACHE_CUH

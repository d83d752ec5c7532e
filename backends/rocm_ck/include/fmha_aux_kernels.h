/*
 * fmha_aux_kernels.h — the kernels around the attention that do not depend on the head-dim
 * bucket (instantiated once per dtype in src/fmha_aux.hip):
 *
 *   appendkv        k_new/v_new into the KV cache at raw rows cache_seqlens[b] + t, k_new
 *                   rotated at that position (CK: fmha_fwd_appendkv); V is copied bit-exactly
 *   rotate_q        q rotated into the workspace: row t at cache_seqlens[b] + t when the
 *                   attention is causal/windowed, else at cache_seqlens[b]
 *   splitkv_combine out (and LSE) from the split partials, weights exp(LSE_s − LSE), the sink
 *                   logit (if any) one more term of the LSE
 *   bwd_dot_do_o    D_i = Σ_c dO_ic · O_ic, fp32, per (query head, row)
 *   bwd_dsink       dsink_h = −Σ_{b,i} exp(sink_h − LSE_bhi) · D_bhi, one block per head
 *
 * Rotation (docs/semantics.md "KV cache"): pairs (2i, 2i+1) (interleaved) or (i, i + r/2),
 * (x, y) → (x cos − y sin, x sin + y cos) with cos/sin[pos, i], in fp32, rounded once.
 * These kernels are memory-bound and simple: one thread per element group, no LDS tiles; the
 * reductions go through shared memory in a fixed order (deterministic on every target).
 */
#ifndef FA_CK_FMHA_AUX_KERNELS_H
#define FA_CK_FMHA_AUX_KERNELS_H

#include "ck_arch.h"
#include "ck_numeric.h"
#include "fmha_args.h"
#include "fmha_seqlen.h"

namespace fa_ck {

constexpr int kAuxThreads = 256;
constexpr int kRowsPerAuxBlock = kAuxThreads / kWaveSize; /* one 64-thread group per row */

/* Rotates row x (rotary_dim first elements) at `position` into y, rounding once; copies the rest. */
template <int DType>
FA_CK_DEVICE void rotate_row(const FmhaArgs& a, const uint16_t* x, uint16_t* y, int columns, int position, int tid, int stride) {
    using E = Element<DType>;
    const int half = a.rotary_dim / 2;
    const uint16_t* cos_row = static_cast<const uint16_t*>(a.rotary_cos) + static_cast<int64_t>(position) * half;
    const uint16_t* sin_row = static_cast<const uint16_t*>(a.rotary_sin) + static_cast<int64_t>(position) * half;
    for (int c = tid; c < columns; c += stride) {
        if (c >= a.rotary_dim) {
            y[c] = x[c];
            continue;
        }
        int pair, index;
        bool first;
        if (a.rotary_interleaved) {
            index = c / 2;
            first = (c & 1) == 0;
            pair = first ? c + 1 : c - 1;
        } else {
            index = c < half ? c : c - half;
            first = c < half;
            pair = first ? c + half : c - half;
        }
        const float cs = E::to_float(cos_row[index]), sn = E::to_float(sin_row[index]);
        const float self = E::to_float(x[c]), other = E::to_float(x[pair]);
        /* (x, y) → (x cos − y sin, x sin + y cos): the first of the pair is x. */
        y[c] = E::from_float(first ? self * cs - other * sn : other * sn + self * cs);
    }
}

/* grid (seqlen_new, batch), block kAuxThreads: one new row of every kv head. */
template <int DType>
__global__ void FA_CK_LAUNCH_BOUNDS(kAuxThreads) fmha_appendkv_kernel(FmhaArgs a) {
    const int t = static_cast<int>(blockIdx.x), b = static_cast<int>(blockIdx.y);
    const int tid = static_cast<int>(threadIdx.x);
    const SeqInfo seq = SeqInfo::make(a, b);
    const int position = a.cache_seqlens[b] + t;
    for (int hk = 0; hk < a.nheads_kv; ++hk) {
        const int64_t row_new = static_cast<int64_t>(b) * a.k_new.batch_stride + static_cast<int64_t>(t) * a.k_new.row_stride +
                                static_cast<int64_t>(hk) * a.k_new.head_stride;
        const uint16_t* k_src = static_cast<const uint16_t*>(a.k_new.data) + row_new;
        uint16_t* k_dst = static_cast<uint16_t*>(const_cast<void*>(a.k.data)) + seq.raw_offset(a, a.k, position, hk);
        if (a.rotary_dim > 0) {
            rotate_row<DType>(a, k_src, k_dst, a.headdim_qk, position, tid, kAuxThreads);
        } else {
            for (int c = tid; c < a.headdim_qk; c += kAuxThreads) k_dst[c] = k_src[c];
        }
        const uint16_t* v_src = static_cast<const uint16_t*>(a.v_new.data) + static_cast<int64_t>(b) * a.v_new.batch_stride +
                                static_cast<int64_t>(t) * a.v_new.row_stride + static_cast<int64_t>(hk) * a.v_new.head_stride;
        uint16_t* v_dst = static_cast<uint16_t*>(const_cast<void*>(a.v.data)) + seq.raw_offset(a, a.v, position, hk);
        for (int c = tid; c < a.headdim_v; c += kAuxThreads) v_dst[c] = v_src[c];
    }
}

/* grid (seqlen_q, batch), block kAuxThreads: row t of every query head into `rotated`
   (contiguous (batch, seqlen_q, hq, d)). */
template <int DType>
__global__ void FA_CK_LAUNCH_BOUNDS(kAuxThreads) fmha_rotate_q_kernel(FmhaArgs a, uint16_t* rotated) {
    const int t = static_cast<int>(blockIdx.x), b = static_cast<int>(blockIdx.y);
    const SeqInfo seq = SeqInfo::make(a, b);
    const bool local = a.window_left >= 0 || a.window_right >= 0;
    const int position = a.cache_seqlens[b] + (local ? t : 0);
    for (int h = 0; h < a.nheads_q; ++h) {
        const uint16_t* src = static_cast<const uint16_t*>(a.q.data) + seq.q_offset(a.q, t, h);
        uint16_t* dst = rotated + ((static_cast<int64_t>(b) * a.seqlen_q + t) * a.nheads_q + h) * a.headdim_qk;
        rotate_row<DType>(a, src, dst, a.headdim_qk, position, static_cast<int>(threadIdx.x), kAuxThreads);
    }
}

/* grid (⌈seqlen_q / 4⌉, hq, batch), block kAuxThreads: 64 threads per query row. */
template <int DType>
__global__ void FA_CK_LAUNCH_BOUNDS(kAuxThreads) fmha_splitkv_combine_kernel(FmhaArgs a) {
    using E = Element<DType>;
    const int h = static_cast<int>(blockIdx.y), b = static_cast<int>(blockIdx.z);
    const int tid = static_cast<int>(threadIdx.x);
    const SeqInfo seq = SeqInfo::make(a, b);
    const int i = static_cast<int>(blockIdx.x) * kRowsPerAuxBlock + tid / kWaveSize;
    if (i >= seq.sq) return; /* no barrier below */
    const int64_t rows = static_cast<int64_t>(a.nheads_q) * a.total_q;
    const int64_t index = seq.row_index(a, i, h);
    float lse_max = -kInfinity;
    for (int s = 0; s < a.num_splits; ++s) {
        const float x = a.lse_partial[s * rows + index];
        lse_max = x > lse_max ? x : lse_max;
    }
    const bool sink = a.sink_logits != nullptr;
    const float sink_logit = sink ? a.sink_logits[h] : -kInfinity;
    if (sink_logit > lse_max) lse_max = sink_logit;
    const float shift = lse_max == -kInfinity ? 0.0f : lse_max;
    float sum = sink ? expf(sink_logit - shift) : 0.0f;
    for (int s = 0; s < a.num_splits; ++s) sum += expf(a.lse_partial[s * rows + index] - shift);
    const float lse = sum > 0.0f ? shift + logf(sum) : kInfinity;
    uint16_t* out = static_cast<uint16_t*>(const_cast<void*>(a.out.data)) + seq.q_offset(a.out, i, h);
    for (int c = tid % kWaveSize; c < a.headdim_v; c += kWaveSize) {
        float acc = 0.0f;
        for (int s = 0; s < a.num_splits; ++s) {
            const float x = a.lse_partial[s * rows + index];
            if (x == -kInfinity) continue;
            acc += expf(x - lse) * a.o_partial[(s * rows + index) * a.headdim_v + c];
        }
        out[c] = E::from_float(acc);
    }
    if (a.lse != nullptr && tid % kWaveSize == 0) a.lse[seq.lse_index(a, i, h)] = lse;
}

/* grid (⌈seqlen_q / 4⌉, hq, batch), block kAuxThreads: D of 4 rows, 64 threads each. */
template <int DType>
__global__ void FA_CK_LAUNCH_BOUNDS(kAuxThreads) fmha_bwd_dot_do_o_kernel(FmhaArgs a) {
    using E = Element<DType>;
    __shared__ float partial[kAuxThreads];
    const int h = static_cast<int>(blockIdx.y), b = static_cast<int>(blockIdx.z);
    const int tid = static_cast<int>(threadIdx.x);
    const SeqInfo seq = SeqInfo::make(a, b);
    const int i = static_cast<int>(blockIdx.x) * kRowsPerAuxBlock + tid / kWaveSize;
    float sum = 0.0f;
    if (i < seq.sq) {
        const uint16_t* o = static_cast<const uint16_t*>(a.out.data) + seq.q_offset(a.out, i, h);
        const uint16_t* dout = static_cast<const uint16_t*>(a.dout.data) + seq.q_offset(a.dout, i, h);
        for (int c = tid % kWaveSize; c < a.headdim_v; c += kWaveSize) sum += E::to_float(o[c]) * E::to_float(dout[c]);
    }
    partial[tid] = sum;
    __syncthreads();
    if (i < seq.sq && tid % kWaveSize == 0) {
        float total = 0.0f;
        for (int t = 0; t < kWaveSize; ++t) total += partial[tid + t];
        a.d_rows[seq.row_index(a, i, h)] = total;
    }
}

/* grid (hq), block kAuxThreads. */
template <int DType>
__global__ void FA_CK_LAUNCH_BOUNDS(kAuxThreads) fmha_bwd_dsink_kernel(FmhaArgs a) {
    __shared__ float partial[kAuxThreads];
    const int h = static_cast<int>(blockIdx.x);
    const int tid = static_cast<int>(threadIdx.x);
    const float sink = a.sink_logits[h];
    float sum = 0.0f;
    for (int b = 0; b < a.batch; ++b) {
        const SeqInfo seq = SeqInfo::make(a, b);
        for (int i = tid; i < seq.sq; i += kAuxThreads)
            sum += expf(sink - a.lse[seq.lse_index(a, i, h)]) * a.d_rows[seq.row_index(a, i, h)];
    }
    partial[tid] = sum;
    __syncthreads();
    if (tid == 0) {
        float total = 0.0f;
        for (int t = 0; t < kAuxThreads; ++t) total += partial[t];
        a.dsink[h] = -total;
    }
}

}  // namespace fa_ck

#endif  // FA_CK_FMHA_AUX_KERNELS_H

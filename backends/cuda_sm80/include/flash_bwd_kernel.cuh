/*
 * flash_bwd_kernel.cuh — the FlashAttention-2 backward pass for sm_80..sm_90 (mma.sync).
 *
 * Four kernels, launched in this order by flash_bwd_launch.cuh:
 *  1. preprocess   D_i = sum_c dO_ic * O_ic per (row, head) into the workspace (the fp32 dQ
 *                  accumulator is zeroed by a memset before it).
 *  2. dsink        (only with sinks) dsink_h = -sum_{b,i} exp(sink_h - LSE) * D, one CTA per head,
 *                  summed in a fixed order (bitwise reproducible).
 *  3. main         one CTA per (block of BlockK keys, kv head, sequence). K and V of the block
 *                  stay in shared memory; the CTA walks every query head of its GQA group and
 *                  every block of BlockQ query rows that sees one of its keys, recomputing
 *                  S^T = K Q^T and P = exp(S - LSE), and accumulating dV += P~^T dO and
 *                  dK += dS^T Q in registers (no atomics for dK/dV, GQA included). dQ = dS K of
 *                  each step is added into the fp32 workspace with atomics, whole MMA fragments
 *                  at a time (dq_fragment). Deterministic mode:
 *                  the CTAs that touch one (head, query block) add in increasing key-block
 *                  order, handed on by a per-(head, query block) counter in the workspace
 *                  (a CTA only ever waits for a lower blockIdx.x, which the hardware dispatched
 *                  earlier, so there is no deadlock); the CTAs then walk the query blocks from
 *                  the last down so that they reach each block together. The fp32 sums of dq
 *                  are then done in a fixed order: dq, dk, dv are bitwise reproducible.
 *  4. postprocess  dq = scale * dq_accum, rounded to the element type.
 * (plus zero_kv_padding, only with seqused_k / leftpad_k: raw k rows that are no key get
 *  dk = dv = 0, as the CPU backend does.)
 *
 * Scores follow docs/semantics.md: s = scale * q.k; softcap s = c tanh(s / c); window mask;
 * ALiBi s += -slope |i + sk - sq - j|; P = exp(s - LSE); dropout keep from Philox (ABI layout);
 * dS = P (dP keep/(1-p) - D) (1 - tanh^2); dQ = scale dS K, dK = scale dS^T Q, dV = P~^T dO.
 */
#ifndef FA_SM80_FLASH_BWD_KERNEL_CUH
#define FA_SM80_FLASH_BWD_KERNEL_CUH

#include <climits>
#include <cstdint>
#include <cuda_runtime.h>

#include "bwd_primitives.cuh"
#include "bwd_smem_layout.cuh"
#include "bwd_traits.cuh"

namespace fa_sm80 {
namespace bwd {

/* Everything the device code reads, resolved on the host from fa_params. */
struct BwdParams {
    const void* q;
    const void* k;
    const void* v;
    const void* o;
    const void* dout;
    void* dq;
    void* dk;
    void* dv;
    int64_t q_batch_stride, q_row_stride, q_head_stride;
    int64_t k_batch_stride, k_row_stride, k_head_stride;
    int64_t v_batch_stride, v_row_stride, v_head_stride;
    int64_t o_batch_stride, o_row_stride, o_head_stride;
    int64_t do_batch_stride, do_row_stride, do_head_stride;
    int64_t dq_batch_stride, dq_row_stride, dq_head_stride;
    int64_t dk_batch_stride, dk_row_stride, dk_head_stride;
    int64_t dv_batch_stride, dv_row_stride, dv_head_stride;

    const float* lse;
    int64_t lse_batch_stride, lse_head_stride;

    // Workspace: dq_accum fp32 in C fragments (dq_fragment below; dq_accum_groups row groups of
    // 16 x nheads_q x dq_accum_dim); dsum (nheads_q, total_q) fp32; sem (nheads_q, sem_per_head)
    // int32, deterministic mode only.
    float* dq_accum;
    float* dsum;
    int* sem;
    int64_t dq_accum_groups;
    int dq_accum_dim;
    int sem_per_head;

    int batch, seqlen_q, seqlen_k, nheads_q, nheads_kv, group;
    int headdim, headdim_v;
    int total_q;

    float scale;       // softmax scale
    float scale_log2;  // scale * log2(e)
    float softcap;     // 0 = off
    float inv_softcap;
    int window_left;   // -1 = unbounded (normalised on the host)
    int window_right;  // -1 = unbounded; 0 when causal

    const float* alibi;
    int64_t alibi_batch_stride;

    int has_dropout;
    float keep_scale;  // 1 / (1 - p)
    uint32_t drop_threshold;
    uint64_t seed, offset;

    const int* cu_q;
    const int* cu_k;
    const int* seqused_k;
    const int* leftpad_k;

    const float* sink;
    float* dsink;

    int deterministic;
};

/* Where sequence b lives (docs/semantics.md, "Per-sequence lengths"). */
struct SeqInfo {
    int sq, sk;       // query rows and keys (after leftpad / seqused_k)
    int64_t entry;    // batch-axis index (dense b; varlen 0: batch strides are ignored)
    int64_t q_row0;   // row of query 0 in q/out/dout/dq (varlen cu_q[b])
    int64_t k_row0;   // row of key 0 in k/v/dk/dv (+ leftpad)
    int64_t q_flat0;  // token index of query 0 (dsum, dq_accum)
    int64_t lse_off;  // offset of query 0 of head 0 in the LSE
};

__device__ __forceinline__ SeqInfo seq_info(const BwdParams& p, int b) {
    SeqInfo s;
    const int leftpad = p.leftpad_k != nullptr ? p.leftpad_k[b] : 0;
    int raw_k;
    if (p.cu_q != nullptr) {
        const int q0 = p.cu_q[b], k0 = p.cu_k[b];
        s.sq = p.cu_q[b + 1] - q0;
        raw_k = p.cu_k[b + 1] - k0;
        s.entry = 0;
        s.q_row0 = q0;
        s.k_row0 = static_cast<int64_t>(k0) + leftpad;
        s.q_flat0 = q0;
        s.lse_off = q0;
    } else {
        s.sq = p.seqlen_q;
        raw_k = p.seqlen_k;
        s.entry = b;
        s.q_row0 = 0;
        s.k_row0 = leftpad;
        s.q_flat0 = static_cast<int64_t>(b) * p.seqlen_q;
        s.lse_off = static_cast<int64_t>(b) * p.lse_batch_stride;
    }
    if (p.seqused_k != nullptr) raw_k = p.seqused_k[b];
    s.sk = max(0, raw_k - leftpad);
    return s;
}

__device__ __forceinline__ int floor_div(int a, int b) {
    const int q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* dq_accum: rows in groups of 16, each sequence starting a new group (row group of row i of
 * sequence b: (q_flat0 + 16 b) / 16 + i / 16; the groups of consecutive sequences do not overlap,
 * and there are at most total_q / 16 + batch + 1 of them); per (row group, head) the columns in
 * groups of 8: the m16 x n8 C fragment of dq_fragment_slot (bwd_primitives.cuh), 128 floats. */
__device__ __forceinline__ int64_t dq_row_group(const SeqInfo& s, int b, int row) {
    return (s.q_flat0 + 16 * static_cast<int64_t>(b)) / 16 + row / 16;
}
__device__ __forceinline__ float* dq_fragment(const BwdParams& p, int64_t row_group, int h, int col) {
    return p.dq_accum + ((row_group * p.nheads_q + h) * (p.dq_accum_dim / 8) + col / 8) * 128;
}

/* ---- warp-level products on shared-memory tiles ----------------------------------------
 * acc[MT][NT] (m16 x n8 tiles) += A (MT*16 x KSTEPS*16) * B (KSTEPS*16 x NT*8).
 *   A not transposed: stored [m][k] (k contiguous), rows a_m0.., columns from 0.
 *   A transposed:     stored [k][m], m columns from a_m0.
 *   B not transposed: stored [n][k] (k contiguous), rows b_n0.
 *   B transposed:     stored [k][n], n columns from b_n0.
 * LA / LB: the tiles' RowLayout; addresses are shared-space byte addresses. Every lane's rows are
 * congruent to lane % 8 modulo 8 (the tile offsets are multiples of 8 rows). */
struct NoHook {
    __device__ __forceinline__ void operator()(int) const {}
};

/* hook(ks) runs between the fragment loads and the MMAs of k-step ks: independent work placed there is issued between
   the MMAs instead of after the product. */
template <typename Element, int MT, int NT, int KSTEPS, bool ATrans, bool BTrans, class LA, class LB, typename Hook = NoHook>
__device__ __forceinline__ void gemm_ss(float (&acc)[MT][NT][4], uint32_t sA, int a_m0, uint32_t sB, int b_n0, int lane,
                                        const Hook& hook = Hook()) {
    static_assert(NT % 2 == 0, "B tiles come in pairs");
    // The lane's row and column within a 16 x 16 ldmatrix.x4 block (transposed: rows along k).
    const OperandRows<LA> ta = ATrans ? OperandRows<LA>(sA, (lane & 7) + ((lane >> 4) & 1) * 8, a_m0 + ((lane >> 3) & 1) * 8, lane)
                                      : OperandRows<LA>(sA, a_m0 + (lane & 15), (lane >> 4) * 8, lane);
    const OperandRows<LB> tb = BTrans ? OperandRows<LB>(sB, (lane & 7) + ((lane >> 3) & 1) * 8, b_n0 + (lane >> 4) * 8, lane)
                                      : OperandRows<LB>(sB, b_n0 + (lane & 7) + (lane >> 4) * 8, ((lane >> 3) & 1) * 8, lane);
#pragma unroll
    for (int ks = 0; ks < KSTEPS; ++ks) {
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
            if (ATrans)
                ldmatrix_x4_trans(a[mt], ta.at(ks * 16, mt * 16));
            else
                ldmatrix_x4(a[mt], ta.at(mt * 16, ks * 16));
        }
        hook(ks);
#pragma unroll
        for (int nt2 = 0; nt2 < NT / 2; ++nt2) {
            uint32_t bb[4];
            if (BTrans)
                ldmatrix_x4_trans(bb, tb.at(ks * 16, nt2 * 16));
            else
                ldmatrix_x4(bb, tb.at(nt2 * 16, ks * 16));
            const uint32_t b_lo[2] = {bb[0], bb[1]}, b_hi[2] = {bb[2], bb[3]};
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                mma_16816<Element>(acc[mt][2 * nt2], a[mt], b_lo);
                mma_16816<Element>(acc[mt][2 * nt2 + 1], a[mt], b_hi);
            }
        }
    }
}

/* Same with A already in registers as m16k16 fragments a[MT][KSTEPS][4]; B transposed ([k][n]), columns from 0. */
template <typename Element, int MT, int NT, int KSTEPS, class LB>
__device__ __forceinline__ void gemm_rs(float (&acc)[MT][NT][4], const uint32_t (&a)[MT][KSTEPS][4], uint32_t sB, int lane) {
    const OperandRows<LB> tb(sB, (lane & 7) + ((lane >> 3) & 1) * 8, (lane >> 4) * 8, lane);
#pragma unroll
    for (int ks = 0; ks < KSTEPS; ++ks) {
#pragma unroll
        for (int nt2 = 0; nt2 < NT / 2; ++nt2) {
            uint32_t bb[4];
            ldmatrix_x4_trans(bb, tb.at(ks * 16, nt2 * 16));
            const uint32_t b_lo[2] = {bb[0], bb[1]}, b_hi[2] = {bb[2], bb[3]};
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                mma_16816<Element>(acc[mt][2 * nt2], a[mt][ks], b_lo);
                mma_16816<Element>(acc[mt][2 * nt2 + 1], a[mt][ks], b_hi);
            }
        }
    }
}

/*
 * Dropout keep bits of one m16 x n8 tile of S^T for this thread: bit (2*hh + e) is the element
 * (key key_base + g + 8 hh, row row_base + 2t + e). The tile needs 32 Philox calls (4 groups of
 * 4 keys x 8 rows), one per thread: thread (g = 4q + r, t) computes key group q + 2 (r >> 1),
 * row 2t + (r & 1), and the four threads of equal (q, t) swap words so that each keeps word r
 * of the four calls it needs (keys 4q + r and 4q + r + 8 of rows 2t, 2t + 1).
 */
__device__ __forceinline__ uint32_t dropout_keep_bits(const BwdParams& p, uint32_t c3, int key_base, int row_base,
                                                      int lane) {
    const int g = lane >> 2, t = lane & 3, r = g & 3, q = g >> 2;
    const int key_group = (key_base >> 2) + q + 2 * (r >> 1);
    const int row = row_base + 2 * t + (r & 1);
    const uint64_t c = p.offset + static_cast<uint64_t>(key_group);
    const PhiloxWords o = philox4x32_10(static_cast<uint32_t>(c), static_cast<uint32_t>(c >> 32),
                                      static_cast<uint32_t>(row), c3, static_cast<uint32_t>(p.seed),
                                      static_cast<uint32_t>(p.seed >> 32));
    // y[k] = word (r ^ k): the XOR permutation as two conditional swaps (selects, no branches).
    const uint32_t s0 = (r & 1) ? o.x[1] : o.x[0], s1 = (r & 1) ? o.x[0] : o.x[1];
    const uint32_t s2 = (r & 1) ? o.x[3] : o.x[2], s3 = (r & 1) ? o.x[2] : o.x[3];
    const uint32_t y[4] = {(r & 2) ? s2 : s0, (r & 2) ? s3 : s1, (r & 2) ? s0 : s2, (r & 2) ? s1 : s3};
    uint32_t bits = 0;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        const uint32_t got = k == 0 ? y[0] : __shfl_xor_sync(0xffffffffu, y[k], k << 2);
        // got = word r of the call made by the thread with r' = r ^ k, i.e. element (r ^ k).
        bits |= (got >= p.drop_threshold ? 1u : 0u) << (r ^ k);
    }
    return bits;
}

/* ---- scores to gradients ----------------------------------------------------------------
 * In place on one warp's S^T and dP^T tiles (acc[mt][nt][e4]: key = a.key + 16 mt + 8 (e4 >> 1),
 * query row = a.row + 8 nt + (e4 & 1)): acc_s becomes P~ = P keep / (1 - p) and acc_dp becomes
 * dS = P (dP keep / (1 - p) - D) (1 - tanh^2), with P = exp(s - LSE) and 0 where masked.
 * kFeatures: softcap, ALiBi and dropout are looked at (else none of them is on); kMask: the
 * tile crosses the window or the end of the sequence. */
struct PointwiseArgs {
    const float* lse;   // shared: LSE of the thread's first column (a.row)
    const float* dsum;  // shared: D of the same column
    int key, row;       // key of the thread's row g of m-tile 0; query row of its column 2t of n-tile 0
    int sk, sq, off;    // keys, rows, row i sits at key i + off
    int lo, hi;         // visible when lo <= key - row - off <= hi
    float neg_slope;    // -ALiBi slope
    uint32_t c3;        // Philox counter word 3: b * nheads_q + h
};

template <bool kFeatures, bool kMask, int MT, int NT>
__device__ __forceinline__ void pointwise(float (&acc_s)[MT][NT][4], float (&acc_dp)[MT][NT][4], const BwdParams& p,
                                          const PointwiseArgs& a, int lane) {
    const bool has_softcap = kFeatures && p.softcap > 0.0f;
    const bool has_alibi = kFeatures && p.alibi != nullptr;
    const bool has_dropout = kFeatures && p.has_dropout != 0;
    const int diag = a.key - a.row - a.off;  // key - row - off of the thread's first element
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
        const float2 lse = *reinterpret_cast<const float2*>(a.lse + nt * 8);
        const float2 dsum = *reinterpret_cast<const float2*>(a.dsum + nt * 8);
        const float lse2[2] = {lse.x * kLog2e, lse.y * kLog2e};
        const float dd[2] = {dsum.x, dsum.y};
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
            uint32_t keep = 0xfu;
            if (has_dropout) keep = dropout_keep_bits(p, a.c3, a.key - (lane >> 2) + mt * 16, a.row - 2 * (lane & 3) + nt * 8, lane);
#pragma unroll
            for (int e4 = 0; e4 < 4; ++e4) {
                const int hh = e4 >> 1, e = e4 & 1;
                const int dk = mt * 16 + 8 * hh, dr = nt * 8 + e;  // offsets from the thread's first element
                const int d = diag + dk - dr;
                float pr, grad = 1.0f;
                if (!kFeatures) {
                    pr = exp2_approx(fmaf(acc_s[mt][nt][e4], p.scale_log2, -lse2[e]));
                } else {
                    float x = acc_s[mt][nt][e4] * p.scale;
                    if (has_softcap) {
                        const float th = tanh_accurate(x * p.inv_softcap);
                        x = p.softcap * th;
                        grad = 1.0f - th * th;
                    }
                    if (has_alibi) x = fmaf(a.neg_slope, fabsf(static_cast<float>(d)), x);
                    pr = exp2_approx(fmaf(x, kLog2e, -lse2[e]));
                }
                if (kMask) {
                    const bool visible = a.key + dk < a.sk && a.row + dr < a.sq && d >= a.lo && d <= a.hi;
                    pr = visible ? pr : 0.0f;
                }
                float dp = acc_dp[mt][nt][e4];
                float pt = pr;
                if (has_dropout) {
                    const bool kept = (keep >> e4) & 1u;
                    dp = kept ? dp * p.keep_scale : 0.0f;
                    pt = kept ? pr * p.keep_scale : 0.0f;
                }
                acc_dp[mt][nt][e4] = pr * (dp - dd[e]) * grad;
                acc_s[mt][nt][e4] = pt;
            }
        }
    }
}

/* The plain variant (no softcap, ALiBi or dropout) in two halves, so that the exponentials sit
 * in the same basic block as the dP^T product and the scheduler can issue them between its MMAs
 * (the SFU work of P then hides under the tensor pipe instead of running after it):
 *   pointwise_exp   acc_s := P = exp(s - LSE), unmasked (masked elements may be inf or NaN);
 *   pointwise_mask  (tiles that cross the window or the sequence end) masked elements := 0,
 *                   a select, so whatever the exponential gave there is dropped;
 *   pointwise_ds    acc_dp := dS = P (dP - D).
 * Same arithmetic as pointwise<false, kMask>, element for element. */
#ifndef FA_SM80_BWD_SPLIT_POINTWISE
#define FA_SM80_BWD_SPLIT_POINTWISE 0
#endif

/* Elements [chunk * E / kChunks, (chunk + 1) * E / kChunks) of the E = MT NT 4 of acc_s, in
   (nt, mt, e4) order: called once per k-step of the dP^T product (kChunks = its k-steps). */
template <int kChunks, int MT, int NT>
__device__ __forceinline__ void pointwise_exp(float (&acc_s)[MT][NT][4], const BwdParams& p, const PointwiseArgs& a,
                                              int chunk) {
    constexpr int E = MT * NT * 4;
#pragma unroll
    for (int idx = 0; idx < E; ++idx) {
        if (idx * kChunks / E != chunk) continue;  // compile-time after unrolling
        const int nt = idx / (MT * 4), mt = (idx / 4) % MT, e4 = idx % 4;
        const float lse = a.lse[nt * 8 + (e4 & 1)];
        acc_s[mt][nt][e4] = exp2_approx(fmaf(acc_s[mt][nt][e4], p.scale_log2, -lse * kLog2e));
    }
}

template <int MT, int NT>
__device__ __forceinline__ void pointwise_mask(float (&acc_s)[MT][NT][4], const PointwiseArgs& a) {
    const int diag = a.key - a.row - a.off;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int e4 = 0; e4 < 4; ++e4) {
                const int dk = mt * 16 + 8 * (e4 >> 1), dr = nt * 8 + (e4 & 1);
                const int d = diag + dk - dr;
                const bool visible = a.key + dk < a.sk && a.row + dr < a.sq && d >= a.lo && d <= a.hi;
                acc_s[mt][nt][e4] = visible ? acc_s[mt][nt][e4] : 0.0f;
            }
}

template <int MT, int NT>
__device__ __forceinline__ void pointwise_ds(const float (&acc_s)[MT][NT][4], float (&acc_dp)[MT][NT][4],
                                             const PointwiseArgs& a) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
        const float2 dsum = *reinterpret_cast<const float2*>(a.dsum + nt * 8);
        const float dd[2] = {dsum.x, dsum.y};
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int e4 = 0; e4 < 4; ++e4)
                acc_dp[mt][nt][e4] = acc_s[mt][nt][e4] * (acc_dp[mt][nt][e4] - dd[e4 & 1]);
    }
}

/* The copies of a thread in a tile pair with whole rows per pass (kThreads a multiple of the kD / 8
 * chunks of a row): the thread keeps column chunk tid % chunks and starts at row tid / chunks, where
 * a_src / b_src point; each pass moves down kThreads / chunks rows (the pointers by a constant).
 * `full`: every row and column is in range (no predicate or address select per chunk); otherwise
 * chunks of rows at or past rows_valid, or of columns out of range (col_ok), are zero-filled with the
 * always-mapped a_any / b_any as their unread source address. */
template <typename Element, int kRows, int kD, class L, int kThreads>
__device__ __forceinline__ void copy_tile_rows(uint32_t sa, const Element* a_src, int64_t a_stride, bool a_col_ok,
                                               const void* a_any, uint32_t sb, const Element* b_src, int64_t b_stride,
                                               bool b_col_ok, const void* b_any, int rows_valid, bool full, int tid) {
    constexpr int kChunks = kD / 8;
    static_assert(kThreads % kChunks == 0, "whole rows per pass");
    constexpr int kRowsPerPass = kThreads / kChunks;
    constexpr int kIters = (kRows * kChunks + kThreads - 1) / kThreads;
    const int c0 = tid % kChunks, r0 = tid / kChunks;
    if (full) {
#pragma unroll
        for (int it = 0; it < kIters; ++it) {
            const int r = r0 + it * kRowsPerPass;
            if (kRows * kChunks % kThreads == 0 || r < kRows) {
                const uint32_t dst = L::at(r, c0 * 8, r & 7);
                cp_async_16(sa + dst, a_src, true);
                cp_async_16(sb + dst, b_src, true);
                a_src += kRowsPerPass * a_stride;
                b_src += kRowsPerPass * b_stride;
            }
        }
        return;
    }
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
        const int r = r0 + it * kRowsPerPass;
        if (kRows * kChunks % kThreads == 0 || r < kRows) {
            const bool row_ok = r < rows_valid;
            const bool a_ok = row_ok && a_col_ok, b_ok = row_ok && b_col_ok;
            const uint32_t dst = L::at(r, c0 * 8, r & 7);
            cp_async_16(sa + dst, a_ok ? static_cast<const void*>(a_src) : a_any, a_ok);
            cp_async_16(sb + dst, b_ok ? static_cast<const void*>(b_src) : b_any, b_ok);
            a_src += kRowsPerPass * a_stride;
            b_src += kRowsPerPass * b_stride;
        }
    }
}

/* Rows [0, kRows) of two tiles of one shape (K and V; Q and dO) from global into shared memory
 * (layout L), in 16-byte chunks spread over the threads; chunks of rows at or past
 * rows_valid, or of columns at or past cols_a / cols_b, are zero-filled. */
template <typename Element, int kRows, int kD, class L, int kThreads>
__device__ __forceinline__ void load_tile_pair(uint32_t sa, const Element* ga, int64_t a_stride, int cols_a, uint32_t sb,
                                               const Element* gb, int64_t b_stride, int cols_b, int rows_valid, int tid) {
    constexpr int kChunks = kD / 8;
    constexpr int kIters = (kRows * kChunks + kThreads - 1) / kThreads;
    if constexpr (kThreads % kChunks == 0) {
        const int c0 = tid % kChunks, r0 = tid / kChunks;
        copy_tile_rows<Element, kRows, kD, L, kThreads>(
            sa, ga + static_cast<int64_t>(r0) * a_stride + c0 * 8, a_stride, c0 * 8 < cols_a, ga, sb,
            gb + static_cast<int64_t>(r0) * b_stride + c0 * 8, b_stride, c0 * 8 < cols_b, gb, rows_valid,
            rows_valid >= kRows && cols_a >= kD && cols_b >= kD, tid);
    } else {
#pragma unroll
        for (int it = 0; it < kIters; ++it) {
            const int idx = tid + it * kThreads;
            if (kRows * kChunks % kThreads == 0 || idx < kRows * kChunks) {
                const int r = idx / kChunks, c = idx % kChunks;
                const bool row_ok = r < rows_valid;
                const bool a_ok = row_ok && c * 8 < cols_a, b_ok = row_ok && c * 8 < cols_b;
                const uint32_t dst = L::at(r, c * 8, r & 7);
                cp_async_16(sa + dst, a_ok ? ga + r * a_stride + c * 8 : ga, a_ok);
                cp_async_16(sb + dst, b_ok ? gb + r * b_stride + c * 8 : gb, b_ok);
            }
        }
    }
}

/* ---- main kernel ----------------------------------------------------------------------- */

/* Where the double-buffered prefetch of the next step is issued: 1 = after the S^T product, 0 = right
   after the step's barrier, -1 (default) = per head dim: after S^T up to d 64, where the kernel waits
   on shared memory more than on the tensor pipe (H100, 2026-11-23: d64 +1-2 % after, d128 +1-4 %
   before). An A/B switch for tuning: -DFA_SM80_BWD_PREFETCH_AFTER_S=0 or 1. */
#ifndef FA_SM80_BWD_PREFETCH_AFTER_S
#define FA_SM80_BWD_PREFETCH_AFTER_S -1
#endif

/* Where the shared-memory path issues the dQ reductions: 1 = spread over the k-steps of the dV product
   (a few per k-step), 0 = all together right after the dQ product. Eight back-to-back 16-byte
   reductions per thread fill the load/store queue; the registers they read are then reused by the
   next product's first ldmatrix, which waits until the queue has taken the data (Nsight Compute,
   H100, d64 s4k: 6 % of the warp samples on that wait). An A/B switch for tuning. */
#ifndef FA_SM80_BWD_DQ_INTERLEAVE
#define FA_SM80_BWD_DQ_INTERLEAVE 1
#endif

/* The step's LSE/D copy issued before (1) or after (0, default) its Q/dO tile copies. Timed on the H100 (tune log):
   +0.7 % over the grid, inside the noise, and -9 % at d128 non-causal 8k, so off. */
#ifndef FA_SM80_BWD_LSE_FIRST
#define FA_SM80_BWD_LSE_FIRST 0
#endif

template <typename Element, typename Cfg, bool IsCausal, bool kFeatures, bool kDeterministic>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocksPerSM) bwd_main_kernel(const BwdParams p) {
    constexpr int kD = Cfg::kHeadDim, kBQ = Cfg::kBlockQ, kBK = Cfg::kBlockK, kThreads = Cfg::kThreads;
    using TileD = RowLayout<kD, Cfg::kSwizzleD>;  // K, V, Q, dO: [row][head dim]
    using TileQ = RowLayout<kBQ, false>;          // P^T, dS^T: [key][query row]
    constexpr int kLdQ = TileQ::kPitch;
    static_assert(TileD::kPitch == Cfg::kRowPadD && TileQ::kPitch == Cfg::kRowPadQ, "traits and kernel agree on the pitches");
    constexpr int kChunks = kD / 8;  // 16-byte chunks per row
    constexpr int MT_S = Cfg::kSWarpK / 16, NT_S = Cfg::kSWarpQ / 8;
    constexpr int MT_KV = Cfg::kKVWarpK / 16, NT_KV = Cfg::kKVWarpD / 8;
    constexpr int MT_Q = Cfg::kQWarpQ / 16, NT_Q = Cfg::kQWarpD / 8;

    extern __shared__ __align__(1024) unsigned char smem[];  // tiles at multiples of their pitch (OperandRows)

    const int n_block = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
    const SeqInfo s = seq_info(p, b);
    const int j0 = n_block * kBK;
    if (j0 >= s.sk) return;

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, tq = lane & 3;
    const int off = s.sk - s.sq;  // row i sits at key position a = i + off
    const int wl = p.window_left;
    const int wr = IsCausal ? 0 : p.window_right;

    // Query rows [i_lo, i_hi) see some key of this block.
    const int j_last = min(s.sk, j0 + kBK) - 1;
    const int i_lo = wr < 0 ? 0 : max(0, j0 - wr - off);
    const int i_hi = wl < 0 ? s.sq : min(s.sq, j_last + wl - off + 1);
    const int m_begin = i_lo / kBQ;
    const int m_count = i_hi > i_lo ? (i_hi + kBQ - 1) / kBQ - m_begin : 0;
    const int n_steps = m_count * p.group;

    const uint32_t sK = smem_addr(smem + Cfg::kOffK);
    const uint32_t sV = smem_addr(smem + Cfg::kOffV);
    const uint32_t sQ0 = smem_addr(smem + Cfg::kOffQ);
    const uint32_t sDO0 = smem_addr(smem + Cfg::kOffDO);
    const uint32_t sDS = smem_addr(smem + Cfg::kOffDS);
    const uint32_t sP = smem_addr(smem + Cfg::kOffP);
    const uint32_t sLse0 = smem_addr(smem + Cfg::kOffLse);
    const uint32_t sD0 = smem_addr(smem + Cfg::kOffD);
    const float* lse_smem = reinterpret_cast<const float*>(smem + Cfg::kOffLse);
    const float* d_smem = reinterpret_cast<const float*>(smem + Cfg::kOffD);

    // ---- K and V of the block -----------------------------------------------------------
    {
        const Element* kg = static_cast<const Element*>(p.k) + s.entry * p.k_batch_stride +
                            (s.k_row0 + j0) * p.k_row_stride + static_cast<int64_t>(kvh) * p.k_head_stride;
        const Element* vg = static_cast<const Element*>(p.v) + s.entry * p.v_batch_stride +
                            (s.k_row0 + j0) * p.v_row_stride + static_cast<int64_t>(kvh) * p.v_head_stride;
        load_tile_pair<Element, kBK, kD, TileD, kThreads>(sK, kg, p.k_row_stride, p.headdim, sV, vg, p.v_row_stride,
                                                         p.headdim_v, s.sk - j0, tid);
    }

    // Steps walk (query head gi of the GQA group, query block index idx), idx fastest; the loop
    // keeps (gi, idx) as a cursor, so no step divides. Query block of idx: deterministic mode walks
    // the blocks from the last down, so that all CTAs of a sequence and head reach a query block
    // together and the in-order dQ additions (ordered by key block, see below) hand over from CTA
    // to CTA without waiting a step; otherwise from the first up (CTAs on different blocks: less
    // atomic contention).
    auto block_of = [&](int idx) { return kDeterministic ? m_begin + m_count - 1 - idx : m_begin + idx; };

    // ---- one step's Q, dO, LSE and D --------------------------------------------------
    // Row `row` of query head h of the sequence in q / dout, and this thread's LSE (tid < kBQ) or
    // D (kBQ <= tid < 2 kBQ) element of query row i0 + tid % kBQ.
    auto q_row = [&](const SeqInfo& s, int64_t h, int64_t row) {
        return static_cast<const Element*>(p.q) + s.entry * p.q_batch_stride + (s.q_row0 + row) * p.q_row_stride + h * p.q_head_stride;
    };
    auto do_row = [&](const SeqInfo& s, int64_t h, int64_t row) {
        return static_cast<const Element*>(p.dout) + s.entry * p.do_batch_stride + (s.q_row0 + row) * p.do_row_stride +
               h * p.do_head_stride;
    };
    auto lse_d_element = [&](const SeqInfo& s, int64_t h, int i0) {
        return tid < kBQ ? p.lse + s.lse_off + h * p.lse_head_stride + i0 + tid : p.dsum + h * p.total_q + s.q_flat0 + i0 + (tid - kBQ);
    };
    // Rows past the sequence read LSE = D = 0: their Q and dO are 0 and the mask zeroes P.
    auto copy_lse_d = [&](const float* element, int i0, int sq, int stage) {
        if (tid < 2 * kBQ) {
            const int r = tid < kBQ ? tid : tid - kBQ;
            const bool ok = i0 + r < sq;
            cp_async_4((tid < kBQ ? sLse0 : sD0) + (stage * kBQ + r) * 4, ok ? element : (tid < kBQ ? p.lse : p.dsum), ok);
        }
    };

    // The pointer table (Cfg::kPointerTable): this thread's Q and dO copy pointers and its LSE or D
    // element for head kvh * group (gi = 0) and query row 0; a step adds gi heads and i0 rows. Each
    // thread reads only its own entries, so no barrier is needed.
    const Element** table_q = reinterpret_cast<const Element**>(smem + Cfg::kOffPtrs);
    const Element** table_do = table_q + kThreads;
    const float** table_ld = reinterpret_cast<const float**>(table_do + kThreads);
    if constexpr (Cfg::kPointerTable) {
        const int c0 = tid % kChunks, r0 = tid / kChunks;
        const int64_t h0 = static_cast<int64_t>(kvh) * p.group;
        table_q[tid] = q_row(s, h0, r0) + c0 * 8;
        table_do[tid] = do_row(s, h0, r0) + c0 * 8;
        table_ld[tid] = lse_d_element(s, h0, 0);
    }

    auto load_step = [&](int gi, int idx, int stage) {
        const uint32_t sQ = sQ0 + stage * Cfg::kTileQBytes, sDO = sDO0 + stage * Cfg::kTileQBytes;
        const int i0 = block_of(idx) * kBQ;
        if constexpr (Cfg::kPointerTable) {
            const int sq = s.sq;
            const int c0 = tid % kChunks;
            auto copy_lse_d_step = [&]() {
                copy_lse_d(table_ld[tid] + (tid < kBQ ? gi * p.lse_head_stride : gi * static_cast<int64_t>(p.total_q)) + i0, i0, sq,
                           stage);
            };
            // (A/B switch: the LSE/D copy ahead of the tile copies, so that its parameter loads do not
            // wait for the registers of the tile copies' addresses; Nsight Compute, d64: 1.3 % of samples.)
            if (FA_SM80_BWD_LSE_FIRST) copy_lse_d_step();
            copy_tile_rows<Element, kBQ, kD, TileD, kThreads>(
                sQ, table_q[tid] + gi * p.q_head_stride + i0 * p.q_row_stride, p.q_row_stride, c0 * 8 < p.headdim, p.q, sDO,
                table_do[tid] + gi * p.do_head_stride + i0 * p.do_row_stride, p.do_row_stride, c0 * 8 < p.headdim_v, p.dout,
                sq - i0, sq - i0 >= kBQ && p.headdim >= kD && p.headdim_v >= kD, tid);
            if (!FA_SM80_BWD_LSE_FIRST) copy_lse_d_step();
        } else {
            const SeqInfo s = seq_info(p, b);  // recomputed: cheaper than keeping it live across the loop
            const int64_t h = static_cast<int64_t>(kvh) * p.group + gi;
            load_tile_pair<Element, kBQ, kD, TileD, kThreads>(sQ, q_row(s, h, i0), p.q_row_stride, p.headdim, sDO, do_row(s, h, i0),
                                                             p.do_row_stride, p.headdim_v, s.sq - i0, tid);
            copy_lse_d(lse_d_element(s, h, i0), i0, s.sq, stage);
        }
    };

    if (n_steps > 0) load_step(0, 0, 0);
    cp_async_commit();

    const int ws_k = warp % Cfg::kWarpsSK, ws_q = warp / Cfg::kWarpsSK;
    const int wkv_k = warp % Cfg::kWarpsKVK, wkv_d = warp / Cfg::kWarpsKVK;
    const int wq_q = warp % Cfg::kWarpsQQ, wq_d = warp / Cfg::kWarpsQQ;

    float acc_dk[MT_KV][NT_KV][4], acc_dv[MT_KV][NT_KV][4];
#pragma unroll
    for (int mt = 0; mt < MT_KV; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT_KV; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc_dk[mt][nt][e] = acc_dv[mt][nt][e] = 0.0f;

    int gi = 0, idx = 0;  // the step's cursor (see block_of)
    for (int step = 0; step < n_steps; ++step) {
        const int stage = Cfg::kStages == 2 ? (step & 1) : 0;
        const int m = block_of(idx);
        int next_gi = gi, next_idx = idx + 1;
        if (next_idx == m_count) {
            next_idx = 0;
            ++next_gi;
        }
        const int h = kvh * p.group + gi;
        const int i0 = m * kBQ;
        const uint32_t sQ = sQ0 + stage * Cfg::kTileQBytes, sDO = sDO0 + stage * Cfg::kTileQBytes;

        cp_async_wait<0>();
        __syncthreads();
        // Double buffer: the next step's copies, here or after the S^T product (every warp reaches this
        // point together; after S^T the address arithmetic overlaps tensor work instead of delaying
        // the first MMAs of all eight warps). See FA_SM80_BWD_PREFETCH_AFTER_S.
        auto prefetch_next = [&]() {
            if (Cfg::kStages == 2 && step + 1 < n_steps) {
                load_step(next_gi, next_idx, stage ^ 1);
                cp_async_commit();
            }
        };
        constexpr bool kPrefetchAfterS = FA_SM80_BWD_PREFETCH_AFTER_S < 0 ? kD <= 64 : FA_SM80_BWD_PREFETCH_AFTER_S != 0;
        if (!kPrefetchAfterS) prefetch_next();

        // ---- S^T = K Q^T and dP^T = V dO^T (keys x rows) ---------------------------------
        float acc_s[MT_S][NT_S][4], acc_dp[MT_S][NT_S][4];
#pragma unroll
        for (int mt = 0; mt < MT_S; ++mt)
#pragma unroll
            for (int nt = 0; nt < NT_S; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc_s[mt][nt][e] = acc_dp[mt][nt][e] = 0.0f;
        gemm_ss<Element, MT_S, NT_S, kD / 16, false, false, TileD, TileD>(acc_s, sK, ws_k * Cfg::kSWarpK, sQ,
                                                                          ws_q * Cfg::kSWarpQ, lane);
        if (kPrefetchAfterS) prefetch_next();
        constexpr bool kSplit = FA_SM80_BWD_SPLIT_POINTWISE != 0 && !kFeatures;
        if constexpr (!kSplit)
            gemm_ss<Element, MT_S, NT_S, kD / 16, false, false, TileD, TileD>(acc_dp, sV, ws_k * Cfg::kSWarpK, sDO,
                                                                              ws_q * Cfg::kSWarpQ, lane);

        // ---- P~ (into acc_s) and dS (into acc_dp) ----------------------------------------
        {
            const bool full = i0 + kBQ <= s.sq && j0 + kBK <= s.sk && (wl < 0 || j0 >= i0 + kBQ - 1 + off - wl) &&
                              (wr < 0 || j0 + kBK - 1 <= i0 + off + wr);
            PointwiseArgs a;
            a.lse = lse_smem + stage * kBQ + ws_q * Cfg::kSWarpQ + 2 * tq;
            a.dsum = d_smem + stage * kBQ + ws_q * Cfg::kSWarpQ + 2 * tq;
            a.key = j0 + ws_k * Cfg::kSWarpK + g;
            a.row = i0 + ws_q * Cfg::kSWarpQ + 2 * tq;
            a.sk = s.sk;
            a.sq = s.sq;
            a.off = off;
            a.lo = wl < 0 ? INT_MIN : -wl;
            a.hi = wr < 0 ? INT_MAX : wr;
            a.neg_slope = kFeatures && p.alibi != nullptr ? -p.alibi[b * p.alibi_batch_stride + h] : 0.0f;
            a.c3 = static_cast<uint32_t>(b * p.nheads_q + h);
            if constexpr (kSplit) {
                // P's exponentials and dP^T = V dO^T in one basic block (see pointwise_exp).
                gemm_ss<Element, MT_S, NT_S, kD / 16, false, false, TileD, TileD>(
                    acc_dp, sV, ws_k * Cfg::kSWarpK, sDO, ws_q * Cfg::kSWarpQ, lane,
                    [&](int ks) { pointwise_exp<kD / 16>(acc_s, p, a, ks); });
                if (!full) pointwise_mask(acc_s, a);
                pointwise_ds(acc_s, acc_dp, a);
            } else {
                if (full)
                    pointwise<kFeatures, false>(acc_s, acc_dp, p, a, lane);
                else
                    pointwise<kFeatures, true>(acc_s, acc_dp, p, a, lane);
            }
        }

        // ---- dQ_i += dS K (rows x head dim), added into the fp32 accumulator --------------
        // Needs dS^T complete in shared memory. Shared path: right after the barrier that
        // publishes dS^T, ahead of dV / dK, so that the reductions drain under their MMAs.
        auto dq_product = [&](float (&acc_dq)[MT_Q][NT_Q][4]) {
#pragma unroll
            for (int mt = 0; mt < MT_Q; ++mt)
#pragma unroll
                for (int nt = 0; nt < NT_Q; ++nt)
#pragma unroll
                    for (int e = 0; e < 4; ++e) acc_dq[mt][nt][e] = 0.0f;
            gemm_ss<Element, MT_Q, NT_Q, kBK / 16, true, true, TileQ, TileD>(acc_dq, sDS, wq_q * Cfg::kQWarpQ, sK,
                                                                             wq_d * Cfg::kQWarpD, lane);
        };
        // Whole fragments: rows past the sequence hold dS = 0 (P is masked there) and stay in this
        // sequence's row groups; fragments entirely past it are skipped.
        const int dq_r0 = i0 + wq_q * Cfg::kQWarpQ;
        // This lane's slot in the warp's first fragment of the step; fragment (mt, nt) is mt row groups and nt column
        // groups further. Opaque, so that the 64-bit index arithmetic runs once per step: at 255 registers the
        // compiler otherwise redid all of it (~20 dependent instructions) before each interleaved reduction.
        const int64_t dq_group_stride = static_cast<int64_t>(p.nheads_q) * (p.dq_accum_dim / 8) * 128;
        auto dq_lane_base = [&](int64_t group0) {
            uint64_t base = static_cast<uint64_t>(__cvta_generic_to_global(dq_fragment(p, group0, h, wq_d * Cfg::kQWarpD) +
                                                                           dq_fragment_slot(lane, 0)));
            asm volatile("" : "+l"(base));
            return base;
        };
        auto dq_add = [&](const float (&acc_dq)[MT_Q][NT_Q][4], uint64_t base, int mt, int nt) {
            if (dq_r0 + mt * 16 < s.sq) red_add_fragment_slot(base + 4 * (mt * dq_group_stride + nt * 128), acc_dq[mt][nt]);
        };
        auto dq_step = [&]() {
            float acc_dq[MT_Q][NT_Q][4];
            dq_product(acc_dq);
            int* sem = nullptr;
            if constexpr (kDeterministic) {
                // Wait until every key block before this one that touches query block m has added.
                sem = p.sem + static_cast<int64_t>(h) * p.sem_per_head + (s.q_flat0 + static_cast<int64_t>(b) * kBQ) / kBQ + m;
                const int n_first = wl < 0 ? 0 : max(0, floor_div(i0 - wl + off, kBK));
                if (tid == 0) {
                    const int target = n_block - n_first;
                    while (ld_acquire_gpu(sem) != target) __nanosleep(64);
                }
                __syncthreads();
            }
            {
                const uint64_t base = dq_lane_base(dq_row_group(seq_info(p, b), b, dq_r0));
#pragma unroll
                for (int mt = 0; mt < MT_Q; ++mt)
#pragma unroll
                    for (int nt = 0; nt < NT_Q; ++nt) dq_add(acc_dq, base, mt, nt);
            }
            if constexpr (kDeterministic) {
                __threadfence();
                __syncthreads();
                if (tid == 0) atomicAdd(sem, 1);
            }
        };

        // ---- dV += P~^T dO, dK += dS^T Q; dS^T to shared memory ---------------------------
        const uint32_t ds_warp = sDS + ((ws_k * Cfg::kSWarpK + g) * kLdQ + ws_q * Cfg::kSWarpQ + 2 * tq) * 2;
        const uint32_t p_warp = sP + ((ws_k * Cfg::kSWarpK + g) * kLdQ + ws_q * Cfg::kSWarpQ + 2 * tq) * 2;
        if constexpr (Cfg::kRegisterPath) {
            constexpr int KS = NT_S / 2;
            uint32_t pa[MT_S][KS][4], da[MT_S][KS][4];
#pragma unroll
            for (int mt = 0; mt < MT_S; ++mt)
#pragma unroll
                for (int ks = 0; ks < KS; ++ks) {
                    pa[mt][ks][0] = pack2<Element>(acc_s[mt][2 * ks][0], acc_s[mt][2 * ks][1]);
                    pa[mt][ks][1] = pack2<Element>(acc_s[mt][2 * ks][2], acc_s[mt][2 * ks][3]);
                    pa[mt][ks][2] = pack2<Element>(acc_s[mt][2 * ks + 1][0], acc_s[mt][2 * ks + 1][1]);
                    pa[mt][ks][3] = pack2<Element>(acc_s[mt][2 * ks + 1][2], acc_s[mt][2 * ks + 1][3]);
                    da[mt][ks][0] = pack2<Element>(acc_dp[mt][2 * ks][0], acc_dp[mt][2 * ks][1]);
                    da[mt][ks][1] = pack2<Element>(acc_dp[mt][2 * ks][2], acc_dp[mt][2 * ks][3]);
                    da[mt][ks][2] = pack2<Element>(acc_dp[mt][2 * ks + 1][0], acc_dp[mt][2 * ks + 1][1]);
                    da[mt][ks][3] = pack2<Element>(acc_dp[mt][2 * ks + 1][2], acc_dp[mt][2 * ks + 1][3]);
                    // dS^T rows (key g, g + 8), columns (row 2t, 2t + 1) of n-tiles 2ks, 2ks + 1
                    const uint32_t at = ds_warp + (mt * 16 * kLdQ + ks * 16) * 2;
                    st_shared_32(at, da[mt][ks][0]);
                    st_shared_32(at + 8 * kLdQ * 2, da[mt][ks][1]);
                    st_shared_32(at + 16, da[mt][ks][2]);
                    st_shared_32(at + 8 * kLdQ * 2 + 16, da[mt][ks][3]);
                }
            gemm_rs<Element, MT_KV, NT_KV, KS, TileD>(acc_dv, pa, sDO, lane);
            gemm_rs<Element, MT_KV, NT_KV, KS, TileD>(acc_dk, da, sQ, lane);
        } else {
#pragma unroll
            for (int mt = 0; mt < MT_S; ++mt)
#pragma unroll
                for (int nt = 0; nt < NT_S; ++nt) {
                    const uint32_t at = (mt * 16 * kLdQ + nt * 8) * 2;
                    const uint32_t p0 = pack2<Element>(acc_s[mt][nt][0], acc_s[mt][nt][1]);
                    const uint32_t p1 = pack2<Element>(acc_s[mt][nt][2], acc_s[mt][nt][3]);
                    const uint32_t d0 = pack2<Element>(acc_dp[mt][nt][0], acc_dp[mt][nt][1]);
                    const uint32_t d1 = pack2<Element>(acc_dp[mt][nt][2], acc_dp[mt][nt][3]);
                    st_shared_32(p_warp + at, p0);
                    st_shared_32(p_warp + at + 8 * kLdQ * 2, p1);
                    st_shared_32(ds_warp + at, d0);
                    st_shared_32(ds_warp + at + 8 * kLdQ * 2, d1);
                }
            __syncthreads();
            if constexpr (FA_SM80_BWD_DQ_INTERLEAVE != 0 && !kDeterministic) {
                float acc_dq[MT_Q][NT_Q][4];
                dq_product(acc_dq);
                const uint64_t base = dq_lane_base(dq_row_group(seq_info(p, b), b, dq_r0));
                constexpr int kFragments = MT_Q * NT_Q, kSteps = kBQ / 16;
                constexpr int kPerStep = (kFragments + kSteps - 1) / kSteps;
                gemm_ss<Element, MT_KV, NT_KV, kSteps, false, true, TileQ, TileD>(
                    acc_dv, sP, wkv_k * Cfg::kKVWarpK, sDO, wkv_d * Cfg::kKVWarpD, lane, [&](int ks) {
#pragma unroll
                        for (int j = 0; j < kPerStep; ++j) {
                            const int f = ks * kPerStep + j;
                            if (f < kFragments) dq_add(acc_dq, base, f / NT_Q, f % NT_Q);
                        }
                    });
            } else {
                dq_step();
                gemm_ss<Element, MT_KV, NT_KV, kBQ / 16, false, true, TileQ, TileD>(acc_dv, sP, wkv_k * Cfg::kKVWarpK, sDO,
                                                                                     wkv_d * Cfg::kKVWarpD, lane);
            }
            gemm_ss<Element, MT_KV, NT_KV, kBQ / 16, false, true, TileQ, TileD>(acc_dk, sDS, wkv_k * Cfg::kKVWarpK, sQ,
                                                                                 wkv_d * Cfg::kKVWarpD, lane);
        }
        // Register path: dS^T complete. Single buffer: Q and dO of this step no longer read.
        // (Shared path, double buffer: dS^T was complete before dV / dK; nothing to wait for.)
        if (Cfg::kRegisterPath || Cfg::kStages == 1) __syncthreads();
        if (Cfg::kStages == 1 && step + 1 < n_steps) {
            load_step(next_gi, next_idx, 0);
            cp_async_commit();
        }
        if constexpr (Cfg::kRegisterPath) dq_step();
        gi = next_gi;
        idx = next_idx;
    }

    // ---- epilogue: dK * scale and dV, through shared memory, 16-byte stores ---------------
    cp_async_wait<0>();
    __syncthreads();
    {
        // Element (key row, column 2t) of each C fragment: rows g and g + 8 of m-tile mt, columns 8 nt of the warp's.
        const int row0 = wkv_k * Cfg::kKVWarpK + g, col0 = wkv_d * Cfg::kKVWarpD;
#pragma unroll
        for (int mt = 0; mt < MT_KV; ++mt)
#pragma unroll
            for (int nt = 0; nt < NT_KV; ++nt) {
                const uint32_t at = TileD::at(row0 + mt * 16, col0 + nt * 8, g) + 4 * tq;
                const uint32_t at8 = TileD::at(row0 + mt * 16 + 8, col0 + nt * 8, g) + 4 * tq;
                const uint32_t k0 = pack2<Element>(acc_dk[mt][nt][0] * p.scale, acc_dk[mt][nt][1] * p.scale);
                const uint32_t k1 = pack2<Element>(acc_dk[mt][nt][2] * p.scale, acc_dk[mt][nt][3] * p.scale);
                const uint32_t v0 = pack2<Element>(acc_dv[mt][nt][0], acc_dv[mt][nt][1]);
                const uint32_t v1 = pack2<Element>(acc_dv[mt][nt][2], acc_dv[mt][nt][3]);
                st_shared_32(sK + at, k0);
                st_shared_32(sK + at8, k1);
                st_shared_32(sV + at, v0);
                st_shared_32(sV + at8, v1);
            }
    }
    __syncthreads();
    {
        Element* dkg = static_cast<Element*>(p.dk) + s.entry * p.dk_batch_stride + (s.k_row0 + j0) * p.dk_row_stride +
                       static_cast<int64_t>(kvh) * p.dk_head_stride;
        Element* dvg = static_cast<Element*>(p.dv) + s.entry * p.dv_batch_stride + (s.k_row0 + j0) * p.dv_row_stride +
                       static_cast<int64_t>(kvh) * p.dv_head_stride;
        constexpr int kIters = (kBK * kChunks + kThreads - 1) / kThreads;
#pragma unroll
        for (int it = 0; it < kIters; ++it) {
            const int idx = tid + it * kThreads;
            if (kBK * kChunks % kThreads == 0 || idx < kBK * kChunks) {
                const int r = idx / kChunks, c = idx % kChunks;
                if (j0 + r < s.sk) {
                    const uint32_t at = TileD::at(r, c * 8, r & 7);
                    const uint4 kv = ld_shared_16(sK + at);
                    const uint4 vv = ld_shared_16(sV + at);
                    if (c * 8 < p.headdim) *reinterpret_cast<uint4*>(dkg + r * p.dk_row_stride + c * 8) = kv;
                    if (c * 8 < p.headdim_v) *reinterpret_cast<uint4*>(dvg + r * p.dv_row_stride + c * 8) = vv;
                }
            }
        }
    }
}

/* ---- preprocess: D and zeroed dQ accumulators, one warp per (token, head) ---------------- */

template <typename Element>
__global__ void __launch_bounds__(256) bwd_preprocess_kernel(const BwdParams p) {
    const int64_t pair = static_cast<int64_t>(blockIdx.x) * 8 + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (pair >= static_cast<int64_t>(p.total_q) * p.nheads_q) return;
    const int64_t token = pair / p.nheads_q;
    const int h = static_cast<int>(pair % p.nheads_q);
    int64_t entry = 0, row = token;
    if (p.cu_q == nullptr) {
        entry = token / p.seqlen_q;
        row = token % p.seqlen_q;
    }
    float sum = 0.0f;
    if (lane * 8 < p.headdim_v) {
        const Element* og = static_cast<const Element*>(p.o) + entry * p.o_batch_stride + row * p.o_row_stride +
                            static_cast<int64_t>(h) * p.o_head_stride + lane * 8;
        const Element* dg = static_cast<const Element*>(p.dout) + entry * p.do_batch_stride + row * p.do_row_stride +
                            static_cast<int64_t>(h) * p.do_head_stride + lane * 8;
        const uint4 ov = *reinterpret_cast<const uint4*>(og);
        const uint4 dv = *reinterpret_cast<const uint4*>(dg);
        const uint32_t ow[4] = {ov.x, ov.y, ov.z, ov.w}, dw[4] = {dv.x, dv.y, dv.z, dv.w};
#pragma unroll
        for (int w = 0; w < 4; ++w) {
            const float2 a = unpack2<Element>(ow[w]), c = unpack2<Element>(dw[w]);
            sum = fmaf(a.x, c.x, sum);
            sum = fmaf(a.y, c.y, sum);
        }
    }
#pragma unroll
    for (int mask = 16; mask > 0; mask >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, mask);
    if (lane == 0) p.dsum[static_cast<int64_t>(h) * p.total_q + token] = sum;
}

/* ---- dsink_h = -sum exp(sink_h - LSE) D over every row of head h, fixed order ------------ */

template <int kThreads>
__global__ void __launch_bounds__(kThreads) bwd_dsink_kernel(const BwdParams p) {
    __shared__ double partial[kThreads];
    const int h = blockIdx.x;
    const float sink = p.sink[h];
    double sum = 0.0;
    for (int64_t token = threadIdx.x; token < p.total_q; token += kThreads) {
        int64_t lse_at;
        if (p.cu_q == nullptr) {
            const int64_t b = token / p.seqlen_q, i = token % p.seqlen_q;
            lse_at = b * p.lse_batch_stride + static_cast<int64_t>(h) * p.lse_head_stride + i;
        } else {
            lse_at = static_cast<int64_t>(h) * p.lse_head_stride + token;
        }
        const double lse = p.lse[lse_at];
        const double d = p.dsum[static_cast<int64_t>(h) * p.total_q + token];
        sum += exp(static_cast<double>(sink) - lse) * d;
    }
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int width = kThreads / 2; width > 0; width >>= 1) {
        if (threadIdx.x < width) partial[threadIdx.x] += partial[threadIdx.x + width];
        __syncthreads();
    }
    if (threadIdx.x == 0) p.dsink[h] = static_cast<float>(-partial[0]);
}

/* ---- postprocess: dq = scale * dq_accum in the element type ------------------------------ */

template <typename Element>
__global__ void __launch_bounds__(256) bwd_postprocess_kernel(const BwdParams p) {
    // Block (row group x of sequence y): 16 rows x nheads_q x 8-column chunks, a thread per chunk.
    const int b = blockIdx.y;
    const SeqInfo s = seq_info(p, b);
    const int row0 = blockIdx.x * 16;
    if (row0 >= s.sq) return;
    const int chunks = p.headdim / 8;
    const int items = 16 * p.nheads_q * chunks;
    const int64_t group = dq_row_group(s, b, row0);
    for (int idx = threadIdx.x; idx < items; idx += 256) {
        const int c = idx % chunks, h = (idx / chunks) % p.nheads_q, r = idx / (chunks * p.nheads_q);
        const int row = row0 + r;
        if (row >= s.sq) break;  // idx grows with r
        // Row r of the fragment is row g = r % 8 of lanes 4g + t (t = column pair), element half r / 8.
        const float* fragment = dq_fragment(p, group, h, c * 8);
        const int e0 = 2 * (r >> 3);
        float v[8];
#pragma unroll
        for (int t = 0; t < 4; ++t) {
            const int lane = 4 * (r & 7) + t;
            v[2 * t] = fragment[dq_fragment_slot(lane, e0)];
            v[2 * t + 1] = fragment[dq_fragment_slot(lane, e0 + 1)];
        }
        uint4 out;
        out.x = pack2<Element>(v[0] * p.scale, v[1] * p.scale);
        out.y = pack2<Element>(v[2] * p.scale, v[3] * p.scale);
        out.z = pack2<Element>(v[4] * p.scale, v[5] * p.scale);
        out.w = pack2<Element>(v[6] * p.scale, v[7] * p.scale);
        Element* dst = static_cast<Element*>(p.dq) + s.entry * p.dq_batch_stride + (s.q_row0 + row) * p.dq_row_stride +
                       static_cast<int64_t>(h) * p.dq_head_stride + c * 8;
        *reinterpret_cast<uint4*>(dst) = out;
    }
}

/* ---- raw k rows that are no key (leftpad_k, past seqused_k): dk = dv = 0 ----------------- */

template <typename Element>
__global__ void __launch_bounds__(256) bwd_zero_kv_padding_kernel(const BwdParams p) {
    const int kvh = blockIdx.x, b = blockIdx.y;
    const int leftpad = p.leftpad_k != nullptr ? p.leftpad_k[b] : 0;
    int capacity, row0;
    int64_t entry;
    if (p.cu_k != nullptr) {
        row0 = p.cu_k[b];
        capacity = p.cu_k[b + 1] - row0;
        entry = 0;
    } else {
        row0 = 0;
        capacity = p.seqlen_k;
        entry = b;
    }
    const int used = p.seqused_k != nullptr ? min(p.seqused_k[b], capacity) : capacity;
    const int chunks_k = p.headdim / 8, chunks_v = p.headdim_v / 8;
    const int chunks = max(chunks_k, chunks_v);
    const uint4 zero = make_uint4(0, 0, 0, 0);
    for (int64_t idx = threadIdx.x; idx < static_cast<int64_t>(capacity) * chunks; idx += 256) {
        const int r = static_cast<int>(idx / chunks), c = static_cast<int>(idx % chunks);
        if (r >= leftpad && r < used) continue;
        const int64_t row = static_cast<int64_t>(row0) + r;
        if (c < chunks_k)
            *reinterpret_cast<uint4*>(static_cast<Element*>(p.dk) + entry * p.dk_batch_stride + row * p.dk_row_stride +
                                      static_cast<int64_t>(kvh) * p.dk_head_stride + c * 8) = zero;
        if (c < chunks_v)
            *reinterpret_cast<uint4*>(static_cast<Element*>(p.dv) + entry * p.dv_batch_stride + row * p.dv_row_stride +
                                      static_cast<int64_t>(kvh) * p.dv_head_stride + c * 8) = zero;
    }
}

}  // namespace bwd
}  // namespace fa_sm80

#endif  // FA_SM80_FLASH_BWD_KERNEL_CUH

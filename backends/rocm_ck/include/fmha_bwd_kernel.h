/*
 * fmha_bwd_kernel.h — the backward attention kernels (docs/semantics.md "Backward"), FA2's
 * algorithm split in two so that no output is accumulated by atomics (deterministic by
 * construction, at the price of computing S and dP twice):
 *
 *   FmhaBwdDkDvKernel   a block owns 32·kWaves keys of one kv head and walks every query of
 *                       every query head of the group (GQA sums in registers). Lane l holds
 *                       key l % 32 (a column):
 *       S  = Q·K^T       A = Q rows (LDS)            B = K fragments (registers)
 *       dP = dO·V^T      A = dO rows (LDS)           B = V fragments (registers)
 *       P = exp2(S·c − LSE), dS = P ∘ (dP·keep/(1−p) − D) · softcap'
 *       dV^T += dO^T·P̃   A = dO columns (LDS)        B = P̃ (accumulator registers, as they are)
 *       dK^T += Q^T·dS   A = Q columns (LDS)         B = dS
 *   FmhaBwdDqKernel     a block owns 32·kWaves queries, walks the keys like the forward; lane l
 *                       holds query l % 32:
 *       S^T = K·Q^T, dP^T = V·dO^T, dS^T as above, dQ^T += K^T·dS^T (A = K columns from LDS).
 *
 * P needs only the forward's LSE (P = exp2(logit − LSE·log2e)); D = rowsum(dO ∘ O) comes from
 * fmha_bwd_dot_do_o_kernel. A query that saw no key has LSE = +inf, so its P, and its
 * contribution, are 0.
 */
#ifndef FA_CK_FMHA_BWD_KERNEL_H
#define FA_CK_FMHA_BWD_KERNEL_H

#include "ck_mfma.h"
#include "fmha_args.h"
#include "fmha_block_tile.h"
#include "fmha_dropout.h"
#include "fmha_mask.h"
#include "fmha_score.h"
#include "fmha_seqlen.h"
#include "fmha_tile_shape.h"

namespace fa_ck {

/* The gradient of one score from its pieces (one element of S and dP, or their transposes). */
struct ScoreGrad {
    float p;  /* P̃ = P · keep / (1 − p), the weight of dO in dV */
    float ds; /* dS */
};

template <bool HasDropout>
FA_CK_DEVICE ScoreGrad score_grad(const ScoreMod& score, float qk, float dp, int i, int j, bool visible, float lse2, float d_row,
                                  bool kept, float keep_scale) {
    if (!visible) return ScoreGrad{0.0f, 0.0f};
    const float p = fast_exp2(score.logit2(qk, i, j) - lse2);
    float dp_kept = dp;
    float p_kept = p;
    if (HasDropout) {
        dp_kept = kept ? dp * keep_scale : 0.0f;
        p_kept = kept ? p * keep_scale : 0.0f;
    }
    return ScoreGrad{p_kept, p * (dp_kept - d_row) * score.softcap_grad(qk)};
}

/* Writes 4 consecutive elements (dims 32·db + 8·g + 4·(lane / 32) …) of a row, scaled. */
template <int DType>
FA_CK_DEVICE void store_row4(uint16_t* row, const Acc& acc, int db, int g, float scale, int columns) {
    const int dim = db * kMfmaM + MfmaLayout::acc_row(lane_id(), 4 * g);
    if (dim >= columns) return;
    Pack4 r;
#pragma unroll
    for (int e = 0; e < 4; ++e) pack_set(r, e, Element<DType>::from_float(acc[4 * g + e] * scale));
    store_pod(row + dim, r);
}

template <class Shape, bool HasDropout>
struct FmhaBwdDkDvKernel {
    static constexpr int kDType = Shape::kDType;
    static constexpr int kThreads = Shape::kThreads;
    using E = Element<kDType>;

    struct SharedStorage {
        uint16_t q[Shape::kTileElements];
        uint16_t dout[Shape::kTileElements];
        float lse2[Shape::kStep]; /* LSE · log2e of the step's queries; +inf past the sequence */
        float d[Shape::kStep];
    };

    static FA_CK_DEVICE void run(const FmhaArgs& a, SharedStorage& smem) {
        const int hk = static_cast<int>(blockIdx.y), b = static_cast<int>(blockIdx.z);
        const SeqInfo seq = SeqInfo::make(a, b);
        const int j0 = static_cast<int>(blockIdx.x) * Shape::kBlockRows;
        if (j0 >= seq.sk) return;
        const int lane = lane_id();
        const int j = j0 + wave_id() * kMfmaN + MfmaLayout::acc_col(lane); /* this lane's key */
        const FmhaMask mask = FmhaMask::make(a.window_left, a.window_right, seq.sq, seq.sk);

        /* K and V fragments (B operands of S = Q·K^T and dP = dO·V^T): dims 8·kk + 4·(lane / 32) + e of key j. */
        Pack4 k[Shape::kDSlices], v[Shape::kDSlices];
        const uint16_t* k_row = static_cast<const uint16_t*>(a.k.data) + (j < seq.sk ? seq.k_offset(a, a.k, j, hk) : 0);
        const uint16_t* v_row = static_cast<const uint16_t*>(a.v.data) + (j < seq.sk ? seq.k_offset(a, a.v, j, hk) : 0);
#pragma unroll
        for (int kk = 0; kk < Shape::kDSlices; ++kk) {
            const int dim = kk * kMfmaK + MfmaLayout::operand_k(lane, 0);
            k[kk] = load_global_operand(k_row + dim, j < seq.sk && dim < a.headdim_qk);
            v[kk] = load_global_operand(v_row + dim, j < seq.sk && dim < a.headdim_v);
        }
        Acc dk[Shape::kDBlocks], dv[Shape::kDBlocks];
#pragma unroll
        for (int db = 0; db < Shape::kDBlocks; ++db) {
            acc_zero(dk[db]);
            acc_zero(dv[db]);
        }

        int query_begin, query_end;
        mask.query_range(j0, j0 + Shape::kBlockRows, query_begin, query_end);
        const int step_begin = query_begin / Shape::kStep;
        const int step_end = query_end > query_begin ? (query_end + Shape::kStep - 1) / Shape::kStep : step_begin;
        BlockTileLoader<Shape> q_tile, do_tile;
        for (int g = 0; g < a.group; ++g) {
            const int h = hk * a.group + g;
            const ScoreMod score = ScoreMod::make(a, b, h, seq.sq, seq.sk);
            const BlockDropout dropout = BlockDropout::make(a, b, h);
            const uint16_t* q_base = static_cast<const uint16_t*>(a.q.data);
            const uint16_t* do_base = static_cast<const uint16_t*>(a.dout.data);
            block_pipeline(
                step_begin, step_end,
                [&](int step) {
                    const int m0 = step * Shape::kStep;
                    q_tile.load([&](int r) { return m0 + r < seq.sq ? q_base + seq.q_offset(a.q, m0 + r, h) : nullptr; }, a.headdim_qk);
                    do_tile.load([&](int r) { return m0 + r < seq.sq ? do_base + seq.q_offset(a.dout, m0 + r, h) : nullptr; }, a.headdim_v);
                },
                [&](int step) {
                    q_tile.store(smem.q);
                    do_tile.store(smem.dout);
                    /* the step's LSE (exp2 domain) and D rows; +inf / 0 past the sequence */
                    for (int r = static_cast<int>(threadIdx.x); r < Shape::kStep; r += kThreads) {
                        const int i = step * Shape::kStep + r;
                        smem.lse2[r] = i < seq.sq ? a.lse[seq.lse_index(a, i, h)] * kLog2e : kInfinity;
                        smem.d[r] = i < seq.sq ? a.d_rows[seq.row_index(a, i, h)] : 0.0f;
                    }
                },
                [&](int step) {
                    const int m0 = step * Shape::kStep;
                    const bool need_mask = !mask.tile_all_visible(m0, m0 + Shape::kStep, j0, j0 + Shape::kBlockRows);
                    accumulate_step(smem, k, v, dk, dv, score, mask, dropout, need_mask, m0, j);
                });
        }

        if (j >= seq.sk) return;
        uint16_t* dk_row = static_cast<uint16_t*>(const_cast<void*>(a.dk.data)) + seq.k_offset(a, a.dk, j, hk);
        uint16_t* dv_row = static_cast<uint16_t*>(const_cast<void*>(a.dv.data)) + seq.k_offset(a, a.dv, j, hk);
#pragma unroll
        for (int db = 0; db < Shape::kDBlocks; ++db)
#pragma unroll
            for (int g = 0; g < kAccRegs / 4; ++g) {
                store_row4<kDType>(dk_row, dk[db], db, g, a.softmax_scale, a.headdim_qk);
                store_row4<kDType>(dv_row, dv[db], db, g, 1.0f, a.headdim_v);
            }
    }

    /* One step of kStep queries starting at m0 against the lane's key j. */
    static FA_CK_DEVICE void accumulate_step(const SharedStorage& smem, const Pack4 (&k)[Shape::kDSlices],
                                             const Pack4 (&v)[Shape::kDSlices], Acc (&dk)[Shape::kDBlocks],
                                             Acc (&dv)[Shape::kDBlocks], const ScoreMod& score, const FmhaMask& mask,
                                             const BlockDropout& dropout, bool need_mask, int m0, int j) {
        static_assert(Shape::kStep == kMfmaM, "FmhaBwdDkDvKernel: one 32-query MFMA block per step");
        const int lane = lane_id();
        Acc s, dp;
        acc_zero(s);
        acc_zero(dp);
#pragma unroll
        for (int kk = 0; kk < Shape::kDSlices; ++kk) {
            const int row = MfmaLayout::operand_row(lane), column = kk * kMfmaK + MfmaLayout::operand_k(lane, 0);
            mfma_32x32x8<kDType>(read_row_operand<Shape>(smem.q, row, column), k[kk], s);
            mfma_32x32x8<kDType>(read_row_operand<Shape>(smem.dout, row, column), v[kk], dp);
        }
        /* s becomes P̃ and dp becomes dS, element by element (row = query, column = key j). */
#pragma unroll
        for (int r = 0; r < kAccRegs; ++r) {
            const int row = MfmaLayout::acc_row(lane, r), i = m0 + row;
            const bool visible = !need_mask || mask.visible(i, j);
            const bool kept = HasDropout ? dropout.keep(i, j) : true;
            const ScoreGrad grad = score_grad<HasDropout>(score, s[r], dp[r], i, j, visible, smem.lse2[row], smem.d[row], kept,
                                                          dropout.keep_scale);
            s[r] = grad.p;
            dp[r] = grad.ds;
        }
        /* B operands over the step's queries: slice sl is registers 4·sl … 4·sl + 3. */
        Pack4 p[Shape::kStepSlices], ds[Shape::kStepSlices];
#pragma unroll
        for (int sl = 0; sl < Shape::kStepSlices; ++sl)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                pack_set(p[sl], e, E::from_float(s[4 * sl + e]));
                pack_set(ds[sl], e, E::from_float(dp[4 * sl + e]));
            }
#pragma unroll
        for (int db = 0; db < Shape::kDBlocks; ++db)
#pragma unroll
            for (int sl = 0; sl < Shape::kStepSlices; ++sl) {
                const int row = sl * kMfmaK + MfmaLayout::operand_k(lane, 0), column = db * kMfmaM + MfmaLayout::operand_row(lane);
                mfma_32x32x8<kDType>(read_column_operand<Shape>(smem.dout, row, column), p[sl], dv[db]);
                mfma_32x32x8<kDType>(read_column_operand<Shape>(smem.q, row, column), ds[sl], dk[db]);
            }
    }
};

template <class Shape, bool HasDropout>
struct FmhaBwdDqKernel {
    static constexpr int kDType = Shape::kDType;
    static constexpr int kThreads = Shape::kThreads;
    using E = Element<kDType>;

    struct SharedStorage {
        uint16_t k[Shape::kTileElements];
        uint16_t v[Shape::kTileElements];
    };

    static FA_CK_DEVICE void run(const FmhaArgs& a, SharedStorage& smem) {
        const int h = static_cast<int>(blockIdx.y), b = static_cast<int>(blockIdx.z);
        const SeqInfo seq = SeqInfo::make(a, b);
        const int i0 = static_cast<int>(blockIdx.x) * Shape::kBlockRows;
        if (i0 >= seq.sq) return;
        const int hk = h / a.group;
        const int lane = lane_id();
        const int i = i0 + wave_id() * kMfmaN + MfmaLayout::acc_col(lane); /* this lane's query */
        const FmhaMask mask = FmhaMask::make(a.window_left, a.window_right, seq.sq, seq.sk);
        const ScoreMod score = ScoreMod::make(a, b, h, seq.sq, seq.sk);
        const BlockDropout dropout = BlockDropout::make(a, b, h);

        Pack4 q[Shape::kDSlices], dout[Shape::kDSlices];
        const bool real = i < seq.sq;
        const uint16_t* q_row = static_cast<const uint16_t*>(a.q.data) + (real ? seq.q_offset(a.q, i, h) : 0);
        const uint16_t* do_row = static_cast<const uint16_t*>(a.dout.data) + (real ? seq.q_offset(a.dout, i, h) : 0);
#pragma unroll
        for (int kk = 0; kk < Shape::kDSlices; ++kk) {
            const int dim = kk * kMfmaK + MfmaLayout::operand_k(lane, 0);
            q[kk] = load_global_operand(q_row + dim, real && dim < a.headdim_qk);
            dout[kk] = load_global_operand(do_row + dim, real && dim < a.headdim_v);
        }
        const float lse2 = real ? a.lse[seq.lse_index(a, i, h)] * kLog2e : kInfinity;
        const float d_row = real ? a.d_rows[seq.row_index(a, i, h)] : 0.0f;
        Acc dq[Shape::kDBlocks];
#pragma unroll
        for (int db = 0; db < Shape::kDBlocks; ++db) acc_zero(dq[db]);

        int key_begin, key_end;
        mask.key_range(i0, i0 + Shape::kBlockRows, key_begin, key_end);
        const int step_begin = key_begin / Shape::kStep;
        const int step_end = key_end > key_begin ? (key_end + Shape::kStep - 1) / Shape::kStep : step_begin;
        walk_key_steps<Shape>(a, seq, hk, mask, i0, i0 + Shape::kBlockRows, step_begin, step_end, smem.k, smem.v, [&](int n0, bool need_mask) {
            accumulate_step(smem, q, dout, dq, score, mask, dropout, need_mask, lse2, d_row, i, n0);
        });

        if (!real) return;
        uint16_t* dq_row = static_cast<uint16_t*>(const_cast<void*>(a.dq.data)) + seq.q_offset(a.dq, i, h);
#pragma unroll
        for (int db = 0; db < Shape::kDBlocks; ++db)
#pragma unroll
            for (int g = 0; g < kAccRegs / 4; ++g) store_row4<kDType>(dq_row, dq[db], db, g, a.softmax_scale, a.headdim_qk);
    }

    static FA_CK_DEVICE void accumulate_step(const SharedStorage& smem, const Pack4 (&q)[Shape::kDSlices],
                                             const Pack4 (&dout)[Shape::kDSlices], Acc (&dq)[Shape::kDBlocks],
                                             const ScoreMod& score, const FmhaMask& mask, const BlockDropout& dropout,
                                             bool need_mask, float lse2, float d_row, int i, int n0) {
        const int lane = lane_id();
        Acc s[Shape::kStepBlocks], dp[Shape::kStepBlocks];
#pragma unroll
        for (int t = 0; t < Shape::kStepBlocks; ++t) {
            acc_zero(s[t]);
            acc_zero(dp[t]);
#pragma unroll
            for (int kk = 0; kk < Shape::kDSlices; ++kk) {
                const int row = t * kMfmaM + MfmaLayout::operand_row(lane), column = kk * kMfmaK + MfmaLayout::operand_k(lane, 0);
                mfma_32x32x8<kDType>(read_row_operand<Shape>(smem.k, row, column), q[kk], s[t]);
                mfma_32x32x8<kDType>(read_row_operand<Shape>(smem.v, row, column), dout[kk], dp[t]);
            }
        }
        /* dS^T element by element (row = key, column = query i); dS^T slices are B operands of dQ^T. */
        Pack4 ds[Shape::kStepSlices];
#pragma unroll
        for (int t = 0; t < Shape::kStepBlocks; ++t)
#pragma unroll
            for (int g = 0; g < kAccRegs / 4; ++g) {
                const int j4 = n0 + t * kMfmaM + MfmaLayout::acc_row(lane, 4 * g);
                const unsigned kept = HasDropout ? dropout.keep4(i, j4) : 0xfu;
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int r = 4 * g + e, jj = j4 + e;
                    const bool visible = !need_mask || mask.visible(i, jj);
                    const ScoreGrad grad = score_grad<HasDropout>(score, s[t][r], dp[t][r], i, jj, visible, lse2, d_row,
                                                                  (kept >> e) & 1u, dropout.keep_scale);
                    pack_set(ds[t * 4 + g], e, E::from_float(grad.ds));
                }
            }
#pragma unroll
        for (int db = 0; db < Shape::kDBlocks; ++db)
#pragma unroll
            for (int sl = 0; sl < Shape::kStepSlices; ++sl) {
                const Pack4 kt = read_column_operand<Shape>(smem.k, sl * kMfmaK + MfmaLayout::operand_k(lane, 0),
                                                            db * kMfmaM + MfmaLayout::operand_row(lane));
                mfma_32x32x8<kDType>(kt, ds[sl], dq[db]);
            }
    }
};

}  // namespace fa_ck

#endif  // FA_CK_FMHA_BWD_KERNEL_H

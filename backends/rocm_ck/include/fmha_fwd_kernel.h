/*
 * fmha_fwd_kernel.h — the forward attention kernel (CK: FmhaFwdKernel over the pipeline
 * BlockFmhaPipelineQRKSVS: Q in registers, K and V staged in LDS).
 *
 * A block owns kBlockRows queries of one (sequence, query head) — and, for split-KV, one
 * contiguous share of the key steps. Each wave owns 32 queries; lane l holds query l % 32 in
 * every accumulator (the transposed form of ck_mfma.h):
 *
 *   S^T (step × 32 queries) = K · Q^T       A = K rows from LDS, B = Q fragments in registers
 *   softmax over S^T's rows, per query: 16 values per 32 keys in the lane, the other 16 in
 *       lane l ^ 32 (one exchange per step for the running max; the sums meet at the end)
 *   O^T (d × 32 queries) += V^T · P^T      A = V columns from LDS, B = P^T straight from S^T
 *
 * The running max m is kept in the exp2 domain; rescaling O^T by exp2(m_old − m_new) touches
 * one factor per lane. A query that sees no key ends with l = 0: out 0 and LSE +inf (a sink
 * logit h: out 0, LSE = sink). Split-KV blocks write fp32 partials normalised by their own l,
 * with LSE −inf when empty; the combine (fmha_aux_kernels.h) adds the sink.
 */
#ifndef FA_CK_FMHA_FWD_KERNEL_H
#define FA_CK_FMHA_FWD_KERNEL_H

#include "ck_mfma.h"
#include "fmha_args.h"
#include "fmha_block_tile.h"
#include "fmha_dropout.h"
#include "fmha_mask.h"
#include "fmha_score.h"
#include "fmha_seqlen.h"
#include "fmha_tile_shape.h"

namespace fa_ck {

template <class Shape, bool HasDropout, bool IsSplit>
struct FmhaFwdKernel {
    static constexpr int kDType = Shape::kDType;
    static constexpr int kThreads = Shape::kThreads;
    using E = Element<kDType>;

    struct SharedStorage {
        uint16_t k[Shape::kTileElements];
        uint16_t v[Shape::kTileElements];
    };

    /* The state one lane carries through the key loop for its query. */
    struct RowState {
        Acc o[Shape::kDBlocks]; /* O^T: dims 32·db + acc_row(v) of the lane's query */
        float m;                /* running max, exp2 domain; -inf until a key is seen */
        float l;                /* this lane's half of the running sum */
    };

    static FA_CK_DEVICE void run(const FmhaArgs& a, SharedStorage& smem) {
        // Packed GQA (a.pack > 1, kv cache): grid y is a kv head, h0 the first query head of its group, and block
        // row r is query r / pack of head h0 + r % pack, so the group reads K/V once. Else pack = 1: row r is query r.
        const int pack = a.pack;
        const int h0 = static_cast<int>(blockIdx.y) * pack;
        const int b = IsSplit ? static_cast<int>(blockIdx.z) / a.num_splits : static_cast<int>(blockIdx.z);
        const int split = IsSplit ? static_cast<int>(blockIdx.z) % a.num_splits : 0;
        const SeqInfo seq = SeqInfo::make(a, b);
        const int r0 = static_cast<int>(blockIdx.x) * Shape::kBlockRows;
        if (r0 >= seq.sq * pack) return; /* uniform over the block: before any barrier */
        const int i0 = r0 / pack, i1 = (r0 + Shape::kBlockRows - 1) / pack + 1; /* the block's queries [i0, i1) */

        const int hk = h0 / a.group;
        const FmhaMask mask = FmhaMask::make(a.window_left, a.window_right, seq.sq, seq.sk);
        int step_begin, step_end;
        key_steps(a, seq, mask, i0, i1, split, step_begin, step_end);

        const int lane = lane_id();
        const int r = r0 + wave_id() * kMfmaN + MfmaLayout::acc_col(lane); /* this lane's row */
        const int i = r / pack;                                             /* its query (≥ sq past the rows) */
        const int h = h0 + r % pack;                                        /* and head */

        /* Q^T fragments: B operand slice kk holds dims 8·kk + 4·(lane / 32) + e of query i. */
        Pack4 q[Shape::kDSlices];
        const uint16_t* q_row = static_cast<const uint16_t*>(a.q.data) + (i < seq.sq ? seq.q_offset(a.q, i, h) : 0);
#pragma unroll
        for (int kk = 0; kk < Shape::kDSlices; ++kk) {
            const int dim = kk * kMfmaK + MfmaLayout::operand_k(lane, 0);
            q[kk] = load_global_operand(q_row + dim, i < seq.sq && dim < a.headdim_qk);
        }

        RowState row;
#pragma unroll
        for (int db = 0; db < Shape::kDBlocks; ++db) acc_zero(row.o[db]);
        row.m = -kInfinity;
        row.l = 0.0f;

        // Per block: ALiBi's slope and dropout's stream are per head, and a packed block has none of them (fmha_plan.h).
        const ScoreMod score = ScoreMod::make(a, b, h0, seq.sq, seq.sk);
        const BlockDropout dropout = BlockDropout::make(a, b, h0);
        walk_key_steps<Shape>(a, seq, hk, mask, i0, i1, step_begin, step_end, smem.k, smem.v, [&](int n0, bool need_mask) {
            attend_step(smem, q, row, score, mask, dropout, need_mask, i, n0);
        });

        if (IsSplit)
            store_partial(a, seq, h, split, i, row);
        else
            store_output(a, seq, h, i, row);
    }

    /* Key steps [begin, end) of this block: those its queries [i0, i1) see, cut to the split's share. */
    static FA_CK_DEVICE void key_steps(const FmhaArgs& a, const SeqInfo& seq, const FmhaMask& mask, int i0, int i1, int split,
                                       int& begin, int& end) {
        int key_begin, key_end;
        mask.key_range(i0, i1, key_begin, key_end);
        begin = key_begin / Shape::kStep;
        end = key_end > key_begin ? (key_end + Shape::kStep - 1) / Shape::kStep : begin;
        if (IsSplit) {
            const int steps = (seq.sk + Shape::kStep - 1) / Shape::kStep;
            const int per_split = (steps + a.num_splits - 1) / a.num_splits;
            const int lo = split * per_split, hi = lo + per_split < steps ? lo + per_split : steps;
            begin = begin > lo ? begin : lo;
            end = end < hi ? end : hi;
        }
    }

    /* One step of kStep keys starting at n0: S^T, the online softmax, O^T += V^T · P^T. */
    static FA_CK_DEVICE void attend_step(const SharedStorage& smem, const Pack4 (&q)[Shape::kDSlices], RowState& row,
                                         const ScoreMod& score, const FmhaMask& mask, const BlockDropout& dropout, bool need_mask,
                                         int i, int n0) {
        const int lane = lane_id();
        Acc s[Shape::kStepBlocks];
#pragma unroll
        for (int t = 0; t < Shape::kStepBlocks; ++t) {
            acc_zero(s[t]);
#pragma unroll
            for (int kk = 0; kk < Shape::kDSlices; ++kk) {
                const Pack4 k = read_row_operand<Shape>(smem.k, t * kMfmaM + MfmaLayout::operand_row(lane),
                                                        kk * kMfmaK + MfmaLayout::operand_k(lane, 0));
                mfma_32x32x8<kDType>(k, q[kk], s[t]);
            }
        }

        /* Logits (exp2 domain), masked to -inf, and this step's max over the query's keys. */
        float step_max = -kInfinity;
#pragma unroll
        for (int t = 0; t < Shape::kStepBlocks; ++t) {
#pragma unroll
            for (int v = 0; v < kAccRegs; ++v) {
                const int j = n0 + t * kMfmaM + MfmaLayout::acc_row(lane, v);
                float x = score.logit2(s[t][v], i, j);
                if (need_mask && !mask.visible(i, j)) x = -kInfinity;
                s[t][v] = x;
                step_max = x > step_max ? x : step_max;
            }
        }
        const float other_half = shfl_xor_32(step_max);
        step_max = other_half > step_max ? other_half : step_max;
        const float m_new = row.m > step_max ? row.m : step_max;
        const float m_use = m_new == -kInfinity ? 0.0f : m_new; /* no key seen yet: exp2(-inf - 0) = 0 */
        const float rescale = fast_exp2(row.m - m_use);
        row.m = m_new;
        row.l *= rescale;
#pragma unroll
        for (int db = 0; db < Shape::kDBlocks; ++db)
#pragma unroll
            for (int v = 0; v < kAccRegs; ++v) row.o[db][v] *= rescale;

        /* P = exp2(x − m); l sums P before dropout, O sums the dropped and rescaled P. */
#pragma unroll
        for (int t = 0; t < Shape::kStepBlocks; ++t) {
#pragma unroll
            for (int g = 0; g < kAccRegs / 4; ++g) {
                unsigned kept = 0xfu;
                if (HasDropout) kept = dropout.keep4(i, n0 + t * kMfmaM + MfmaLayout::acc_row(lane, 4 * g));
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const float p = fast_exp2(s[t][4 * g + e] - m_use);
                    row.l += p;
                    s[t][4 * g + e] = HasDropout ? ((kept >> e) & 1u ? p * dropout.keep_scale : 0.0f) : p;
                }
            }
        }

        /* P^T as B operands: slice sl covers keys 8·sl … 8·sl + 7 of the step, registers 4·(sl % 4) + e of block sl / 4. */
        Pack4 p[Shape::kStepSlices];
#pragma unroll
        for (int sl = 0; sl < Shape::kStepSlices; ++sl)
#pragma unroll
            for (int e = 0; e < 4; ++e) pack_set(p[sl], e, E::from_float(s[sl / 4][4 * (sl % 4) + e]));

#pragma unroll
        for (int db = 0; db < Shape::kDBlocks; ++db) {
#pragma unroll
            for (int sl = 0; sl < Shape::kStepSlices; ++sl) {
                const Pack4 vt = read_column_operand<Shape>(smem.v, sl * kMfmaK + MfmaLayout::operand_k(lane, 0),
                                                            db * kMfmaM + MfmaLayout::operand_row(lane));
                mfma_32x32x8<kDType>(vt, p[sl], row.o[db]);
            }
        }
    }

    /* The lane's 4 consecutive dims 32·db + 8·g + 4·(lane / 32) … + 3, scaled. */
    static FA_CK_DEVICE Pack4 pack_out(const Acc& o, int g, float scale) {
        Pack4 r;
#pragma unroll
        for (int e = 0; e < 4; ++e) pack_set(r, e, E::from_float(o[4 * g + e] * scale));
        return r;
    }

    static FA_CK_DEVICE void store_output(const FmhaArgs& a, const SeqInfo& seq, int h, int i, const RowState& row) {
        const int lane = lane_id();
        const float l = row.l + shfl_xor_32(row.l);
        float scale, lse;
        if (a.sink_logits != nullptr) {
            /* The sink is one more logit in the denominator: m_f = max(m, sink). */
            const float sink = a.sink_logits[h] * kLog2e;
            const float m_f = row.m > sink ? row.m : sink;
            const float kept = fast_exp2(row.m - m_f);
            const float l_f = l * kept + fast_exp2(sink - m_f);
            scale = kept / l_f;
            lse = (m_f + accurate_log2(l_f)) * kLn2;
        } else {
            scale = l > 0.0f ? 1.0f / l : 0.0f;
            lse = l > 0.0f ? (row.m + accurate_log2(l)) * kLn2 : kInfinity;
        }
        if (i >= seq.sq) return;
        uint16_t* out = static_cast<uint16_t*>(const_cast<void*>(a.out.data)) + seq.q_offset(a.out, i, h);
#pragma unroll
        for (int db = 0; db < Shape::kDBlocks; ++db) {
#pragma unroll
            for (int g = 0; g < kAccRegs / 4; ++g) {
                const int dim = db * kMfmaM + MfmaLayout::acc_row(lane, 4 * g);
                if (dim < a.headdim_v) store_pod(out + dim, pack_out(row.o[db], g, scale));
            }
        }
        if (a.lse != nullptr && lane < 32) a.lse[seq.lse_index(a, i, h)] = lse;
    }

    static FA_CK_DEVICE void store_partial(const FmhaArgs& a, const SeqInfo& seq, int h, int split, int i, const RowState& row) {
        const int lane = lane_id();
        const float l = row.l + shfl_xor_32(row.l);
        if (i >= seq.sq) return;
        const int64_t rows = static_cast<int64_t>(a.nheads_q) * a.total_q;
        const int64_t index = split * rows + seq.row_index(a, i, h);
        const float scale = l > 0.0f ? 1.0f / l : 0.0f;
        float* o = a.o_partial + index * a.headdim_v;
#pragma unroll
        for (int db = 0; db < Shape::kDBlocks; ++db) {
#pragma unroll
            for (int v = 0; v < kAccRegs; ++v) {
                const int dim = db * kMfmaM + MfmaLayout::acc_row(lane, v);
                if (dim < a.headdim_v) o[dim] = row.o[db][v] * scale;
            }
        }
        if (lane < 32) a.lse_partial[index] = l > 0.0f ? (row.m + accurate_log2(l)) * kLn2 : -kInfinity;
    }
};

}  // namespace fa_ck

#endif  // FA_CK_FMHA_FWD_KERNEL_H

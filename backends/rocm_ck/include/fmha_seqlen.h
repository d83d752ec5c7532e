/*
 * fmha_seqlen.h — one sequence of a call as the kernels see it: its query and key counts, the
 * offsets of its rows, and where key j lives (dense, varlen, kv-cache entry or paged), after
 * docs/semantics.md "Per-sequence lengths". Built once per block.
 */
#ifndef FA_CK_FMHA_SEQLEN_H
#define FA_CK_FMHA_SEQLEN_H

#include "ck_arch.h"
#include "fmha_args.h"

namespace fa_ck {

struct SeqInfo {
    int b;            /* sequence */
    int sq;           /* query rows */
    int sk;           /* keys (raw rows − leftpad) */
    int64_t q_row0;   /* first row of the sequence in the (total_q) row space: dense b·sq, varlen cu_seqlens_q[b] */
    bool varlen;
    int leftpad;      /* raw rows before key 0 */
    int kv_entry;     /* batch entry of k/v (dense, kv cache without paging) */
    int64_t k_row0;   /* varlen: cu_seqlens_k[b] (raw row 0 in the k/v row space) */

    FA_CK_DEVICE static SeqInfo make(const FmhaArgs& a, int b) {
        SeqInfo s{};
        s.b = b;
        s.varlen = a.cu_seqlens_q != nullptr;
        if (s.varlen) {
            s.q_row0 = a.cu_seqlens_q[b];
            s.sq = a.cu_seqlens_q[b + 1] - a.cu_seqlens_q[b];
            s.k_row0 = a.cu_seqlens_k[b];
        } else {
            s.q_row0 = static_cast<int64_t>(b) * a.seqlen_q;
            s.sq = a.seqlen_q;
            s.k_row0 = 0;
        }
        int raw;
        if (a.cache_seqlens != nullptr)
            raw = a.cache_seqlens[b] + a.seqlen_new;
        else if (s.varlen)
            raw = a.cu_seqlens_k[b + 1] - a.cu_seqlens_k[b];
        else
            raw = a.seqlen_k;
        if (a.seqused_k != nullptr) raw = a.seqused_k[b];
        s.leftpad = a.leftpad_k != nullptr ? a.leftpad_k[b] : 0;
        s.sk = raw - s.leftpad > 0 ? raw - s.leftpad : 0;
        s.kv_entry = a.cache_batch_idx != nullptr ? a.cache_batch_idx[b] : b;
        return s;
    }

    /* Element offset of q/out/dout/dq row i (a query of this sequence), head h. */
    FA_CK_DEVICE int64_t q_offset(const TensorView& t, int i, int h) const {
        const int64_t batch = varlen ? 0 : static_cast<int64_t>(b) * t.batch_stride;
        const int64_t row = varlen ? q_row0 + i : i;
        return batch + row * t.row_stride + static_cast<int64_t>(h) * t.head_stride;
    }

    /* Element offset of raw row r (before leftpad) of kv head hk in k/v (or dk/dv). */
    FA_CK_DEVICE int64_t raw_offset(const FmhaArgs& a, const TensorView& t, int64_t raw, int hk) const {
        int64_t offset;
        if (a.block_table != nullptr) {
            const int page = a.block_table[static_cast<int64_t>(b) * a.block_table_batch_stride + raw / a.page_size];
            offset = static_cast<int64_t>(page) * t.batch_stride + (raw % a.page_size) * t.row_stride;
        } else if (varlen) {
            offset = (k_row0 + raw) * t.row_stride;
        } else {
            offset = static_cast<int64_t>(kv_entry) * t.batch_stride + raw * t.row_stride;
        }
        return offset + static_cast<int64_t>(hk) * t.head_stride;
    }

    /* Element offset of key j (0-based after leftpad) of kv head hk. */
    FA_CK_DEVICE int64_t k_offset(const FmhaArgs& a, const TensorView& t, int j, int hk) const {
        return raw_offset(a, t, static_cast<int64_t>(leftpad) + j, hk);
    }

    /* Index of row i's LSE: dense (b, h, i), varlen (h, cu_seqlens_q[b] + i). */
    FA_CK_DEVICE int64_t lse_index(const FmhaArgs& a, int i, int h) const {
        const int64_t head = static_cast<int64_t>(h) * a.lse_head_stride;
        return varlen ? head + q_row0 + i : static_cast<int64_t>(b) * a.lse_batch_stride + head + i;
    }

    /* Index of row i, head h in the (hq, total_q) scratch arrays (split partials, D). */
    FA_CK_DEVICE int64_t row_index(const FmhaArgs& a, int i, int h) const {
        return static_cast<int64_t>(h) * a.total_q + q_row0 + i;
    }
};

}  // namespace fa_ck

#endif  // FA_CK_FMHA_SEQLEN_H

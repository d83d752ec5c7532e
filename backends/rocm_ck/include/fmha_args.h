/*
 * fmha_args.h — the kernels' argument block (CK: "kargs"), filled once per call on the host
 * from fa_params and passed by value. Strides are in elements; offsets are computed in 64 bits.
 * One block serves every kernel of the backend; a kernel reads the fields it needs.
 */
#ifndef FA_CK_FMHA_ARGS_H
#define FA_CK_FMHA_ARGS_H

#include <math.h>
#include <stdint.h>

#include "fa_backend_entry.h"
#include "fa_philox.h"
#include "flash_attn_abi.h"

namespace fa_ck {

struct TensorView {
    const void* data;
    int64_t batch_stride, row_stride, head_stride;
};

struct FmhaArgs {
    // ---- tensors -------------------------------------------------------------------------
    TensorView q, k, v, out;
    TensorView dout, dq, dk, dv; /* backward */
    float* lse;                  /* fwd: optional output; bwd: input */
    int64_t lse_batch_stride, lse_head_stride;

    // ---- sizes ---------------------------------------------------------------------------
    int batch, nheads_q, nheads_kv, group; /* group = nheads_q / nheads_kv */
    int seqlen_q, seqlen_k;                /* dense sizes (varlen: maxima; kv cache: capacity) */
    int headdim_qk, headdim_v;             /* the problem's, <= the instance's bucket */
    int total_q;

    // ---- per-sequence lengths (docs/semantics.md "Per-sequence lengths") ----------------
    const int32_t* cu_seqlens_q; /* NULL = dense */
    const int32_t* cu_seqlens_k;
    const int32_t* seqused_k;
    const int32_t* leftpad_k;
    const int32_t* cache_seqlens; /* kv cache: raw keys = cache_seqlens[b] + seqlen_new */
    int seqlen_new;
    const int32_t* cache_batch_idx;
    const int32_t* block_table; /* paged: raw row r at page block_table[b][r / page_size] */
    int64_t block_table_batch_stride;
    int page_size;

    // ---- KV-cache append and rotary (fa_forward_kvcache) -----------------------------------
    TensorView k_new, v_new;   /* (batch, seqlen_new, hk, d | dv) */
    const void* rotary_cos;    /* (seqlen_rotary, rotary_dim / 2) in dtype */
    const void* rotary_sin;
    int rotary_dim;            /* 0 = none */
    int rotary_interleaved;

    // ---- scores --------------------------------------------------------------------------
    float softmax_scale;
    float scale_log2;  /* softmax_scale · log2(e): scores go to the exp2 domain in one multiply */
    float score_scale; /* multiplies q·k before the softcap (softmax_scale / softcap with it) */
    float softcap;     /* 0 = off */
    int window_left;   /* normalised: -1 = unbounded; causal has window_right = 0 */
    int window_right;
    const float* alibi_slopes;
    int64_t alibi_batch_stride;
    const float* sink_logits;
    float* dsink;

    // ---- dropout -------------------------------------------------------------------------
    uint64_t dropout_seed, dropout_offset;
    uint32_t dropout_threshold; /* floor(p · 2^32) */
    float dropout_keep_scale;   /* 1 / (1 − p) */

    // ---- split-KV partials and backward scratch --------------------------------------------
    int num_splits;
    int pack;           /* kv cache: query heads per kv head in one block's rows (packed GQA, fmha_plan.h), else 1 */
    float* o_partial;   /* (splits, hq · total_q, dv) */
    float* lse_partial; /* (splits, hq · total_q) */
    float* d_rows;      /* backward: D = rowsum(dO ∘ O), (hq, total_q) */
};

inline TensorView view_of(const fa_tensor& t) { return TensorView{t.data, t.batch_stride, t.row_stride, t.head_stride}; }

inline FmhaArgs make_args(const fa_params& p) {
    FmhaArgs a{};
    a.q = view_of(p.q);
    a.k = view_of(p.k);
    a.v = view_of(p.v);
    a.out = view_of(p.out);
    a.dout = view_of(p.dout);
    a.dq = view_of(p.dq);
    a.dk = view_of(p.dk);
    a.dv = view_of(p.dv);
    a.lse = p.softmax_lse;
    a.lse_batch_stride = p.lse_batch_stride;
    a.lse_head_stride = p.lse_head_stride;
    a.batch = p.batch;
    a.nheads_q = p.nheads_q;
    a.nheads_kv = p.nheads_kv;
    a.group = p.nheads_q / p.nheads_kv;
    a.seqlen_q = p.seqlen_q;
    a.seqlen_k = p.seqlen_k;
    a.headdim_qk = p.headdim_qk;
    a.headdim_v = p.headdim_v;
    a.total_q = p.total_q;
    a.cu_seqlens_q = p.cu_seqlens_q;
    a.cu_seqlens_k = p.cu_seqlens_k;
    a.seqused_k = p.seqused_k;
    a.leftpad_k = p.leftpad_k;
    a.cache_seqlens = p.cache_seqlens;
    a.seqlen_new = p.k_new.data != nullptr ? p.seqlen_new : 0;
    a.cache_batch_idx = p.cache_batch_idx;
    a.block_table = p.block_table;
    a.block_table_batch_stride = p.block_table_batch_stride;
    a.page_size = p.page_size;
    a.k_new = view_of(p.k_new);
    a.v_new = view_of(p.v_new);
    a.rotary_cos = p.rotary_cos;
    a.rotary_sin = p.rotary_sin;
    a.rotary_dim = p.rotary_dim;
    a.rotary_interleaved = p.rotary_interleaved;
    a.softmax_scale = p.softmax_scale;
    a.scale_log2 = p.softmax_scale * 1.4426950408889634f;
    a.softcap = p.softcap;
    a.score_scale = p.softcap > 0.0f ? p.softmax_scale / p.softcap : p.softmax_scale;
    fa_entry::normalise_window(p, a.window_left, a.window_right);
    a.alibi_slopes = p.alibi_slopes;
    a.alibi_batch_stride = p.alibi_batch_stride;
    a.sink_logits = p.sink_logits;
    a.dsink = p.dsink;
    a.dropout_seed = p.dropout_seed;
    a.dropout_offset = p.dropout_offset;
    a.dropout_threshold = fa_philox::keep_threshold(p.dropout_p);
    a.dropout_keep_scale = 1.0f / (1.0f - p.dropout_p);
    a.num_splits = 1;
    a.pack = 1;
    return a;
}

}  // namespace fa_ck

#endif  // FA_CK_FMHA_ARGS_H

/*
 * flash_fwd_args.cuh — the forward kernels' argument block, filled once per call on the host
 * from fa_params (flash_fwd_launch.cuh) and passed by value as a __grid_constant__.
 * Strides are in elements; every offset is computed in 64 bits.
 */
#ifndef FA_SM80_FLASH_FWD_ARGS_CUH
#define FA_SM80_FLASH_FWD_ARGS_CUH

#include <cstdint>

#include "philox.cuh"

namespace fa_sm80 {

struct FwdArgs {
    // ---- tensors -------------------------------------------------------------------------
    const void* q;
    const void* k;
    const void* v;
    void* out;
    int64_t q_batch_stride, q_row_stride, q_head_stride;
    int64_t k_batch_stride, k_row_stride, k_head_stride; /* batch_stride: per page when paged */
    int64_t v_batch_stride, v_row_stride, v_head_stride;
    int64_t o_batch_stride, o_row_stride, o_head_stride;
    float* lse; /* optional; (batch, hq, sq) or varlen (hq, total_q) */
    int64_t lse_batch_stride, lse_head_stride;

    // ---- sizes ---------------------------------------------------------------------------
    int batch;
    int nheads_q;
    int nheads_kv;
    int group; /* nheads_q / nheads_kv */
    int seqlen_q; /* dense rows (varlen: maximum) */
    int seqlen_k; /* dense keys (varlen: maximum) */
    int headdim_qk;
    int headdim_v;

    // ---- per-sequence lengths (docs/semantics.md "Per-sequence lengths") --------------------
    const int32_t* cu_seqlens_q; /* NULL = dense */
    const int32_t* cu_seqlens_k;
    const int32_t* seqused_k;
    const int32_t* leftpad_k;
    const int32_t* cache_seqlens;   /* kv-cache: raw keys = cache_seqlens[b] + seqlen_new */
    int seqlen_new;
    const int32_t* cache_batch_idx; /* kv-cache: k/v entry of sequence b */
    const int32_t* block_table;     /* paged: raw row r at page block_table[b][r / page_size] */
    int64_t block_table_batch_stride;
    int page_size;

    // ---- scores --------------------------------------------------------------------------
    float scale_log2;  /* lean kernel: softmax_scale · log2(e), applied inside exp2 */
    float score_scale; /* full kernel: multiplies q·k before softcap (softmax_scale / softcap with softcap) */
    float softcap;     /* 0 = off */
    int window_left;   /* normalised: -1 = unbounded; causal has window_right = 0 */
    int window_right;
    const float* alibi_slopes;
    int64_t alibi_batch_stride;
    int has_dropout;
    DropoutParams dropout;
    const float* sink_logits;

    // ---- split-KV partials (fwd_split): [split][(b·hq + h)·seqlen_q + i] ----------------------
    int num_splits;
    int pack;           /* split kernel: query heads per tile row block (packed GQA, flash_fwd_plan.cuh), else 1 */
    float* o_partial;   /* (splits, batch·hq·seqlen_q, headdim_v) fp32, normalised per split */
    float* lse_partial; /* (splits, batch·hq·seqlen_q) fp32, −inf for an empty split */
};

}  // namespace fa_sm80

#endif  // FA_SM80_FLASH_FWD_ARGS_CUH

/*
 * flash_attn_abi.h — the one C ABI every native FlashAttention backend implements.
 *
 * Each backend library (libfa_cuda_sm80.so, libfa_hopper_sm90.so, libfa_rocm_ck.so) exports
 * exactly the functions declared here. The managed dispatcher binds them through C# code that
 * codegen writes from this header with libclang, so every type below is plain C with
 * fixed-width fields and natural alignment (no bitfields, no unions, no packing pragmas).
 *
 * Conventions
 *  - Tensors are (batch, seqlen, nheads, headdim) with any strides in ELEMENTS and a unit
 *    stride on headdim. Variable-length (varlen) tensors are (total_tokens, nheads, headdim):
 *    batch_stride is ignored and row r of sequence b is row cu_seqlens[b] + r.
 *  - All pointers in fa_params are device addresses of the backend's device, including the
 *    int32 metadata arrays and the fp32 vectors. The caller stages host data.
 *  - Functions never abort on bad input: they return an fa_status and leave a message that
 *    fa_last_error() returns on the same thread.
 *  - A field that a backend does not understand must be zero/NULL, or supports() refuses the
 *    problem with a reason; it never silently ignores a requested feature.
 *
 * ABI rule: the layout only grows at the end (struct_size tells the library how much the
 * caller filled in); FA_ABI_VERSION changes only if an existing field changes meaning.
 */
#ifndef FLASH_ATTN_ABI_H
#define FLASH_ATTN_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FA_ABI_VERSION 1

#if defined(_WIN32)
#define FA_API __declspec(dllexport)
#else
#define FA_API __attribute__((visibility("default")))
#endif

/* Result of every call. */
typedef enum fa_status {
    FA_OK = 0,
    FA_ERR_INVALID_ARGUMENT = 1, /* the parameters are inconsistent (shape, stride, pointer, range) */
    FA_ERR_UNSUPPORTED = 2,      /* valid, but this backend does not implement the combination */
    FA_ERR_DEVICE = 3,           /* a CUDA/HIP runtime or launch error */
    FA_ERR_OUT_OF_MEMORY = 4,    /* workspace allocation failed */
    FA_ERR_ABI_MISMATCH = 5,     /* struct_size / abi_version not understood */
    FA_ERR_INTERNAL = 6
} fa_status;

/* Element types. Bit (1 << value) is used in fa_capabilities.dtypes. */
typedef enum fa_dtype {
    FA_DTYPE_NONE = 0,
    FA_DTYPE_F16 = 1,
    FA_DTYPE_BF16 = 2,
    FA_DTYPE_F32 = 3,
    FA_DTYPE_F8_E4M3 = 4,
    FA_DTYPE_I32 = 5,
    FA_DTYPE_U8 = 6
} fa_dtype;

/* Which entry point a query is about. */
typedef enum fa_op {
    FA_OP_FORWARD = 0,
    FA_OP_BACKWARD = 1,
    FA_OP_FORWARD_KVCACHE = 2
} fa_op;

/* Feature bits, as used in fa_capabilities.features[op]. */
typedef enum fa_feature {
    FA_FEATURE_CAUSAL = 1 << 0,
    FA_FEATURE_WINDOW = 1 << 1,
    FA_FEATURE_SOFTCAP = 1 << 2,
    FA_FEATURE_ALIBI = 1 << 3,
    FA_FEATURE_DROPOUT = 1 << 4,
    FA_FEATURE_GQA = 1 << 5,
    FA_FEATURE_VARLEN = 1 << 6,
    FA_FEATURE_SEQUSED = 1 << 7,
    FA_FEATURE_LEFTPAD_K = 1 << 8,
    FA_FEATURE_PAGED_KV = 1 << 9,
    FA_FEATURE_KV_APPEND = 1 << 10,
    FA_FEATURE_ROTARY = 1 << 11,
    FA_FEATURE_CACHE_BATCH_IDX = 1 << 12,
    FA_FEATURE_SPLIT_KV = 1 << 13,
    FA_FEATURE_LSE = 1 << 14,
    FA_FEATURE_DETERMINISTIC = 1 << 15,
    FA_FEATURE_SINKS = 1 << 16,
    FA_FEATURE_HEADDIM_V = 1 << 17, /* headdim_v != headdim_qk */
    FA_FEATURE_FP8 = 1 << 18,
    FA_FEATURE_DROPOUT_MASK = 1 << 19 /* can write the realised dropout mask */
} fa_feature;

/* A strided 4-D (or, for varlen, 3-D) tensor view. The headdim stride is 1. */
typedef struct fa_tensor {
    void* data;           /* address of element [0, 0, 0, 0]; NULL = absent (a required tensor only when it has no rows) */
    int64_t batch_stride; /* elements between batch entries (pages, for a paged cache); ignored for varlen */
    int64_t row_stride;   /* elements between sequence positions */
    int64_t head_stride;  /* elements between heads */
} fa_tensor;

typedef struct fa_params {
    /* ---- header ---------------------------------------------------------------------- */
    uint32_t struct_size; /* sizeof(fa_params) as the caller compiled it */
    uint32_t abi_version; /* FA_ABI_VERSION the caller compiled against */

    /* ---- sizes ----------------------------------------------------------------------- */
    fa_dtype dtype;      /* q, k, v, k_new, v_new, rotary cos/sin */
    fa_dtype out_dtype;  /* out, dout, dq, dk, dv: equals dtype, except bf16 for an fp8 forward */
    int32_t batch;       /* sequences (varlen: entries of cu_seqlens_q minus one) */
    int32_t seqlen_q;    /* dense: rows per sequence; varlen: the maximum over sequences */
    int32_t seqlen_k;    /* dense: keys per sequence; varlen: maximum; kv-cache: capacity per sequence */
    int32_t nheads_q;
    int32_t nheads_kv;   /* nheads_q is a multiple of nheads_kv (MQA/GQA) */
    int32_t headdim_qk;
    int32_t headdim_v;   /* may differ from headdim_qk (MLA-style 192/128) */
    int32_t total_q;     /* rows of q/out: batch*seqlen_q dense, cu_seqlens_q[batch] varlen */
    int32_t total_k;     /* rows of k/v: batch*seqlen_k dense, cu_seqlens_k[batch] varlen */
    int32_t kv_batch;    /* entries along k/v's batch axis: batch, the cache's batch, or pages */

    /* ---- tensors --------------------------------------------------------------------- */
    fa_tensor q;         /* (batch, seqlen_q, nheads_q, headdim_qk) */
    fa_tensor k;         /* (kv_batch, seqlen_k | page_size, nheads_kv, headdim_qk) */
    fa_tensor v;         /* (kv_batch, seqlen_k | page_size, nheads_kv, headdim_v) */
    fa_tensor out;       /* (batch, seqlen_q, nheads_q, headdim_v) */
    fa_tensor dout;      /* backward input, like out */
    fa_tensor dq;        /* backward outputs, like q, k, v */
    fa_tensor dk;
    fa_tensor dv;

    /* Log-sum-exp of each row's scaled scores (natural log), fp32. Forward: optional output;
       backward: required input. Layout (batch, nheads_q, seqlen_q) with row stride 1, or for
       varlen (nheads_q, total_q): lse_batch_stride is then ignored. A row that sees no key
       has LSE = +inf. */
    float* softmax_lse;
    int64_t lse_batch_stride;
    int64_t lse_head_stride;

    /* ---- scores -------------------------------------------------------------------- */
    float softmax_scale;  /* multiplies q.k */
    float softcap;        /* 0 = off; else s = softcap * tanh(s / softcap), after scaling */
    int32_t is_causal;    /* bottom-right aligned; same as window (left, 0) */
    int32_t window_left;  /* -1 = unbounded; key j is seen by row i when */
    int32_t window_right; /* i + sk - sq - left <= j <= i + sk - sq + right */
    int32_t deterministic; /* backward: bitwise reproducible dq/dk/dv */

    const float* alibi_slopes;  /* optional fp32, (nheads_q) or (batch, nheads_q); bias -slope*|i + sk - sq - j| */
    int64_t alibi_batch_stride; /* 0 = one slope vector for every sequence */

    /* ---- dropout (training) ---------------------------------------------------------- */
    float dropout_p;         /* probability of dropping; 0 = off */
    uint32_t reserved_pad0;
    uint64_t dropout_seed;   /* Philox4x32-10 key, see DROPOUT RNG below */
    uint64_t dropout_offset; /* Philox counter offset */
    uint8_t* dropout_mask;   /* optional output (batch, nheads_q, seqlen_q, seqlen_k), 1 = kept */

    /* ---- attention sinks --------------------------------------------------------------- */
    const float* sink_logits; /* optional (nheads_q) fp32: an extra logit in each row's softmax denominator */
    float* dsink;             /* backward output (nheads_q) fp32, gradient of sink_logits */

    /* ---- fp8 descales (forward, dtype FA_DTYPE_F8_E4M3) ------------------------------ */
    const float* q_descale; /* optional (batch, nheads_kv) fp32 each */
    const float* k_descale;
    const float* v_descale;
    int64_t descale_batch_stride;
    int64_t descale_head_stride;

    /* ---- variable length ----------------------------------------------------------------- */
    const int32_t* cu_seqlens_q; /* (batch + 1) prefix sums; NULL = dense */
    const int32_t* cu_seqlens_k; /* (batch + 1) */
    const int32_t* seqused_q;    /* optional (batch): only the first seqused_q[b] rows are computed */
    const int32_t* seqused_k;    /* optional (batch): only the first seqused_k[b] keys are used */
    const int32_t* leftpad_k;    /* optional (batch): keys of sequence b start at leftpad_k[b] */

    /* ---- paged KV cache ------------------------------------------------------------------ */
    const int32_t* block_table;       /* optional (batch, max_pages_per_seq): page indices into k/v */
    int64_t block_table_batch_stride;
    int32_t page_size;                /* rows per page (k/v row axis); any value >= 1 */
    int32_t max_pages_per_seq;

    /* ---- KV cache update (forward_kvcache) ----------------------------------------------- */
    const int32_t* cache_seqlens;   /* (batch): keys already in the cache for each sequence */
    const int32_t* cache_batch_idx; /* optional (batch): cache entry used by sequence b */
    fa_tensor k_new;                /* optional (batch, seqlen_new, nheads_kv, headdim_qk): appended at cache_seqlens */
    fa_tensor v_new;                /* optional (batch, seqlen_new, nheads_kv, headdim_v) */
    int32_t seqlen_new;
    int32_t rotary_dim;             /* 0 = no rotary; a multiple of 16, <= headdim_qk */
    const void* rotary_cos;         /* (seqlen_rotary, rotary_dim / 2) in dtype, contiguous */
    const void* rotary_sin;
    int32_t seqlen_rotary;
    int32_t rotary_interleaved;     /* 1: pairs (0,1),(2,3)..; 0: pairs (i, i + rotary_dim/2) (GPT-NeoX) */

    /* ---- split-KV ------------------------------------------------------------------------ */
    int32_t num_splits; /* 0 = heuristic, 1 = no split, n = split keys n ways and combine by LSE */

    /* ---- execution ----------------------------------------------------------------------- */
    int32_t device;          /* CUDA/HIP device ordinal the pointers belong to */
    void* stream;            /* cudaStream_t / hipStream_t; NULL = the default stream */
    void* workspace;         /* optional scratch of fa_workspace_size() bytes; NULL = the library allocates */
    uint64_t workspace_bytes;

    uint64_t reserved[8]; /* zero */
} fa_params;

/* What a library can do at all, independent of a particular problem. */
typedef struct fa_capabilities {
    uint32_t struct_size;
    uint32_t dtypes;          /* bit (1 << fa_dtype) per supported q/k/v dtype */
    uint64_t features[3];     /* FA_FEATURE_* bits per fa_op */
    int32_t max_headdim;      /* largest headdim_qk / headdim_v */
    int32_t headdim_align;    /* head dims must be multiples of this (the managed API pads) */
    int32_t page_size_align;  /* page_size must be a multiple of this */
    int32_t max_splits;
    char archs[64];           /* NUL-terminated list of compiled targets, e.g. "sm_80,sm_90" */
} fa_capabilities;

/*
 * DROPOUT RNG (every backend, so that masks agree across backends and between fwd and bwd):
 * the element (b, h, i, j) — sequence b, query head h, row i and key j counted within the
 * sequence — is kept when u32 >= floor(p * 2^32), where u32 is word (j % 4) of
 * Philox4x32-10(key = {seed_lo, seed_hi}, counter = {c0, c1, c2, c3}) with
 *   c0, c1 = low, high 32 bits of (dropout_offset + j / 4)
 *   c2 = i,  c3 = b * nheads_q + h.
 * Kept values are scaled by 1 / (1 - p).
 */

/* ---- entry points ---------------------------------------------------------------------- */

/* FA_ABI_VERSION the library was built with; the dispatcher refuses a library that differs. */
FA_API uint32_t fa_abi_version(void);

/* Static name, e.g. "cuda_sm80". */
FA_API const char* fa_backend_name(void);

FA_API fa_status fa_get_capabilities(fa_capabilities* caps);

/* FA_OK when the backend can run `op` on `params` (pointers are not dereferenced);
   FA_ERR_UNSUPPORTED or FA_ERR_INVALID_ARGUMENT with a NUL-terminated reason otherwise. */
FA_API fa_status fa_supports(const fa_params* params, fa_op op, char* reason, size_t reason_size);

/* Scratch bytes `op` needs for `params` (0 when none). */
FA_API fa_status fa_workspace_size(const fa_params* params, fa_op op, uint64_t* bytes);

/* out (and softmax_lse when set) = attention(q, k, v). Asynchronous on params->stream. */
FA_API fa_status fa_forward(const fa_params* params);

/* dq, dk, dv (and dsink) from dout, q, k, v, out, softmax_lse. */
FA_API fa_status fa_backward(const fa_params* params);

/* Appends k_new/v_new (rotated) into the cache at cache_seqlens, then attends over it. */
FA_API fa_status fa_forward_kvcache(const fa_params* params);

/* Message of the last failed call on this thread ("" when none). */
FA_API const char* fa_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* FLASH_ATTN_ABI_H */

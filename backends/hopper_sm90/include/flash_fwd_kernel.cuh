/*
 * flash_fwd_kernel.cuh — the FA3 forward on sm_90a, written on our Hopper primitives
 * (sm90_primitives.cuh, sm90_wgmma.cuh). Semantics are DESIGN.md's: bottom-right causal and
 * sliding window, softcap, GQA, varlen (cu_seqlens, seqused_k), LSE (+inf for a row without keys).
 *
 * Roles (fwd_traits.cuh): warpgroup 0 is the producer, one thread of it issues every TMA load;
 * warpgroups 1..kConsumers each own 64 query rows of the tile.
 *
 *   producer, per tile: K[n_max−1]; Q (after the consumers freed it); then K[n], V[n+1] for
 *                       n = n_max−2 … n_min; finally V[n_min]. K and V each cycle through
 *                       kStages buffers guarded by full (TMA bytes) / empty (consumer warps)
 *                       mbarriers.
 *   consumer, per tile: S = Q·K[n_max−1]ᵀ, softmax → P (registers). Then per step n:
 *                       issue S = Q·K[n]ᵀ and O += P·V[n+1] (P straight from registers: the
 *                       wgmma A fragment is the accumulator layout), wait for S only, do the
 *                       online softmax of S while P·V runs, wait for P·V, rescale O, P ← S.
 *                       Tail: O += P·V[n_min]; O /= ℓ; store.
 *   ping-pong:          the consumers take turns issuing their GEMMs (named barriers 1..3), so
 *                       one warpgroup's softmax overlaps another's tensor-core work.
 *   tiles:              a persistent grid walks them in a zig-zag (TileWalk); tile order heads
 *                       outer (CTAs running together share K/V in L2) or query blocks outer, both
 *                       with the longest causal tiles first (flash_fwd_launch.cuh, fwd_grid).
 *   lazy rescale:       a row's reference maximum moves only when a block exceeds it by 2^8, so
 *                       O is rarely rescaled (kLazyRescale).
 *   cache kernel:       the same body with kCache (fa_forward_kvcache, a paged or split fa_forward):
 *                       per-sequence cache lengths and entries, paged K/V in boxes of whole swizzle
 *                       atoms, V rows past the keys zeroed by the producer, split partials, and packed
 *                       GQA (a tile = one kv head's group of query heads).
 */
#ifndef FA_SM90_FLASH_FWD_KERNEL_CUH
#define FA_SM90_FLASH_FWD_KERNEL_CUH

#include <cstdint>
#include <type_traits>
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "fa_cuda_math.cuh"
#include "fp8_transpose_v.cuh"
#include "fwd_traits.cuh"
#include "sm90_primitives.cuh"
#include "sm90_wgmma.cuh"

namespace fa_sm90 {

using fa_cuda::kLn2;
using fa_cuda::kNegInf;
using fa_cuda::kPosInf;

/* The kernel's argument block (passed as __grid_constant__; the tensor maps must stay in
   parameter space for TMA). Strides in elements. */
struct FwdParams {
    CUtensorMap tma_q; /* {headdim, rows, heads, batch} boxes {64, kBlockM, 1, 1}, 128B swizzle */
    CUtensorMap tma_k; /* boxes {64, kBlockN, 1, 1} (e4m3: 128-column boxes) */
    CUtensorMap tma_v; /* e4m3: Vᵀ in the workspace (fp8_transpose_v.cuh), {cols, headdim_v, nheads_kv, 1}, boxes {128, kHeadDim, 1, 1} */
    void* out;
    int64_t o_batch_stride, o_row_stride, o_head_stride;
    float* lse; /* optional: (batch, hq, sq) or varlen (hq, total_q) */
    int64_t lse_batch_stride, lse_head_stride;
    const int32_t* cu_seqlens_q; /* NULL = dense */
    const int32_t* cu_seqlens_k;
    const int32_t* seqused_k;
    int nheads_q;
    int group; /* nheads_q / nheads_kv */
    int seqlen_q, seqlen_k;
    int headdim_v;
    int num_m_blocks; /* per (sequence, head): ⌈max seqlen_q / kBlockM⌉ */
    int num_bh;       /* batch · tile_heads */
    int tile_heads;   /* heads per sequence in tile space: nheads_q, or nheads_kv with packed GQA */
    int num_tiles;    /* num_bh · num_m_blocks */
    int block_major;  /* tile order: 0 = (sequence, head) outer, query blocks inner and descending, so
                         CTAs running together share one head's K/V in L2; 1 = query blocks outer
                         (descending), heads inner: the longest causal tiles of every head first */
    float scale_log2; /* exp2 factor: softmax_scale·log2e, or softcap·log2e with softcap */
    float score_scale; /* softcap only: softmax_scale / softcap, applied before tanh */
    int window_left, window_right; /* −1 = unbounded; causal: right = 0 */
    int o_tma;         /* 1: the epilogue stores O with TMA (Traits::kStoreOWithTma, dense batch) */
    /* ---- kv cache (fa_forward_kvcache; q, k, v dense) ---- */
    const int32_t* cache_seqlens;  /* keys of sequence b = cache_seqlens[b] + seqlen_new; NULL = not a cache */
    int seqlen_new;
    const int32_t* cache_batch_idx; /* K/V batch entry of sequence b (NULL: b) */
    const int32_t* block_table;     /* paged: raw key r of sequence b in page block_table[b][r / page_size] */
    int64_t block_table_batch_stride;
    int page_size;
    int page_box_rows; /* rows per TMA box of a paged K/V tile: gcd(page_size, kBlockN), a multiple of 8 */
    /* Rows of a partial last key block past the keys hold data in memory (cache rows past cache_seqlens,
       rows past seqused_k) that may be anything, NaN included: their P is 0, but 0 · NaN is NaN, so the
       producer zeroes them in V's tile before the consumers read it (FA2 zero-fills them; FA3 did not). */
    int zero_v_tail;
    /* Packed GQA (kv cache, group > 1, kBlockM % group == 0): a tile is one kv head's group of query heads, its
       row m being query row m / group of head hk·group + m % group, so the group reads K/V once. tma_q is then
       5-D {headdim, group, rows, nheads_kv, batch} with boxes {64, group, kBlockM / group, 1, 1}. */
    int pack_gqa;
    /* ---- split-KV: split s of a tile writes O / ℓ and its LSE (−inf: no key) as fp32 partials at
       [s][(b·hq + h)·seqlen_q + row], merged by the combine kernel ---- */
    int num_splits;
    float* o_partial;
    float* lse_partial;
    int64_t partial_rows; /* batch · nheads_q · seqlen_q */
    /* ---- e4m3: descales per (sequence, kv head), NULL = 1 (FA3's q/k/v_descale) ---- */
    const float* q_descale;
    const float* k_descale;
    const float* v_descale;
    int64_t descale_batch_stride, descale_head_stride;
    CUtensorMap tma_o; /* out, boxes {64, 64, 1, 1}; last, so the other fields keep their offsets */
};

/* One (sequence, head, query block): rows m0 … m0 + kBlockM − 1 of sequence b. */
struct FwdTileCoord {
    int m_block, h, b, split; /* h: query head, or with packed GQA the kv head */
    int pack;             /* query heads per tile row block: the group with packed GQA, else 1 */
    int sq, sk;           /* query rows and keys of the sequence */
    int rows;             /* tile rows of the sequence: sq · pack */
    int q_row0, k_row0;   /* TMA row coordinate of the sequence's row 0 / key 0 */
    int batch_coord;      /* TMA batch coordinate of q / out (0 for varlen) */
    int kv_batch_coord;   /* of k / v (the cache entry through cache_batch_idx) */
    int n_min, n_max;     /* key blocks [n_min, n_max) the tile sees (of its split) */
};

/* kCache: the cache kernel (kv-cache lengths and entries, packed GQA, paged K/V, splits), which
   fa_forward_kvcache and a paged or split fa_forward take; the plain forward's code stays free of them. */
template <class Traits, bool kCache>
__device__ __forceinline__ FwdTileCoord fwd_tile(const FwdParams& p, int tile) {
    FwdTileCoord c;
    c.split = 0;
    if constexpr (kCache) {
        /* Splits outermost: tiles of one split and neighbouring heads (a GQA group) run together and
           read the same key range from L2. */
        const int per_split = p.num_bh * p.num_m_blocks;
        c.split = tile / per_split;
        tile -= c.split * per_split;
    }
    int bh, m_rank; /* m_rank 0 = the last (longest causal) query block */
    if (p.block_major) {
        m_rank = tile / p.num_bh;
        bh = tile - m_rank * p.num_bh;
    } else {
        bh = tile / p.num_m_blocks;
        m_rank = tile - bh * p.num_m_blocks;
    }
    c.m_block = p.num_m_blocks - 1 - m_rank;
    c.h = bh % p.tile_heads;
    c.b = bh / p.tile_heads;
    if (p.cu_seqlens_q != nullptr) {
        c.q_row0 = p.cu_seqlens_q[c.b];
        c.sq = p.cu_seqlens_q[c.b + 1] - c.q_row0;
        c.k_row0 = p.cu_seqlens_k[c.b];
        c.sk = p.cu_seqlens_k[c.b + 1] - c.k_row0;
        c.batch_coord = 0;
    } else {
        c.q_row0 = 0;
        c.k_row0 = 0;
        c.sq = p.seqlen_q;
        c.sk = p.seqlen_k;
        c.batch_coord = c.b;
    }
    if (p.seqused_k != nullptr) c.sk = p.seqused_k[c.b];
    c.kv_batch_coord = c.batch_coord;
    c.pack = 1;
    if constexpr (kCache) {
        if (p.cache_seqlens != nullptr) {
            c.sk = p.cache_seqlens[c.b] + p.seqlen_new;
            if (p.cache_batch_idx != nullptr) c.kv_batch_coord = p.cache_batch_idx[c.b];
            if (p.pack_gqa) c.pack = p.group;
        }
    }
    c.rows = c.sq * c.pack;
    constexpr int kBlockM = Traits::kBlockM, kBlockN = Traits::kBlockN;
    const int m0 = c.m_block * kBlockM;
    const int offset = c.sk - c.sq; /* bottom-right alignment: row i's diagonal key is i + offset */
    int n_max = (c.sk + kBlockN - 1) / kBlockN;
    if (p.window_right >= 0) {
        const int last_row = (min(m0 + kBlockM, c.rows) - 1) / c.pack;
        const int hi = last_row + offset + p.window_right + 1; /* keys < hi */
        n_max = min(n_max, hi <= 0 ? 0 : (hi + kBlockN - 1) / kBlockN);
    }
    int n_min = 0;
    if (p.window_left >= 0) {
        const int lo = m0 / c.pack + offset - p.window_left; /* keys ≥ lo for the first row */
        if (lo > 0) n_min = lo / kBlockN;
    }
    if (kCache && p.num_splits > 1 && n_max > n_min) { /* this split's share: ⌈blocks / splits⌉ each, the last ones may be empty */
        const int share = (n_max - n_min + p.num_splits - 1) / p.num_splits;
        n_min += c.split * share;
        n_max = min(n_max, n_min + share);
        if (n_max < n_min) n_max = n_min;
    }
    c.n_min = n_min;
    c.n_max = n_max;
    return c;
}

/* The tiles of this CTA: round r takes tile r·G + i, or r·G + G − 1 − i in odd rounds (G = the
   grid, i = the CTA). One CTA per tile is the single round; a persistent grid walks rounds in a
   zig-zag, so that with tiles ordered longest first the sums of the CTAs' work stay even. */
struct TileWalk {
    int round = 0;
    __device__ __forceinline__ int tile() const {
        const int g = static_cast<int>(gridDim.x), i = static_cast<int>(blockIdx.x);
        return round * g + ((round & 1) ? g - 1 - i : i);
    }
};

/* {index, phase} of a kStages-deep ring of mbarrier-guarded buffers. */
template <int kStages>
struct PipeState {
    int index = 0;
    uint32_t phase = 0;
    __device__ __forceinline__ void advance() {
        if (++index == kStages) {
            index = 0;
            phase ^= 1u;
        }
    }
};

/* The shared-memory image of one CTA (offsets from fwd_traits.cuh). */
template <class Traits>
struct FwdSmem {
    uint8_t* base; /* 1024-byte aligned */
    __device__ __forceinline__ uint8_t* q() const { return base + Traits::kQOffset; }
    __device__ __forceinline__ uint8_t* k(int stage) const { return base + Traits::kKOffset + stage * Traits::kKBytes; }
    __device__ __forceinline__ uint8_t* v(int stage) const { return base + Traits::kVOffset + stage * Traits::kVBytes; }
    __device__ __forceinline__ uint8_t* o(int wg) const { return base + Traits::kOOffset + wg * Traits::kOWarpgroupBytes; }
    __device__ __forceinline__ uint64_t* bar() const { return reinterpret_cast<uint64_t*>(base + Traits::kBarrierOffset); }
    __device__ __forceinline__ uint64_t* q_full() const { return bar(); }
    __device__ __forceinline__ uint64_t* q_empty() const { return bar() + 1; }
    __device__ __forceinline__ uint64_t* k_full(int s) const { return bar() + 2 + s; }
    __device__ __forceinline__ uint64_t* k_empty(int s) const { return bar() + 2 + Traits::kStages + s; }
    __device__ __forceinline__ uint64_t* v_full(int s) const { return bar() + 2 + 2 * Traits::kStages + s; }
    __device__ __forceinline__ uint64_t* v_empty(int s) const { return bar() + 2 + 3 * Traits::kStages + s; }
    /* the producer's own barrier for a V tile whose tail it zeroes (FwdParams::zero_v_tail) */
    __device__ __forceinline__ uint64_t* v_tail() const { return bar() + 2 + 4 * Traits::kStages; }
};

// ---------------------------------------------------------------- producer

template <class Traits>
__device__ __forceinline__ void load_tile_slabs(uint8_t* dst, const CUtensorMap& tmap, int rows_per_slab, int row, int head,
                                                int batch, uint64_t* bar) {
#pragma unroll
    for (int s = 0; s < Traits::kSlabs; ++s)
        tma_load_4d(dst + s * rows_per_slab * 128, tmap, Traits::kSlabCols * s, row, head, batch, bar);
}

/* A K or V tile of a paged cache: boxes of page_box_rows rows, each from its page. Boxes past the
   sequence's last page re-read that page (their keys are masked, and V's are zeroed). */
template <class Traits>
__device__ __forceinline__ void load_paged_tile(uint8_t* dst, const CUtensorMap& tmap, const FwdParams& p, const FwdTileCoord& c,
                                                int n, int head, uint64_t* bar) {
    const int32_t* pages = p.block_table + static_cast<int64_t>(c.b) * p.block_table_batch_stride;
    const int last_page = c.sk > 0 ? (c.sk - 1) / p.page_size : 0;
    for (int r = 0; r < Traits::kBlockN; r += p.page_box_rows) {
        const int key = n * Traits::kBlockN + r;
        int index = key / p.page_size, row = key - index * p.page_size;
        if (index > last_page) index = last_page, row = 0;
        const int page = pages[index];
#pragma unroll
        for (int s = 0; s < Traits::kSlabs; ++s)
            tma_load_4d(dst + (s * Traits::kBlockN + r) * 128, tmap, Traits::kSlabCols * s, row, head, page, bar);
    }
}

/* Zeroes rows [from, kBlockN) of a tile (every 64-column slab): whole 128-byte rows, so the swizzle
   does not matter. */
template <class Traits>
__device__ __forceinline__ void zero_tile_rows(uint8_t* tile, int from) {
    const uint32_t base = smem_u32(tile);
#pragma unroll 1
    for (int s = 0; s < Traits::kSlabs; ++s) {
        const uint32_t begin = base + (s * Traits::kBlockN + from) * 128, end = base + (s + 1) * Traits::kBlockN * 128;
#pragma unroll 4
        for (uint32_t at = begin; at < end; at += 16) asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};" ::"r"(at), "r"(0));
    }
}

template <class Traits, bool kCache>
__device__ void fwd_producer(const FwdParams& p, const FwdSmem<Traits>& sm) {
    constexpr int kStages = Traits::kStages;
    PipeState<kStages> k_state, v_state;
    uint32_t q_iter = 0;
    uint32_t tail_phase = 0;
    for (TileWalk walk; walk.tile() < p.num_tiles; ++walk.round) {
        const int tile = walk.tile();
        const FwdTileCoord c = fwd_tile<Traits, kCache>(p, tile);
        if (c.m_block * Traits::kBlockM >= c.rows || c.n_max <= c.n_min) continue; /* nothing to load */
        const int hk = c.pack > 1 ? c.h : c.h / p.group;
        auto load_kv = [&](uint8_t* dst, const CUtensorMap& tmap, int n, uint64_t* bar) {
            if (kCache && p.block_table != nullptr)
                load_paged_tile<Traits>(dst, tmap, p, c, n, hk, bar);
            else
                load_tile_slabs<Traits>(dst, tmap, Traits::kBlockN, c.k_row0 + n * Traits::kBlockN, hk, c.kv_batch_coord, bar);
        };
        auto load_k = [&](int n) {
            mbar_wait(sm.k_empty(k_state.index), k_state.phase ^ 1u);
            mbar_arrive_expect_tx(sm.k_full(k_state.index), Traits::kKBytes);
            load_kv(sm.k(k_state.index), p.tma_k, n, sm.k_full(k_state.index));
            k_state.advance();
        };
        /* e4m3: the sequence's first column in Vᵀ */
        const int64_t vt_col0 = Traits::kFp8 ? vt_start(p.cu_seqlens_k != nullptr ? c.k_row0 : static_cast<int64_t>(c.b) * p.seqlen_k, c.b) : 0;
        auto load_v = [&](int n) {
            mbar_wait(sm.v_empty(v_state.index), v_state.phase ^ 1u);
            const int tail = c.sk - n * Traits::kBlockN; /* rows of the tile that are keys */
            if constexpr (Traits::kFp8) { /* Vᵀ: zeros past the keys already (fp8_transpose_v.cuh) */
                mbar_arrive_expect_tx(sm.v_full(v_state.index), Traits::kVBytes);
#pragma unroll
                for (int s = 0; s < Traits::kBlockN / 128; ++s)
                    tma_load_4d(sm.v(v_state.index) + s * Traits::kHeadDim * 128, p.tma_v,
                                static_cast<int32_t>(vt_col0 + n * Traits::kBlockN + 128 * s), 0, hk, 0, sm.v_full(v_state.index));
            } else if (p.zero_v_tail && tail < Traits::kBlockN) {
                /* Load on the private barrier, zero the rows past the keys, then let the consumers in. */
                mbar_arrive_expect_tx(sm.v_tail(), Traits::kVBytes);
                load_kv(sm.v(v_state.index), p.tma_v, n, sm.v_tail());
                mbar_wait(sm.v_tail(), tail_phase);
                tail_phase ^= 1u;
                zero_tile_rows<Traits>(sm.v(v_state.index), max(tail, 0));
                fence_proxy_async_smem(); /* generic-proxy zeros, read by wgmma (async proxy) */
                mbar_arrive(sm.v_full(v_state.index));
            } else {
                mbar_arrive_expect_tx(sm.v_full(v_state.index), Traits::kVBytes);
                load_kv(sm.v(v_state.index), p.tma_v, n, sm.v_full(v_state.index));
            }
            v_state.advance();
        };
        load_k(c.n_max - 1);
        mbar_wait(sm.q_empty(), (q_iter & 1u) ^ 1u);
        mbar_arrive_expect_tx(sm.q_full(), Traits::kQBytes);
        if (kCache && c.pack > 1) {
#pragma unroll
            for (int s = 0; s < Traits::kSlabs; ++s)
                tma_load_5d(sm.q() + s * Traits::kBlockM * 128, p.tma_q, Traits::kSlabCols * s, 0, c.m_block * Traits::kBlockM / c.pack, hk,
                            c.batch_coord, sm.q_full());
        } else {
            load_tile_slabs<Traits>(sm.q(), p.tma_q, Traits::kBlockM, c.q_row0 + c.m_block * Traits::kBlockM, c.h, c.batch_coord,
                                    sm.q_full());
        }
        ++q_iter;
        for (int n = c.n_max - 2; n >= c.n_min; --n) {
            load_k(n);
            load_v(n + 1);
        }
        load_v(c.n_min);
    }
}

// ---------------------------------------------------------------- consumer pieces

/* Ping-pong of the consumer warpgroups around their GEMM issue: warpgroup w waits on barrier
   1 + w, and when its GEMMs are issued lets warpgroup w + 1 (cyclically) go. */
template <class Traits>
struct GemmTurn {
    int wg;
    __device__ __forceinline__ void wait() const {
        if constexpr (Traits::kPingPong) named_barrier_sync(1 + wg, 256);
    }
    __device__ __forceinline__ void pass() const {
        if constexpr (Traits::kPingPong) named_barrier_arrive(1 + (wg + 1) % Traits::kConsumers, 256);
    }
};

/* One arrival per warp on an "empty" barrier (count = 4 · kConsumers). */
__device__ __forceinline__ void release(uint64_t* bar, int lane) {
    if (lane == 0) mbar_arrive(bar);
}

template <class Traits, typename Element>
__device__ __forceinline__ void gemm_qk(float (&s)[Traits::kSRegs], uint32_t q_base, uint32_t k_base) {
#pragma unroll
    for (int kk = 0; kk < Traits::kQkSteps; ++kk) {
        const uint32_t slab = kk / 4, col = (kk % 4) * 32;
        const uint64_t da = make_desc_kmajor_sw128(q_base + slab * Traits::kBlockM * 128 + col);
        const uint64_t db = make_desc_kmajor_sw128(k_base + slab * Traits::kBlockN * 128 + col);
        Wgmma<Traits::kBlockN>::template ss<Element>(s, da, db, kk == 0 ? 0u : 1u);
    }
}

/* O (+)= P·V: P from registers (4 per k step). 16-bit V MN-major: 8 keys = 1024 B apart (SBO), the
   64-column slabs kBlockN·128 B apart (LBO), k16 step = 16 keys = 2048 B. e4m3 Vᵀ K-major like K in gemm_qk:
   kHeadDim rows of 128-key slabs, k32 step = 32 B within the row. */
template <class Traits, typename Element>
__device__ __forceinline__ void gemm_pv(float (&o)[Traits::kORegs], const uint32_t (&pr)[Traits::kPRegs], uint32_t v_base,
                                        uint32_t accumulate) {
#pragma unroll
    for (int kk = 0; kk < Traits::kPvSteps; ++kk) {
        uint64_t db;
        if constexpr (Traits::kFp8)
            db = make_desc_kmajor_sw128(v_base + (kk / 4) * Traits::kHeadDim * 128 + (kk % 4) * 32);
        else
            db = make_smem_desc(v_base + kk * 2048, Traits::kBlockN * 128, 1024, kSwizzle128B);
        const uint32_t a[4] = {pr[4 * kk], pr[4 * kk + 1], pr[4 * kk + 2], pr[4 * kk + 3]};
        Wgmma<Traits::kHeadDim>::template rs<Element>(o, a, db, (kk == 0 && !accumulate) ? 0u : 1u);
    }
}

/* The kernel arguments the softmax reads, as values in registers: the argument block is reached
   through a generic pointer (LD.E from the __grid_constant__'s address), which kept loads in every
   softmax step. */
struct ScoreArgs {
    float scale_log2, score_scale;
    int window_left, window_right;
};

/* Row state of the two rows a thread holds (accumulator rows g and g + 8 of its warp). */
struct RowState {
    float ref[2]; /* reference maximum, log2 units (scores · scale_log2); −inf before any key */
    float sum[2]; /* this thread's share of Σ 2^(s·scale_log2 − ref) */
};

/* How far a block's maximum may exceed the reference before it moves (log2 units): the
   exponentials stay ≤ 2^8, harmless in fp32 sums and in P's 16-bit format, and after a row's
   first keys O is almost never rescaled (a warp skips the multiplies unless one of its rows
   moved). Any reference gives the same result up to rounding; LSE = (ref + log2 ℓ)·ln 2. */
constexpr float kLazyRescale = 8.0f;

/* Scores of key block n: softcap, mask, then the online softmax. Leaves 2^(...) in s and the
   factor that rescales O (and sum) in `factor`; returns whether any row of the warp moved its
   reference (O needs the factor). */
template <class Traits, bool kSoftcap, bool kFirst>
__device__ __forceinline__ bool softmax_step(float (&s)[Traits::kSRegs], RowState& rs, float (&factor)[2], const ScoreArgs& p,
                                             bool need_mask, int n, int row0, int quad, int offset, int sk, int pack) {
    if constexpr (kSoftcap) {
#pragma unroll
        for (int i = 0; i < Traits::kSRegs; ++i) s[i] = fa_cuda::tanh_accurate(s[i] * p.score_scale);
    }
    if (need_mask) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int a = (row0 + 8 * half) / pack + offset; /* the row's diagonal key (tile row → query row) */
            const int n0 = n * Traits::kBlockN + 2 * quad;
            const int lo = (p.window_left < 0 ? 0 : max(0, a - p.window_left)) - n0;
            const int hi = (p.window_right < 0 ? sk : max(0, min(sk, a + p.window_right + 1))) - n0;
#pragma unroll
            for (int j = 0; j < Traits::kSRegs / 4; ++j) {
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const int c = 8 * j + e;
                    if (c < lo || c >= hi) s[4 * j + 2 * half + e] = kNegInf;
                }
            }
        }
    }
    bool moved = false;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        float mx = kNegInf;
#pragma unroll
        for (int j = 0; j < Traits::kSRegs / 4; ++j) mx = fmaxf(mx, fmaxf(s[4 * j + 2 * half], s[4 * j + 2 * half + 1]));
        mx = fa_cuda::quad_max(mx) * p.scale_log2; /* −inf stays −inf (scale_log2 > 0) */
        if constexpr (kFirst) {
            factor[half] = 1.0f;
            rs.ref[half] = mx;
        } else {
            const float ref = rs.ref[half];
            const bool move = mx > ref + kLazyRescale; /* never for −inf (no key yet) */
            factor[half] = move ? fa_cuda::exp2_approx(ref - mx) : 1.0f;
            rs.ref[half] = move ? mx : ref;
            moved |= move;
        }
        const float shift = rs.ref[half] == kNegInf ? 0.0f : rs.ref[half]; /* no key yet: 2^(−inf − 0) = 0 */
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < Traits::kSRegs / 4; ++j) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                float& x = s[4 * j + 2 * half + e];
                x = fa_cuda::exp2_approx(fmaf(x, p.scale_log2, -shift));
                sum += x;
            }
        }
        rs.sum[half] = kFirst ? sum : fmaf(rs.sum[half], factor[half], sum);
    }
    return __any_sync(0xffffffffu, moved);
}

/* P as the A operand of P·V. 16-bit: pairs in accumulator order (the k16 A fragment is the accumulator layout,
   F7). e4m3: per 32-key chunk, byte j of register r of the k32 fragment (F9: row g + 8(r & 1), k 16(r >> 1) +
   4·quad + j) takes the accumulator fp8_p_acc(r, j) of that row: columns 16(r >> 1) + {2quad, 2quad + 1, 8 + 2quad,
   9 + 2quad}; Vᵀ's columns are permuted to match (pv_key, fp8_transpose_v.cuh). */
__host__ __device__ constexpr int fp8_p_acc(int r, int j) { return 8 * (r >> 1) + 2 * (r & 1) + (j & 1) + 4 * (j >> 1); }
/* Checked at compile time for every thread: byte j of register r holds the accumulator of the A element's row, at
   the S column that Vᵀ's column k puts against it (pv_key). */
constexpr bool fp8_p_fragment_matches_vt() {
    for (int t = 0; t < 128; ++t)
        for (int r = 0; r < 4; ++r)
            for (int j = 0; j < 4; ++j) {
                const int i = fp8_p_acc(r, j);
                if (wgmma_d_row(t, i) != wgmma_a8_row(t, r) || wgmma_d_col(t, i) != pv_key(wgmma_a8_k(t, r, j))) return false;
            }
    return true;
}
static_assert(fp8_p_fragment_matches_vt(), "e4m3 P fragment (F7 -> F9) and the key order of V^T disagree");

template <class Traits, typename Element>
__device__ __forceinline__ void scores_to_p(const float (&s)[Traits::kSRegs], uint32_t (&pr)[Traits::kPRegs]) {
    if constexpr (Traits::kFp8) {
#pragma unroll
        for (int c = 0; c < Traits::kBlockN / 32; ++c) {
#pragma unroll
            for (int r = 0; r < 4; ++r)
                pr[4 * c + r] = pack_e4m3x4(s[16 * c + fp8_p_acc(r, 0)], s[16 * c + fp8_p_acc(r, 1)], s[16 * c + fp8_p_acc(r, 2)],
                                            s[16 * c + fp8_p_acc(r, 3)]);
        }
    } else {
#pragma unroll
        for (int j = 0; j < Traits::kPRegs; ++j) pr[j] = fa_cuda::pack2<Element>(s[2 * j], s[2 * j + 1]);
    }
}

template <class Traits>
__device__ __forceinline__ void rescale_o(float (&o)[Traits::kORegs], const float (&factor)[2]) {
#pragma unroll
    for (int i = 0; i < Traits::kORegs; ++i) o[i] *= factor[(i >> 1) & 1];
}

/* The LSE of a finished row `row` of the sequence (ℓ = sum; +∞ for a row that saw no key). */
/* Query row and head of tile row `m` (packed GQA: m = row · pack + head within the group). */
struct RowHead {
    int row, head;
};
__device__ __forceinline__ RowHead row_head(const FwdTileCoord& c, int m) {
    return c.pack > 1 ? RowHead{m / c.pack, c.h * c.pack + m % c.pack} : RowHead{m, c.h};
}

__device__ __forceinline__ void store_lse(const RowState& rs, const FwdParams& p, const FwdTileCoord& c, RowHead rh, int half,
                                          float sum) {
    if (p.lse == nullptr) return;
    const float lse = sum > 0.0f ? rs.ref[half] * kLn2 + logf(sum) : kPosInf;
    const int64_t idx = p.cu_seqlens_q != nullptr
                            ? static_cast<int64_t>(rh.head) * p.lse_head_stride + c.q_row0 + rh.row
                            : static_cast<int64_t>(c.b) * p.lse_batch_stride + static_cast<int64_t>(rh.head) * p.lse_head_stride + rh.row;
    p.lse[idx] = lse;
}

/* O /= ℓ, LSE, and the stores of the warpgroup's rows from registers (rows ≥ sq and columns ≥
   headdim_v are not written). `o` may be all zero with rs.sum = 0: a row that saw no key. With
   Traits::kStoreO16B the lanes of a row swap their pairs (quad_transpose) so that each writes 16
   contiguous bytes per store: a quarter of the store instructions, and whole 32-byte sectors. `out_scale`
   multiplies O (e4m3: v_descale). */
template <class Traits, typename Element>
__device__ __forceinline__ void store_output(float (&o)[Traits::kORegs], const RowState& rs, const FwdParams& p,
                                             const FwdTileCoord& c, int row0, int quad, float out_scale) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const float sum = fa_cuda::quad_sum(rs.sum[half]);
        const float inv = sum > 0.0f ? out_scale / sum : 0.0f;
        const int m = c.m_block * Traits::kBlockM + row0 + 8 * half; /* tile row within the sequence */
        const bool in_rows = m < c.rows; /* the same for the 4 lanes of the row; every lane still shuffles */
        const RowHead rh = row_head(c, in_rows ? m : 0);
        if (in_rows && quad == 0) store_lse(rs, p, c, rh, half, sum);
        const int64_t row_off = p.cu_seqlens_q != nullptr
                                    ? static_cast<int64_t>(c.q_row0 + rh.row) * p.o_row_stride
                                    : static_cast<int64_t>(c.b) * p.o_batch_stride + static_cast<int64_t>(rh.row) * p.o_row_stride;
        Element* out = static_cast<Element*>(p.out) + row_off + static_cast<int64_t>(rh.head) * p.o_head_stride;
#pragma unroll
        for (int a = 0; a < Traits::kORegs / 16; ++a) { /* columns 32a … 32a + 31 */
            uint32_t v[4];
#pragma unroll
            for (int b = 0; b < 4; ++b) {
                const int j = 4 * a + b;
                v[b] = fa_cuda::pack2<Element>(o[4 * j + 2 * half] * inv, o[4 * j + 2 * half + 1] * inv);
            }
            if constexpr (Traits::kStoreO16B) {
                fa_cuda::quad_transpose(v, quad);
                const int col = 32 * a + 8 * quad; /* headdim_v is a multiple of 8: a chunk is all in or all out */
                if (in_rows && col < p.headdim_v) *reinterpret_cast<uint4*>(out + col) = make_uint4(v[0], v[1], v[2], v[3]);
            } else {
#pragma unroll
                for (int b = 0; b < 4; ++b) {
                    const int col = 8 * (4 * a + b) + 2 * quad;
                    if (in_rows && col < p.headdim_v) *reinterpret_cast<uint32_t*>(out + col) = v[b];
                }
            }
        }
    }
}

/* A split's epilogue (num_splits > 1): O / ℓ and the LSE as fp32 partials (LSE −inf where the split saw
   no key of the row; the combine kernel then never reads that O). */
template <class Traits>
__device__ __forceinline__ void store_partial(float (&o)[Traits::kORegs], const RowState& rs, const FwdParams& p,
                                              const FwdTileCoord& c, int row0, int quad) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const float sum = fa_cuda::quad_sum(rs.sum[half]);
        const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        const int m = c.m_block * Traits::kBlockM + row0 + 8 * half;
        if (m >= c.rows) continue;
        const RowHead rh = row_head(c, m);
        const int64_t flat = c.split * p.partial_rows + (static_cast<int64_t>(c.b) * p.nheads_q + rh.head) * p.seqlen_q + rh.row;
        if (quad == 0) p.lse_partial[flat] = sum > 0.0f ? rs.ref[half] * kLn2 + logf(sum) : kNegInf;
        float* out = p.o_partial + flat * p.headdim_v;
#pragma unroll
        for (int j = 0; j < Traits::kORegs / 4; ++j) {
            const int col = 8 * j + 2 * quad;
            if (col < p.headdim_v)
                *reinterpret_cast<float2*>(out + col) = make_float2(o[4 * j + 2 * half] * inv, o[4 * j + 2 * half + 1] * inv);
        }
    }
}

/* The epilogue with a TMA store (Traits::kStoreOWithTma): O / ℓ and the LSE (store_lse) as store_output, the rows
   of this warpgroup staged in its shared-memory slabs in the 128-byte-swizzled image TMA reads (16-byte
   chunk index ^= row % 8, so the 8 rows of one store instruction hit 8 different bank groups), then
   one thread stores the slabs. `tid` is the thread within the warpgroup, `smem_o` its staging area. */
template <class Traits, typename Element>
__device__ __forceinline__ void store_output_tma(float (&o)[Traits::kORegs], const RowState& rs, const FwdParams& p,
                                                 const FwdTileCoord& c, int row0, int quad, uint8_t* smem_o, int wg,
                                                 int tid, float out_scale) {
    float inv[2];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const float sum = fa_cuda::quad_sum(rs.sum[half]);
        inv[half] = sum > 0.0f ? out_scale / sum : 0.0f;
        const int row = c.m_block * Traits::kBlockM + row0 + 8 * half; /* no packed GQA here (o_tma is off with it) */
        if (row < c.sq && quad == 0) store_lse(rs, p, c, RowHead{row, c.h}, half, sum);
    }
    const uint32_t bar_id = 4 + wg; /* 1 … kConsumers are the ping-pong turns */
    if (tid == 0) bulk_wait_group_read<0>(); /* the previous tile's store has read the slabs */
    named_barrier_sync(bar_id, 128);
    const uint32_t base = smem_u32(smem_o);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const int r = row0 - 64 * wg + 8 * half; /* row within the warpgroup's 64 */
#pragma unroll
        for (int j = 0; j < Traits::kORegs / 4; ++j) {
            const int col = 8 * j + 2 * quad, slab = col / 64, chunk = (col % 64) / 8;
            const uint32_t at = base + slab * 64 * 128 + r * 128 + ((chunk ^ (r % 8)) * 16) + (col % 8) * 2;
            const uint32_t v = fa_cuda::pack2<Element>(o[4 * j + 2 * half] * inv[half], o[4 * j + 2 * half + 1] * inv[half]);
            asm volatile("st.shared.b32 [%0], %1;" ::"r"(at), "r"(v)); /* ordered by volatility before the fence */
        }
    }
    fence_proxy_async_smem(); /* the slabs, written by the generic proxy, are read by TMA */
    named_barrier_sync(bar_id, 128);
    if (tid == 0) {
        const int row = c.m_block * Traits::kBlockM + 64 * wg; /* rows past the sequence are clipped */
        if (row < c.sq) {
#pragma unroll
            for (int s = 0; s < Traits::kOSlabs; ++s) tma_store_4d(p.tma_o, smem_o + s * 64 * 128, 64 * s, row, c.h, c.b);
        }
        bulk_commit_group();
    }
}

/* The key blocks that need per-element masking, decided once per tile: n ≥ hi reach past the keys or the
   causal/right window edge of the tile's first row, n < lo below the left window edge of its last row.
   (Per block, the test reloaded the window bounds from the parameter bank in every step: ~5 % of the
   consumers' stall samples at d128, 8k keys.) */
struct MaskedBlocks {
    int lo, hi;
    __device__ __forceinline__ bool operator()(int n) const { return n >= hi || n < lo; }
};
template <class Traits>
__device__ __forceinline__ MaskedBlocks masked_blocks(const ScoreArgs& p, const FwdTileCoord& c) {
    constexpr int kBlockN = Traits::kBlockN;
    const int m0 = c.m_block * Traits::kBlockM;
    const int first = m0 / c.pack, last = (m0 + Traits::kBlockM - 1) / c.pack; /* query rows of the tile */
    const int offset = c.sk - c.sq;
    int limit = c.sk; /* block n is clear on the right when (n + 1)·kBlockN ≤ limit */
    if (p.window_right >= 0) limit = min(limit, first + offset + p.window_right + 1);
    const int below = p.window_left >= 0 ? last + offset - p.window_left : 0; /* clear on the left when n·kBlockN ≥ below */
    return MaskedBlocks{below > 0 ? (below + kBlockN - 1) / kBlockN : 0, max(limit, 0) / kBlockN};
}

/* e4m3: the tile's descales (FwdParams), 1 where absent: q·k's into the score scale, v's onto O. */
struct Fp8Scales {
    float qk, v;
};
__device__ __forceinline__ Fp8Scales fp8_scales(const FwdParams& p, const FwdTileCoord& c) {
    const int64_t at = c.b * p.descale_batch_stride + static_cast<int64_t>(c.pack > 1 ? c.h : c.h / p.group) * p.descale_head_stride;
    const float q = p.q_descale != nullptr ? p.q_descale[at] : 1.0f;
    const float k = p.k_descale != nullptr ? p.k_descale[at] : 1.0f;
    return Fp8Scales{q * k, p.v_descale != nullptr ? p.v_descale[at] : 1.0f};
}

template <class Traits, typename Element, bool kSoftcap, bool kCache>
__device__ void fwd_consumer(const FwdParams& p, const FwdSmem<Traits>& sm, int wg) {
    constexpr int kStages = Traits::kStages;
    using Out = std::conditional_t<Traits::kFp8, __nv_bfloat16, Element>; /* e4m3 writes bf16 */
    const int tid = threadIdx.x - 128 * (wg + 1);
    const int warp = tid / 32, lane = tid % 32;
    const int row0 = wg * 64 + warp * 16 + lane / 4; /* tile rows row0 and row0 + 8 */
    const int quad = lane % 4;
    const GemmTurn<Traits> turn{wg};
    auto finish_tile = [&](float (&o)[Traits::kORegs], const RowState& rs, const FwdTileCoord& c, float out_scale) {
        if constexpr (kCache) {
            if (p.num_splits > 1) {
                store_partial<Traits>(o, rs, p, c, row0, quad);
                return;
            }
        }
        if constexpr (Traits::kStoreOWithTma) {
            if (p.o_tma) {
                store_output_tma<Traits, Out>(o, rs, p, c, row0, quad, sm.o(wg), wg, tid, out_scale);
                return;
            }
        }
        store_output<Traits, Out>(o, rs, p, c, row0, quad, out_scale);
    };
    ScoreArgs args{p.scale_log2, p.score_scale, p.window_left, p.window_right};
    // Opaque to the compiler, so that it keeps them in registers rather than reloading them.
    asm volatile("" : "+f"(args.scale_log2), "+f"(args.score_scale), "+r"(args.window_left), "+r"(args.window_right));
    const uint32_t q_base = smem_u32(sm.q()) + wg * 64 * 128;

    // The last warpgroup lets the first go at the very first GEMM.
    if (Traits::kPingPong && wg == Traits::kConsumers - 1) named_barrier_arrive(1, 256);

    PipeState<kStages> k_state, v_state;
    uint32_t q_iter = 0;
    float o[Traits::kORegs];
    float s[Traits::kSRegs];
    uint32_t pr[Traits::kPRegs];
    for (TileWalk walk; walk.tile() < p.num_tiles; ++walk.round) {
        const int tile = walk.tile();
        const FwdTileCoord c = fwd_tile<Traits, kCache>(p, tile);
        if (c.m_block * Traits::kBlockM >= c.rows) continue;
        RowState rs;
        if (c.n_max <= c.n_min) { /* no key for any row of the tile */
#pragma unroll
            for (int i = 0; i < Traits::kORegs; ++i) o[i] = 0.0f;
            rs.ref[0] = rs.ref[1] = kNegInf;
            rs.sum[0] = rs.sum[1] = 0.0f;
            finish_tile(o, rs, c, 1.0f);
            continue;
        }
        ScoreArgs tile_args = args;
        float out_scale = 1.0f;
        if constexpr (Traits::kFp8) {
            const Fp8Scales d = fp8_scales(p, c);
            (kSoftcap ? tile_args.score_scale : tile_args.scale_log2) *= d.qk;
            out_scale = d.v;
        }
        const int offset = c.sk - c.sq;
        const int row_in_seq = c.m_block * Traits::kBlockM + row0;
        const MaskedBlocks needs_mask = masked_blocks<Traits>(args, c);
        mbar_wait(sm.q_full(), q_iter & 1u);
        ++q_iter;

        // ---- first key block (the highest): S only
        int n = c.n_max - 1;
        mbar_wait(sm.k_full(k_state.index), k_state.phase);
        turn.wait();
        wgmma_fence();
        gemm_qk<Traits, Element>(s, q_base, smem_u32(sm.k(k_state.index)));
        wgmma_commit_group();
        turn.pass();
        wgmma_wait_group<0>();
        reg_fence(s);
        release(sm.k_empty(k_state.index), lane);
        k_state.advance();
        if (n == c.n_min) release(sm.q_empty(), lane);
        float factor[2];
        softmax_step<Traits, kSoftcap, true>(s, rs, factor, tile_args, needs_mask(n), n, row_in_seq, quad, offset,
                                             c.sk, c.pack);
        scores_to_p<Traits, Element>(s, pr);

        // ---- steady state: S(n) and P·V(n + 1) in flight together. O's rescale for block n + 1's
        // softmax is applied just before P·V(n + 1) is issued (not after the wait for it): with
        // no instruction touching O between the issue of P·V and its wait, ptxas keeps that wait
        // below the softmax instead of hoisting it above, and the softmax overlaps P·V.
        uint32_t o_started = 0;
        bool rescale = false;
        for (n = c.n_max - 2; n >= c.n_min; --n) {
            mbar_wait(sm.k_full(k_state.index), k_state.phase);
            turn.wait();
            wgmma_fence();
            gemm_qk<Traits, Element>(s, q_base, smem_u32(sm.k(k_state.index)));
            wgmma_commit_group();
            if (rescale) rescale_o<Traits>(o, factor);
            mbar_wait(sm.v_full(v_state.index), v_state.phase);
            wgmma_fence();
            gemm_pv<Traits, Element>(o, pr, smem_u32(sm.v(v_state.index)), o_started);
            wgmma_commit_group();
            turn.pass();
            wgmma_wait_group<1>();
            reg_fence(s);
            release(sm.k_empty(k_state.index), lane);
            k_state.advance();
            if (n == c.n_min) release(sm.q_empty(), lane);
            rescale = softmax_step<Traits, kSoftcap, false>(s, rs, factor, tile_args, needs_mask(n), n, row_in_seq,
                                                            quad, offset, c.sk, c.pack);
            // The softmax of S(n) must run while P·V(n + 1) does: ptxas otherwise hoists the wait
            // for P·V above it (every MUFU after the wait in the SASS), stalling the warpgroup.
            if constexpr (Traits::kSoftmaxBeforeWait) schedule_after(rs.sum[0] + rs.sum[1]);
            wgmma_wait_group<0>();
            reg_fence(o);
            reg_fence(s); /* the new P may take the old P's registers only now */
            release(sm.v_empty(v_state.index), lane);
            v_state.advance();
            scores_to_p<Traits, Element>(s, pr);
            o_started = 1;
        }

        // ---- tail: P·V(n_min)
        if (rescale) rescale_o<Traits>(o, factor);
        mbar_wait(sm.v_full(v_state.index), v_state.phase);
        turn.wait();
        wgmma_fence();
        gemm_pv<Traits, Element>(o, pr, smem_u32(sm.v(v_state.index)), o_started);
        wgmma_commit_group();
        turn.pass();
        wgmma_wait_group<0>();
        reg_fence(o);
        release(sm.v_empty(v_state.index), lane);
        v_state.advance();
        finish_tile(o, rs, c, out_scale);
    }
    if constexpr (Traits::kStoreOWithTma) {
        if (p.o_tma && tid == 0) bulk_wait_group<0>(); /* the last stores done before the CTA's memory goes */
    }
}

// ---------------------------------------------------------------- the kernel

template <class Traits, typename Element, bool kSoftcap, bool kCache>
__global__ void __launch_bounds__(Traits::kThreads, 1) flash_fwd_sm90_kernel(const __grid_constant__ FwdParams p) {
    extern __shared__ uint8_t smem_raw[];
    FwdSmem<Traits> sm;
    sm.base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
    const int wg = threadIdx.x / 128;
    if (threadIdx.x == 0) {
        prefetch_tmap(p.tma_q);
        prefetch_tmap(p.tma_k);
        prefetch_tmap(p.tma_v);
        if (Traits::kStoreOWithTma && p.o_tma) prefetch_tmap(p.tma_o);
        mbar_init(sm.q_full(), 1);
        mbar_init(sm.q_empty(), 4 * Traits::kConsumers);
        mbar_init(sm.v_tail(), 1);
        for (int s = 0; s < Traits::kStages; ++s) {
            mbar_init(sm.k_full(s), 1);
            mbar_init(sm.v_full(s), 1);
            mbar_init(sm.k_empty(s), 4 * Traits::kConsumers);
            mbar_init(sm.v_empty(s), 4 * Traits::kConsumers);
        }
        fence_mbarrier_init();
    }
    __syncthreads();
    if (wg == 0) {
        setmaxnreg_dec<Traits::kProducerRegs>();
        if (threadIdx.x == 0) fwd_producer<Traits, kCache>(p, sm);
    } else {
        setmaxnreg_inc<Traits::kConsumerRegs>();
        fwd_consumer<Traits, Element, kSoftcap, kCache>(p, sm, wg - 1);
    }
}

}  // namespace fa_sm90

#endif  // FA_SM90_FLASH_FWD_KERNEL_CUH

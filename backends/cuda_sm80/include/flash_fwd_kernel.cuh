/*
 * flash_fwd_kernel.cuh — the sm80 forward kernel (FlashAttention-2 algorithm).
 *
 * One CTA computes kBlockM query rows of one (sequence, query head): Q is loaded once into
 * shared memory; the visible key tiles are walked from the last to the first, and for each
 *   S = Q·Kᵀ (mma.sync, Q and K from swizzled shared memory through ldmatrix)
 *   S → masked / capped / biased scores → online softmax (exp2 with scale·log2e folded in)
 *   P (fp32 → 16-bit in registers, the A operand) → O += P·V (V through ldmatrix.trans)
 * Loads overlap the math: V(n) is in flight while the first S step of tile n is computed, and
 * K(n−1) (a second K buffer where shared memory allows, else after tile n's S) during the
 * rest of tile n. Each S step's P is consumed by its P·V at once, so one step's S and P are
 * live at a time next to O. The online softmax keeps a lazy reference maximum (rescaling O
 * only when a row's maximum grows by more than 2^8). O stays in fp32 registers; the epilogue
 * normalises it, stages it in shared memory (over Q) and writes 16-byte rows.
 *
 * Template switches (everything else — window, lengths, varlen, GQA — is a run-time value):
 *   IsCausal  the instance key; reverses the CTA order so the longest rows start first.
 *   Full      softcap, ALiBi, dropout and a non-positive scale: the scores are turned into
 *             log2 units in place before the softmax. The lean kernel keeps raw q·k and
 *             folds softmax_scale·log2e into the exp2, as most calls need nothing else.
 *   Split     the kv-cache / split-KV kernel: paged or cache_batch_idx addressing of K/V,
 *             key range split over blockIdx.z, fp32 partials + LSE for the combine kernel.
 */
#ifndef FA_SM80_FLASH_FWD_KERNEL_CUH
#define FA_SM80_FLASH_FWD_KERNEL_CUH

#include <cfloat>
#include <cstdint>

#include "flash_fwd_args.cuh"
#include "flash_fwd_traits.cuh"
#include "philox.cuh"
#include "sm80_primitives.cuh"

namespace fa_sm80 {

using fa_cuda::kNegInf;
using fa_cuda::kPosInf;

/* Where the rows and keys of one (sequence b, query head h) live. */
struct FwdSequence {
    int sq;          /* query rows of the sequence */
    int sk;          /* keys (after seqused / leftpad) */
    int64_t q0;      /* element offset of q row 0, head h */
    int64_t o0;      /* element offset of out row 0, head h */
    int64_t k0, v0;  /* element offset of key 0 (non-paged), kv head */
    int raw0;        /* raw row of key 0 (leftpad), paged addressing */
    int64_t lse0;    /* index of row 0 in softmax_lse */
    int64_t flat0;   /* index of row 0 in the split partials: (b·hq + h)·seqlen_q */
};

FA_DEVICE FwdSequence resolve_sequence(const FwdArgs& a, int b, int h) {
    const int hk = h / a.group;
    FwdSequence s;
    int raw_keys;
    int64_t kv_entry_off_k, kv_entry_off_v;
    if (a.cu_seqlens_q != nullptr) {
        const int q_begin = a.cu_seqlens_q[b];
        const int k_begin = a.cu_seqlens_k[b];
        s.sq = a.cu_seqlens_q[b + 1] - q_begin;
        raw_keys = a.cu_seqlens_k[b + 1] - k_begin;
        s.q0 = static_cast<int64_t>(q_begin) * a.q_row_stride;
        s.o0 = static_cast<int64_t>(q_begin) * a.o_row_stride;
        s.lse0 = static_cast<int64_t>(h) * a.lse_head_stride + q_begin;
        kv_entry_off_k = static_cast<int64_t>(k_begin) * a.k_row_stride;
        kv_entry_off_v = static_cast<int64_t>(k_begin) * a.v_row_stride;
    } else {
        s.sq = a.seqlen_q;
        raw_keys = a.cache_seqlens != nullptr ? a.cache_seqlens[b] + a.seqlen_new : a.seqlen_k;
        const int entry = a.cache_batch_idx != nullptr ? a.cache_batch_idx[b] : b;
        s.q0 = static_cast<int64_t>(b) * a.q_batch_stride;
        s.o0 = static_cast<int64_t>(b) * a.o_batch_stride;
        s.lse0 = static_cast<int64_t>(b) * a.lse_batch_stride + static_cast<int64_t>(h) * a.lse_head_stride;
        kv_entry_off_k = static_cast<int64_t>(entry) * a.k_batch_stride;
        kv_entry_off_v = static_cast<int64_t>(entry) * a.v_batch_stride;
    }
    if (a.seqused_k != nullptr) raw_keys = a.seqused_k[b];
    const int leftpad = a.leftpad_k != nullptr ? a.leftpad_k[b] : 0;
    s.sk = raw_keys - leftpad;
    s.raw0 = leftpad;
    s.q0 += static_cast<int64_t>(h) * a.q_head_stride;
    s.o0 += static_cast<int64_t>(h) * a.o_head_stride;
    s.k0 = kv_entry_off_k + static_cast<int64_t>(hk) * a.k_head_stride + static_cast<int64_t>(leftpad) * a.k_row_stride;
    s.v0 = kv_entry_off_v + static_cast<int64_t>(hk) * a.v_head_stride + static_cast<int64_t>(leftpad) * a.v_row_stride;
    s.flat0 = (static_cast<int64_t>(b) * a.nheads_q + h) * a.seqlen_q;
    return s;
}

/*
 * cp.async of a Rows × Tile::kChunks tile whose row r starts at `tile` + r·row_stride (or, when
 * paged, at base + row_offset(r)); rows ≥ rows_valid and chunks ≥ chunks_valid are zero-filled,
 * so padded rows give finite scores and padded head-dim columns contribute nothing.
 * When the CTA's threads cover whole rows (NThreads a multiple of kChunks) every thread keeps
 * one chunk column and walks its rows with a running pointer: no per-row 64-bit products to
 * hoist into registers.
 */
template <typename Tile, int NThreads>
FA_DEVICE void load_tile_async(uint32_t smem_tile, const uint16_t* tile, int64_t row_stride, int rows_valid, int chunks_valid,
                               int tid_in) {
    constexpr int kChunks = Tile::kChunks;
    constexpr int kTotal = Tile::kRows * kChunks;
    static_assert(kTotal % NThreads == 0, "load_tile_async: the tile must split evenly over the CTA");
    // The thread's copy coordinates are recomputed per call (opaque tid) rather than kept in
    // registers across the main loop, where every register is needed for the accumulators.
    const int tid = static_cast<int>(opaque(static_cast<uint32_t>(tid_in)));
    if constexpr (NThreads % kChunks == 0) {
        constexpr int kRowsPerPass = NThreads / kChunks;
        const int row0 = tid / kChunks;
        const int chunk = tid % kChunks;
        const bool chunk_ok = chunk < chunks_valid;
        const uint16_t* src = tile + row0 * row_stride + chunk * 8;
        const int64_t step = kRowsPerPass * row_stride;
        // Rows row0 + it·kRowsPerPass keep row0's swizzle when kRowsPerPass % 8 == 0, so the
        // destinations are one base plus immediates.
        constexpr bool kSameSwizzle = kRowsPerPass % 8 == 0 && (kChunks % 8 == 0 || Tile::kFullPanels == 0);
        constexpr int kRowBytes = kChunks % 8 == 0 ? 128 : 64;
        const uint32_t dst0 = smem_tile + Tile::offset(row0, chunk);
        if (rows_valid >= Tile::kRows && chunks_valid >= kChunks) {
            // The common tile: every chunk is read, no predicate or address select per chunk.
#pragma unroll
            for (int it = 0; it < kTotal / NThreads; ++it) {
                const uint32_t dst = kSameSwizzle ? dst0 + it * kRowsPerPass * kRowBytes : smem_tile + Tile::offset(row0 + it * kRowsPerPass, chunk);
                cp_async_16(dst, src, true);
                src += step;
            }
            return;
        }
#pragma unroll
        for (int it = 0; it < kTotal / NThreads; ++it) {
            const bool valid = chunk_ok && row0 + it * kRowsPerPass < rows_valid;
            const uint32_t dst = kSameSwizzle ? dst0 + it * kRowsPerPass * kRowBytes : smem_tile + Tile::offset(row0 + it * kRowsPerPass, chunk);
            cp_async_16(dst, valid ? src : tile, valid);
            src += step;
        }
    } else {
#pragma unroll
        for (int it = 0; it < kTotal / NThreads; ++it) {
            const int idx = tid + it * NThreads;
            const int row = idx / kChunks;
            const int chunk = idx % kChunks;
            const bool valid = row < rows_valid && chunk < chunks_valid;
            cp_async_16(smem_tile + Tile::offset(row, chunk), valid ? tile + row * row_stride + chunk * 8 : tile, valid);
        }
    }
}

template <typename Tile, int NThreads, typename RowOffset>
FA_DEVICE void load_tile_async_rows(uint32_t smem_tile, const uint16_t* base, RowOffset row_offset, int rows_valid,
                                    int chunks_valid, int tid) {
    constexpr int kChunks = Tile::kChunks;
    constexpr int kTotal = Tile::kRows * kChunks;
    static_assert(kTotal % NThreads == 0, "load_tile_async_rows: the tile must split evenly over the CTA");
#pragma unroll
    for (int it = 0; it < kTotal / NThreads; ++it) {
        const int idx = tid + it * NThreads;
        const int row = idx / kChunks;
        const int chunk = idx % kChunks;
        const bool valid = row < rows_valid && chunk < chunks_valid;
        cp_async_16(smem_tile + Tile::offset(row, chunk), valid ? base + row_offset(row) + chunk * 8 : base, valid);
    }
}

/*
 * CTA-uniform values the main loop needs now and then (K/V addressing, mask bounds), kept in
 * shared memory rather than in registers: the loop's registers all go to the accumulators.
 */
struct CtaState {
    const uint16_t* k_base; /* key 0 of the (sequence, kv head), non-paged */
    const uint16_t* v_base;
    int sk;                 /* keys of the sequence */
    int align;              /* sk − sq: row i's diagonal key is i + align */
    int end_first;          /* visible-key end of the tile's first row */
    int begin_last;         /* visible-key begin of the tile's last row */
};

/* The CTA's work item. The block indices are read through volatile moves, so that a second
   call (in the epilogue) re-reads them instead of keeping them live through the main loop. */
struct CtaCoords {
    int m_block, h, b, split;
};

FA_DEVICE uint32_t read_ctaid(int axis) {
    uint32_t v;
    if (axis == 0)
        asm volatile("mov.u32 %0, %%ctaid.x;" : "=r"(v));
    else if (axis == 1)
        asm volatile("mov.u32 %0, %%ctaid.y;" : "=r"(v));
    else
        asm volatile("mov.u32 %0, %%ctaid.z;" : "=r"(v));
    return v;
}

template <bool IsCausal, bool Split>
FA_DEVICE CtaCoords locate_cta(const FwdArgs& args) {
    CtaCoords c;
    const int x = static_cast<int>(read_ctaid(0));
    // Causal: the longest rows (last m-blocks) start first.
    c.m_block = IsCausal ? static_cast<int>(gridDim.x) - 1 - x : x;
    c.h = static_cast<int>(read_ctaid(1));
    const int z = static_cast<int>(read_ctaid(2));
    c.b = Split ? z / args.num_splits : z;
    c.split = Split ? z % args.num_splits : 0;
    return c;
}

template <typename Traits, bool IsCausal, bool Full, bool Split>
__global__ void __launch_bounds__(Traits::kNThreads, Traits::kMinBlocksPerSm)
    flash_fwd_kernel(const __grid_constant__ FwdArgs args) {
    using Element = typename Traits::Element;
    constexpr int kBlockM = Traits::kBlockM;
    constexpr int kBlockN = Traits::kBlockN;
    constexpr int kMTiles = Traits::kMTiles;
    constexpr int kBlockNS = Traits::template block_ns<Full>(); /* S columns per softmax step */
    constexpr int kSubSteps = kBlockN / kBlockNS;
    constexpr int kNTilesS = kBlockNS / 8;
    constexpr int kNTilesO = Traits::kNTilesO;
    constexpr int kNThreads = Traits::kNThreads;
    using QTile = typename Traits::QTile;
    using KTile = typename Traits::KTile;
    using VTile = typename Traits::VTile;
    using OTile = typename Traits::OTile;

    extern __shared__ __align__(128) unsigned char smem[];
    const uint32_t smem_q = smem_addr(smem) + Traits::kSmemQ;
    const uint32_t smem_k = smem_addr(smem) + Traits::kSmemK;
    const uint32_t smem_v = smem_addr(smem) + Traits::kSmemV;

    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int g = lane >> 2; /* row group of the MMA fragments */
    const int t = lane & 3;  /* thread in group */

    // Packed GQA (split kernel, kv cache: FwdArgs::pack): the CTA's grid y is a kv head, h the first query head of
    // its group, and tile row m is query row m / pack of head h + m % pack, so the group streams K/V once.
    const int pack = Split ? args.pack : 1;
    const CtaCoords cta = locate_cta<IsCausal, Split>(args);
    const int m_block = cta.m_block, h = cta.h * pack, b = cta.b, split = cta.split;

    const FwdSequence seq = resolve_sequence(args, b, h);
    const int m0 = m_block * kBlockM;
    if (m0 >= seq.sq * pack) return;
    const int rows_valid = min(kBlockM, seq.sq * pack - m0);

    // ---- the visible key range of this tile's rows -------------------------------------------
    // Row i sees keys [begin(i), end(i)), both non-decreasing in i (docs/semantics.md, with
    // a = i + sk − sq): begin = a − left (left ≥ 0), end = a + right + 1 (right ≥ 0).
    const int align = seq.sk - seq.sq;
    const int left = args.window_left;
    const int right = IsCausal ? 0 : args.window_right;
    auto key_begin = [&](int i) { return left < 0 ? 0 : max(0, i + align - left); };
    auto key_end = [&](int i) { return right < 0 ? seq.sk : max(0, min(seq.sk, i + align + right + 1)); };
    const int begin_first = key_begin(m0 / pack);
    const int begin_last = key_begin((m0 + kBlockM - 1) / pack);
    const int end_first = key_end(m0 / pack);
    const int end_last = key_end((m0 + rows_valid - 1) / pack);
    int n_block_min = begin_first / kBlockN;
    int n_block_max = end_last > begin_first ? (end_last + kBlockN - 1) / kBlockN : n_block_min;
    if (Split && args.num_splits > 1) {
        const int per_split = (n_block_max - n_block_min + args.num_splits - 1) / args.num_splits;
        n_block_min = n_block_min + split * per_split;
        n_block_max = min(n_block_max, n_block_min + per_split);
    }

    const uint16_t* q_base = static_cast<const uint16_t*>(args.q) + seq.q0;
    CtaState* const state = reinterpret_cast<CtaState*>(smem + Traits::kSmemState);
    if (tid == 0) {
        state->k_base = static_cast<const uint16_t*>(args.k) + seq.k0;
        state->v_base = static_cast<const uint16_t*>(args.v) + seq.v0;
        state->sk = seq.sk;
        state->align = align;
        state->end_first = end_first;
        state->begin_last = begin_last;
    }
    __syncthreads();
    const int q_chunks = args.headdim_qk / 8;
    const int v_chunks = args.headdim_v / 8;

    // K/V row offsets: contiguous rows, or (kv-cache) rows spread over pages.
    const bool paged = Split && args.block_table != nullptr;
    const int32_t* page_row = paged ? args.block_table + static_cast<int64_t>(b) * args.block_table_batch_stride : nullptr;
    const int64_t hk_off_k = static_cast<int64_t>(h / args.group) * args.k_head_stride;
    const int64_t hk_off_v = static_cast<int64_t>(h / args.group) * args.v_head_stride;
    auto paged_offset = [&](int key, int64_t row_stride, int64_t page_stride, int64_t head_off) -> int64_t {
        const int raw = seq.raw0 + key;
        const int page = page_row[raw / args.page_size];
        return static_cast<int64_t>(page) * page_stride + static_cast<int64_t>(raw % args.page_size) * row_stride + head_off;
    };
    auto load_k = [&](int n_block) {
        const int n0 = n_block * kBlockN;
        const uint32_t smem_k_buf = smem_k + (Traits::kKStages == 2 ? (n_block & 1) * KTile::kBytes : 0);
        if (paged) {
            load_tile_async_rows<KTile, kNThreads>(
                smem_k_buf, static_cast<const uint16_t*>(args.k),
                [&](int r) { return paged_offset(n0 + r, args.k_row_stride, args.k_batch_stride, hk_off_k); }, state->sk - n0, q_chunks,
                tid);
        } else {
            load_tile_async<KTile, kNThreads>(smem_k_buf, state->k_base + n0 * args.k_row_stride, args.k_row_stride, state->sk - n0, q_chunks,
                                              tid);
        }
    };
    auto load_v = [&](int n_block) {
        const int n0 = n_block * kBlockN;
        if (paged) {
            load_tile_async_rows<VTile, kNThreads>(
                smem_v, static_cast<const uint16_t*>(args.v),
                [&](int r) { return paged_offset(n0 + r, args.v_row_stride, args.v_batch_stride, hk_off_v); }, state->sk - n0, v_chunks,
                tid);
        } else {
            load_tile_async<VTile, kNThreads>(smem_v, state->v_base + n0 * args.v_row_stride, args.v_row_stride, state->sk - n0, v_chunks,
                                              tid);
        }
    };

    // ---- per-thread rows ------------------------------------------------------------------------
    // Fragment rows of this thread: tile row r(mt, half) = warp·kWarpRows + mt·16 + half·8 + g.
    const int warp_row0 = warp * Traits::kWarpRows;
    float o_acc[kMTiles][kNTilesO][4];
    float row_ref[kMTiles][2]; /* reference maximum, log2 units (see the softmax below) */
    float row_sum[kMTiles][2]; /* this thread's part of Σ 2^(x − ref) */
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
        for (int nt = 0; nt < kNTilesO; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) o_acc[mt][nt][e] = 0.0f;
        }
        row_ref[mt][0] = row_ref[mt][1] = kNegInf;
        row_sum[mt][0] = row_sum[mt][1] = 0.0f;
    }

    // Full kernel: scores become log2 units before the softmax, which then multiplies by 1.
    const float softmax_mult = Full ? 1.0f : args.scale_log2;
    float alibi_slope_log2 = 0.0f;
    if (Full && args.alibi_slopes != nullptr)
        alibi_slope_log2 = args.alibi_slopes[static_cast<int64_t>(b) * args.alibi_batch_stride + h] * kLog2e;
    const uint32_t dropout_bh = static_cast<uint32_t>(b * args.nheads_q + h);

    // ldmatrix lanes: Q rows warp_row0 + (lane % 16), chunk + lane / 16 (A: a0..a3);
    // K rows (lane / 16)·8 + lane % 8, chunk + (lane / 8) % 2 (B of two n-tiles);
    // V rows lane % 16, chunk + lane / 16, transposed (B of two n-tiles).
    const auto q_ldsm = QTile::ldsm_base(smem_q, warp_row0 + (lane & 15), lane >> 4);
    const auto k_ldsm = KTile::ldsm_base(smem_k, ((lane >> 4) << 3) + (lane & 7), (lane >> 3) & 1);
    const auto v_ldsm = VTile::ldsm_base(smem_v, lane & 15, lane >> 4);

    if (n_block_max > n_block_min) {
        // ---- prologue: Q and the last K tile -----------------------------------------------------
        if (Split && pack > 1) {
            load_tile_async_rows<QTile, kNThreads>(
                smem_q, q_base,
                [&](int r) {
                    const int m = m0 + r;
                    return static_cast<int64_t>(m / pack) * args.q_row_stride + static_cast<int64_t>(m % pack) * args.q_head_stride;
                },
                rows_valid, q_chunks, tid);
        } else {
            load_tile_async<QTile, kNThreads>(smem_q, q_base + m0 * args.q_row_stride, args.q_row_stride, rows_valid, q_chunks, tid);
        }
        load_k(n_block_max - 1);
        cp_async_commit();

        for (int n_block = n_block_max - 1; n_block >= n_block_min; --n_block) {
            const int n0 = n_block * kBlockN;
            // Pipeline: K(n) [and Q] landed → issue V(n) and (double buffer) K(n−1) → per S step:
            // S = Q·K(n)ᵀ, softmax, P (16-bit) → [first step: wait for V(n)] → O += P·V(n).
            // Each step's P is consumed at once, so only one step's S and P are ever live.
            cp_async_wait<0>();
            __syncthreads(); /* K(n) has landed; every warp is done with V(n+1) and K(n+1) */
            load_v(n_block);
            cp_async_commit();
            const bool prefetch_k = Traits::kKStages == 2 && n_block > n_block_min;
            if (prefetch_k) {
                load_k(n_block - 1);
                cp_async_commit();
            }
            const uint32_t k_buf = Traits::kKStages == 2 ? (n_block & 1) * KTile::kBytes : 0;

            const bool need_mask = state->end_first < n0 + kBlockN || state->begin_last > n0;
            // Not unrolled: both S steps share one register assignment, and the scheduler does
            // not overlap step s's P·V with step s+1's S (which pushed d = 128 over 255 registers).
#pragma unroll 1
            for (int sub = 0; sub < kSubSteps; ++sub) {
                const int c0 = sub * kBlockNS; /* first S column of this step within the tile */
                // Per-step copies of the ldmatrix bases keep their XOR variants short-lived.
                const auto q_lds = QTile::opaque_base(q_ldsm);
                auto k_lds = KTile::opaque_base(k_ldsm);
                k_lds.full += k_buf;
                k_lds.part += k_buf;

                // ---- S = Q·Kᵀ --------------------------------------------------------------------
                float s[kMTiles][kNTilesS][4];
#pragma unroll
                for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
                    for (int nt = 0; nt < kNTilesS; ++nt) {
#pragma unroll
                        for (int e = 0; e < 4; ++e) s[mt][nt][e] = 0.0f;
                    }
                }
#pragma unroll
                for (int ks = 0; ks < Traits::kKStepsQK; ++ks) {
                    uint32_t qa[kMTiles][4];
#pragma unroll
                    for (int mt = 0; mt < kMTiles; ++mt) ldmatrix_x4(qa[mt], QTile::ldsm_addr(q_lds, mt * 16, 2 * ks));
#pragma unroll
                    for (int np = 0; np < kNTilesS / 2; ++np) {
                        uint32_t kb[4];
                        ldmatrix_x4(kb, KTile::ldsm_addr(k_lds, c0 + np * 16, 2 * ks));
                        const uint32_t b0[2] = {kb[0], kb[1]};
                        const uint32_t b1[2] = {kb[2], kb[3]};
#pragma unroll
                        for (int mt = 0; mt < kMTiles; ++mt) {
                            mma_16816<Element>(s[mt][2 * np], qa[mt], b0);
                            mma_16816<Element>(s[mt][2 * np + 1], qa[mt], b1);
                        }
                    }
                }

                // ---- scores: softcap, mask, ALiBi (Full: in log2 units) ---------------------------------
                if (Full || need_mask) {
                    const bool capped = Full && args.softcap > 0.0f;
                    // Row indices recomputed here (opaque) so their bounds are not hoisted out of
                    // the loop into registers that live across every tile.
                    const int row_base = static_cast<int>(opaque(static_cast<uint32_t>(m0 + warp_row0 + g)));
#pragma unroll
                    for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
                        for (int half = 0; half < 2; ++half) {
                            const int i = (row_base + mt * 16 + half * 8) / pack; /* query row */
                            const int n_first = n0 + c0;
                            const int a = i + state->align, sk = state->sk; /* row i's diagonal key */
                            const int lo = (left < 0 ? 0 : max(0, a - left)) - n_first;
                            const int hi = (right < 0 ? sk : max(0, min(sk, a + right + 1))) - n_first;
                            const int dist0 = a - n_first; /* a − j at this step's column 0 (ALiBi) */
#pragma unroll
                            for (int nt = 0; nt < kNTilesS; ++nt) {
#pragma unroll
                                for (int e = 0; e < 2; ++e) {
                                    const int c = nt * 8 + 2 * t + e;
                                    float x = s[mt][nt][half * 2 + e];
                                    if (Full) {
                                        x *= args.score_scale;
                                        if (capped) x = args.softcap * tanh_accurate(x);
                                        x = x * kLog2e - alibi_slope_log2 * fabsf(static_cast<float>(dist0 - c));
                                    }
                                    if (need_mask && (c < lo || c >= hi)) x = kNegInf;
                                    s[mt][nt][half * 2 + e] = x;
                                }
                            }
                        }
                    }
                }

                // ---- online softmax with a lazy reference ------------------------------------------------
                // Each row keeps a reference ref (log2 units) and ℓ = Σ 2^(x − ref). ref moves only when
                // a step's maximum exceeds it by more than kLazyRescale, so 2^(x − ref) ≤ 2^8 and, after
                // a row's first keys, O and ℓ are almost never rescaled (the warp skips the 2·kNTilesO
                // multiplies per row unless one of its rows moved). Any reference gives the same result
                // up to rounding; LSE = (ref + log2 ℓ)·ln 2.
                constexpr float kLazyRescale = 8.0f;
                float alpha[kMTiles][2];
                bool moved = false;
#pragma unroll
                for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
                    for (int half = 0; half < 2; ++half) {
                        float mx = kNegInf;
#pragma unroll
                        for (int nt = 0; nt < kNTilesS; ++nt)
                            mx = fmaxf(mx, fmaxf(s[mt][nt][half * 2], s[mt][nt][half * 2 + 1]));
                        mx = quad_max(mx) * softmax_mult; /* −∞ stays −∞ (softmax_mult > 0) */
                        const float ref = row_ref[mt][half];
                        const bool move = mx > ref + kLazyRescale; /* never for −∞ (a row with no key yet) */
                        alpha[mt][half] = move ? exp2_approx(ref - mx) : 1.0f;
                        row_ref[mt][half] = move ? mx : ref;
                        moved |= move;
                    }
                }
                if (__any_sync(0xffffffffu, moved)) {
#pragma unroll
                    for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
                        for (int half = 0; half < 2; ++half) {
                            row_sum[mt][half] *= alpha[mt][half];
#pragma unroll
                            for (int nt = 0; nt < kNTilesO; ++nt) {
                                o_acc[mt][nt][half * 2] *= alpha[mt][half];
                                o_acc[mt][nt][half * 2 + 1] *= alpha[mt][half];
                            }
                        }
                    }
                }
#pragma unroll
                for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
                    for (int half = 0; half < 2; ++half) {
                        const float ref = row_ref[mt][half];
                        const float shift = ref == kNegInf ? 0.0f : ref; /* no key yet: 2^(−∞ − 0) = 0 */
                        float sum = 0.0f;
#pragma unroll
                        for (int nt = 0; nt < kNTilesS; ++nt) {
#pragma unroll
                            for (int e = 0; e < 2; ++e) {
                                const float p = exp2_approx(fmaf(s[mt][nt][half * 2 + e], softmax_mult, -shift));
                                s[mt][nt][half * 2 + e] = p;
                                sum += p;
                            }
                        }
                        row_sum[mt][half] += sum;
                    }
                }

                // ---- dropout: P̃ = P · keep (1/(1−p) is applied once, in the epilogue) ----------------
                if (Full && args.has_dropout) {
                    // Lanes t and t^1 need the same Philox group (keys 4(j/4) ..+3) for rows g and g + 8:
                    // the even lane computes row g's words, the odd lane row g + 8's, and they swap the
                    // half the other needs.
                    const bool odd = (t & 1) != 0;
#pragma unroll
                    for (int mt = 0; mt < kMTiles; ++mt) {
                        const uint32_t i_own = static_cast<uint32_t>(m0 + warp_row0 + mt * 16 + (odd ? 8 : 0) + g);
#pragma unroll
                        for (int nt = 0; nt < kNTilesS; ++nt) {
                            const uint32_t j4 = static_cast<uint32_t>(n0 + c0 + nt * 8 + (t >> 1) * 4);
                            const PhiloxWords w = dropout_words(args.dropout, dropout_bh, i_own, j4);
                            const uint32_t give0 = odd ? w.x[0] : w.x[2];
                            const uint32_t give1 = odd ? w.x[1] : w.x[3];
                            const uint32_t got0 = __shfl_xor_sync(0xffffffffu, give0, 1);
                            const uint32_t got1 = __shfl_xor_sync(0xffffffffu, give1, 1);
                            const uint32_t own0 = odd ? w.x[2] : w.x[0];
                            const uint32_t own1 = odd ? w.x[3] : w.x[1];
                            // Row g: the even lane's own words, the odd lane's received; row g + 8 the other way.
                            const uint32_t r0w0 = odd ? got0 : own0, r0w1 = odd ? got1 : own1;
                            const uint32_t r1w0 = odd ? own0 : got0, r1w1 = odd ? own1 : got1;
                            const uint32_t thr = args.dropout.threshold;
                            if (r0w0 < thr) s[mt][nt][0] = 0.0f;
                            if (r0w1 < thr) s[mt][nt][1] = 0.0f;
                            if (r1w0 < thr) s[mt][nt][2] = 0.0f;
                            if (r1w1 < thr) s[mt][nt][3] = 0.0f;
                        }
                    }
                }

                // ---- P to 16 bits: the A fragments of P·V (two n8 tiles of S = one k16 step) -------------
                uint32_t pa[kMTiles][kNTilesS / 2][4];
#pragma unroll
                for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
                    for (int kk = 0; kk < kNTilesS / 2; ++kk) {
                        pa[mt][kk][0] = pack2<Element>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                        pa[mt][kk][1] = pack2<Element>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                        pa[mt][kk][2] = pack2<Element>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                        pa[mt][kk][3] = pack2<Element>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
                    }
                }

                if (sub == 0) {
                    // V(n) has landed (K(n−1), committed after it, may still be in flight).
                    if (prefetch_k)
                        cp_async_wait<1>();
                    else
                        cp_async_wait<0>();
                    __syncthreads();
                }
                if (Traits::kKStages == 1 && sub == kSubSteps - 1 && n_block > n_block_min) {
                    // Single K buffer: every warp is past its last S step (the barrier above),
                    // so K(n−1) may overwrite K(n) while P·V runs.
                    load_k(n_block - 1);
                    cp_async_commit();
                }

                // ---- O += P·V(n) over this step's keys ----------------------------------------------------
                const auto v_lds = VTile::opaque_base(v_ldsm);
#pragma unroll
                for (int kk = 0; kk < kNTilesS / 2; ++kk) {
#pragma unroll
                    for (int dp = 0; dp < kNTilesO / 2; ++dp) {
                        uint32_t vb[4];
                        ldmatrix_x4_trans(vb, VTile::ldsm_addr(v_lds, c0 + kk * 16, 2 * dp));
                        const uint32_t b0[2] = {vb[0], vb[1]};
                        const uint32_t b1[2] = {vb[2], vb[3]};
#pragma unroll
                        for (int mt = 0; mt < kMTiles; ++mt) {
                            mma_16816<Element>(o_acc[mt][2 * dp], pa[mt][kk], b0);
                            mma_16816<Element>(o_acc[mt][2 * dp + 1], pa[mt][kk], b1);
                        }
                    }
                }
            }
        }
    }

    // ---- epilogue: normalise, LSE, stage through shared memory, 16-byte stores ----------------------
    // Where the rows go is resolved again (from opaque copies of the block indices) instead of
    // being kept in registers through the main loop.
    const CtaCoords cta_out = locate_cta<IsCausal, Split>(args);
    const FwdSequence seq_out = resolve_sequence(args, cta_out.b, cta_out.h * pack);
    const int m0_out = cta_out.m_block * kBlockM;
    const int rows_out = min(kBlockM, seq_out.sq * pack - m0_out);
    // Tile row m → (head within the group, query row), as offsets from the group's first head.
    auto head_of = [&](int m) { return pack > 1 ? m % pack : 0; };
    auto row_of = [&](int m) { return pack > 1 ? m / pack : m; };
    const bool write_partial = Split && args.num_splits > 1;
    const float keep_scale = (Full && args.has_dropout) ? args.dropout.keep_scale : 1.0f;
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int r = warp_row0 + mt * 16 + half * 8 + g;
            const int m = m0_out + r;
            const float sum = quad_sum(row_sum[mt][half]);
            // The row's reference in natural-log units (−∞ when it saw no key).
            const float max_ln = row_ref[mt][half] * kLn2;
            float factor, lse;
            if (write_partial) {
                factor = sum > 0.0f ? 1.0f / sum : 0.0f;
                lse = sum > 0.0f ? max_ln + logf(sum) : kNegInf;
            } else if (args.sink_logits != nullptr) {
                const float sink = args.sink_logits[h + head_of(m)];
                const float top = fmaxf(max_ln, sink);
                const float scale_of_sum = expf(max_ln - top);
                const float denominator = sum * scale_of_sum + expf(sink - top);
                factor = scale_of_sum / denominator;
                lse = top + logf(denominator);
            } else {
                factor = sum > 0.0f ? 1.0f / sum : 0.0f;
                lse = sum > 0.0f ? max_ln + logf(sum) : kPosInf;
            }
            factor *= keep_scale;
#pragma unroll
            for (int nt = 0; nt < kNTilesO; ++nt) {
                o_acc[mt][nt][half * 2] *= factor;
                o_acc[mt][nt][half * 2 + 1] *= factor;
            }
            if (t == 0 && r < rows_out) {
                if (write_partial) {
                    args.lse_partial[static_cast<int64_t>(cta_out.split) * args.batch * args.nheads_q * args.seqlen_q + seq_out.flat0 +
                                     static_cast<int64_t>(head_of(m)) * args.seqlen_q + row_of(m)] = lse;
                } else if (args.lse != nullptr) {
                    args.lse[seq_out.lse0 + static_cast<int64_t>(head_of(m)) * args.lse_head_stride + row_of(m)] = lse;
                }
            }
        }
    }

    if (write_partial) {
        // fp32 partials straight from the fragments (decoding: small next to the K/V reads).
        float* o_part = args.o_partial +
                        (static_cast<int64_t>(cta_out.split) * args.batch * args.nheads_q * args.seqlen_q + seq_out.flat0) * args.headdim_v;
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                const int r = warp_row0 + mt * 16 + half * 8 + g;
                if (r >= rows_out) continue;
                const int m = m0_out + r;
                const int64_t flat = static_cast<int64_t>(head_of(m)) * args.seqlen_q + row_of(m);
#pragma unroll
                for (int nt = 0; nt < kNTilesO; ++nt) {
                    const int c = nt * 8 + 2 * t;
                    if (c < args.headdim_v)
                        *reinterpret_cast<float2*>(o_part + flat * args.headdim_v + c) =
                            make_float2(o_acc[mt][nt][half * 2], o_acc[mt][nt][half * 2 + 1]);
                }
            }
        }
        return;
    }

    __syncthreads(); /* every warp is done reading Q (and V) before O overwrites Q's space */
    const uint32_t smem_o = smem_q;
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int r = warp_row0 + mt * 16 + half * 8 + g;
#pragma unroll
            for (int nt = 0; nt < kNTilesO; ++nt)
                st_shared_32(smem_o + OTile::offset(r, nt) + 4 * t,
                             pack2<Element>(o_acc[mt][nt][half * 2], o_acc[mt][nt][half * 2 + 1]));
        }
    }
    __syncthreads();
    uint16_t* o_base = static_cast<uint16_t*>(args.out) + seq_out.o0;
    constexpr int kOChunks = OTile::kChunks;
    constexpr int kOTotal = kBlockM * kOChunks;
    static_assert(kOTotal % kNThreads == 0, "flash_fwd_kernel: the O tile must split evenly over the CTA");
#pragma unroll
    for (int it = 0; it < kOTotal / kNThreads; ++it) {
        const int idx = tid + it * kNThreads;
        const int r = idx / kOChunks;
        const int chunk = idx % kOChunks;
        if (r < rows_out && chunk < v_chunks) {
            const uint4 v = ld_shared_16(smem_o + OTile::offset(r, chunk));
            const int m = m0_out + r;
            st_global_16(o_base + static_cast<int64_t>(row_of(m)) * args.o_row_stride + static_cast<int64_t>(head_of(m)) * args.o_head_stride +
                             chunk * 8,
                         v);
        }
    }
}

}  // namespace fa_sm80

#endif  // FA_SM80_FLASH_FWD_KERNEL_CUH

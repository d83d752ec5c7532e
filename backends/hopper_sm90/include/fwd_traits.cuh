/*
 * fwd_traits.cuh — tile sizes, warpgroup roles, register split and shared-memory layout of the
 * FA3 forward, per (element type, head-dim bucket). The kernel body (flash_fwd_kernel.cuh)
 * reads only these constants.
 *
 * One CTA = 1 producer warpgroup (one thread issues TMA) + kBlockM/64 consumer warpgroups
 * (each owns 64 query rows: S = Q·Kᵀ and O += P·V with wgmma). Tile choices follow the FA3
 * sizes that fit 227 KB of shared memory with 2 K and 2 V stages and keep S, P and O in
 * registers (hopper-fa3-facts.md §8):
 *   d 64:  192 × 128, 3 consumers at 160 registers (O 32 + S 64 + P 32 per thread); with
 *          softcap 128 × 128 (tanh's temporaries spilled at 160)
 *   d 96:  128 × 128, 2 consumers at 240 (Q/K padded to 128 columns by TMA zero fill)
 *   d 128: 128 × 128, 2 consumers at 240 (O 64 + S 64 + P 32). 128 × 176 was 3 % faster at 16k
 *          keys until the softmax overlapped P·V (kSoftmaxBeforeWait); since then equal or slower
 *   d 192: 128 × 112, 2 consumers (O 96 + S 56 + P 28)
 *   d 256: 128 × 80,  2 consumers (O 128 + S 40 + P 20); 224 KB of tiles
 */
#ifndef FA_SM90_FWD_TRAITS_CUH
#define FA_SM90_FWD_TRAITS_CUH

#include <cstdint>
#include <type_traits>

namespace fa_sm90 {

/* The tile each instance runs (a traits choice, kept apart from the kernel body; fa_sm90_fwd_tune
   times alternatives). kPingPong: the consumers take turns at the tensor cores. */
template <int HeadDim, bool Softcap>
struct FwdTile;
template <bool Softcap>
struct FwdTile<64, Softcap> {
    /* Softcap's tanh needs more live registers than 3 consumers' 160 give (it spilled): 2 × 64 rows. */
    static constexpr int kBlockM = Softcap ? 128 : 192, kBlockN = 128;
    static constexpr bool kPingPong = true;
    static constexpr bool kSoftmaxBeforeWait = false; /* 2 % slower with it at d64 (3 consumers) */
    /* Register stores: with the TMA-store epilogue the 3-consumer kernel spilled (H100 SASS: 15 STL, 26 LDL) for
       +3–6 % at 512–1k keys and ±1 % from 4k (fa_sm90_fwd_tune). */
    static constexpr bool kStoreOWithTma = false;
};
template <bool Softcap>
struct FwdTile<96, Softcap> {
    static constexpr int kBlockM = 128, kBlockN = 128;
    static constexpr bool kPingPong = true;
    static constexpr bool kSoftmaxBeforeWait = true;
    static constexpr bool kStoreOWithTma = false; /* untimed; the same tiles as d 128 */
};
template <bool Softcap>
struct FwdTile<128, Softcap> {
    static constexpr int kBlockM = 128, kBlockN = 128;
    static constexpr bool kPingPong = true;
    static constexpr bool kSoftmaxBeforeWait = true;
    /* O through shared memory + TMA store (H100, 2026-11-23, fa_sm90_fwd_tune): +7–18 % at 512–1k keys
       (causal most), ±1.5 % from 4k; no spill. Fits beside the tiles only at d ≤ 128. */
    static constexpr bool kStoreOWithTma = true;
};
template <bool Softcap>
struct FwdTile<192, Softcap> {
    static constexpr int kBlockM = 128, kBlockN = 112;
    static constexpr bool kPingPong = true;
    static constexpr bool kSoftmaxBeforeWait = true;
    static constexpr bool kStoreOWithTma = false; /* no room beside the tiles (over V's stages: see d 256) */
};
template <bool Softcap>
struct FwdTile<256, Softcap> {
    static constexpr int kBlockM = 128, kBlockN = 80;
    static constexpr bool kPingPong = true;
    static constexpr bool kSoftmaxBeforeWait = true;
    /* No room beside the tiles. Staged over the V stages instead (FA3's layout: the warpgroups meet before
       writing it, the producer loads the next V after the store) it was 3–18 % slower below 16k keys and
       spilled (logs/hopper_sm90-tune-o-over-v-2026-11-23.txt). */
    static constexpr bool kStoreOWithTma = false;
};

/* fp8 e4m3 tiles: the 16-bit tile's query rows, 128 keys. A key block is one 128-byte slab of transposed V
   (dv × keys, keys contiguous: fp8 wgmma reads B only K-major) and four k32 steps of P·V; P takes 16
   registers instead of 32, so d 256 fits 128 keys too (O 128 + S 64 + P 16 at 240 registers: ptxas spills 12 bytes,
   80 with softcap). d 256 lets the wait for P·V come before the softmax (no schedule_after): H100, 2026-11-24, one
   call, the two builds timed one after the other: −1…+2 % non-causal, −1…+5 % causal (+3–5 % at 1k–4k keys); the
   spill stays (logs/hopper_sm90-fp8-first-2026-11-24.txt). */
template <int HeadDim, bool Softcap>
struct FwdTileFp8 {
    static constexpr int kBlockM = FwdTile<HeadDim, Softcap>::kBlockM, kBlockN = 128;
    static constexpr bool kPingPong = true;
    static constexpr bool kSoftmaxBeforeWait = HeadDim == 256 ? false : FwdTile<HeadDim, Softcap>::kSoftmaxBeforeWait;
    static constexpr bool kStoreOWithTma = false; /* untimed */
};

template <int HeadDim, int BlockM, int BlockN, bool PingPong, int Stages = 2, bool SoftmaxBeforeWait = true,
          bool StoreOWithTma = false, int ElemBytes = 2>
struct FwdTraits {
    static constexpr int kHeadDim = HeadDim; /* head-dim bucket (q/k and v alike) */
    /* Bytes per element of q, k, v: 2 (fp16, bf16) or 1 (e4m3; out is then bf16). */
    static constexpr int kElemBytes = ElemBytes;
    static constexpr bool kFp8 = ElemBytes == 1;
    static constexpr int kBlockM = BlockM;
    static constexpr int kBlockN = BlockN;
    static constexpr bool kPingPong = PingPong;
    static constexpr int kConsumers = kBlockM / 64; /* consumer warpgroups */
    static constexpr int kThreads = 128 * (1 + kConsumers);
    /* K and V buffers each; 3 or 4 measured equal to 2 (d64, d128; loads are not the limit). */
    static constexpr int kStages = Stages;
    /* Keep the softmax of S(n) ahead of the wait for P·V(n+1) (intra-warpgroup overlap; see
       schedule_after in sm90_primitives.cuh). */
    static constexpr bool kSoftmaxBeforeWait = SoftmaxBeforeWait;

    /* setmaxnreg split of the 64K-register file: producer + consumers ≤ 65536 / kThreads · 3 or 4. */
    static constexpr int kProducerRegs = kConsumers == 2 ? 24 : 32;
    static constexpr int kConsumerRegs = kConsumers == 2 ? 240 : 160;

    /* Slabs: rows of 128 B with the 128-byte swizzle, as TMA writes them (box {kSlabCols, rows}): 64 columns of a
       16-bit type, 128 of e4m3. Q and K: kSlabs along the head dim. V: 16-bit as K (keys × dv); e4m3 transposed
       (dv × keys) in kBlockN / 128 slabs along the keys. O (16-bit out) has kOSlabs of 64 columns. */
    static constexpr int kSlabCols = 128 / ElemBytes;
    static constexpr int kSlabs = (HeadDim + kSlabCols - 1) / kSlabCols;
    static constexpr int kOSlabs = (HeadDim + 63) / 64;
    static constexpr int kQBytes = kBlockM * kSlabs * 128;
    static constexpr int kKBytes = kBlockN * kSlabs * 128;
    static constexpr int kVBytes = kFp8 ? HeadDim * kBlockN : kBlockN * kSlabs * 128;
    static constexpr int kQOffset = 0;
    static constexpr int kKOffset = kQOffset + kQBytes;
    static constexpr int kVOffset = kKOffset + kStages * kKBytes;
    /* The epilogue through shared memory and a TMA store (each consumer warpgroup stages its 64 rows
       as the same swizzled 64-column slabs, then one thread stores them), instead of 4-byte stores
       from registers. Dense batches only (a varlen tile's box would reach into the next sequence:
       the kernel falls back to register stores there). Chosen per head dim by FwdTile::kStoreOWithTma. */
    static constexpr bool kStoreOWithTma = StoreOWithTma;
    static constexpr int kOWarpgroupBytes = 64 * kOSlabs * 128;
    static constexpr int kOOffset = kVOffset + kStages * kVBytes;
    static constexpr int kOBytes = kStoreOWithTma ? kConsumers * kOWarpgroupBytes : 0;
    static constexpr int kBarrierOffset = kOOffset + kOBytes;
    /* The register-store epilogue (no TMA store) writes 16 bytes per lane after a transpose within each row's
       4 lanes, instead of 4 bytes per lane (H100, bf16, 2026-11-23, logs/hopper_sm90-tune-o-stores-2026-11-23.txt):
       d 256 +7–31 % at 512–4k keys, +2–3 % at 16k. At d 64 (3 consumers at 160 registers) it was −1…+2 %
       non-causal but 4–5 % slower at 2k–4k causal, so d 64 keeps the 4-byte stores. */
    static constexpr bool kStoreO16B = HeadDim >= 96;
    /* q_full, q_empty, k_full[S], k_empty[S], v_full[S], v_empty[S], v_tail */
    static constexpr int kBarriers = 3 + 4 * kStages;
    /* + 1024 so the kernel can round the dynamic shared-memory base up to the swizzle atom. */
    static constexpr int kSmemBytes = kBarrierOffset + kBarriers * 8 + 1024;

    /* Per-thread fragments of one consumer warpgroup (m64nN f32 accumulators: N/2 each). */
    static constexpr int kSRegs = kBlockN / 2;  /* scores of 64 rows × kBlockN keys */
    static constexpr int kPRegs = kBlockN / (kFp8 ? 8 : 4); /* the same as 16-bit pairs or e4m3 quads (PV A operand) */
    static constexpr int kORegs = HeadDim / 2;  /* output accumulator */
    static constexpr int kQkSteps = kSlabs * 4; /* 32-byte k steps of S = Q·Kᵀ (padded head dim): k16, or k32 of e4m3 */
    static constexpr int kPvSteps = kBlockN / (kFp8 ? 32 : 16);

    static_assert(kBlockM % 64 == 0 && kConsumers >= 2 && kConsumers <= 3, "2 or 3 consumer warpgroups");
    static_assert(kBlockN % 16 == 0 && kBlockN <= 256, "kBlockN: k16 steps of P·V, a TMA box of at most 256 rows");
    static_assert(!kFp8 || kBlockN % 128 == 0, "e4m3: key blocks of whole 128-key slabs of transposed V");
    static_assert(kQBytes % 1024 == 0 && kKBytes % 1024 == 0, "tiles stay aligned to the 1024-byte swizzle atom");
    static_assert(kSmemBytes <= 232448, "shared memory per block on sm_90 is 227 KB");
};

/* The traits of the instance (by element size: 16-bit types share them). */
template <int HeadDim, bool Softcap, int ElemBytes, class Tile = std::conditional_t<ElemBytes == 1, FwdTileFp8<HeadDim, Softcap>,
                                                                                    FwdTile<HeadDim, Softcap>>>
using FwdInstanceTraits = FwdTraits<HeadDim, Tile::kBlockM, Tile::kBlockN, Tile::kPingPong, 2, Tile::kSoftmaxBeforeWait,
                                    Tile::kStoreOWithTma, ElemBytes>;

/* Fewer query rows per tile for short masked (causal / window) problems at d 64, where the
   192-row tile wastes more of its work on the diagonal (fa_sm90_fwd_tune, causal: +9–10 % at
   512–1k keys, −5 % from 2k). kMaxKeys: up to which seqlen_k run_fwd takes it. With 2 consumers at
   240 registers O goes out through shared memory and a TMA store without spilling: +2–3 % at 512–1k
   causal (logs/hopper_sm90-tune-d64-short-tile-2026-11-23.txt). */
template <int HeadDim, bool Softcap>
struct FwdShortMaskedTile {
    static constexpr bool kHas = HeadDim == 64 && !Softcap; /* 16-bit types (run_fwd) */
    static constexpr int kMaxKeys = 1024;
    using Traits = FwdTraits<HeadDim, 128, 128, true, 2, true, true>;
};

}  // namespace fa_sm90

#endif  // FA_SM90_FWD_TRAITS_CUH

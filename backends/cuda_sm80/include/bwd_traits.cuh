/*
 * bwd_traits.cuh — tile shapes of the sm80 backward kernel, one per head dim, kept apart from
 * the kernel body so that tuning a head dim touches only this file.
 *
 * Vocabulary (the kernel computes the transposed score tile, keys along M):
 *   BlockK  keys per CTA (the dK/dV rows this CTA owns, the M side of S^T = K Q^T)
 *   BlockQ  query rows per step of the CTA's loop over query blocks
 *   Warp grids, each (warps along the first axis) x (warps along the second), product = 8:
 *     S   : S^T and dP^T tiles, (keys) x (query rows)
 *     KV  : dK and dV accumulators, (keys) x (head dim)
 *     Q   : the per-step dQ tile, (query rows) x (head dim)
 * When every warp owns all query rows of its keys in S and the same keys in KV
 * (WarpsS = (8, 1) = WarpsKV), P and dS go from the S accumulators straight into the A operands
 * of dV += P^T dO and dK += dS^T Q ("register path"); otherwise P and dS pass through shared
 * memory. dS always goes through shared memory for dQ = dS K.
 *
 * Shared memory rows are padded by 8 elements (16 bytes): with an even number of 16-byte
 * chunks per row, 8 consecutive rows then start in 8 different bank groups, so ldmatrix,
 * cp.async and the fragment stores are free of bank conflicts without a swizzle.
 */
#ifndef FA_SM80_BWD_TRAITS_CUH
#define FA_SM80_BWD_TRAITS_CUH

#include <cstdint>

/* K, V, Q and dO tiles in the XOR-swizzled layout where TileConfig::kSwizzleD says (1, default) or all padded (0).
   H100, 2026-11-23 (bench/results/logs/cuda_sm80-bwd-tune-2026-11-23.md): 1.7 % faster over the bwd grid (d64,
   d128 bf16), up to 10 % at d128 non-causal; every head dim and dtype passes the check drivers with it. */
#ifndef FA_SM80_BWD_SWIZZLE
#define FA_SM80_BWD_SWIZZLE 1
#endif

namespace fa_sm80 {
namespace bwd {

template <int HeadDim_, int BlockQ_, int BlockK_, int WarpsSK_, int WarpsSQ_, int WarpsKVK_, int WarpsKVD_,
          int WarpsQQ_, int WarpsQD_, bool DoubleBuffer_, int MinBlocksPerSM_>
struct TileConfig {
    static constexpr int kHeadDim = HeadDim_;
    static constexpr int kBlockQ = BlockQ_;
    static constexpr int kBlockK = BlockK_;
    static constexpr int kWarps = 8;
    static constexpr int kThreads = kWarps * 32;
    static constexpr int kMinBlocksPerSM = MinBlocksPerSM_;
    static constexpr bool kDoubleBuffer = DoubleBuffer_;
    static constexpr int kStages = DoubleBuffer_ ? 2 : 1;

    // S^T / dP^T: warp tile (kSWarpK keys) x (kSWarpQ rows)
    static constexpr int kWarpsSK = WarpsSK_, kWarpsSQ = WarpsSQ_;
    static constexpr int kSWarpK = kBlockK / kWarpsSK, kSWarpQ = kBlockQ / kWarpsSQ;
    // dK / dV accumulators: warp tile (kKVWarpK keys) x (kKVWarpD head-dim columns)
    static constexpr int kWarpsKVK = WarpsKVK_, kWarpsKVD = WarpsKVD_;
    static constexpr int kKVWarpK = kBlockK / kWarpsKVK, kKVWarpD = kHeadDim / kWarpsKVD;
    // dQ: warp tile (kQWarpQ rows) x (kQWarpD columns)
    static constexpr int kWarpsQQ = WarpsQQ_, kWarpsQD = WarpsQD_;
    static constexpr int kQWarpQ = kBlockQ / kWarpsQQ, kQWarpD = kHeadDim / kWarpsQD;

    static constexpr bool kRegisterPath = kWarpsSQ == 1 && kWarpsKVD == 1 && kWarpsSK == kWarpsKVK;

    // Shared memory, in elements of 2 bytes and bytes. K, V, Q and dO rows: swizzled (RowLayout in
    // flash_bwd_kernel.cuh) for the double-buffered shared-memory-path tiles (the primary ones of d 64, 128, 192,
    // 256: the tiles an H100 runs), else padded by 8; P^T and dS^T rows padded by 8.
    static constexpr bool kSwizzleD = FA_SM80_BWD_SWIZZLE != 0 && !kRegisterPath && kDoubleBuffer && kHeadDim % 64 == 0;
    static constexpr int kRowPadD = kSwizzleD ? kHeadDim : kHeadDim + 8;  // K, V, Q, dO tiles
    static constexpr int kRowPadQ = kBlockQ + 8;   // P^T, dS^T tiles ([key][row])
    static constexpr int kTileKBytes = kBlockK * kRowPadD * 2;
    static constexpr int kTileQBytes = kBlockQ * kRowPadD * 2;
    static constexpr int kTilePBytes = kBlockK * kRowPadQ * 2;
    static constexpr int kOffK = 0;
    static constexpr int kOffV = kOffK + kTileKBytes;
    static constexpr int kOffQ = kOffV + kTileKBytes;
    static constexpr int kOffDO = kOffQ + kStages * kTileQBytes;
    static constexpr int kOffDS = kOffDO + kStages * kTileQBytes;
    static constexpr int kOffP = kOffDS + kTilePBytes;
    static constexpr int kOffLse = kOffP + (kRegisterPath ? 0 : kTilePBytes);
    static constexpr int kOffD = kOffLse + kStages * kBlockQ * 4;
    // Per-thread copy pointers of the steps (Q, dO, LSE or D row), computed once per CTA: kept in
    // registers, the compiler recomputed their 64-bit arithmetic at every step (about 100
    // instructions per thread). Only with whole rows per copy pass (kThreads a multiple of the
    // kHeadDim / 8 chunks of a row), where a thread's pointers move by constants.
    static constexpr bool kPointerTable = kThreads % (kHeadDim / 8) == 0;
    static constexpr int kOffPtrs = kOffD + kStages * kBlockQ * 4;
    static constexpr int kSmemBytes = kOffPtrs + (kPointerTable ? kThreads * 3 * 8 : 0);

    static_assert(kWarpsSK * kWarpsSQ == kWarps && kWarpsKVK * kWarpsKVD == kWarps && kWarpsQQ * kWarpsQD == kWarps,
                  "each warp grid must use the 8 warps");
    static_assert(kSWarpK % 16 == 0 && kSWarpQ % 16 == 0, "S warp tile: multiples of 16");
    static_assert(kKVWarpK % 16 == 0 && kKVWarpD % 16 == 0, "dK/dV warp tile: multiples of 16");
    static_assert(kQWarpQ % 16 == 0 && kQWarpD % 16 == 0, "dQ warp tile: multiples of 16");
    static_assert(kHeadDim % 16 == 0 && kBlockQ % 16 == 0 && kBlockK % 16 == 0, "tiles of 16");
    static_assert(2 * kBlockQ <= kThreads, "LSE and D rows are loaded one per thread");
    static_assert(((kHeadDim / 8) % 2) == 0 && ((kBlockQ / 8) % 2) == 0, "padding trick needs an even chunk count");
    static_assert(!kSwizzleD || (kOffK % (2 * kRowPadD) == 0 && kOffV % (2 * kRowPadD) == 0 && kOffQ % (2 * kRowPadD) == 0 &&
                                 kOffDO % (2 * kRowPadD) == 0 && kTileQBytes % (2 * kRowPadD) == 0),
                  "swizzled tiles start at multiples of their pitch (OperandRows' XOR form)");
};

/*
 * The configuration per head dim: BwdTile<d, true> is the primary tile, BwdTile<d, false> the
 * fallback that launch takes when the primary does not fit the device's shared memory
 * (bwd_has_fallback() in flash_bwd_launch.cuh says which head dims compile one).
 * `DoubleBuffer` selects double-buffered Q/dO (prefetch of the next query block overlaps the
 * whole step) against single-buffered (prefetch overlaps only the dQ product).
 *
 *   d    tile     BlockQ BlockK  S warps  KV warps  Q warps  P path     smem bytes   DB
 *   32   primary    64    128    8x1      8x1       4x2      registers   66560       yes
 *   64   primary   128    128    4x2      4x2       4x2      shared     188416       yes
 *   64   fallback   64    128    8x1      8x1       4x2      registers   99328       yes
 *   96   primary    64    128    8x1      8x1       4x2      registers  125952       yes
 *   96   fallback   64    128    8x1      8x1       4x2      registers   98816       no  (sm_86/89)
 *   128  primary    64    128    4x2      4x2       2x4      shared     183296       yes
 *   128  fallback   64    128    8x1      8x1       2x4      registers  164864       yes (sm_80)
 *   192  primary    64     64    4x2      2x4       2x4      shared     173056       yes
 *   192  fallback   64     64    4x2      2x4       2x4      shared     121344       no  (sm_80)
 *   256  primary    64     64    4x2      2x4       2x4      shared     228352       yes
 *   256  fallback   64     64    4x2      2x4       2x4      shared     160256       no  (sm_80)
 * (sm_80 allows 166912 bytes per block, sm_86/89 101376, sm_90 232448. The sizes include the
 * 6144-byte pointer table where the head dim has whole rows per copy pass: every one but 96 and 192. With
 * FA_SM80_BWD_SWIZZLE the primary tiles of d 64, 128, 192, 256 drop their row padding (d64 176128, d128 175104 bytes).)
 * The shared-memory P path with 32 x 32 (S, dQ) and 32 x 64 (dK/dV) warp tiles reads less
 * shared memory per MMA than the register path (where every warp reads all of Q and dO),
 * at the price of P^T in shared memory; the register path is the fallback where that does
 * not fit.
 */
template <int HeadDim, bool Primary>
struct BwdTile;

template <bool P>
struct BwdTile<32, P> : TileConfig<32, 64, 128, 8, 1, 8, 1, 4, 2, true, 1> {};
// (The register-path tile as the primary one at d 64 measured 8-16 % slower on the H100:
// bench/results/logs/cuda_sm80-bwd-tune-2026-11-23.md.)
template <>
struct BwdTile<64, true> : TileConfig<64, 128, 128, 4, 2, 4, 2, 4, 2, true, 1> {};
template <>
struct BwdTile<64, false> : TileConfig<64, 64, 128, 8, 1, 8, 1, 4, 2, true, 1> {};
template <bool P>
struct BwdTile<96, P> : TileConfig<96, 64, 128, 8, 1, 8, 1, 4, 2, P, 1> {};
template <>
struct BwdTile<128, true> : TileConfig<128, 64, 128, 4, 2, 4, 2, 2, 4, true, 1> {};
template <>
struct BwdTile<128, false> : TileConfig<128, 64, 128, 8, 1, 8, 1, 2, 4, true, 1> {};
template <bool P>
struct BwdTile<192, P> : TileConfig<192, 64, 64, 4, 2, 2, 4, 2, 4, P, 1> {};
template <bool P>
struct BwdTile<256, P> : TileConfig<256, 64, 64, 4, 2, 2, 4, 2, 4, P, 1> {};

template <int HeadDim>
constexpr int min_block_q() {
    return BwdTile<HeadDim, true>::kBlockQ < BwdTile<HeadDim, false>::kBlockQ ? BwdTile<HeadDim, true>::kBlockQ
                                                                              : BwdTile<HeadDim, false>::kBlockQ;
}

/* Query-block granularity of the deterministic-mode semaphores for a head dim: the smallest
   BlockQ of its tiles, so that the workspace holds enough counters for either (a kernel with
   a larger BlockQ indexes fewer of them). */
inline constexpr int bwd_block_q(int head_dim) {
    return head_dim <= 32 ? min_block_q<32>()
         : head_dim <= 64 ? min_block_q<64>()
         : head_dim <= 96 ? min_block_q<96>()
         : head_dim <= 128 ? min_block_q<128>()
         : head_dim <= 192 ? min_block_q<192>()
                           : min_block_q<256>();
}

/* The instance head dim a problem's head dim runs on. */
inline constexpr int bwd_instance_head_dim(int head_dim) {
    return head_dim <= 32 ? 32 : head_dim <= 64 ? 64 : head_dim <= 96 ? 96 : head_dim <= 128 ? 128 : head_dim <= 192 ? 192 : 256;
}

}  // namespace bwd
}  // namespace fa_sm80

#endif  // FA_SM80_BWD_TRAITS_CUH

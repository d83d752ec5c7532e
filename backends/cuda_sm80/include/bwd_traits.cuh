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

    // Shared memory, in elements of 2 bytes (rows padded by 8) and bytes.
    static constexpr int kRowPadD = kHeadDim + 8;  // K, V, Q, dO tiles
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
    static constexpr int kSmemBytes = kOffD + kStages * kBlockQ * 4;

    static_assert(kWarpsSK * kWarpsSQ == kWarps && kWarpsKVK * kWarpsKVD == kWarps && kWarpsQQ * kWarpsQD == kWarps,
                  "each warp grid must use the 8 warps");
    static_assert(kSWarpK % 16 == 0 && kSWarpQ % 16 == 0, "S warp tile: multiples of 16");
    static_assert(kKVWarpK % 16 == 0 && kKVWarpD % 16 == 0, "dK/dV warp tile: multiples of 16");
    static_assert(kQWarpQ % 16 == 0 && kQWarpD % 16 == 0, "dQ warp tile: multiples of 16");
    static_assert(kHeadDim % 16 == 0 && kBlockQ % 16 == 0 && kBlockK % 16 == 0, "tiles of 16");
    static_assert(2 * kBlockQ <= kThreads, "LSE and D rows are loaded one per thread");
    static_assert(((kHeadDim / 8) % 2) == 0 && ((kBlockQ / 8) % 2) == 0, "padding trick needs an even chunk count");
};

/*
 * The configuration per head dim. `DoubleBuffer` selects double-buffered Q/dO (prefetch of the
 * next query block overlaps the whole step) against single-buffered (prefetch overlaps only
 * the dQ product); launch picks the double-buffered one when it fits the device's shared memory.
 *
 *   d    BlockQ BlockK  S warps  KV warps  Q warps  P path     smem bytes double / single
 *   32     64    128    8x1      8x1       4x2      registers   60416 /  -
 *   64     64    128    8x1      8x1       4x2      registers   93184 /  -
 *   96     64    128    8x1      8x1       4x2      registers  125952 /  98816 (sm_86/89)
 *   128    64    128    8x1      8x1       2x4      registers  158720 /  -
 *   192    64     64    4x2      2x4       2x4      shared     173056 / 121344 (sm_80)
 *   256    64     64    4x2      2x4       2x4      shared     222208 / 154112 (sm_80)
 * (sm_80 allows 166912 bytes per block, sm_86/89 101376, sm_90 232448.)
 */
template <int HeadDim, bool DoubleBuffer>
struct BwdTile;

template <bool DB>
struct BwdTile<32, DB> : TileConfig<32, 64, 128, 8, 1, 8, 1, 4, 2, DB, 1> {};
template <bool DB>
struct BwdTile<64, DB> : TileConfig<64, 64, 128, 8, 1, 8, 1, 4, 2, DB, 1> {};
template <bool DB>
struct BwdTile<96, DB> : TileConfig<96, 64, 128, 8, 1, 8, 1, 4, 2, DB, 1> {};
template <bool DB>
struct BwdTile<128, DB> : TileConfig<128, 64, 128, 8, 1, 8, 1, 2, 4, DB, 1> {};
template <bool DB>
struct BwdTile<192, DB> : TileConfig<192, 64, 64, 4, 2, 2, 4, 2, 4, DB, 1> {};
template <bool DB>
struct BwdTile<256, DB> : TileConfig<256, 64, 64, 4, 2, 2, 4, 2, 4, DB, 1> {};

/* Query rows per step for a head dim (the deterministic-mode semaphores are per query block). */
inline constexpr int bwd_block_q(int head_dim) {
    return head_dim <= 32 ? BwdTile<32, true>::kBlockQ
         : head_dim <= 64 ? BwdTile<64, true>::kBlockQ
         : head_dim <= 96 ? BwdTile<96, true>::kBlockQ
         : head_dim <= 128 ? BwdTile<128, true>::kBlockQ
         : head_dim <= 192 ? BwdTile<192, true>::kBlockQ
                           : BwdTile<256, true>::kBlockQ;
}

/* The instance head dim a problem's head dim runs on. */
inline constexpr int bwd_instance_head_dim(int head_dim) {
    return head_dim <= 32 ? 32 : head_dim <= 64 ? 64 : head_dim <= 96 ? 96 : head_dim <= 128 ? 128 : head_dim <= 192 ? 192 : 256;
}

}  // namespace bwd
}  // namespace fa_sm80

#endif  // FA_SM80_BWD_TRAITS_CUH

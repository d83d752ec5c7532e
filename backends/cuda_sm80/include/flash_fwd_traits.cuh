/*
 * flash_fwd_traits.cuh — compile-time shape of the sm80 forward kernel per head dim: the
 * CTA tile (kBlockM query rows × kBlockN keys), the warps and how they split the rows, the
 * shared-memory tiles and their size. The kernel body (flash_fwd_kernel.cuh) only reads
 * these constants.
 *
 * Register budget per thread (fp32 accumulators), the constraint behind the tile choice:
 * O = kWarpRows·HeadDimV/32, S = kWarpRows·kBlockNS/32 (kBlockNS: S columns per softmax
 * step). A warp owning 32 rows reuses every K/V fragment it loads from shared memory for two
 * m16 tiles, halving shared-memory traffic per MMA (at 16 rows a warp needs 128 B of ldmatrix
 * per 2 clk of HMMA.16816, the whole shared-memory bandwidth of an SM); so 4 warps × 32 rows
 * wherever O + S fit, 16 rows per warp beyond (d = 192, 256).
 *
 *   d     tile      warps  rows/warp  O+S regs  K buffers  smem (Q + K·stages + V + 64)
 *   32    128×64    4      32         32+64     2          20 KB
 *   64    128×64    4      32         64+64     2          40 KB
 *   96    128×64    4      32         96+64     2          60 KB
 *   128   128×64    4      32         128+64    2          80 KB  (255 registers; full kernel: 32-column S steps)
 *   192   128×64    8      16         96+32     1          96 KB
 *   256   64×64     4      16         128+32    1          96 KB  (fits sm_86/89's 99 KB)
 * Measured with nvcc 11.8, -Xptxas -v (sm_80 / sm_90): see the sm80 backend notes; all lean
 * forward kernels are spill-free.
 */
#ifndef FA_SM80_FLASH_FWD_TRAITS_CUH
#define FA_SM80_FLASH_FWD_TRAITS_CUH

#include "sm80_primitives.cuh"

namespace fa_sm80 {

template <typename Element_, int HeadDimQK, int HeadDimV, int BlockM, int BlockN, int NWarps>
struct FwdTraits {
    using Element = Element_;
    static constexpr int kHeadDimQK = HeadDimQK;
    static constexpr int kHeadDimV = HeadDimV;
    static constexpr int kBlockM = BlockM;
    static constexpr int kBlockN = BlockN;
    static constexpr int kNWarps = NWarps;
    static constexpr int kNThreads = NWarps * 32;

    /* Each warp owns kWarpRows consecutive query rows of the tile: kMTiles m16 tiles. */
    static constexpr int kWarpRows = BlockM / NWarps;
    static constexpr int kMTiles = kWarpRows / 16;
    /* S is computed and softmaxed kBlockNS columns at a time (P of the whole tile is kept as
       16-bit A fragments), so that O + S fit 255 registers: 64 columns per step, but 32 for
       32-row warps in the full kernel (the softcap/ALiBi/Philox state is live) and beyond d 128.
       At d 128 the lean kernel's 64 columns (O 128 + S 64 registers, 255 in all, no spill) measured
       3–8 % faster than two 32-column steps (H100, bf16, 1k–16k keys, causal and not;
       logs/cuda_sm80-fwd-tune-2026-11-23.md): twice the independent MMAs per K fragment. */
    template <bool Full>
    __host__ __device__ static constexpr int block_ns() {
        return (kWarpRows == 32 && (Full || HeadDimV > 128)) ? 32 : (BlockN < 64 ? BlockN : 64);
    }
    static constexpr int kKStepsQK = HeadDimQK / 16; /* k16 steps of Q·Kᵀ */
    static constexpr int kNTilesO = HeadDimV / 8;    /* n8 tiles of O per m16 tile */
    static constexpr int kKStepsPV = BlockN / 16;    /* k16 steps of P·V */

    using QTile = SwizzledTile<BlockM, HeadDimQK>;
    using KTile = SwizzledTile<BlockN, HeadDimQK>;
    using VTile = SwizzledTile<BlockN, HeadDimV>;
    using OTile = SwizzledTile<BlockM, HeadDimV>; /* epilogue staging; reuses Q's space */

    /* K is double-buffered (K(n−1) loads during all of tile n) where Q + 2K + V fits the
       99 KB of sm_86/89; otherwise single-buffered, loaded after the last S step of tile n. */
    static constexpr int kSmemQ = 0;
    static constexpr int kSmemK = kSmemQ + (QTile::kBytes > OTile::kBytes ? QTile::kBytes : OTile::kBytes);
    static constexpr int kKStages = kSmemK + 2 * KTile::kBytes + VTile::kBytes <= 99 * 1024 ? 2 : 1;
    static constexpr int kSmemV = kSmemK + kKStages * KTile::kBytes;
    static constexpr int kSmemState = kSmemV + VTile::kBytes; /* CTA-uniform loop state (64 bytes) */
    static constexpr int kSmemBytes = kSmemState + 64;

    /* A CTA of 4 warps at ≤ 255 registers leaves room for 2 per SM (65536 registers). */
    static constexpr int kMinBlocksPerSm = NWarps == 4 ? 2 : 1;

    static_assert(kWarpRows == 16 || kWarpRows == 32, "FwdTraits: a warp owns 16 or 32 rows");
    static_assert(BlockN % 16 == 0 && HeadDimQK % 32 == 0 && HeadDimV % 32 == 0,
                  "FwdTraits: kBlockN a multiple of 16, head dims multiples of 32");
    static_assert(kNTilesO % 2 == 0, "FwdTraits: n8 tiles of O are loaded in pairs (ldmatrix.x4.trans)");
    static_assert(BlockN % block_ns<false>() == 0 && BlockN % block_ns<true>() == 0, "FwdTraits: S steps must tile kBlockN");
    static_assert(kSmemBytes <= 99 * 1024, "FwdTraits: shared memory must fit sm_86/sm_89 (99 KB per block)");
    static_assert(kKStages == 2 || (block_ns<false>() == BlockN && block_ns<true>() == BlockN),
                  "FwdTraits: a single K buffer is only reloaded after the tile's one S step");
};

/* The tile chosen for each compiled head dim (see the table above). */
template <typename Element, int HeadDim>
struct FwdConfig;

template <typename Element> struct FwdConfig<Element, 32> { using Traits = FwdTraits<Element, 32, 32, 128, 64, 4>; };
template <typename Element> struct FwdConfig<Element, 64> { using Traits = FwdTraits<Element, 64, 64, 128, 64, 4>; };
template <typename Element> struct FwdConfig<Element, 96> { using Traits = FwdTraits<Element, 96, 96, 128, 64, 4>; };
template <typename Element> struct FwdConfig<Element, 128> { using Traits = FwdTraits<Element, 128, 128, 128, 64, 4>; };
template <typename Element> struct FwdConfig<Element, 192> { using Traits = FwdTraits<Element, 192, 192, 128, 64, 8>; };
template <typename Element> struct FwdConfig<Element, 256> { using Traits = FwdTraits<Element, 256, 256, 64, 64, 4>; };

/*
 * A second tile for long key ranges where one measured faster (run_fwd takes it from seqlen_k ≥ kMinKeys).
 * d64: 128 × 128 (two 64-column S steps per key block, half the block barriers; 64 KB of shared memory).
 * H100, bf16, 2026-11-23 (logs/cuda_sm80-fwd-tune-2026-11-23.md): +2–7 % from 2k keys, causal and not,
 * but 5–14 % slower at 512–1k causal, where the 64-key tile stays.
 */
template <typename Element, int HeadDim>
struct FwdLongConfig {
    static constexpr bool kHas = false;
};
template <typename Element>
struct FwdLongConfig<Element, 64> {
    static constexpr bool kHas = true;
    static constexpr int kMinKeys = 2048;
    using Traits = FwdTraits<Element, 64, 64, 128, 128, 4>;
};

/*
 * The split-KV / kv-cache kernel: decoding has few query rows, so 64-row tiles of 4 warps ×
 * 16 rows (half the wasted MMA rows of 128 at seqlen_q = 1, and O + S ≤ 160 registers with
 * the paged addressing and split bookkeeping live).
 */
template <typename Element, int HeadDim>
struct FwdSplitConfig {
    using Traits = FwdTraits<Element, HeadDim, HeadDim, 64, 64, 4>;
};
constexpr int kSplitBlockM = 64;
constexpr int kSplitBlockN = 64;

/* Shared memory of the forward instance for `headdim` (host side, for fa_supports). */
inline int fwd_split_smem_bytes(int headdim) {
    switch (headdim) {
        case 32: return FwdSplitConfig<__half, 32>::Traits::kSmemBytes;
        case 64: return FwdSplitConfig<__half, 64>::Traits::kSmemBytes;
        case 96: return FwdSplitConfig<__half, 96>::Traits::kSmemBytes;
        case 128: return FwdSplitConfig<__half, 128>::Traits::kSmemBytes;
        case 192: return FwdSplitConfig<__half, 192>::Traits::kSmemBytes;
        case 256: return FwdSplitConfig<__half, 256>::Traits::kSmemBytes;
        default: return 0;
    }
}

inline int fwd_smem_bytes(int headdim) {
    switch (headdim) {
        case 32: return FwdConfig<__half, 32>::Traits::kSmemBytes;
        case 64: return FwdLongConfig<__half, 64>::Traits::kSmemBytes; /* the larger of d64's two tiles */
        case 96: return FwdConfig<__half, 96>::Traits::kSmemBytes;
        case 128: return FwdConfig<__half, 128>::Traits::kSmemBytes;
        case 192: return FwdConfig<__half, 192>::Traits::kSmemBytes;
        case 256: return FwdConfig<__half, 256>::Traits::kSmemBytes;
        default: return 0;
    }
}

}  // namespace fa_sm80

#endif  // FA_SM80_FLASH_FWD_TRAITS_CUH

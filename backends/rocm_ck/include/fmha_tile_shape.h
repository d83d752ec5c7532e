/*
 * fmha_tile_shape.h — compile-time shape of one kernel's block tile (CK: TileFmhaShape), built
 * from fmha_tile_config.h for a head-dim bucket. Kernel bodies read only these constants.
 *
 * Naming: the block has kWaves waves of 64 lanes and kBlockRows = 32·kWaves rows (each wave
 * owns the 32 rows of its MFMA). The main loop walks the other side kStep at a time, staging
 * a (kStep × kHeadDim) tile of K and of V (or of Q and dO) in LDS, rows padded to kLdsStride.
 */
#ifndef FA_CK_FMHA_TILE_SHAPE_H
#define FA_CK_FMHA_TILE_SHAPE_H

#include "ck_mfma.h"
#include "fmha_tile_config.h"

namespace fa_ck {

template <int DType_, int HeadDim_, Kernel Kind>
struct FmhaTileShape {
    static constexpr int kDType = DType_;
    static constexpr int kHeadDim = HeadDim_;
    static constexpr TileConfig kConfig = tile_config(Kind, HeadDim_);
    static constexpr int kWaves = kConfig.waves;
    static constexpr int kThreads = kWaves * kWaveSize;
    static constexpr int kBlockRows = kConfig.block_rows;
    static constexpr int kStep = kConfig.step;

    static constexpr int kDSlices = kHeadDim / kMfmaK;   /* k-slices of a product over the head dim */
    static constexpr int kDBlocks = kHeadDim / kMfmaM;   /* 32-row blocks of an accumulator over the head dim */
    static constexpr int kStepBlocks = kStep / kMfmaN;   /* 32-wide MFMA blocks along the step */
    static constexpr int kStepSlices = kStep / kMfmaK;   /* k-slices of a product over the step */
    static constexpr int kLdsStride = kHeadDim + kLdsRowPad;
    static constexpr int kTileElements = kStep * kLdsStride;

    static_assert(kBlockRows == kMfmaM * kWaves, "FmhaTileShape: a wave owns the 32 rows of its MFMA");
    static_assert(kWaves <= kMaxWaves, "FmhaTileShape: at most kMaxWaves waves (per-wave scratch of the emulations)");
    static_assert(kHeadDim % kMfmaM == 0, "FmhaTileShape: head dim buckets are multiples of 32");
    static_assert(kStep % kMfmaN == 0, "FmhaTileShape: the step is a multiple of the MFMA's 32");
    static_assert((kLdsStride * 2) % 8 == 0, "FmhaTileShape: LDS rows keep 8-byte operand reads aligned");
    static_assert(2 * kTileElements * 2 <= 48 * 1024, "FmhaTileShape: two staged tiles must leave LDS for the rest (64 KB per workgroup)");
};

}  // namespace fa_ck

#endif  // FA_CK_FMHA_TILE_SHAPE_H

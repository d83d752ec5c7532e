/*
 * fmha_tile_config.h — the block tile of every rocm_ck kernel per head dim, as plain
 * constexpr data: the kernels' traits (fmha_tile_shape.h) are built from it, and the host plan
 * (fmha_plan.h, compiled by the host compiler too) reads the same numbers for grids, splits
 * and workspaces.
 *
 * A wave always owns 32 rows of its MFMA (queries in the forward and in dQ, keys in dK/dV), so
 * a tile is described by its waves and the depth of the other side that one step walks.
 *
 *   kernel        waves  rows       step            d ≤ 128  d = 192, 256   LDS at d = 128 / 256
 *   fwd           4      128 q      keys per step   64       32             33 KB / 33 KB
 *   fwd_splitkv   2       64 q      keys per step   64       32             33 KB / 33 KB
 *   bwd dK/dV     2       64 k      queries / step  32       32             17 KB / 33 KB
 *   bwd dQ        4      128 q      keys per step   64       32             33 KB / 33 KB
 *
 * Step depths halve above d = 128 so that K and V tiles (step × (d + 4) elements each) stay
 * within the 64 KB of LDS a gfx90a / gfx942 workgroup may use, and S^T (16 fp32 registers per
 * 32 keys) plus O^T (d / 2 registers) stay within the 512 VGPRs + AGPRs of one wave.
 * Not tuned on hardware: there is no AMD GPU on the machines of this project.
 */
#ifndef FA_CK_FMHA_TILE_CONFIG_H
#define FA_CK_FMHA_TILE_CONFIG_H

namespace fa_ck {

/* The head-dim buckets compiled (a head dim runs in the smallest bucket that holds it). */
constexpr int kHeaddimBuckets[] = {32, 64, 96, 128, 192, 256};

/* Elements added to each LDS row: a row stride of d/2 + 2 dwords spreads the 32 rows one
   8-byte operand read touches over all 32 banks (d = 128: 66 dwords, 2 banks apart). */
constexpr int kLdsRowPad = 4;

enum class Kernel { Fwd, FwdSplitkv, BwdDkDv, BwdDq };

struct TileConfig {
    int waves;      /* 64-lane waves per block */
    int block_rows; /* rows of the block (32 per wave) */
    int step;       /* depth of one main-loop step (keys, or queries for dK/dV) */
};

constexpr TileConfig tile_config(Kernel kernel, int headdim) {
    const int step = headdim <= 128 ? 64 : 32;
    switch (kernel) {
        case Kernel::Fwd: return {4, 128, step};
        case Kernel::FwdSplitkv: return {2, 64, step};
        case Kernel::BwdDkDv: return {2, 64, 32};
        case Kernel::BwdDq: return {4, 128, step};
    }
    return {0, 0, 0};
}

/* The bucket that runs `headdim`, 0 when it exceeds them all. */
constexpr int round_headdim(int headdim) {
    for (int bucket : kHeaddimBuckets)
        if (headdim <= bucket) return bucket;
    return 0;
}

}  // namespace fa_ck

#endif  // FA_CK_FMHA_TILE_CONFIG_H

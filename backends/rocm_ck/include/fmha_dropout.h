/*
 * fmha_dropout.h — the dropout mask of the ABI (fa_philox.h) as the kernels read it: one
 * Philox block gives the kept bits of 4 consecutive keys of one query, so a lane that owns 4
 * consecutive keys of its query (one accumulator group of S^T) asks once per group.
 */
#ifndef FA_CK_FMHA_DROPOUT_H
#define FA_CK_FMHA_DROPOUT_H

#include "ck_arch.h"
#include "fa_philox.h"
#include "fmha_args.h"

namespace fa_ck {

struct BlockDropout {
    uint64_t seed, offset;
    uint32_t threshold;
    float keep_scale;
    uint32_t bh; /* b · hq + h */

    FA_CK_DEVICE static BlockDropout make(const FmhaArgs& a, int b, int h) {
        return BlockDropout{a.dropout_seed, a.dropout_offset, a.dropout_threshold, a.dropout_keep_scale,
                            static_cast<uint32_t>(b * a.nheads_q + h)};
    }

    /* Kept bits of keys j4 … j4 + 3 (j4 a multiple of 4) of query i: bit e for key j4 + e. */
    FA_CK_DEVICE unsigned keep4(int i, int j4) const {
        const fa_philox::Block block = fa_philox::mask_block(seed, offset, bh, static_cast<uint32_t>(i), static_cast<uint32_t>(j4));
        unsigned bits = 0;
#pragma unroll
        for (int e = 0; e < 4; ++e) bits |= (block.word[e] >= threshold ? 1u : 0u) << e;
        return bits;
    }

    /* Whether key j of query i is kept (one word of a block: the backward's per-element form). */
    FA_CK_DEVICE bool keep(int i, int j) const {
        const fa_philox::Block block = fa_philox::mask_block(seed, offset, bh, static_cast<uint32_t>(i), static_cast<uint32_t>(j));
        return block.word[j & 3] >= threshold;
    }
};

}  // namespace fa_ck

#endif  // FA_CK_FMHA_DROPOUT_H

/*
 * flash_fwd_plan.cuh — host-side decisions of the forward shared by fa_supports,
 * fa_workspace_size and the launchers, so that all three agree: which forward kernel a call
 * takes, its split count and the workspace layout.
 */
#ifndef FA_SM80_FLASH_FWD_PLAN_CUH
#define FA_SM80_FLASH_FWD_PLAN_CUH

#include <algorithm>
#include <cstdint>

#include "flash_attn_abi.h"
#include "flash_fwd_traits.cuh"

namespace fa_sm80 {

/* Most splits the split-KV kernel uses (fa_capabilities.max_splits). */
constexpr int kMaxSplits = 128;

/* The head dim of the instance that runs `headdim` (the next compiled bucket), 0 if none. */
inline int round_headdim(int headdim) {
    for (int bucket : {32, 64, 96, 128, 192, 256}) {
        if (headdim <= bucket) return bucket;
    }
    return 0;
}

struct FwdTile {
    int block_m;
    int block_n;
};

inline FwdTile fwd_tile(int headdim) {
    switch (round_headdim(headdim)) {
        case 32: return {FwdConfig<__half, 32>::Traits::kBlockM, FwdConfig<__half, 32>::Traits::kBlockN};
        case 64: return {FwdConfig<__half, 64>::Traits::kBlockM, FwdConfig<__half, 64>::Traits::kBlockN};
        case 96: return {FwdConfig<__half, 96>::Traits::kBlockM, FwdConfig<__half, 96>::Traits::kBlockN};
        case 128: return {FwdConfig<__half, 128>::Traits::kBlockM, FwdConfig<__half, 128>::Traits::kBlockN};
        case 192: return {FwdConfig<__half, 192>::Traits::kBlockM, FwdConfig<__half, 192>::Traits::kBlockN};
        default: return {FwdConfig<__half, 256>::Traits::kBlockM, FwdConfig<__half, 256>::Traits::kBlockN};
    }
}

/*
 * How a forward call runs. The plain kernel (run_fwd) serves dense and varlen attention; the
 * split kernel (run_fwd_split) serves the KV cache, a paged K/V and explicit splits.
 */
struct FwdPlan {
    bool use_split_kernel;
    int num_splits;            /* 1 = the split kernel writes out directly */
    uint64_t partial_o_offset; /* workspace layout (bytes) */
    uint64_t partial_lse_offset;
    uint64_t q_rotated_offset; /* kv-cache with rotary: rotated q, (b, sq, hq, d) */
    uint64_t workspace_bytes;
};

inline uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/*
 * Split count for num_splits = 0 (kv-cache): no split while the CTAs already fill the SMs
 * (≥ 80 % of one wave); else enough splits for about two waves, but never more than the
 * key tiles (more would be empty) nor kMaxSplits. E.g. decoding b = 4, hq = 8, 1 m-block on
 * 132 SMs: 32 CTAs → ⌈264 / 32⌉ = 9 splits, for sk = 4096 (64 tiles of 64 keys) 9 ≤ 64.
 */
inline int heuristic_splits(int ctas, int key_tiles, int num_sms) {
    if (ctas <= 0 || num_sms <= 0 || ctas * 5 >= num_sms * 4) return 1;
    const int wanted = (2 * num_sms + ctas - 1) / ctas;
    return std::max(1, std::min({wanted, key_tiles, kMaxSplits}));
}

inline FwdPlan plan_forward(const fa_params& p, fa_op op, int num_sms) {
    FwdPlan plan{};
    const bool kvcache = op == FA_OP_FORWARD_KVCACHE;
    plan.use_split_kernel = kvcache || p.block_table != nullptr || p.num_splits > 1;
    plan.num_splits = 1;
    if (plan.use_split_kernel) {
        const int m_blocks = (p.seqlen_q + kSplitBlockM - 1) / kSplitBlockM;
        const int key_tiles = std::max(1, (p.seqlen_k + kSplitBlockN - 1) / kSplitBlockN);
        if (p.num_splits > 1) {
            plan.num_splits = std::min({p.num_splits, key_tiles, kMaxSplits});
        } else if (p.num_splits == 0 && kvcache) {
            plan.num_splits = heuristic_splits(p.batch * p.nheads_q * m_blocks, key_tiles, num_sms);
        }
    }
    uint64_t bytes = 0;
    if (plan.num_splits > 1) {
        const uint64_t rows = static_cast<uint64_t>(p.batch) * p.nheads_q * p.seqlen_q;
        plan.partial_o_offset = 0;
        bytes = rows * plan.num_splits * p.headdim_v * sizeof(float);
        plan.partial_lse_offset = align_up(bytes, 256);
        bytes = plan.partial_lse_offset + rows * plan.num_splits * sizeof(float);
    }
    if (kvcache && p.rotary_dim > 0) {
        plan.q_rotated_offset = align_up(bytes, 256);
        bytes = plan.q_rotated_offset + static_cast<uint64_t>(p.batch) * p.seqlen_q * p.nheads_q * p.headdim_qk * 2;
    }
    plan.workspace_bytes = bytes;
    return plan;
}

}  // namespace fa_sm80

#endif  // FA_SM80_FLASH_FWD_PLAN_CUH

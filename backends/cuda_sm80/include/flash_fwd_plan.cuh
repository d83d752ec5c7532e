/*
 * flash_fwd_plan.cuh — host-side decisions of the forward shared by fa_supports,
 * fa_workspace_size and the launchers, so that all three agree: which forward kernel a call
 * takes, its split count and the workspace layout.
 */
#ifndef FA_SM80_FLASH_FWD_PLAN_CUH
#define FA_SM80_FLASH_FWD_PLAN_CUH

#include <algorithm>
#include <cstdint>

#include "fa_backend_entry.h"
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

inline uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/*
 * The workspace of a split or kv-cache forward (bytes, parts 256-byte aligned): the fp32 partials
 * O (splits, batch·hq·seqlen_q, headdim_v) and LSE (splits, batch·hq·seqlen_q), the layout
 * split_combine_kernel reads, when split; then the rotated q (b, sq, hq, d) of a rotating kv cache.
 * One layout for both CUDA backends (hopper_sm90's split_plan).
 */
struct SplitWorkspace {
    uint64_t partial_o_offset = 0;
    uint64_t partial_lse_offset = 0;
    uint64_t q_rotated_offset = 0;
    uint64_t workspace_bytes = 0;
};

inline SplitWorkspace split_workspace(const fa_params& p, int num_splits, bool rotated_q) {
    SplitWorkspace w;
    uint64_t bytes = 0;
    if (num_splits > 1) {
        const uint64_t rows = static_cast<uint64_t>(p.batch) * p.nheads_q * p.seqlen_q;
        bytes = rows * num_splits * p.headdim_v * sizeof(float);
        w.partial_lse_offset = align_up(bytes, 256);
        bytes = w.partial_lse_offset + rows * num_splits * sizeof(float);
    }
    if (rotated_q) {
        w.q_rotated_offset = align_up(bytes, 256);
        bytes = w.q_rotated_offset + static_cast<uint64_t>(p.batch) * p.seqlen_q * p.nheads_q * p.headdim_qk * 2;
    }
    w.workspace_bytes = bytes;
    return w;
}

/*
 * How a forward call runs. The plain kernel (run_fwd) serves dense and varlen attention; the
 * split kernel (run_fwd_split) serves the KV cache, a paged K/V and explicit splits.
 */
struct FwdPlan : SplitWorkspace {
    bool use_split_kernel = false;
    int num_splits = 1; /* 1 = the split kernel writes out directly */
    int pack = 1;       /* packed GQA: query heads per kv head in one tile (fa_entry::packed_gqa_group), else 1 */
};

/*
 * CTAs of the split kernel resident per SM: 4 warps at 209 registers (nvcc 11.8, sm_90;
 * __launch_bounds__(128, 2)) and 64 KB of shared memory at d = 128 give 2 on sm_80 / sm_90
 * (1 on sm_86 / sm_89, where 99 KB of shared memory holds one; d ≤ 64, 157 registers and
 * 32 KB, fits 3). One constant for all: the rule below then aims at two waves where one
 * fits, or at two thirds of the slots, both of which still stream near full bandwidth.
 */
constexpr int kSplitCtasPerSm = 2;

/*
 * Split count for num_splits = 0 (kv-cache). Decoding is a stream of K/V: what matters is
 * how many CTAs stream at once and how evenly they finish.
 *
 * Measured on an H100 (d = 128, one query row): a single split CTA per SM keeps too few
 * bytes in flight (its cp.async pipeline holds at most V(n) + K(n−1), 32 KB) and reaches
 * only 63–73 % of the copy bandwidth (batch 8 × 16 heads = 128 CTAs, which the previous rule
 * — split only below 0.8 CTA per SM — left unsplit); two resident CTAs per SM (batch ≥ 16,
 * 256+ CTAs) reach 98–103 %. So the unit of filling is a wave of kSplitCtasPerSm · num_sms
 * slots, and a call splits only while it has less than one such wave:
 *   - ctas ≥ slots: 1 (already streaming at full bandwidth; splitting only adds the partials
 *     and the combine pass).
 *   - else, for s = 1 … s_max with s_max = min(key tiles, kMaxSplits, ⌈2 · slots / ctas⌉)
 *     (at most about two waves; each split ≥ 1 key tile), the wave efficiency
 *     e(s) = w / ⌈w⌉, w = ctas · s / slots (the share of the slot-time the CTAs use when all
 *     CTAs do equal work), and the smallest s with e(s) ≥ 0.95 · max e is taken: the fewest,
 *     longest splits that fill the waves about as well as any (fewer splits: less combine
 *     traffic, fewer pipeline fills).
 * Examples on 132 SMs (264 slots), 16 heads, one query row, kv ≥ 4096: batch 1 → 16 splits,
 * 2 → 8, 4 → 4, 8 → 2 (256 CTAs, 4096 keys per split at kv 8192), ≥ 16 → 1; b = 4, hq = 8
 * (32 CTAs) → 8. Short caches are bounded by their key tiles (each split ≥ 64 keys): a short,
 * tiny call is latency-bound, and more parallel streams still finish it sooner.
 * ctas_per_sm: the slots per SM of the calling kernel (hopper_sm90's decode: 1).
 */
inline int heuristic_splits(int ctas, int key_tiles, int num_sms, int ctas_per_sm = kSplitCtasPerSm) {
    if (ctas <= 0 || num_sms <= 0) return 1;
    const int64_t slots = static_cast<int64_t>(ctas_per_sm) * num_sms;
    if (ctas >= slots) return 1;
    const int64_t by_waves = (2 * slots + ctas - 1) / ctas;
    const int s_max = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({by_waves, key_tiles, kMaxSplits})));
    auto efficiency = [&](int s) {
        const int64_t busy = static_cast<int64_t>(ctas) * s;    /* CTA-slots of work */
        const int64_t waves = (busy + slots - 1) / slots;        /* ⌈w⌉ */
        return static_cast<double>(busy) / static_cast<double>(waves * slots);
    };
    double best = 0.0;
    for (int s = 1; s <= s_max; ++s) best = std::max(best, efficiency(s));
    for (int s = 1; s <= s_max; ++s) {
        if (efficiency(s) >= 0.95 * best) return s;
    }
    return 1;
}

inline FwdPlan plan_forward(const fa_params& p, fa_op op, int num_sms) {
    FwdPlan plan{};
    const bool kvcache = op == FA_OP_FORWARD_KVCACHE;
    plan.use_split_kernel = kvcache || p.block_table != nullptr || p.num_splits > 1;
    plan.pack = fa_entry::packed_gqa_group(p, op);
    if (plan.use_split_kernel) {
        const int m_blocks = static_cast<int>((static_cast<int64_t>(p.seqlen_q) * plan.pack + kSplitBlockM - 1) / kSplitBlockM);
        const int key_tiles = std::max(1, (p.seqlen_k + kSplitBlockN - 1) / kSplitBlockN);
        if (p.num_splits > 1) {
            plan.num_splits = std::min({p.num_splits, key_tiles, kMaxSplits});
        } else if (p.num_splits == 0 && kvcache) {
            plan.num_splits = heuristic_splits(p.batch * (p.nheads_q / plan.pack) * m_blocks, key_tiles, num_sms);
        }
    }
    static_cast<SplitWorkspace&>(plan) = split_workspace(p, plan.num_splits, kvcache && p.rotary_dim > 0);
    return plan;
}

}  // namespace fa_sm80

#endif  // FA_SM80_FLASH_FWD_PLAN_CUH

/*
 * fmha_plan.h — host-side decisions that fa_supports, fa_workspace_size and the launchers
 * must agree on: which forward kernel runs a call, its split count, and the workspace layouts.
 * Plain C++ (src/api.cpp includes it without the HIP compiler).
 */
#ifndef FA_CK_FMHA_PLAN_H
#define FA_CK_FMHA_PLAN_H

#include <stdint.h>

#include "fa_backend_entry.h"
#include "flash_attn_abi.h"
#include "fmha_tile_config.h"

namespace fa_ck {

/* Most key splits of one call (fa_capabilities.max_splits). */
constexpr int kMaxSplits = 64;

/* Blocks of the split-KV kernel a compute unit keeps resident (2 waves each, ~33 KB LDS of
   its 64 KB): the unit in which the heuristic below fills the GPU. */
constexpr int kSplitBlocksPerCu = 2;

constexpr uint64_t align256(uint64_t x) { return (x + 255) / 256 * 256; }

/*
 * num_splits = 0 (fa_forward_kvcache): how many ways to split the keys. Decoding runs few
 * query blocks (batch × heads × ⌈sq / 64⌉), each streaming its whole cache; a call with fewer
 * blocks than the GPU has slots leaves compute units idle unless its keys are split. For each
 * s ≤ min(key steps, kMaxSplits) the share of the slot-waves doing work is
 *   u(s) = w / ⌈w⌉,  w = blocks · s / slots;
 * the smallest s within 90 % of the best u wins (fewer splits: less partial traffic and a
 * cheaper combine). Example, 104 CUs (208 slots), 8 heads, batch 2, sq = 1 (16 blocks), 4096
 * keys (64 steps): u(13) = 1.0 → 13 splits; batch ≥ 13 (≥ 104 blocks, half the slots) → 2.
 */
inline int splitkv_heuristic(int blocks, int key_steps, int num_cus) {
    if (blocks <= 0 || num_cus <= 0 || key_steps <= 1) return 1;
    const int64_t slots = static_cast<int64_t>(kSplitBlocksPerCu) * num_cus;
    if (blocks >= slots) return 1;
    int limit = key_steps < kMaxSplits ? key_steps : kMaxSplits;
    const auto used = [&](int s) {
        const int64_t work = static_cast<int64_t>(blocks) * s;
        const int64_t waves = (work + slots - 1) / slots;
        return static_cast<double>(work) / static_cast<double>(waves * slots);
    };
    double best = 0.0;
    for (int s = 1; s <= limit; ++s) best = used(s) > best ? used(s) : best;
    for (int s = 1; s <= limit; ++s)
        if (used(s) >= 0.9 * best) return s;
    return 1;
}

struct FwdPlan {
    bool splitkv;                /* run_fwd_splitkv (KV cache, paged KV, num_splits > 1) */
    int num_splits;              /* 1: the attention kernel writes out itself */
    int pack;                    /* packed GQA: query heads per kv head in one block (fa_entry::packed_gqa_group), else 1 */
    uint64_t o_partial_offset;   /* fp32 (splits, hq · total_q, dv), normalised per split */
    uint64_t lse_partial_offset; /* fp32 (splits, hq · total_q), −inf for an empty split */
    uint64_t q_rotated_offset;   /* kv cache with rotary: q rotated, (total_q, hq, d) in dtype */
    uint64_t workspace_bytes;
};

/* `num_cus` matters only for fa_forward_kvcache with num_splits = 0. */
inline FwdPlan plan_forward(const fa_params& p, fa_op op, int num_cus) {
    FwdPlan plan{};
    const bool kvcache = op == FA_OP_FORWARD_KVCACHE;
    plan.splitkv = kvcache || p.block_table != nullptr || p.num_splits > 1;
    plan.num_splits = 1;
    plan.pack = fa_entry::packed_gqa_group(p, op);
    if (plan.splitkv) {
        const TileConfig tile = tile_config(Kernel::FwdSplitkv, round_headdim(p.headdim_qk));
        const int key_steps = (p.seqlen_k + tile.step - 1) / tile.step;
        const int q_blocks = static_cast<int>((static_cast<int64_t>(p.seqlen_q) * plan.pack + tile.block_rows - 1) / tile.block_rows);
        int splits = p.num_splits;
        if (splits == 0)
            splits = kvcache ? splitkv_heuristic(p.batch * (p.nheads_q / plan.pack) * q_blocks, key_steps, num_cus) : 1;
        if (splits > key_steps) splits = key_steps > 0 ? key_steps : 1;
        plan.num_splits = splits < kMaxSplits ? splits : kMaxSplits;
    }
    uint64_t bytes = 0;
    const uint64_t rows = static_cast<uint64_t>(p.nheads_q) * static_cast<uint64_t>(p.total_q);
    if (plan.num_splits > 1) {
        plan.o_partial_offset = 0;
        bytes = rows * plan.num_splits * static_cast<uint64_t>(p.headdim_v) * sizeof(float);
        plan.lse_partial_offset = align256(bytes);
        bytes = plan.lse_partial_offset + rows * plan.num_splits * sizeof(float);
    }
    if (kvcache && p.rotary_dim > 0) {
        plan.q_rotated_offset = align256(bytes);
        bytes = plan.q_rotated_offset + rows * static_cast<uint64_t>(p.headdim_qk) * 2;
    }
    plan.workspace_bytes = bytes;
    return plan;
}

struct BwdPlan {
    uint64_t d_offset; /* fp32 D_i = rowsum(dO ∘ O), (hq, total_q) */
    uint64_t workspace_bytes;
};

inline BwdPlan plan_backward(const fa_params& p) {
    BwdPlan plan{};
    plan.d_offset = 0;
    plan.workspace_bytes = static_cast<uint64_t>(p.nheads_q) * static_cast<uint64_t>(p.total_q) * sizeof(float);
    return plan;
}

}  // namespace fa_ck

#endif  // FA_CK_FMHA_PLAN_H

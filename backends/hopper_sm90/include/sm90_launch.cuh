/*
 * sm90_launch.cuh — the contract between the hopper_sm90 backend's entry points (src/api.cu) and
 * its kernel instances: run_fwd's declaration (defined in flash_fwd_launch.cuh, instantiated once
 * per generated file by launch_template.h) and the host-side facts fa_supports needs. api.cu
 * includes only this header, so no kernel is compiled into it.
 *
 * run_fwd's rules (as the sm80 backend's, sm80_launch.cuh): `params` passed fa_check_params,
 * this library's capabilities and device checks; the device is current; work goes on
 * ctx.stream; errors come back as fa_status with the last-error message; never abort.
 */
#ifndef FA_SM90_LAUNCH_CUH
#define FA_SM90_LAUNCH_CUH

#include <algorithm>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "fa_cuda_host.h"
#include "flash_attn_abi.h"
#include "fwd_traits.cuh"
/* The split rule and its limits are the sm80 backend's (one rule for both CUDA backends). */
#include "../../cuda_sm80/include/flash_fwd_plan.cuh"

namespace fa_sm90 {

using LaunchContext = fa_cuda::LaunchContext;

template <typename Element, int HeadDimQK, int HeadDimV, bool Softcap>
fa_status run_fwd(const fa_params& params, const LaunchContext& ctx);

/* Shared memory the forward instance of `headdim_bucket` needs (fa_supports checks it). */
inline int fwd_smem_bytes(int headdim_bucket, bool softcap) {
    switch (headdim_bucket) {
        case 64: return softcap ? FwdInstanceTraits<64, true>::kSmemBytes : FwdInstanceTraits<64, false>::kSmemBytes;
        case 96: return FwdInstanceTraits<96, false>::kSmemBytes;
        case 128: return FwdInstanceTraits<128, false>::kSmemBytes;
        case 192: return FwdInstanceTraits<192, false>::kSmemBytes;
        default: return FwdInstanceTraits<256, false>::kSmemBytes;
    }
}

/* The head-dim bucket (compiled instance) of a head dim, 0 if none. */
inline int round_headdim(int headdim) {
    for (int bucket : {64, 96, 128, 192, 256}) {
        if (headdim <= bucket) return bucket;
    }
    return 0;
}

/*
 * Split count and workspace of a call on the cache kernel (kv cache, paged K/V, num_splits > 1;
 * fa_workspace_size and the launch agree through it). Splits: num_splits > 1 as asked (at most one
 * per key block and kMaxSplits); for the kv cache 0 takes the sm80 backend's wave rule
 * (flash_fwd_plan.cuh) with one resident CTA per SM; else none. Workspace: the fp32 partials (O,
 * LSE) when split, and the rotated q when the kv cache rotates.
 */
struct SplitPlan {
    int num_splits = 1;
    uint64_t partial_o_offset = 0, partial_lse_offset = 0, q_rotated_offset = 0, workspace_bytes = 0;
};

/* Packed GQA for the kv cache (flash_fwd_kernel.cuh, FwdParams::pack_gqa): the group of query heads of one kv
   head share a tile, so K/V stream once per kv head rather than once per query head (decode with a group of 8
   read them 8 times: 17-25 % of the copy bandwidth). Needs the group to divide the tile's rows (the TMA box);
   returns the group, or 0 for no packing. */
inline int kvcache_pack_gqa(const fa_params& p, int block_m) {
    const int group = p.nheads_q / p.nheads_kv;
    return group > 1 && block_m % group == 0 ? group : 0;
}

inline SplitPlan split_plan(const fa_params& p, int num_sms) {
    SplitPlan plan;
    const bool kvcache = p.cache_seqlens != nullptr;
    const int bucket = round_headdim(p.headdim_qk);
    const bool softcap = p.softcap > 0.0f;
    const int block_m = bucket == 64 ? (softcap ? FwdTile<64, true>::kBlockM : FwdTile<64, false>::kBlockM) : 128;
    const int block_n = bucket == 192 ? FwdTile<192, false>::kBlockN : bucket == 256 ? FwdTile<256, false>::kBlockN : 128;
    const int key_blocks = std::max(1, (p.seqlen_k + block_n - 1) / block_n);
    if (p.num_splits > 1) {
        plan.num_splits = std::min({p.num_splits, key_blocks, fa_sm80::kMaxSplits});
    } else if (p.num_splits == 0 && kvcache) {
        const int pack = kvcache_pack_gqa(p, block_m);
        const int64_t rows = static_cast<int64_t>(p.seqlen_q) * (pack > 1 ? pack : 1);
        const int m_blocks = static_cast<int>((rows + block_m - 1) / block_m);
        const int heads = pack > 1 ? p.nheads_kv : p.nheads_q;
        plan.num_splits = fa_sm80::heuristic_splits(p.batch * heads * m_blocks, key_blocks, num_sms, 1);
    }
    uint64_t bytes = 0;
    if (plan.num_splits > 1) {
        const uint64_t rows = static_cast<uint64_t>(p.batch) * p.nheads_q * p.seqlen_q;
        bytes = rows * plan.num_splits * p.headdim_v * sizeof(float);
        plan.partial_lse_offset = fa_sm80::align_up(bytes, 256);
        bytes = plan.partial_lse_offset + rows * plan.num_splits * sizeof(float);
    }
    if (kvcache && p.rotary_dim > 0) {
        plan.q_rotated_offset = fa_sm80::align_up(bytes, 256);
        bytes = plan.q_rotated_offset + static_cast<uint64_t>(p.batch) * p.seqlen_q * p.nheads_q * p.headdim_qk * 2;
    }
    plan.workspace_bytes = bytes;
    return plan;
}

}  // namespace fa_sm90

#endif  // FA_SM90_LAUNCH_CUH

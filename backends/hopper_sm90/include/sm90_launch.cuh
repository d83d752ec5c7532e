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
#include <cuda_fp8.h>

#include "fa_cuda_host.h"
#include "flash_attn_abi.h"
#include "fp8_transpose_v.cuh"
#include "fwd_traits.cuh"
/* The split rule and its limits are the sm80 backend's (one rule for both CUDA backends). */
#include "../../cuda_sm80/include/flash_fwd_plan.cuh"

/* fa_dtype constant → element type (instances.g.inc and the generated instance files name dtypes by constant). */
#define FA_SM90_ELEMENT_FA_DTYPE_F16 __half
#define FA_SM90_ELEMENT_FA_DTYPE_BF16 __nv_bfloat16
#define FA_SM90_ELEMENT_FA_DTYPE_F8_E4M3 __nv_fp8_e4m3
#define FA_SM90_ELEMENT(dtype) FA_SM90_ELEMENT_##dtype

namespace fa_sm90 {

using LaunchContext = fa_cuda::LaunchContext;

template <typename Element, int HeadDimQK, int HeadDimV, bool Softcap>
fa_status run_fwd(const fa_params& params, const LaunchContext& ctx);

/* Shared memory the forward instance of `headdim_bucket` needs (fa_supports checks it). */
template <int ElemBytes>
inline int fwd_smem_bytes(int headdim_bucket, bool softcap) {
    switch (headdim_bucket) {
        case 64: return softcap ? FwdInstanceTraits<64, true, ElemBytes>::kSmemBytes : FwdInstanceTraits<64, false, ElemBytes>::kSmemBytes;
        case 96: return FwdInstanceTraits<96, false, ElemBytes>::kSmemBytes;
        case 128: return FwdInstanceTraits<128, false, ElemBytes>::kSmemBytes;
        case 192: return FwdInstanceTraits<192, false, ElemBytes>::kSmemBytes;
        default: return FwdInstanceTraits<256, false, ElemBytes>::kSmemBytes;
    }
}
inline int fwd_smem_bytes(fa_dtype dtype, int headdim_bucket, bool softcap) {
    return dtype == FA_DTYPE_F8_E4M3 ? fwd_smem_bytes<1>(headdim_bucket, softcap) : fwd_smem_bytes<2>(headdim_bucket, softcap);
}

/* The head-dim bucket (compiled instance) of a head dim, 0 if none. */
inline int round_headdim(int headdim) {
    for (int bucket : {64, 96, 128, 192, 256}) {
        if (headdim <= bucket) return bucket;
    }
    return 0;
}

/*
 * Split count and workspace of a call (fa_workspace_size and the launch agree through it). Splits (the
 * cache kernel: kv cache, paged K/V, num_splits > 1): num_splits > 1 as asked (at most one per key block and
 * kMaxSplits); for the kv cache 0 takes the sm80 backend's wave rule (flash_fwd_plan.cuh) with one resident
 * CTA per SM; else none. Workspace: the fp32 partials (O, LSE) when split, the rotated q when the kv cache
 * rotates, and for e4m3 the transposed V (fp8_transpose_v.cuh).
 */
struct SplitPlan : fa_sm80::SplitWorkspace {
    int num_splits = 1;
    uint64_t vt_offset = 0;
};

/* Packed GQA for the kv cache (flash_fwd_kernel.cuh, FwdParams::pack_gqa): the backends' rule
   (fa_entry::packed_gqa_group), where the group also divides the tile's rows (the TMA box of Q). Returns the
   group, or 1. */
inline int kvcache_pack_gqa(const fa_params& p, int block_m) {
    const int group = fa_entry::packed_gqa_group(p, FA_OP_FORWARD_KVCACHE);
    return block_m % group == 0 ? group : 1;
}

/* The tile (query rows × keys) of the forward instance of a head-dim bucket (FwdTile). */
struct TileDims {
    int block_m, block_n;
};
inline TileDims fwd_tile_dims(int bucket, bool softcap) {
    switch (bucket) {
        case 64: return softcap ? TileDims{FwdTile<64, true>::kBlockM, FwdTile<64, true>::kBlockN}
                                : TileDims{FwdTile<64, false>::kBlockM, FwdTile<64, false>::kBlockN};
        case 96: return {FwdTile<96, false>::kBlockM, FwdTile<96, false>::kBlockN};
        case 128: return {FwdTile<128, false>::kBlockM, FwdTile<128, false>::kBlockN};
        case 192: return {FwdTile<192, false>::kBlockM, FwdTile<192, false>::kBlockN};
        default: return {FwdTile<256, false>::kBlockM, FwdTile<256, false>::kBlockN};
    }
}

inline SplitPlan split_plan(const fa_params& p, int num_sms) {
    SplitPlan plan;
    const bool kvcache = p.cache_seqlens != nullptr;
    const TileDims tile = fwd_tile_dims(round_headdim(p.headdim_qk), p.softcap > 0.0f);
    const int key_blocks = std::max(1, (p.seqlen_k + tile.block_n - 1) / tile.block_n);
    if (p.num_splits > 1) {
        plan.num_splits = std::min({p.num_splits, key_blocks, fa_sm80::kMaxSplits});
    } else if (p.num_splits == 0 && kvcache) {
        const int pack = kvcache_pack_gqa(p, tile.block_m);
        const int m_blocks = static_cast<int>((static_cast<int64_t>(p.seqlen_q) * pack + tile.block_m - 1) / tile.block_m);
        plan.num_splits = fa_sm80::heuristic_splits(p.batch * (p.nheads_q / pack) * m_blocks, key_blocks, num_sms, 1);
    }
    static_cast<fa_sm80::SplitWorkspace&>(plan) = fa_sm80::split_workspace(p, plan.num_splits, kvcache && p.rotary_dim > 0);
    if (p.dtype == FA_DTYPE_F8_E4M3) {
        plan.vt_offset = fa_sm80::align_up(plan.workspace_bytes, 256);
        plan.workspace_bytes = plan.vt_offset + vt_bytes(p);
    }
    return plan;
}

}  // namespace fa_sm90

#endif  // FA_SM90_LAUNCH_CUH

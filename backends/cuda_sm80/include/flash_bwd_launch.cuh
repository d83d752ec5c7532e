/*
 * flash_bwd_launch.cuh — fa_sm80::run_bwd<Element, HeadDimQK, HeadDimV, IsCausal>: the host
 * side of one backward instance. Resolves the parameters (src/bwd_host.cu), carves the
 * workspace (allocating it on the stream when the caller gave none), then enqueues
 * preprocess -> [dsink] -> [zero kv padding] -> main -> postprocess on ctx.stream.
 *
 * Shared-memory choice: the double-buffered tile when it fits ctx.max_smem_optin, else the
 * single-buffered one (d192/d256 on sm_80), else FA_ERR_UNSUPPORTED
 * (bwd_smem_bytes() below lets fa_supports ask the same question).
 */
#ifndef FA_SM80_FLASH_BWD_LAUNCH_CUH
#define FA_SM80_FLASH_BWD_LAUNCH_CUH

#include <cstdint>
#include <cuda_runtime.h>

#include "flash_bwd_kernel.cuh"
#include "sm80_launch.cuh"

namespace fa_sm80 {
namespace bwd {

/* Host-side helpers, defined in src/bwd_host.cu. */

/* Fills `out` from `params` for an instance of head dim `instance_head_dim` and query block
   `block_q`, carving `workspace` (bwd_workspace_bytes(params) bytes). */
fa_status make_bwd_params(const fa_params& params, int instance_head_dim, int block_q, void* workspace,
                          uint64_t workspace_bytes, BwdParams* out);

/* Enqueues preprocess, dsink, kv padding; then main is the caller's; postprocess after. */
template <typename Element>
fa_status launch_bwd_pre(const BwdParams& p, const fa_params& params, cudaStream_t stream) {
    if (p.deterministic && p.sem != nullptr && p.sem_per_head > 0) {
        const size_t bytes = static_cast<size_t>(p.sem_per_head) * p.nheads_q * sizeof(int);
        if (cudaMemsetAsync(p.sem, 0, bytes, stream) != cudaSuccess)
            return fa_set_last_error(FA_ERR_DEVICE, "fa_backward: cudaMemsetAsync of the dq semaphores failed: %s",
                                     cudaGetErrorString(cudaGetLastError()));
    }
    const size_t dq_bytes = static_cast<size_t>(p.dq_accum_groups) * 16 * p.nheads_q * p.dq_accum_dim * sizeof(float);
    if (dq_bytes > 0 && cudaMemsetAsync(p.dq_accum, 0, dq_bytes, stream) != cudaSuccess)
        return fa_set_last_error(FA_ERR_DEVICE, "fa_backward: cudaMemsetAsync of the dq accumulator failed: %s",
                                 cudaGetErrorString(cudaGetLastError()));
    const int64_t pairs = static_cast<int64_t>(p.total_q) * p.nheads_q;
    if (pairs > 0) {
        const int64_t blocks = (pairs + 7) / 8;
        if (blocks > 0x7fffffff) return fa_set_last_error(FA_ERR_UNSUPPORTED, "fa_backward: too many query rows x heads");
        bwd_preprocess_kernel<Element><<<static_cast<unsigned>(blocks), 256, 0, stream>>>(p);
    }
    if (params.dsink != nullptr) bwd_dsink_kernel<256><<<p.nheads_q, 256, 0, stream>>>(p);
    if (params.seqused_k != nullptr || params.leftpad_k != nullptr)
        bwd_zero_kv_padding_kernel<Element><<<dim3(p.nheads_kv, p.batch), 256, 0, stream>>>(p);
    return FA_OK;
}

template <typename Element>
void launch_bwd_post(const BwdParams& p, cudaStream_t stream) {
    // One block per (16-row group, sequence); seqlen_q is the longest sequence (varlen: max_seqlen_q).
    const int64_t groups = (static_cast<int64_t>(p.seqlen_q) + 15) / 16;
    if (groups > 0 && p.batch > 0 && p.total_q > 0)
        bwd_postprocess_kernel<Element><<<dim3(static_cast<unsigned>(groups), p.batch), 256, 0, stream>>>(p);
}

template <typename Element, typename Cfg, bool IsCausal, bool kFeatures, bool kDeterministic>
fa_status launch_bwd_main(const BwdParams& p, cudaStream_t stream) {
    auto kernel = bwd_main_kernel<Element, Cfg, IsCausal, kFeatures, kDeterministic>;
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes) != cudaSuccess)
        return fa_set_last_error(FA_ERR_DEVICE, "fa_backward: cannot give the kernel %d bytes of shared memory: %s",
                                 Cfg::kSmemBytes, cudaGetErrorString(cudaGetLastError()));
    const int n_blocks = (p.seqlen_k + Cfg::kBlockK - 1) / Cfg::kBlockK;
    if (n_blocks > 0) {
        const dim3 grid(n_blocks, p.nheads_kv, p.batch);
        kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(p);
    }
    return FA_OK;
}

}  // namespace bwd

/* Head dims that also compile a fallback main kernel (bwd_traits.cuh): 64 and 128 for the
   register-path tile (sm_80's 163 KB, sm_86/89's 99 KB at d64), 192 and 256 single-buffered
   for sm_80, 96 single-buffered for the 99 KB of sm_86 / sm_89. */
template <int HeadDim>
constexpr bool bwd_has_single_buffer() {
    return HeadDim == 64 || HeadDim == 96 || HeadDim >= 128;
}

/* Shared memory per block the backward of an instance head dim needs at least; fa_supports can
   compare it with cudaDevAttrMaxSharedMemoryPerBlockOptin. */
template <int HeadDim>
constexpr int bwd_min_smem_bytes() {
    return bwd_has_single_buffer<HeadDim>() ? bwd::BwdTile<HeadDim, false>::kSmemBytes : bwd::BwdTile<HeadDim, true>::kSmemBytes;
}

namespace bwd {
/* The main kernel variant for the problem: plain or with softcap / ALiBi / dropout, and deterministic
   or not (a compile-time switch: the ordered dQ additions cost registers and branches). */
template <typename Element, typename Cfg, bool IsCausal>
fa_status launch_bwd_main_for(const BwdParams& p, cudaStream_t stream) {
    const bool features = p.softcap > 0.0f || p.alibi != nullptr || p.has_dropout != 0;
    if (p.deterministic)
        return features ? launch_bwd_main<Element, Cfg, IsCausal, true, true>(p, stream)
                        : launch_bwd_main<Element, Cfg, IsCausal, false, true>(p, stream);
    return features ? launch_bwd_main<Element, Cfg, IsCausal, true, false>(p, stream)
                    : launch_bwd_main<Element, Cfg, IsCausal, false, false>(p, stream);
}
}  // namespace bwd

template <typename Element, int HeadDimQK, int HeadDimV, bool IsCausal>
fa_status run_bwd(const fa_params& params, const LaunchContext& ctx) {
    static_assert(HeadDimQK == HeadDimV, "the sm80 backward instances have headdim_v == headdim_qk");
    using Double = bwd::BwdTile<HeadDimQK, true>;
    using Single = bwd::BwdTile<HeadDimQK, false>;
    const bool use_double = Double::kSmemBytes <= ctx.max_smem_optin;
    if (ctx.max_smem_optin < bwd_min_smem_bytes<HeadDimQK>())
        return fa_set_last_error(FA_ERR_UNSUPPORTED,
                                 "cuda_sm80 fa_backward: head dim %d needs %d bytes of shared memory per block; the device "
                                 "allows %d",
                                 HeadDimQK, bwd_min_smem_bytes<HeadDimQK>(), ctx.max_smem_optin);

    // fa_backward passes the workspace in ctx; a direct call without one (bwd_check's standalone
    // build) takes it from the library's pool like fa_backward would.
    const uint64_t need = bwd_workspace_bytes(params);
    LaunchContext run_ctx = ctx;
    fa_cuda::Workspace own_workspace("cuda_sm80");
    fa_status status = FA_OK;
    if (run_ctx.workspace == nullptr) {
        status = own_workspace.acquire(params, need, &run_ctx);
    } else if (run_ctx.workspace_bytes < need) {
        status = fa_set_last_error(FA_ERR_INVALID_ARGUMENT,
                                   "cuda_sm80 fa_backward: workspace of %" PRIu64 " bytes; the problem needs %" PRIu64,
                                   run_ctx.workspace_bytes, need);
    }
    if (status != FA_OK) return status;

    bwd::BwdParams p;
    status = bwd::make_bwd_params(params, HeadDimQK, bwd::bwd_block_q(HeadDimQK), run_ctx.workspace, run_ctx.workspace_bytes, &p);
    if (status != FA_OK) return status;

    status = bwd::launch_bwd_pre<Element>(p, params, ctx.stream);
    if (status != FA_OK) return status;
    if constexpr (bwd_has_single_buffer<HeadDimQK>()) {
        status = use_double ? bwd::launch_bwd_main_for<Element, Double, IsCausal>(p, ctx.stream)
                            : bwd::launch_bwd_main_for<Element, Single, IsCausal>(p, ctx.stream);
    } else {
        (void)use_double;
        status = bwd::launch_bwd_main_for<Element, Double, IsCausal>(p, ctx.stream);
    }
    if (status != FA_OK) return status;
    bwd::launch_bwd_post<Element>(p, ctx.stream);

    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess)
        return fa_set_last_error(FA_ERR_DEVICE, "cuda_sm80 fa_backward: kernel launch failed: %s", cudaGetErrorString(err));
    return FA_OK;
}

}  // namespace fa_sm80

#endif  // FA_SM80_FLASH_BWD_LAUNCH_CUH

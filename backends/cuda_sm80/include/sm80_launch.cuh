/*
 * sm80_launch.cuh — the contract between the sm80 backend's host entry points (src/api.cu),
 * its forward kernels (include/flash_fwd_*.cuh) and its backward kernels
 * (include/flash_bwd_launch.cuh, src/bwd_host.cu).
 *
 * Every compiled instance (dtype, head dim, causal) is an explicit instantiation of one of
 * the run_* templates below, produced by the FA_SM80_INSTANTIATE_* macros of
 * launch_template.h; src/api.cu dispatches to them through the X-macro table
 * generated/instances.g.inc.
 *
 * Rules for every run_* function:
 *  - `params` has already passed fa_check_params, fa_check_capabilities and the device checks
 *    of fa_supports (compute capability, instance present, shared memory fits). The head dims
 *    in `params` may be smaller than HeadDimQK/HeadDimV (rounded up to the instance); the
 *    kernel treats columns >= params.headdim_* as absent (reads 0, writes nothing).
 *  - IsCausal == true means the problem is causal in the sense of the ABI (window (left, 0)
 *    with the bottom-right offset); the run-time window fields still apply on top.
 *  - `ctx.workspace` is at least the size the op asked for (fwd: split-KV accumulators,
 *    bwd: bwd_workspace_bytes(params)), already allocated on ctx.device; may be NULL when 0.
 *  - Work is enqueued on ctx.stream; errors are returned as fa_status with fa_set_last_error
 *    (launch errors → FA_ERR_DEVICE). Never abort, never synchronise the device.
 *  - The current device is already ctx.device when a run_* function is called.
 *
 * Element = __half (FA_DTYPE_F16) or __nv_bfloat16 (FA_DTYPE_BF16).
 */
#ifndef FA_SM80_LAUNCH_CUH
#define FA_SM80_LAUNCH_CUH

#include <cstdint>
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#include "flash_attn_abi.h"
#include "fa_common.h"
#include "fa_cuda_host.h"

namespace fa_sm80 {

/* The launch context shared by the CUDA backends (backends/common/include/fa_cuda_host.h). */
using LaunchContext = fa_cuda::LaunchContext;

template <typename Element, int HeadDimQK, int HeadDimV, bool IsCausal>
fa_status run_fwd(const fa_params& params, const LaunchContext& ctx);

template <typename Element, int HeadDimQK, int HeadDimV, bool IsCausal>
fa_status run_fwd_split(const fa_params& params, const LaunchContext& ctx);

template <typename Element, int HeadDimQK, int HeadDimV, bool IsCausal>
fa_status run_bwd(const fa_params& params, const LaunchContext& ctx);

/* Scratch bytes the backward needs (dq accumulators, softmax_d, ...). Defined by the
   backward in src/bwd_host.cu. */
uint64_t bwd_workspace_bytes(const fa_params& params);

/*
 * Contract addition (forward helper): two optional hooks the backward may define in
 * src/bwd_host.cu. src/api.cu declares them weak and falls back when they are absent.
 *   bwd_features()  the FA_FEATURE_* bits fa_backward implements (fa_get_capabilities'
 *                   features[FA_OP_BACKWARD]). Absent → fa_backward claims only
 *                   FA_FEATURE_CAUSAL | FA_FEATURE_GQA (api.cu kBwdFallbackFeatures).
 *   bwd_check()     device-dependent refusals for fa_supports (e.g. shared memory of the
 *                   instance vs ctx.max_smem_optin): FA_OK, or a status with
 *                   fa_set_last_error(reason). Absent → only the instance table is checked.
 */
uint64_t bwd_features();
fa_status bwd_check(const fa_params& params, const LaunchContext& ctx);

}  // namespace fa_sm80

#endif  // FA_SM80_LAUNCH_CUH

/*
 * fmha_launch_api.h — the contract between the host entry points (src/api.cpp, built by the
 * host C++ compiler without HIP's device headers) and the kernels (generated instances and
 * src/fmha_aux.hip, built by the HIP compiler).
 *
 * Each compiled instance is an explicit instantiation of one run_* template below, made by the
 * FA_CK_INSTANTIATE_* macros of launch_template.h; src/api.cpp reaches them through the X-macro
 * table generated/instances.g.inc. DType is the fa_dtype value (FA_DTYPE_F16, FA_DTYPE_BF16).
 *
 * Rules for every run_* function:
 *  - `params` passed fa_check_params, fa_check_capabilities and this library's own checks in
 *    fa_supports (layout, device, instance). Its head dims may be below the instance's bucket;
 *    the kernels read zeros beyond them and write nothing there.
 *  - The current device is ctx.device; work is enqueued on ctx.stream, never synchronised.
 *  - ctx.workspace holds at least plan_forward / plan_backward(params).workspace_bytes.
 *  - Errors come back as fa_status with fa_set_last_error (launch failures: FA_ERR_DEVICE).
 */
#ifndef FA_CK_FMHA_LAUNCH_API_H
#define FA_CK_FMHA_LAUNCH_API_H

#include <stdint.h>

#include "flash_attn_abi.h"

namespace fa_ck {

struct LaunchContext {
    void* stream;   /* hipStream_t (cudaStream_t on the NVIDIA side, unused on the host) */
    void* workspace;
    uint64_t workspace_bytes;
    int device;
    int num_cus;    /* compute units (SMs on NVIDIA): the split-KV heuristic's unit */
};

/* fa_forward without paging or splits: dense or varlen attention. */
template <int DType, int HeadDimQK, int HeadDimV, bool HasDropout>
fa_status run_fwd(const fa_params& params, const LaunchContext& ctx);

/* fa_forward_kvcache, and fa_forward with a block table or num_splits > 1: KV append and
   rotary (kvcache), the split-KV attention and the LSE combine of the splits. */
template <int DType, int HeadDimQK, int HeadDimV>
fa_status run_fwd_splitkv(const fa_params& params, const LaunchContext& ctx);

/* fa_backward: D = rowsum(dO ∘ O) (+ dsink), then dK/dV and dQ (two kernels, no atomics:
   deterministic by construction). */
template <int DType, int HeadDimQK, int HeadDimV, bool HasDropout>
fa_status run_bwd(const fa_params& params, const LaunchContext& ctx);

}  // namespace fa_ck

#endif  // FA_CK_FMHA_LAUNCH_API_H

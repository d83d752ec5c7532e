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

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "fa_cuda_host.h"
#include "flash_attn_abi.h"
#include "fwd_traits.cuh"

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

}  // namespace fa_sm90

#endif  // FA_SM90_LAUNCH_CUH

/*
 * fmha_bwd_launch.h — host side of the backward (declared in fmha_launch_api.h, instantiated
 * per key by launch_template.h): D = rowsum(dO ∘ O) (and dsink), then the dK/dV and dQ
 * kernels, all on ctx.stream.
 */
#ifndef FA_CK_FMHA_BWD_LAUNCH_H
#define FA_CK_FMHA_BWD_LAUNCH_H

#include "ck_runtime.h"
#include "fmha_args.h"
#include "fmha_aux.h"
#include "fmha_bwd_kernel.h"
#include "fmha_launch_api.h"
#include "fmha_plan.h"

namespace fa_ck {

template <int DType, int HeadDimQK, int HeadDimV, bool HasDropout>
fa_status run_bwd(const fa_params& p, const LaunchContext& ctx) {
    static_assert(HeadDimQK == HeadDimV, "run_bwd: headdim_v != headdim_qk is not compiled in this backend");
    using DkDvShape = FmhaTileShape<DType, HeadDimQK, Kernel::BwdDkDv>;
    using DqShape = FmhaTileShape<DType, HeadDimQK, Kernel::BwdDq>;
    const BwdPlan plan = plan_backward(p);
    if (plan.workspace_bytes > ctx.workspace_bytes || (plan.workspace_bytes > 0 && ctx.workspace == nullptr))
        return fa_set_last_error(FA_ERR_INVALID_ARGUMENT, "fa_params.workspace_bytes must be at least %llu for fa_backward; got %llu",
                                 static_cast<unsigned long long>(plan.workspace_bytes),
                                 static_cast<unsigned long long>(ctx.workspace_bytes));
    FmhaArgs args = make_args(p);
    args.d_rows = reinterpret_cast<float*>(static_cast<unsigned char*>(ctx.workspace) + plan.d_offset);

    if (p.total_q > 0) {
        const fa_status status = launch_bwd_preprocess<DType>(args, ctx);
        if (status != FA_OK) return status;
    }
    if (p.seqlen_k > 0 && p.total_k > 0) {
        const auto dkdv = &fmha_kernel<FmhaBwdDkDvKernel<DkDvShape, HasDropout>>;
        const dim3 grid((p.seqlen_k + DkDvShape::kBlockRows - 1) / DkDvShape::kBlockRows, p.nheads_kv, p.batch);
        FA_CK_LAUNCH(dkdv, grid, dim3(DkDvShape::kThreads), ctx.stream, args);
        const fa_status status = launch_status("the backward's dK/dV kernel");
        if (status != FA_OK) return status;
    }
    if (p.seqlen_q > 0 && p.total_q > 0) {
        const auto dq = &fmha_kernel<FmhaBwdDqKernel<DqShape, HasDropout>>;
        const dim3 grid((p.seqlen_q + DqShape::kBlockRows - 1) / DqShape::kBlockRows, p.nheads_q, p.batch);
        FA_CK_LAUNCH(dq, grid, dim3(DqShape::kThreads), ctx.stream, args);
        return launch_status("the backward's dQ kernel");
    }
    return FA_OK;
}

}  // namespace fa_ck

#endif  // FA_CK_FMHA_BWD_LAUNCH_H

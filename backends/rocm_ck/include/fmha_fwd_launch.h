/*
 * fmha_fwd_launch.h — host side of the forward (declared in fmha_launch_api.h, instantiated
 * per key by launch_template.h): fa_params → FmhaArgs, grids, and the kv-cache sequence
 * append → rotate q → split attention → combine.
 */
#ifndef FA_CK_FMHA_FWD_LAUNCH_H
#define FA_CK_FMHA_FWD_LAUNCH_H

#include "ck_runtime.h"
#include "fmha_args.h"
#include "fmha_aux.h"
#include "fmha_fwd_kernel.h"
#include "fmha_launch_api.h"
#include "fmha_plan.h"

namespace fa_ck {

template <int DType, int HeadDimQK, int HeadDimV, bool HasDropout>
fa_status run_fwd(const fa_params& p, const LaunchContext& ctx) {
    static_assert(HeadDimQK == HeadDimV, "run_fwd: headdim_v != headdim_qk is not compiled in this backend");
    using Shape = FmhaTileShape<DType, HeadDimQK, Kernel::Fwd>;
    using K = FmhaFwdKernel<Shape, HasDropout, false>;
    if (p.seqlen_q == 0 || p.total_q == 0) return FA_OK;
    const FmhaArgs args = make_args(p);
    const dim3 grid((p.seqlen_q + Shape::kBlockRows - 1) / Shape::kBlockRows, p.nheads_q, p.batch);
    const auto kernel = &fmha_kernel<K>;
    FA_CK_LAUNCH(kernel, grid, dim3(Shape::kThreads), ctx.stream, args);
    return launch_status("the forward kernel");
}

template <int DType, int HeadDimQK, int HeadDimV>
fa_status run_fwd_splitkv(const fa_params& p, const LaunchContext& ctx) {
    static_assert(HeadDimQK == HeadDimV, "run_fwd_splitkv: headdim_v != headdim_qk is not compiled in this backend");
    using Shape = FmhaTileShape<DType, HeadDimQK, Kernel::FwdSplitkv>;
    const bool kvcache = p.cache_seqlens != nullptr;
    const FwdPlan plan = plan_forward(p, kvcache ? FA_OP_FORWARD_KVCACHE : FA_OP_FORWARD, ctx.num_cus);
    if (plan.workspace_bytes > ctx.workspace_bytes || (plan.workspace_bytes > 0 && ctx.workspace == nullptr))
        return fa_set_last_error(FA_ERR_INVALID_ARGUMENT, "fa_params.workspace_bytes must be at least %llu for this call; got %llu",
                                 static_cast<unsigned long long>(plan.workspace_bytes),
                                 static_cast<unsigned long long>(ctx.workspace_bytes));
    unsigned char* workspace = static_cast<unsigned char*>(ctx.workspace);
    FmhaArgs args = make_args(p);

    if (kvcache && args.seqlen_new > 0) {
        const fa_status status = launch_appendkv<DType>(args, ctx);
        if (status != FA_OK) return status;
    }
    if (p.seqlen_q == 0 || p.total_q == 0) return FA_OK;
    if (kvcache && p.rotary_dim > 0) {
        void* rotated = workspace + plan.q_rotated_offset;
        const fa_status status = launch_rotate_q<DType>(args, rotated, ctx);
        if (status != FA_OK) return status;
        args.q = TensorView{rotated, static_cast<int64_t>(p.seqlen_q) * p.nheads_q * p.headdim_qk,
                            static_cast<int64_t>(p.nheads_q) * p.headdim_qk, p.headdim_qk};
    }

    args.num_splits = plan.num_splits;
    args.pack = plan.pack;
    const int64_t block_rows = static_cast<int64_t>(p.seqlen_q) * plan.pack;
    const dim3 grid(static_cast<unsigned>((block_rows + Shape::kBlockRows - 1) / Shape::kBlockRows), p.nheads_q / plan.pack,
                    p.batch * plan.num_splits);
    if (plan.num_splits > 1) {
        args.o_partial = reinterpret_cast<float*>(workspace + plan.o_partial_offset);
        args.lse_partial = reinterpret_cast<float*>(workspace + plan.lse_partial_offset);
        const auto kernel = &fmha_kernel<FmhaFwdKernel<Shape, false, true>>;
        FA_CK_LAUNCH(kernel, grid, dim3(Shape::kThreads), ctx.stream, args);
        const fa_status status = launch_status("the split-KV forward kernel");
        if (status != FA_OK) return status;
        return launch_splitkv_combine<DType>(args, ctx);
    }
    const auto kernel = &fmha_kernel<FmhaFwdKernel<Shape, false, false>>;
    FA_CK_LAUNCH(kernel, grid, dim3(Shape::kThreads), ctx.stream, args);
    return launch_status("the KV-cache forward kernel");
}

}  // namespace fa_ck

#endif  // FA_CK_FMHA_FWD_LAUNCH_H

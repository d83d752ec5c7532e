// fmha_aux.hip — the launchers of fmha_aux.h, instantiated for fp16 and bf16 (one translation
// unit: these kernels do not depend on the head-dim bucket).
#include "ck_runtime.h"
#include "fmha_aux.h"
#include "fmha_aux_kernels.h"

namespace fa_ck {

fa_status launch_status(const char* what) {
#if defined(FA_CK_HOST_EMULATION)
    (void)what;
    return FA_OK;
#else
    const rt::Error err = rt::clear_error();
    if (err == rt::kSuccess) return FA_OK;
    return fa_set_last_error(FA_ERR_DEVICE, "rocm_ck: launching %s failed: %s (%s)", what, rt::error_name(err),
                             rt::error_string(err));
#endif
}

template <int DType>
fa_status launch_appendkv(const FmhaArgs& a, const LaunchContext& ctx) {
    if (a.seqlen_new == 0 || a.batch == 0) return FA_OK;
    const auto kernel = &fmha_appendkv_kernel<DType>;
    FA_CK_LAUNCH(kernel, dim3(a.seqlen_new, a.batch), dim3(kAuxThreads), ctx.stream, a);
    return launch_status("the KV-cache append kernel");
}

template <int DType>
fa_status launch_rotate_q(const FmhaArgs& a, void* rotated, const LaunchContext& ctx) {
    if (a.seqlen_q == 0) return FA_OK;
    const auto kernel = &fmha_rotate_q_kernel<DType>;
    FA_CK_LAUNCH(kernel, dim3(a.seqlen_q, a.batch), dim3(kAuxThreads), ctx.stream, a, static_cast<uint16_t*>(rotated));
    return launch_status("the rotary q kernel");
}

template <int DType>
fa_status launch_splitkv_combine(const FmhaArgs& a, const LaunchContext& ctx) {
    const auto kernel = &fmha_splitkv_combine_kernel<DType>;
    const dim3 grid((a.seqlen_q + kRowsPerAuxBlock - 1) / kRowsPerAuxBlock, a.nheads_q, a.batch);
    FA_CK_LAUNCH(kernel, grid, dim3(kAuxThreads), ctx.stream, a);
    return launch_status("the split-KV combine kernel");
}

template <int DType>
fa_status launch_bwd_preprocess(const FmhaArgs& a, const LaunchContext& ctx) {
    const auto dot = &fmha_bwd_dot_do_o_kernel<DType>;
    const dim3 grid((a.seqlen_q + kRowsPerAuxBlock - 1) / kRowsPerAuxBlock, a.nheads_q, a.batch);
    FA_CK_LAUNCH(dot, grid, dim3(kAuxThreads), ctx.stream, a);
    const fa_status status = launch_status("the backward's rowsum(dO * O) kernel");
    if (status != FA_OK || a.dsink == nullptr) return status;
    const auto dsink = &fmha_bwd_dsink_kernel<DType>;
    FA_CK_LAUNCH(dsink, dim3(a.nheads_q), dim3(kAuxThreads), ctx.stream, a);
    return launch_status("the backward's dsink kernel");
}

#define FA_CK_AUX_INSTANTIATE(dtype)                                                               \
    template fa_status launch_appendkv<dtype>(const FmhaArgs&, const LaunchContext&);             \
    template fa_status launch_rotate_q<dtype>(const FmhaArgs&, void*, const LaunchContext&);      \
    template fa_status launch_splitkv_combine<dtype>(const FmhaArgs&, const LaunchContext&);      \
    template fa_status launch_bwd_preprocess<dtype>(const FmhaArgs&, const LaunchContext&);

FA_CK_AUX_INSTANTIATE(FA_DTYPE_F16)
FA_CK_AUX_INSTANTIATE(FA_DTYPE_BF16)

}  // namespace fa_ck

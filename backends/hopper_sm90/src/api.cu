// api.cu — the C entry points of flash_attn_abi.h for libfa_hopper_sm90 (FA3 forward on sm_90a).
//
// fa_supports runs the same three gates as the sm80 backend, each with its own reason:
//   1. the problem: fa_check_params (common), this library's capabilities (what the FA3 kernels
//      implement: causal, window, softcap, GQA, varlen, seqused_k, LSE) and its own limits
//      (headdim_v == headdim_qk, a positive softmax scale, TMA's 16-byte layout);
//   2. the build:   an instance compiled for (dtype, head-dim bucket, softcap);
//   3. the device:  compute capability exactly 9.0 (sm_90a code runs nowhere else) and the
//                   instance's shared memory within the device's opt-in limit.
// fa_forward_kvcache runs the same kernel over the cache (dense or paged with pages of a multiple of 8
// rows), split over the keys when asked or when the (sequence, head) tiles leave SMs idle; append,
// rotary and the split combine are the sm80 backend's small kernels (flash_fwd_launch.cuh). A paged
// or split fa_forward takes the same cache kernel.
// e4m3 inputs run fa_forward (dense or varlen, no paged K/V or splits; head dims multiples of 16), V transposed
// into the workspace first (fp8_transpose_v.cuh).
// What this library refuses (backward, ALiBi, dropout, sinks, leftpad_k, fp8 in the kv cache ...) the dispatcher
// takes to cuda_sm80. Every entry point is wrapped in fa_guarded.
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include <cuda_runtime.h>

#include "fa_common.h"
#include "fa_cuda_host.h"
#include "flash_attn_abi.h"
#include "sm90_launch.cuh"

#ifndef FA_SM90_ARCHS
#define FA_SM90_ARCHS "sm_90a"
#endif

namespace {

constexpr const char* kBackendName = "hopper_sm90";

constexpr uint64_t kForwardFeatures = FA_FEATURE_CAUSAL | FA_FEATURE_WINDOW | FA_FEATURE_SOFTCAP | FA_FEATURE_GQA |
                                      FA_FEATURE_VARLEN | FA_FEATURE_SEQUSED | FA_FEATURE_PAGED_KV | FA_FEATURE_SPLIT_KV |
                                      FA_FEATURE_LSE;
constexpr uint64_t kKvcacheFeatures = FA_FEATURE_CAUSAL | FA_FEATURE_WINDOW | FA_FEATURE_SOFTCAP | FA_FEATURE_GQA |
                                      FA_FEATURE_PAGED_KV | FA_FEATURE_KV_APPEND | FA_FEATURE_ROTARY | FA_FEATURE_CACHE_BATCH_IDX |
                                      FA_FEATURE_SPLIT_KV | FA_FEATURE_LSE;

// ---- the instance table (generated/instances.g.inc) --------------------------------------------

using RunFn = fa_status (*)(const fa_params&, const fa_sm90::LaunchContext&);

struct Instance {
    const char* key;
    fa_dtype dtype;
    int headdim;
    bool softcap;
    RunFn run;
};

#define FA_INSTANCE_FWD(key, dtype, qk, v, softcap) \
    {key, dtype, qk, (softcap) != 0, &fa_sm90::run_fwd<FA_SM90_ELEMENT(dtype), qk, v, (softcap) != 0>},

const Instance kInstances[] = {
#include "instances.g.inc"
    {nullptr, FA_DTYPE_NONE, 0, false, nullptr}};

const Instance* find_instance(fa_dtype dtype, int headdim, bool softcap) {
    for (const Instance& i : kInstances) {
        if (i.key != nullptr && i.dtype == dtype && i.headdim == headdim && i.softcap == softcap) return &i;
    }
    return nullptr;
}

// ---- capabilities -------------------------------------------------------------------------------

void fill_capabilities(fa_capabilities* caps) {
    std::memset(caps, 0, sizeof *caps);
    caps->struct_size = sizeof *caps;
    bool any = false, fp8 = false;
    for (const Instance& i : kInstances) {
        if (i.key == nullptr) continue;
        caps->dtypes |= 1u << static_cast<unsigned>(i.dtype);
        any = true;
        fp8 |= i.dtype == FA_DTYPE_F8_E4M3;
    }
    /* e4m3: fa_forward only (the kv cache lacks FA_FEATURE_FP8, so the capability gate refuses it there) */
    caps->features[FA_OP_FORWARD] = any ? kForwardFeatures | (fp8 ? FA_FEATURE_FP8 : 0) : 0;
    caps->features[FA_OP_FORWARD_KVCACHE] = any ? kKvcacheFeatures : 0;
    caps->features[FA_OP_BACKWARD] = 0;        /* the Hopper backward is a separate issue */
    caps->max_headdim = 256;
    caps->headdim_align = 8;
    caps->page_size_align = 8; /* a paged K/V tile is loaded in TMA boxes of whole 8-row swizzle atoms */
    caps->max_splits = fa_sm80::kMaxSplits;
    std::snprintf(caps->archs, sizeof caps->archs, "%s", FA_SM90_ARCHS);
}

// ---- the gates ------------------------------------------------------------------------------------

fa_status check_problem(const fa_params& p, fa_op op) {
    if (op == FA_OP_BACKWARD)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "%s implements fa_forward and fa_forward_kvcache; %s runs on cuda_sm80",
                                 kBackendName, fa_op_name(op));
    if (op == FA_OP_FORWARD_KVCACHE && p.seqused_k != nullptr)
        return fa_set_last_error(FA_ERR_UNSUPPORTED,
                                 "%s cannot run %s: seqused_k does not apply to the kv cache (cache_seqlens gives the lengths)",
                                 kBackendName, fa_op_name(op));
    if (p.seqused_q != nullptr)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "%s cannot run %s: it does not support seqused_q (seqused_k is supported)",
                                 kBackendName, fa_op_name(op));
    if (p.headdim_v != p.headdim_qk)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "%s cannot run %s: headdim_v must equal headdim_qk (%d); got %d", kBackendName,
                                 fa_op_name(op), p.headdim_qk, p.headdim_v);
    if (!(p.softmax_scale > 0.0f))
        return fa_set_last_error(FA_ERR_UNSUPPORTED,
                                 "%s cannot run %s: softmax_scale must be > 0 (the row maximum is taken on unscaled scores); got %g",
                                 kBackendName, fa_op_name(op), static_cast<double>(p.softmax_scale));
    const bool fp8 = p.dtype == FA_DTYPE_F8_E4M3;
    if (fp8) {
        if (p.block_table != nullptr || p.num_splits > 1)
            return fa_set_last_error(FA_ERR_UNSUPPORTED,
                                     "%s cannot run %s with e4m3 inputs and %s: its e4m3 forward reads a dense or varlen K/V "
                                     "without splits",
                                     kBackendName, fa_op_name(op), p.block_table != nullptr ? "paged K/V" : "num_splits > 1");
        if (p.headdim_qk % 16 != 0)
            return fa_set_last_error(FA_ERR_UNSUPPORTED, "%s cannot run %s: e4m3 head dims must be multiples of 16; got %d",
                                     kBackendName, fa_op_name(op), p.headdim_qk);
    }
    /* TMA reads rows in 16-byte pieces: 8 elements of a 16-bit type, 16 of e4m3 (out is 16-bit either way) */
    const int elem_bytes = fp8 ? 1 : 2;
    FA_TRY(fa_entry::check_layout_16b(kBackendName, "q", p.q, op, elem_bytes));
    FA_TRY(fa_entry::check_layout_16b(kBackendName, "k", p.k, op, elem_bytes));
    FA_TRY(fa_entry::check_layout_16b(kBackendName, "v", p.v, op, elem_bytes));
    FA_TRY(fa_entry::check_layout_16b(kBackendName, "out", p.out, op));
    return FA_OK;
}

fa_status check_static(const fa_params* params, fa_op op, const Instance** instance) {
    FA_TRY(fa_check_params(params, op));
    fa_capabilities caps;
    fill_capabilities(&caps);
    FA_TRY(fa_check_capabilities(params, op, &caps, kBackendName));
    const fa_params& p = *params;
    FA_TRY(check_problem(p, op));
    const int bucket = fa_sm90::round_headdim(p.headdim_qk);
    const bool softcap = p.softcap > 0.0f;
    *instance = find_instance(p.dtype, bucket, softcap);
    if (*instance == nullptr)
        return fa_set_last_error(FA_ERR_UNSUPPORTED,
                                 "%s cannot run %s: no forward kernel instance for dtype %s, head dim %d (bucket %d)%s was compiled "
                                 "into this library (FA_HDIMS / FA_DTYPES build filters)",
                                 kBackendName, fa_op_name(op), fa_dtype_name(p.dtype), p.headdim_qk, bucket,
                                 softcap ? ", softcap" : "");
    return FA_OK;
}

fa_status check_device(const fa_params& p, fa_op op, const Instance& instance, fa_sm90::LaunchContext* ctx) {
    fa_cuda::DeviceInfo info;
    FA_TRY(fa_cuda::device_info(kBackendName, p.device, &info));
    if (info.cc_major != 9 || info.cc_minor != 0)
        return fa_set_last_error(FA_ERR_UNSUPPORTED,
                                 "%s cannot run %s: its sm_90a kernels (wgmma, TMA, setmaxnreg) need compute capability 9.0; "
                                 "device %d is %d.%d",
                                 kBackendName, fa_op_name(op), p.device, info.cc_major, info.cc_minor);
    const int smem = fa_sm90::fwd_smem_bytes(instance.dtype, instance.headdim, instance.softcap);
    if (smem > info.max_smem_optin)
        return fa_set_last_error(FA_ERR_UNSUPPORTED,
                                 "%s cannot run %s: instance %s needs %d bytes of shared memory per block; device %d allows %d",
                                 kBackendName, fa_op_name(op), instance.key, smem, p.device, info.max_smem_optin);
    *ctx = fa_cuda::launch_context(p, info);
    return FA_OK;
}

fa_status supports(const fa_params* params, fa_op op, const Instance** instance, fa_sm90::LaunchContext* ctx) {
    FA_TRY(check_static(params, op, instance));
    return check_device(*params, op, **instance, ctx);
}

/* The gates, the device, the workspace (split partials, rotated q; the caller's or one on the stream), the
   instance. */
fa_status run_forward(const fa_params* params, fa_op op) {
    fa_clear_last_error();
    const Instance* instance = nullptr;
    fa_sm90::LaunchContext ctx{};
    FA_TRY(supports(params, op, &instance, &ctx));
    fa_cuda::DeviceGuard device(kBackendName);
    FA_TRY(device.enter(ctx.device));
    fa_cuda::Workspace workspace(kBackendName);
    FA_TRY(workspace.acquire(*params, fa_sm90::split_plan(*params, ctx.num_sms).workspace_bytes, &ctx));
    return instance->run(*params, ctx);
}

}  // namespace

extern "C" {

FA_API uint32_t fa_abi_version(void) { return FA_ABI_VERSION; }

FA_API const char* fa_backend_name(void) { return kBackendName; }

FA_API fa_status fa_get_capabilities(fa_capabilities* caps) { return fa_entry::get_capabilities(caps, fill_capabilities); }

FA_API fa_status fa_supports(const fa_params* params, fa_op op, char* reason, size_t reason_size) {
    return fa_entry::supports(reason, reason_size, [&]() -> fa_status {
        const Instance* instance = nullptr;
        fa_sm90::LaunchContext ctx{};
        return supports(params, op, &instance, &ctx);
    });
}

FA_API fa_status fa_workspace_size(const fa_params* params, fa_op op, uint64_t* bytes) {
    return fa_guarded([&]() -> fa_status {
        fa_clear_last_error();
        if (bytes == nullptr) return fa_set_last_error(FA_ERR_INVALID_ARGUMENT, "fa_workspace_size: bytes must not be NULL");
        *bytes = 0;
        const Instance* instance = nullptr;
        FA_TRY(check_static(params, op, &instance));
        int num_sms = 0;
        if (op == FA_OP_FORWARD_KVCACHE && params->num_splits == 0) { /* the split rule needs the SM count */
            fa_cuda::DeviceInfo info;
            FA_TRY(fa_cuda::device_info(kBackendName, params->device, &info));
            num_sms = info.num_sms;
        }
        *bytes = fa_sm90::split_plan(*params, num_sms).workspace_bytes; /* partials, rotated q; 0 for the plain forward */
        return FA_OK;
    });
}

FA_API fa_status fa_forward(const fa_params* params) {
    return fa_guarded([&]() -> fa_status { return run_forward(params, FA_OP_FORWARD); });
}

FA_API fa_status fa_forward_kvcache(const fa_params* params) {
    return fa_guarded([&]() -> fa_status { return run_forward(params, FA_OP_FORWARD_KVCACHE); });
}

FA_API fa_status fa_backward(const fa_params* params) {
    return fa_guarded([&]() -> fa_status {
        fa_clear_last_error();
        const Instance* instance = nullptr;
        fa_sm90::LaunchContext ctx{};
        return supports(params, FA_OP_BACKWARD, &instance, &ctx);
    });
}

FA_API const char* fa_last_error(void) { return fa_get_last_error(); }

}  // extern "C"

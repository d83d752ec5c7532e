// api.cu — the C entry points of flash_attn_abi.h for libfa_cuda_sm80.
//
// fa_supports runs three gates in order, each with its own reason:
//   1. the problem:       fa_check_params (common), then this library's capabilities
//                         (fa_check_capabilities) and its own limits (alignment, grid);
//   2. the build:         an instance compiled for (direction, dtype, head-dim bucket, causal);
//   3. the device:        a CUDA device at p.device, compute capability >= 8.0, the instance's
//                         shared memory within the device's opt-in limit.
// fa_forward / fa_forward_kvcache / fa_backward repeat the gates, set the device, provide the
// workspace (allocating it on the stream when the caller gave none) and call the instance.
// Every entry point is wrapped in fa_guarded; CUDA errors become FA_ERR_DEVICE + message.
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include <cuda_runtime.h>

#include "fa_common.h"
#include "fa_cuda_host.h"
#include "flash_attn_abi.h"
#include "flash_fwd_plan.cuh"
#include "flash_fwd_traits.cuh"
#include "sm80_launch.cuh"

// The backward exists once include/flash_bwd_launch.cuh does (see launch_template.h); its
// instances are then explicit instantiations of fa_sm80::run_bwd in the generated files.
#if defined(__has_include) && !defined(FA_SM80_SKIP_BWD)
#if __has_include("flash_bwd_launch.cuh")
#define FA_SM80_HAS_BWD 1
#endif
#endif
#ifndef FA_SM80_HAS_BWD
#define FA_SM80_HAS_BWD 0
#endif

#ifndef FA_SM80_ARCHS
#define FA_SM80_ARCHS "sm_80,sm_86,sm_89,sm_90"
#endif

// Optional hooks of the backward (sm80_launch.cuh): weak, so that a build without them links.
namespace fa_sm80 {
__attribute__((weak)) uint64_t bwd_workspace_bytes(const fa_params& params);
__attribute__((weak)) uint64_t bwd_features();
__attribute__((weak)) fa_status bwd_check(const fa_params& params, const LaunchContext& ctx);
}  // namespace fa_sm80

namespace {

constexpr const char* kBackendName = "cuda_sm80";

// ---- what this library implements ------------------------------------------------------------

constexpr uint64_t kForwardFeatures = FA_FEATURE_CAUSAL | FA_FEATURE_WINDOW | FA_FEATURE_SOFTCAP | FA_FEATURE_ALIBI |
                                      FA_FEATURE_DROPOUT | FA_FEATURE_GQA | FA_FEATURE_VARLEN | FA_FEATURE_SEQUSED |
                                      FA_FEATURE_LEFTPAD_K | FA_FEATURE_PAGED_KV | FA_FEATURE_SPLIT_KV | FA_FEATURE_LSE |
                                      FA_FEATURE_SINKS;
constexpr uint64_t kKvcacheFeatures = FA_FEATURE_CAUSAL | FA_FEATURE_WINDOW | FA_FEATURE_SOFTCAP | FA_FEATURE_ALIBI |
                                      FA_FEATURE_GQA | FA_FEATURE_LEFTPAD_K | FA_FEATURE_PAGED_KV | FA_FEATURE_KV_APPEND |
                                      FA_FEATURE_ROTARY | FA_FEATURE_CACHE_BATCH_IDX | FA_FEATURE_SPLIT_KV | FA_FEATURE_LSE |
                                      FA_FEATURE_SINKS;
constexpr uint64_t kBwdFallbackFeatures = FA_FEATURE_CAUSAL | FA_FEATURE_GQA;

// ---- the instance table (generated/instances.g.inc) --------------------------------------------

using RunFn = fa_status (*)(const fa_params&, const fa_sm80::LaunchContext&);

enum Direction { kFwd = 0, kFwdSplit = 1, kBwd = 2 };

struct Instance {
    const char* key;
    Direction direction;
    fa_dtype dtype;
    int headdim_qk;
    int headdim_v;
    bool causal;
    RunFn run;
};

#define FA_SM80_ELEMENT_FA_DTYPE_F16 __half
#define FA_SM80_ELEMENT_FA_DTYPE_BF16 __nv_bfloat16
#define FA_SM80_ELEMENT(dtype) FA_SM80_ELEMENT_##dtype

#define FA_INSTANCE_FWD(key, dtype, qk, v, causal) \
    {key, kFwd, dtype, qk, v, (causal) != 0, &fa_sm80::run_fwd<FA_SM80_ELEMENT(dtype), qk, v, (causal) != 0>},
#define FA_INSTANCE_FWD_SPLIT(key, dtype, qk, v, causal) \
    {key, kFwdSplit, dtype, qk, v, (causal) != 0, &fa_sm80::run_fwd_split<FA_SM80_ELEMENT(dtype), qk, v, (causal) != 0>},
#if FA_SM80_HAS_BWD
#define FA_INSTANCE_BWD(key, dtype, qk, v, causal) \
    {key, kBwd, dtype, qk, v, (causal) != 0, &fa_sm80::run_bwd<FA_SM80_ELEMENT(dtype), qk, v, (causal) != 0>},
#endif

const Instance kInstances[] = {
#include "instances.g.inc"
    {nullptr, kFwd, FA_DTYPE_NONE, 0, 0, false, nullptr}};

const Instance* find_instance(Direction direction, fa_dtype dtype, int headdim, bool causal) {
    for (const Instance& i : kInstances) {
        if (i.key != nullptr && i.direction == direction && i.dtype == dtype && i.headdim_qk == headdim && i.causal == causal)
            return &i;
    }
    return nullptr;
}

const char* direction_name(Direction d) { return d == kFwd ? "fwd" : d == kFwdSplit ? "fwd_split" : "bwd"; }

// ---- device properties, errors, workspace: backends/common/include/fa_cuda_host.h ---------------

using fa_cuda::DeviceInfo;

fa_status device_info(int device, DeviceInfo* out) { return fa_cuda::device_info(kBackendName, device, out); }

// ---- capabilities -------------------------------------------------------------------------------

uint64_t backward_features() {
    if (!FA_SM80_HAS_BWD) return 0;
    return fa_sm80::bwd_features != nullptr ? fa_sm80::bwd_features() : kBwdFallbackFeatures;
}

bool any_instance(Direction direction) {
    for (const Instance& i : kInstances) {
        if (i.key != nullptr && i.direction == direction) return true;
    }
    return false;
}

void fill_capabilities(fa_capabilities* caps) {
    std::memset(caps, 0, sizeof *caps);
    caps->struct_size = sizeof *caps;
    for (const Instance& i : kInstances) {
        if (i.key != nullptr) caps->dtypes |= 1u << static_cast<unsigned>(i.dtype);
    }
    caps->features[FA_OP_FORWARD] = any_instance(kFwd) ? kForwardFeatures : 0;
    caps->features[FA_OP_FORWARD_KVCACHE] = any_instance(kFwdSplit) ? kKvcacheFeatures : 0;
    caps->features[FA_OP_BACKWARD] = any_instance(kBwd) ? backward_features() : 0;
    caps->max_headdim = 256;
    caps->headdim_align = 8;
    caps->page_size_align = 1;
    caps->max_splits = fa_sm80::kMaxSplits;
    std::snprintf(caps->archs, sizeof caps->archs, "%s", FA_SM80_ARCHS);
}

// ---- the gates ------------------------------------------------------------------------------------

fa_status check_layout(const char* name, const fa_tensor& t, fa_op op) {
    return fa_entry::check_layout_16b(kBackendName, name, t, op);
}

/* Gate 1 beyond capabilities: this library's own limits. */
fa_status check_problem(const fa_params& p, fa_op op) {
    if (p.seqused_q != nullptr)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "%s cannot run %s: it does not support seqused_q (seqused_k is supported)",
                                 kBackendName, fa_op_name(op));
    if (op == FA_OP_FORWARD_KVCACHE && p.seqused_k != nullptr)
        return fa_set_last_error(FA_ERR_UNSUPPORTED,
                                 "%s cannot run %s: seqused_k does not apply to the kv cache (cache_seqlens gives the lengths)",
                                 kBackendName, fa_op_name(op));
    if (op != FA_OP_BACKWARD) {
        FA_TRY(check_layout("q", p.q, op));
        FA_TRY(check_layout("k", p.k, op));
        FA_TRY(check_layout("v", p.v, op));
        FA_TRY(check_layout("out", p.out, op));
    }
    if (p.nheads_q > 65535)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "%s cannot run %s: nheads_q must be <= 65535 (grid y); got %d", kBackendName,
                                 fa_op_name(op), p.nheads_q);
    const int splits = op == FA_OP_BACKWARD ? 1 : (p.num_splits > 1 ? p.num_splits : 1);
    if (static_cast<int64_t>(p.batch) * splits > 65535)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "%s cannot run %s: batch × num_splits must be <= 65535 (grid z); got %d × %d",
                                 kBackendName, fa_op_name(op), p.batch, splits);
    return FA_OK;
}

Direction direction_for(const fa_params& p, fa_op op) {
    if (op == FA_OP_BACKWARD) return kBwd;
    // The split kernel serves the kv cache, a paged K/V and explicit splits (flash_fwd_plan.cuh).
    if (op == FA_OP_FORWARD_KVCACHE || p.block_table != nullptr || p.num_splits > 1) return kFwdSplit;
    return kFwd;
}

/* Gates 1 and 2: everything that does not need the device. */
fa_status check_static(const fa_params* params, fa_op op, const Instance** instance) {
    FA_TRY(fa_check_params(params, op));
    const fa_params& p = *params;
    fa_capabilities caps;
    fill_capabilities(&caps);
    FA_TRY(fa_check_capabilities(params, op, &caps, kBackendName));
    FA_TRY(check_problem(p, op));
    const int headdim = fa_sm80::round_headdim(p.headdim_qk > p.headdim_v ? p.headdim_qk : p.headdim_v);
    const Direction direction = direction_for(p, op);
    const bool causal = p.is_causal != 0;
    *instance = find_instance(direction, p.dtype, headdim, causal);
    if (*instance == nullptr)
        return fa_set_last_error(FA_ERR_UNSUPPORTED,
                                 "%s cannot run %s: no %s kernel instance for dtype %s, head dim %d (bucket %d)%s was compiled "
                                 "into this library (FA_HDIMS / FA_DTYPES build filters)",
                                 kBackendName, fa_op_name(op), direction_name(direction), fa_dtype_name(p.dtype), p.headdim_qk,
                                 headdim, causal ? ", causal" : "");
    return FA_OK;
}

/* Gate 3: the device. Fills the launch context (without stream/workspace). */
fa_status check_device(const fa_params& p, fa_op op, const Instance& instance, fa_sm80::LaunchContext* ctx) {
    DeviceInfo info;
    FA_TRY(device_info(p.device, &info));
    if (info.cc_major < 8)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "%s cannot run %s: it needs compute capability >= 8.0; device %d is %d.%d",
                                 kBackendName, fa_op_name(op), p.device, info.cc_major, info.cc_minor);
    *ctx = fa_cuda::launch_context(p, info);
    if (instance.direction != kBwd) {
        const int smem = instance.direction == kFwd ? fa_sm80::fwd_smem_bytes(instance.headdim_qk)
                                                    : fa_sm80::fwd_split_smem_bytes(instance.headdim_qk);
        if (smem > info.max_smem_optin)
            return fa_set_last_error(FA_ERR_UNSUPPORTED,
                                     "%s cannot run %s: instance %s needs %d bytes of shared memory per block; device %d allows %d",
                                     kBackendName, fa_op_name(op), instance.key, smem, p.device, info.max_smem_optin);
    } else if (fa_sm80::bwd_check != nullptr) {
        FA_TRY(fa_sm80::bwd_check(p, *ctx));
    }
    return FA_OK;
}

fa_status supports(const fa_params* params, fa_op op, const Instance** instance, fa_sm80::LaunchContext* ctx) {
    FA_TRY(check_static(params, op, instance));
    return check_device(*params, op, **instance, ctx);
}

// ---- running --------------------------------------------------------------------------------------

using DeviceGuard = fa_cuda::DeviceGuard;
using Workspace = fa_cuda::Workspace;

uint64_t forward_workspace_bytes(const fa_params& p, fa_op op, int num_sms) {
    return fa_sm80::plan_forward(p, op, num_sms).workspace_bytes;
}

fa_status run_forward(const fa_params* params, fa_op op) {
    fa_clear_last_error();
    const Instance* instance = nullptr;
    fa_sm80::LaunchContext ctx{};
    FA_TRY(supports(params, op, &instance, &ctx));
    DeviceGuard device(kBackendName);
    FA_TRY(device.enter(ctx.device));
    Workspace workspace(kBackendName);
    FA_TRY(workspace.acquire(*params, forward_workspace_bytes(*params, op, ctx.num_sms), &ctx));
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
        fa_sm80::LaunchContext ctx{};
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
        const fa_params& p = *params;
        if (op == FA_OP_BACKWARD) {
            *bytes = fa_sm80::bwd_workspace_bytes != nullptr ? fa_sm80::bwd_workspace_bytes(p) : 0;
            return FA_OK;
        }
        int num_sms = 0;
        if (op == FA_OP_FORWARD_KVCACHE && p.num_splits == 0) { /* the split heuristic needs the SM count */
            DeviceInfo info;
            FA_TRY(device_info(p.device, &info));
            num_sms = info.num_sms;
        }
        *bytes = forward_workspace_bytes(p, op, num_sms);
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
        fa_sm80::LaunchContext ctx{};
        FA_TRY(supports(params, FA_OP_BACKWARD, &instance, &ctx));
        DeviceGuard device(kBackendName);
        FA_TRY(device.enter(ctx.device));
        // The caller's workspace or one from the library's pool, like the forward's (a per-call
        // cudaMallocAsync from the default pool remaps memory after every synchronisation).
        Workspace workspace(kBackendName);
        const uint64_t needed = fa_sm80::bwd_workspace_bytes != nullptr ? fa_sm80::bwd_workspace_bytes(*params) : 0;
        FA_TRY(workspace.acquire(*params, needed, &ctx));
        return instance->run(*params, ctx);
    });
}

FA_API const char* fa_last_error(void) { return fa_get_last_error(); }

}  // extern "C"

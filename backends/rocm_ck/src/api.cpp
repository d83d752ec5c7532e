// api.cpp — the C entry points of flash_attn_abi.h for libfa_rocm_ck.
//
// Built by the host C++ compiler: it sees the HIP runtime API (ck_runtime.h) but no device
// code, so every kernel is reached through the instance table (generated/instances.g.inc) of
// run_* templates that the HIP compiler instantiated in the generated instance files.
//
// fa_supports runs three gates in order, each with its own reason:
//   1. the problem   fa_check_params (backends/common), this library's capabilities
//                    (fa_check_capabilities) and its own limits (layout, grid, combinations);
//   2. the build     an instance compiled for (direction, dtype, head-dim bucket, dropout);
//   3. the device    a HIP device at p.device whose gcnArchName is a target this library holds
//                    code for (gfx90a, gfx942), with the LDS the instance needs.
// Gates 1 and 2 touch no HIP function, so they answer on any machine; the host-side tests
// (tests/api_test.cpp) rely on that. fa_forward / fa_forward_kvcache / fa_backward repeat the
// gates, select the device, provide the workspace and call the instance. Every entry point is
// wrapped in fa_guarded; HIP errors become FA_ERR_DEVICE with the runtime's message.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "ck_runtime.h"
#include "fa_backend_entry.h"
#include "fa_common.h"
#include "flash_attn_abi.h"
#include "fmha_launch_api.h"
#include "fmha_plan.h"
#include "fmha_tile_config.h"

#ifndef FA_CK_HAS_BWD
#define FA_CK_HAS_BWD 1
#endif

#ifndef FA_CK_ARCHS
#define FA_CK_ARCHS "gfx90a,gfx942"
#endif

namespace {

constexpr const char* kBackendName = "rocm_ck";
/* The devices this build runs on, for messages ("needs a ROCm (HIP) device"). */
#if defined(FA_CK_HOST_EMULATION)
constexpr const char* kDeviceKind = "fa_ck host-emulation";
#elif defined(FA_CK_RUNTIME_CUDA)
constexpr const char* kDeviceKind = "CUDA";
#else
constexpr const char* kDeviceKind = "ROCm (HIP)";
#endif

// ---- what this library implements ------------------------------------------------------------

constexpr uint64_t kForwardFeatures = FA_FEATURE_CAUSAL | FA_FEATURE_WINDOW | FA_FEATURE_SOFTCAP | FA_FEATURE_ALIBI |
                                      FA_FEATURE_DROPOUT | FA_FEATURE_GQA | FA_FEATURE_VARLEN | FA_FEATURE_SEQUSED |
                                      FA_FEATURE_LEFTPAD_K | FA_FEATURE_PAGED_KV | FA_FEATURE_SPLIT_KV | FA_FEATURE_LSE |
                                      FA_FEATURE_SINKS;
constexpr uint64_t kKvcacheFeatures = FA_FEATURE_CAUSAL | FA_FEATURE_WINDOW | FA_FEATURE_SOFTCAP | FA_FEATURE_ALIBI |
                                      FA_FEATURE_GQA | FA_FEATURE_LEFTPAD_K | FA_FEATURE_PAGED_KV | FA_FEATURE_KV_APPEND |
                                      FA_FEATURE_ROTARY | FA_FEATURE_CACHE_BATCH_IDX | FA_FEATURE_SPLIT_KV | FA_FEATURE_LSE |
                                      FA_FEATURE_SINKS;
/* The backward has no atomics (dK/dV and dQ in separate kernels): always deterministic. */
constexpr uint64_t kBackwardFeatures = FA_FEATURE_CAUSAL | FA_FEATURE_WINDOW | FA_FEATURE_SOFTCAP | FA_FEATURE_ALIBI |
                                       FA_FEATURE_DROPOUT | FA_FEATURE_GQA | FA_FEATURE_VARLEN | FA_FEATURE_SEQUSED |
                                       FA_FEATURE_LEFTPAD_K | FA_FEATURE_DETERMINISTIC | FA_FEATURE_SINKS;

// ---- the instance table (generated/instances.g.inc) --------------------------------------------

using RunFn = fa_status (*)(const fa_params&, const fa_ck::LaunchContext&);

enum Direction { kFwd = 0, kFwdSplitkv = 1, kBwd = 2 };

struct Instance {
    const char* key;
    Direction direction;
    fa_dtype dtype;
    int headdim_qk;
    int headdim_v;
    bool dropout;
    RunFn run;
};

#define FA_INSTANCE_FWD(key, dtype, qk, v, dropout) \
    {key, kFwd, dtype, qk, v, (dropout) != 0, &fa_ck::run_fwd<dtype, qk, v, (dropout) != 0>},
#define FA_INSTANCE_FWD_SPLITKV(key, dtype, qk, v) {key, kFwdSplitkv, dtype, qk, v, false, &fa_ck::run_fwd_splitkv<dtype, qk, v>},
#if FA_CK_HAS_BWD
#define FA_INSTANCE_BWD(key, dtype, qk, v, dropout) \
    {key, kBwd, dtype, qk, v, (dropout) != 0, &fa_ck::run_bwd<dtype, qk, v, (dropout) != 0>},
#endif

const Instance kInstances[] = {
#include "instances.g.inc"
    {nullptr, kFwd, FA_DTYPE_NONE, 0, 0, false, nullptr}};

const Instance* find_instance(Direction direction, fa_dtype dtype, int headdim, bool dropout) {
    for (const Instance& i : kInstances) {
        if (i.key != nullptr && i.direction == direction && i.dtype == dtype && i.headdim_qk == headdim && i.dropout == dropout)
            return &i;
    }
    return nullptr;
}

bool any_instance(Direction direction) {
    for (const Instance& i : kInstances)
        if (i.key != nullptr && i.direction == direction) return true;
    return false;
}

const char* direction_name(Direction d) { return d == kFwd ? "fwd" : d == kFwdSplitkv ? "fwd_splitkv" : "bwd"; }

// ---- capabilities -------------------------------------------------------------------------------

void fill_capabilities(fa_capabilities* caps) {
    std::memset(caps, 0, sizeof *caps);
    caps->struct_size = sizeof *caps;
    for (const Instance& i : kInstances)
        if (i.key != nullptr) caps->dtypes |= 1u << static_cast<unsigned>(i.dtype);
    caps->features[FA_OP_FORWARD] = any_instance(kFwd) ? kForwardFeatures : 0;
    caps->features[FA_OP_FORWARD_KVCACHE] = any_instance(kFwdSplitkv) ? kKvcacheFeatures : 0;
    caps->features[FA_OP_BACKWARD] = any_instance(kBwd) ? kBackwardFeatures : 0;
    caps->max_headdim = 256;
    caps->headdim_align = 8;
    caps->page_size_align = 1;
    caps->max_splits = fa_ck::kMaxSplits;
    std::snprintf(caps->archs, sizeof caps->archs, "%s", FA_CK_ARCHS);
}

// ---- gate 1: the problem --------------------------------------------------------------------------

/* A valid problem this library does not run: FA_ERR_UNSUPPORTED with the reason. */
#define FA_REFUSE(...) fa_set_last_error(FA_ERR_UNSUPPORTED, __VA_ARGS__)

Direction direction_for(const fa_params& p, fa_op op) {
    if (op == FA_OP_BACKWARD) return kBwd;
    if (op == FA_OP_FORWARD_KVCACHE || p.block_table != nullptr || p.num_splits > 1) return kFwdSplitkv;
    return kFwd;
}

fa_status check_problem(const fa_params& p, fa_op op) {
    const char* name = fa_op_name(op);
    if (p.seqused_q != nullptr)
        return FA_REFUSE("%s cannot run %s: it does not support seqused_q (seqused_k is supported)", kBackendName, name);
    if (op == FA_OP_FORWARD_KVCACHE && p.seqused_k != nullptr)
        return FA_REFUSE("%s cannot run %s: seqused_k does not apply to the kv cache (cache_seqlens gives the lengths)",
                         kBackendName, name);
    if (op == FA_OP_FORWARD_KVCACHE && p.cu_seqlens_q != nullptr)
        return FA_REFUSE("%s cannot run %s: it does not support variable-length queries (cu_seqlens) with the kv cache",
                         kBackendName, name);
    if (op == FA_OP_FORWARD && p.dropout_p > 0.0f && direction_for(p, op) == kFwdSplitkv)
        return FA_REFUSE("%s cannot run %s: dropout is not implemented in its split-KV kernel, which runs paged KV and "
                         "num_splits > 1; use num_splits 1 without a block_table",
                         kBackendName, name);
    const fa_tensor* tensors[] = {&p.q, &p.k, &p.v, &p.out, &p.dout, &p.dq, &p.dk, &p.dv};
    const char* names[] = {"q", "k", "v", "out", "dout", "dq", "dk", "dv"};
    for (int t = 0; t < 8; ++t) FA_TRY(fa_entry::check_layout_16b(kBackendName, names[t], *tensors[t], op));
    if (p.nheads_q > 65535)
        return FA_REFUSE("%s cannot run %s: nheads_q must be <= 65535 (grid y); got %d", kBackendName, name, p.nheads_q);
    const int splits = op == FA_OP_BACKWARD ? 1 : (p.num_splits > 1 ? p.num_splits : 1);
    if (static_cast<int64_t>(p.batch) * splits > 65535)
        return FA_REFUSE("%s cannot run %s: batch x num_splits must be <= 65535 (grid z); got %d x %d", kBackendName, name,
                         p.batch, splits);
    return FA_OK;
}

// ---- gate 2: the build ------------------------------------------------------------------------------

fa_status check_static(const fa_params* params, fa_op op, const Instance** instance) {
    FA_TRY(fa_check_params(params, op));
    const fa_params& p = *params;
#if !FA_CK_HAS_BWD
    if (op == FA_OP_BACKWARD)
        return FA_REFUSE("%s cannot run fa_backward: this build has no backward kernels (FA_CK_HAS_BWD = 0)", kBackendName);
#endif
    fa_capabilities caps;
    fill_capabilities(&caps);
    if (caps.features[op] == 0) {
        const Direction d = direction_for(p, op);
        return FA_REFUSE("%s cannot run %s: no %s kernel instance was compiled into this library (FA_HDIMS / FA_DTYPES build filters)",
                         kBackendName, fa_op_name(op), direction_name(d));
    }
    FA_TRY(fa_check_capabilities(params, op, &caps, kBackendName));
    FA_TRY(check_problem(p, op));
    const int bucket = fa_ck::round_headdim(p.headdim_qk > p.headdim_v ? p.headdim_qk : p.headdim_v);
    const Direction direction = direction_for(p, op);
    const bool dropout = p.dropout_p > 0.0f;
    *instance = find_instance(direction, p.dtype, bucket, dropout);
    if (*instance == nullptr)
        return FA_REFUSE("%s cannot run %s: no %s kernel instance for dtype %s, head dim %d (bucket %d)%s was compiled into this "
                         "library (FA_HDIMS / FA_DTYPES build filters)",
                         kBackendName, fa_op_name(op), direction_name(direction), fa_dtype_name(p.dtype), p.headdim_qk, bucket,
                         dropout ? ", dropout" : "");
    return FA_OK;
}

// ---- gate 3: the device ---------------------------------------------------------------------------

constexpr int kMaxDevices = 64;
constexpr std::size_t kLdsNeeded = 48 * 1024;

struct DeviceState {
    bool known = false;
    fa_ck::rt::DeviceInfo info{};
};

fa_status runtime_failure(fa_ck::rt::Error err, const char* what) {
    (void)fa_ck::rt::clear_error();
    /* HIP 5.2's error strings are often the names again: "hipErrorNoDevice (hipErrorNoDevice)" says it twice. */
    const char* name = fa_ck::rt::error_name(err);
    const char* text = fa_ck::rt::error_string(err);
    char described[320];
    if (std::strcmp(name, text) == 0)
        std::snprintf(described, sizeof described, "%s", name);
    else
        std::snprintf(described, sizeof described, "%s (%s)", name, text);
    if (fa_ck::rt::is_no_device(err))
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "%s needs a %s device: %s failed with %s", kBackendName, kDeviceKind, what, described);
    return fa_set_last_error(FA_ERR_DEVICE, "%s: %s failed with %s", kBackendName, what, described);
}

fa_status query_device(int device, fa_ck::rt::DeviceInfo* out) {
    static std::mutex mutex;
    static DeviceState cache[kMaxDevices];
    int count = 0;
    const fa_ck::rt::Error err = fa_ck::rt::device_count(&count);
    if (err != fa_ck::rt::kSuccess) return runtime_failure(err, "getting the device count");
    if (count == 0)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "%s needs a %s device; the runtime reports none", kBackendName, kDeviceKind);
    if (device >= count)
        return fa_set_last_error(FA_ERR_INVALID_ARGUMENT, "fa_params.device must be < %d (the %s devices present); got %d", count,
                                 kDeviceKind, device);
    if (device >= kMaxDevices)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "%s supports device ordinals below %d; got %d", kBackendName, kMaxDevices, device);
    std::lock_guard<std::mutex> lock(mutex);
    DeviceState& state = cache[device];
    if (!state.known) {
        const fa_ck::rt::Error e = fa_ck::rt::device_info(device, &state.info);
        if (e != fa_ck::rt::kSuccess) return runtime_failure(e, "reading the device properties");
        state.known = true;
    }
    *out = state.info;
    return FA_OK;
}

/* "gfx90a:sramecc+:xnack-" → is "gfx90a" one of the compiled targets in FA_CK_ARCHS? */
bool arch_compiled(const char* arch) {
    const char* base = arch;
    const char* colon = std::strchr(arch, ':');
    const std::size_t n = colon != nullptr ? static_cast<std::size_t>(colon - arch) : std::strlen(arch);
    const char* list = FA_CK_ARCHS;
    for (const char* p = list; *p != '\0';) {
        const char* end = std::strchr(p, ',');
        const std::size_t len = end != nullptr ? static_cast<std::size_t>(end - p) : std::strlen(p);
        if (len == n && n > 0 && std::strncmp(p, base, n) == 0) return true;
        if (end == nullptr) break;
        p = end + 1;
    }
#if defined(FA_CK_RUNTIME_CUDA)
    /* The NVIDIA build runs the same kernels on any GPU with 64-thread named barriers (sm_70+). */
    return std::strncmp(base, "sm_", 3) == 0 && std::atoi(base + 3) >= 70;
#else
    return false;
#endif
}

fa_status check_device(const fa_params& p, fa_op op, fa_ck::LaunchContext* ctx) {
    fa_ck::rt::DeviceInfo info{};
    FA_TRY(query_device(p.device, &info));
    if (!arch_compiled(info.arch))
        return FA_REFUSE("%s cannot run %s: it holds code for %s; device %d (%s) is %s", kBackendName, fa_op_name(op), FA_CK_ARCHS,
                         p.device, info.name, info.arch);
    /* Two staged tiles take at most 48 KB (fmha_tile_shape.h), plus 9 KB of per-wave scratch on the NVIDIA side. */
    if (info.lds_per_block < kLdsNeeded)
        return FA_REFUSE("%s cannot run %s: its tiles need %zu bytes of shared memory (LDS) per block; device %d allows %zu", kBackendName,
                         fa_op_name(op), kLdsNeeded, p.device, info.lds_per_block);
    ctx->stream = p.stream;
    ctx->workspace = nullptr;
    ctx->workspace_bytes = 0;
    ctx->device = p.device;
    ctx->num_cus = info.num_cus;
    return FA_OK;
}

fa_status supports(const fa_params* params, fa_op op, const Instance** instance, fa_ck::LaunchContext* ctx) {
    FA_TRY(check_static(params, op, instance));
    return check_device(*params, op, ctx);
}

// ---- running ----------------------------------------------------------------------------------------

/* The current device for the duration of a call (restored afterwards). */
class DeviceGuard {
public:
    fa_status enter(int device) {
        fa_ck::rt::Error err = fa_ck::rt::get_device(&previous_);
        if (err != fa_ck::rt::kSuccess) return runtime_failure(err, "getting the current device");
        if (previous_ != device) {
            err = fa_ck::rt::set_device(device);
            if (err != fa_ck::rt::kSuccess) return runtime_failure(err, "setting the device");
            switched_ = true;
        }
        return FA_OK;
    }
    ~DeviceGuard() {
        if (switched_) (void)fa_ck::rt::set_device(previous_);
    }

private:
    int previous_ = 0;
    bool switched_ = false;
};

/*
 * The caller's workspace, or one this call allocates and frees. Freeing waits for the stream:
 * HIP 5.2 (Debian's, the compiler here) has no stream-ordered allocator that every ROCm this
 * library may meet provides, so a caller that cares passes fa_workspace_size() bytes itself.
 */
class Workspace {
public:
    fa_status acquire(const fa_params& p, uint64_t needed, fa_ck::LaunchContext* ctx) {
        stream_ = ctx->stream;
        bool caller = false;
        FA_TRY(fa_entry::caller_workspace(p, needed, &caller));
        if (caller) {
            ctx->workspace = p.workspace;
            ctx->workspace_bytes = p.workspace_bytes;
            return FA_OK;
        }
        if (needed == 0) return FA_OK;
        const fa_ck::rt::Error err = fa_ck::rt::malloc_device(&data_, needed);
        if (err != fa_ck::rt::kSuccess) {
            (void)fa_ck::rt::clear_error();
            data_ = nullptr;
            return fa_set_last_error(FA_ERR_OUT_OF_MEMORY, "%s: allocating a workspace of %" PRIu64 " bytes failed: %s", kBackendName,
                                     needed, fa_ck::rt::error_string(err));
        }
        ctx->workspace = data_;
        ctx->workspace_bytes = needed;
        return FA_OK;
    }
    ~Workspace() {
        if (data_ == nullptr) return;
        (void)fa_ck::rt::synchronize(stream_);
        (void)fa_ck::rt::free_device(data_);
    }

private:
    void* data_ = nullptr;
    void* stream_ = nullptr;
};

uint64_t workspace_bytes(const fa_params& p, fa_op op, int num_cus) {
    if (op == FA_OP_BACKWARD) return fa_ck::plan_backward(p).workspace_bytes;
    return fa_ck::plan_forward(p, op, num_cus).workspace_bytes;
}

fa_status run(const fa_params* params, fa_op op) {
    fa_clear_last_error();
    const Instance* instance = nullptr;
    fa_ck::LaunchContext ctx{};
    FA_TRY(supports(params, op, &instance, &ctx));
    DeviceGuard device;
    FA_TRY(device.enter(ctx.device));
    Workspace workspace;
    FA_TRY(workspace.acquire(*params, workspace_bytes(*params, op, ctx.num_cus), &ctx));
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
        fa_ck::LaunchContext ctx{};
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
        int num_cus = 0;
        if (op == FA_OP_FORWARD_KVCACHE && p.num_splits == 0) { /* the split heuristic needs the CU count */
            fa_ck::rt::DeviceInfo info{};
            FA_TRY(query_device(p.device, &info));
            num_cus = info.num_cus;
        }
        *bytes = workspace_bytes(p, op, num_cus);
        return FA_OK;
    });
}

FA_API fa_status fa_forward(const fa_params* params) {
    return fa_guarded([&]() -> fa_status { return run(params, FA_OP_FORWARD); });
}

FA_API fa_status fa_forward_kvcache(const fa_params* params) {
    return fa_guarded([&]() -> fa_status { return run(params, FA_OP_FORWARD_KVCACHE); });
}

FA_API fa_status fa_backward(const fa_params* params) {
    return fa_guarded([&]() -> fa_status { return run(params, FA_OP_BACKWARD); });
}

FA_API const char* fa_last_error(void) { return fa_get_last_error(); }

}  // extern "C"

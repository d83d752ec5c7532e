/*
 * fa_cuda_host.h — host-side pieces every CUDA backend library shares (libfa_cuda_sm80,
 * libfa_hopper_sm90): CUDA errors as fa_status, cached device properties, the current-device
 * guard, the library's workspace memory pool and the launch context handed to kernel instances.
 * (What needs no GPU runtime — the 16-byte layout rule, the window normalisation, the bodies of
 * fa_get_capabilities / fa_supports — is fa_backend_entry.h's, shared with the HIP backend.) Header-only (inline; the statics live once
 * per library).
 */
#ifndef FA_CUDA_HOST_H
#define FA_CUDA_HOST_H

#include <cinttypes>
#include <cstdint>
#include <mutex>

#include <cuda_runtime.h>

#include "fa_backend_entry.h"
#include "fa_common.h"
#include "flash_attn_abi.h"

namespace fa_cuda {

/* What a kernel instance gets besides fa_params (the device is already current). */
struct LaunchContext {
    cudaStream_t stream;
    void* workspace;
    uint64_t workspace_bytes;
    int device;
    int num_sms;
    int cc_major;
    int cc_minor;
    int max_smem_optin; /* cudaDevAttrMaxSharedMemoryPerBlockOptin */
};

constexpr int kMaxDevices = 64;

struct DeviceInfo {
    bool known = false;
    int num_sms = 0, cc_major = 0, cc_minor = 0, max_smem_optin = 0;
};

/* A failed CUDA call as FA_ERR_UNSUPPORTED (no device / driver) or FA_ERR_DEVICE, with the message. */
inline fa_status cuda_failure(const char* backend, cudaError_t err, const char* what) {
    cudaGetLastError(); /* clear the runtime's non-sticky error state */
    if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "%s needs a CUDA device: %s failed with %s (%s)", backend, what,
                                 cudaGetErrorName(err), cudaGetErrorString(err));
    return fa_set_last_error(FA_ERR_DEVICE, "%s: %s failed with %s (%s)", backend, what, cudaGetErrorName(err),
                             cudaGetErrorString(err));
}

/* Properties of `device`, queried once per device. */
inline fa_status device_info(const char* backend, int device, DeviceInfo* out) {
    static std::mutex mutex;
    static DeviceInfo cache[kMaxDevices];
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) return cuda_failure(backend, err, "cudaGetDeviceCount");
    if (device >= count)
        return fa_set_last_error(FA_ERR_INVALID_ARGUMENT, "fa_params.device must be < %d (the CUDA devices present); got %d", count,
                                 device);
    if (device >= kMaxDevices)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "%s supports device ordinals below %d; got %d", backend, kMaxDevices, device);
    std::lock_guard<std::mutex> lock(mutex);
    DeviceInfo& info = cache[device];
    if (!info.known) {
        const struct {
            cudaDeviceAttr attr;
            int* value;
        } queries[] = {{cudaDevAttrMultiProcessorCount, &info.num_sms},
                       {cudaDevAttrComputeCapabilityMajor, &info.cc_major},
                       {cudaDevAttrComputeCapabilityMinor, &info.cc_minor},
                       {cudaDevAttrMaxSharedMemoryPerBlockOptin, &info.max_smem_optin}};
        for (const auto& q : queries) {
            err = cudaDeviceGetAttribute(q.value, q.attr, device);
            if (err != cudaSuccess) return cuda_failure(backend, err, "cudaDeviceGetAttribute");
        }
        info.known = true;
    }
    *out = info;
    return FA_OK;
}

/* The launch context of a call on `info`'s device (no workspace yet). */
inline LaunchContext launch_context(const fa_params& p, const DeviceInfo& info) {
    LaunchContext ctx{};
    ctx.stream = static_cast<cudaStream_t>(p.stream);
    ctx.device = p.device;
    ctx.num_sms = info.num_sms;
    ctx.cc_major = info.cc_major;
    ctx.cc_minor = info.cc_minor;
    ctx.max_smem_optin = info.max_smem_optin;
    return ctx;
}

/* The current device for the duration of a call (restored afterwards). */
class DeviceGuard {
public:
    explicit DeviceGuard(const char* backend) : backend_(backend) {}
    fa_status enter(int device) {
        cudaError_t err = cudaGetDevice(&previous_);
        if (err != cudaSuccess) return cuda_failure(backend_, err, "cudaGetDevice");
        if (previous_ != device) {
            err = cudaSetDevice(device);
            if (err != cudaSuccess) return cuda_failure(backend_, err, "cudaSetDevice");
            switched_ = true;
        }
        return FA_OK;
    }
    ~DeviceGuard() {
        if (switched_) cudaSetDevice(previous_);
    }
    DeviceGuard(const DeviceGuard&) = delete;
    DeviceGuard& operator=(const DeviceGuard&) = delete;

private:
    const char* backend_;
    int previous_ = 0;
    bool switched_ = false;
};

/*
 * The library's own stream-ordered memory pool of a device, created on first use, that keeps
 * what it once held (release threshold UINT64_MAX); nullptr where memory pools are unsupported.
 *
 * Why not the device's default pool: its release threshold is 0, so every synchronisation
 * (cudaStreamSynchronize, cudaEventSynchronize — a caller timing or reading results after each
 * call) hands the freed workspace back to the driver, and the next call's cudaMallocAsync maps
 * fresh physical memory while the GPU waits: on an H100 that put ~0.1 ms on every split decode
 * call (batch 8, 16 heads: median 0.31 ms at kv 8k where the kernels need ~0.18 ms). A private
 * pool keeps the memory without changing the default pool, which belongs to the application;
 * stream ordering (and reuse across streams through the pool's event dependencies) is the
 * driver's as with cudaMallocAsync. What it holds is bounded by the largest workspaces in use
 * at once (decode: a few hundred KB).
 */
inline cudaMemPool_t workspace_pool(int device) {
    static std::mutex mutex;
    static cudaMemPool_t pools[kMaxDevices] = {};
    static bool tried[kMaxDevices] = {};
    if (device < 0 || device >= kMaxDevices) return nullptr;
    std::lock_guard<std::mutex> lock(mutex);
    if (!tried[device]) {
        tried[device] = true;
        int supported = 0;
        if (cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, device) != cudaSuccess || !supported) {
            cudaGetLastError();
            return nullptr;
        }
        cudaMemPoolProps props{};
        props.allocType = cudaMemAllocationTypePinned;
        props.handleTypes = cudaMemHandleTypeNone;
        props.location.type = cudaMemLocationTypeDevice;
        props.location.id = device;
        cudaMemPool_t pool = nullptr;
        if (cudaMemPoolCreate(&pool, &props) != cudaSuccess) {
            cudaGetLastError();
            return nullptr;
        }
        uint64_t keep = UINT64_MAX;
        if (cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep) != cudaSuccess) cudaGetLastError();
        pools[device] = pool; /* lives as long as the process (destroying it at exit races the driver's teardown) */
    }
    return pools[device];
}

/* The caller's workspace, or one allocated on the stream (the library's pool, else
   cudaMallocAsync; cudaMalloc and a stream synchronisation where memory pools are
   unsupported), released after the launches. */
class Workspace {
public:
    explicit Workspace(const char* backend) : backend_(backend) {}
    fa_status acquire(const fa_params& p, uint64_t needed, LaunchContext* ctx) {
        stream_ = ctx->stream;
        if (needed == 0) return FA_OK;
        if (p.workspace != nullptr) {
            if (p.workspace_bytes < needed)
                return fa_set_last_error(FA_ERR_INVALID_ARGUMENT,
                                         "fa_params.workspace_bytes must be at least %" PRIu64 " (fa_workspace_size); got %" PRIu64,
                                         needed, p.workspace_bytes);
            ctx->workspace = p.workspace;
            ctx->workspace_bytes = p.workspace_bytes;
            return FA_OK;
        }
        cudaError_t err = cudaErrorNotSupported;
        if (cudaMemPool_t pool = workspace_pool(ctx->device)) {
            err = cudaMallocFromPoolAsync(&data_, needed, pool, stream_);
            if (err != cudaSuccess) cudaGetLastError();
        }
        if (err != cudaSuccess) err = cudaMallocAsync(&data_, needed, stream_);
        if (err == cudaErrorNotSupported) {
            cudaGetLastError();
            err = cudaMalloc(&data_, needed);
            synchronous_ = true;
        }
        if (err != cudaSuccess) {
            cudaGetLastError();
            data_ = nullptr;
            return fa_set_last_error(FA_ERR_OUT_OF_MEMORY, "%s: allocating a workspace of %" PRIu64 " bytes failed: %s", backend_,
                                     needed, cudaGetErrorString(err));
        }
        ctx->workspace = data_;
        ctx->workspace_bytes = needed;
        return FA_OK;
    }
    ~Workspace() {
        if (data_ == nullptr) return;
        if (synchronous_) {
            cudaStreamSynchronize(stream_);
            cudaFree(data_);
        } else {
            cudaFreeAsync(data_, stream_);
        }
    }
    Workspace(const Workspace&) = delete;
    Workspace& operator=(const Workspace&) = delete;

private:
    const char* backend_;
    void* data_ = nullptr;
    cudaStream_t stream_ = nullptr;
    bool synchronous_ = false;
};

/* The launch error of the last kernel, as FA_ERR_DEVICE naming `what`. */
inline fa_status launch_status(const char* backend, const char* what) {
    const cudaError_t err = cudaGetLastError();
    if (err == cudaSuccess) return FA_OK;
    return fa_set_last_error(FA_ERR_DEVICE, "%s: launching %s failed: %s (%s)", backend, what, cudaGetErrorName(err),
                             cudaGetErrorString(err));
}

}  // namespace fa_cuda

#endif  // FA_CUDA_HOST_H

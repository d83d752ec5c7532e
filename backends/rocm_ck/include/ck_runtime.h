/*
 * ck_runtime.h — the few runtime calls of the rocm_ck host code, behind one spelling for the
 * three targets of ck_arch.h: the HIP runtime (AMD), the CUDA runtime (NVIDIA, for running the
 * same kernels on an NVIDIA GPU) and a host emulation (device memory is host memory, one
 * device). src/api.cpp is built by the host compiler and includes this without ck_arch.h, so
 * the target is chosen here from the build's definitions: FA_CK_RUNTIME_HIP (default),
 * FA_CK_RUNTIME_CUDA or FA_CK_HOST_EMULATION.
 *
 * Launches: FA_CK_LAUNCH(kernel, grid, block, stream, args) and launch_status(what).
 */
#ifndef FA_CK_RUNTIME_H
#define FA_CK_RUNTIME_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(FA_CK_HOST_EMULATION)
#define FA_CK_RUNTIME_EMULATION 1
#elif defined(FA_CK_RUNTIME_CUDA)
#include <cuda_runtime_api.h>
#else
#ifndef __HIP_PLATFORM_AMD__
#define __HIP_PLATFORM_AMD__ 1
#endif
#include <hip/hip_runtime_api.h>
#define FA_CK_RUNTIME_HIP 1
#endif

namespace fa_ck {
namespace rt {

/* What the host code needs to know of a device. */
struct DeviceInfo {
    char name[256];
    char arch[256]; /* gcnArchName ("gfx90a:sramecc+:xnack-"), "sm_90", or "host-emulation" */
    int num_cus;
    size_t lds_per_block;
};

#if FA_CK_RUNTIME_HIP
using Error = hipError_t;
constexpr Error kSuccess = hipSuccess;
inline bool is_no_device(Error e) { return e == hipErrorNoDevice || e == hipErrorInsufficientDriver; }
inline const char* error_name(Error e) { return hipGetErrorName(e); }
inline const char* error_string(Error e) { return hipGetErrorString(e); }
inline Error device_count(int* count) { return hipGetDeviceCount(count); }
inline Error get_device(int* device) { return hipGetDevice(device); }
inline Error set_device(int device) { return hipSetDevice(device); }
inline Error clear_error() { return hipGetLastError(); }
inline Error malloc_device(void** p, size_t bytes) { return hipMalloc(p, bytes); }
inline Error free_device(void* p) { return hipFree(p); }
inline Error synchronize(void* stream) { return hipStreamSynchronize(static_cast<hipStream_t>(stream)); }
inline Error copy_to_device(void* dst, const void* src, size_t bytes) { return hipMemcpy(dst, src, bytes, hipMemcpyHostToDevice); }
inline Error copy_to_host(void* dst, const void* src, size_t bytes) { return hipMemcpy(dst, src, bytes, hipMemcpyDeviceToHost); }
inline Error device_synchronize() { return hipDeviceSynchronize(); }
inline Error device_info(int device, DeviceInfo* info) {
    hipDeviceProp_t props;
    const Error e = hipGetDeviceProperties(&props, device);
    if (e != hipSuccess) return e;
    snprintf(info->name, sizeof info->name, "%s", props.name);
    snprintf(info->arch, sizeof info->arch, "%s", props.gcnArchName);
    info->num_cus = props.multiProcessorCount;
    info->lds_per_block = props.sharedMemPerBlock;
    return hipSuccess;
}
#elif defined(FA_CK_RUNTIME_CUDA)
using Error = cudaError_t;
constexpr Error kSuccess = cudaSuccess;
inline bool is_no_device(Error e) { return e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver; }
inline const char* error_name(Error e) { return cudaGetErrorName(e); }
inline const char* error_string(Error e) { return cudaGetErrorString(e); }
inline Error device_count(int* count) { return cudaGetDeviceCount(count); }
inline Error get_device(int* device) { return cudaGetDevice(device); }
inline Error set_device(int device) { return cudaSetDevice(device); }
inline Error clear_error() { return cudaGetLastError(); }
inline Error malloc_device(void** p, size_t bytes) { return cudaMalloc(p, bytes); }
inline Error free_device(void* p) { return cudaFree(p); }
inline Error synchronize(void* stream) { return cudaStreamSynchronize(static_cast<cudaStream_t>(stream)); }
inline Error copy_to_device(void* dst, const void* src, size_t bytes) { return cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice); }
inline Error copy_to_host(void* dst, const void* src, size_t bytes) { return cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost); }
inline Error device_synchronize() { return cudaDeviceSynchronize(); }
inline Error device_info(int device, DeviceInfo* info) {
    cudaDeviceProp props;
    const Error e = cudaGetDeviceProperties(&props, device);
    if (e != cudaSuccess) return e;
    snprintf(info->name, sizeof info->name, "%s", props.name);
    snprintf(info->arch, sizeof info->arch, "sm_%d%d", props.major, props.minor);
    info->num_cus = props.multiProcessorCount;
    info->lds_per_block = props.sharedMemPerBlock;
    return cudaSuccess;
}
#else
using Error = int;
constexpr Error kSuccess = 0;
inline bool is_no_device(Error) { return false; }
inline const char* error_name(Error e) { return e == 0 ? "success" : "out of memory"; }
inline const char* error_string(Error e) { return e == 0 ? "no error" : "host allocation failed"; }
inline Error device_count(int* count) { return *count = 1, 0; }
inline Error get_device(int* device) { return *device = 0, 0; }
inline Error set_device(int) { return 0; }
inline Error clear_error() { return 0; }
inline Error malloc_device(void** p, size_t bytes) { return (*p = malloc(bytes)) != nullptr || bytes == 0 ? 0 : 2; }
inline Error free_device(void* p) { return free(p), 0; }
inline Error synchronize(void*) { return 0; }
inline Error copy_to_device(void* dst, const void* src, size_t bytes) { return memcpy(dst, src, bytes), 0; }
inline Error copy_to_host(void* dst, const void* src, size_t bytes) { return memcpy(dst, src, bytes), 0; }
inline Error device_synchronize() { return 0; }
inline Error device_info(int, DeviceInfo* info) {
    snprintf(info->name, sizeof info->name, "%s", "CPU (fa_ck host emulation)");
    snprintf(info->arch, sizeof info->arch, "%s", "host-emulation");
    info->num_cus = 8;
    info->lds_per_block = 64 * 1024;
    return 0;
}
#endif

}  // namespace rt
}  // namespace fa_ck

/* kernel<<<grid, block, 0, stream>>>(args), or its host emulation. */
#if defined(FA_CK_HOST_EMULATION)
#define FA_CK_LAUNCH(kernel, grid, block, stream, ...) \
    ((void)(stream), ::fa_ck::emu::launch((grid), (block), [&]() { kernel(__VA_ARGS__); }))
#elif defined(FA_CK_RUNTIME_CUDA)
#define FA_CK_LAUNCH(kernel, grid, block, stream, ...) kernel<<<(grid), (block), 0, static_cast<cudaStream_t>(stream)>>>(__VA_ARGS__)
#else
#define FA_CK_LAUNCH(kernel, grid, block, stream, ...) kernel<<<(grid), (block), 0, static_cast<hipStream_t>(stream)>>>(__VA_ARGS__)
#endif

#endif  // FA_CK_RUNTIME_H

/*
 * bwd_primitives.cuh — what the sm80 backward needs beyond the shared vocabulary of
 * sm80_primitives.cuh (mma_16816, ldmatrix, cp_async_16, pack2, exp2_approx) and the
 * dropout RNG of philox.cuh: a 4-byte cp.async, 16-bit pairs back to fp32, tanh, and an
 * acquire load for the deterministic-mode counters. Lives in fa_sm80::bwd.
 */
#ifndef FA_SM80_BWD_PRIMITIVES_CUH
#define FA_SM80_BWD_PRIMITIVES_CUH

#include <cstdint>
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#include "philox.cuh"
#include "sm80_primitives.cuh"

namespace fa_sm80 {
namespace bwd {

/* 4 bytes global -> shared through L1 (zero when !valid; `src` must still be a mapped address). */
__device__ __forceinline__ void cp_async_4(uint32_t dst, const void* src, bool valid) {
    const int bytes = valid ? 4 : 0;
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}

/* Two elements of one 32-bit word (low half first) to fp32. */
template <typename Element>
__device__ __forceinline__ float2 unpack2(uint32_t v);

template <>
__device__ __forceinline__ float2 unpack2<__half>(uint32_t v) {
    return __half22float2(*reinterpret_cast<__half2*>(&v));
}

template <>
__device__ __forceinline__ float2 unpack2<__nv_bfloat16>(uint32_t v) {
    // bf16 -> fp32 is exact: the bf16 bits are the high half of the fp32 bits.
    return make_float2(__uint_as_float(v << 16), __uint_as_float(v & 0xffff0000u));
}

/* ld.acquire.gpu: later reads of this thread see what was written before the matching release. */
__device__ __forceinline__ int ld_acquire_gpu(const int* p) {
    int v;
    asm volatile("ld.acquire.gpu.global.s32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
    return v;
}

/* *addr += a, *(addr + 1) += b (addr 8-byte aligned): one red.global.add.v2.f32 on sm_90 with a
   CUDA >= 12.1 toolchain, two scalar reductions otherwise. */
__device__ __forceinline__ void red_add_f32x2(float* addr, float a, float b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && \
    (__CUDACC_VER_MAJOR__ > 12 || (__CUDACC_VER_MAJOR__ == 12 && __CUDACC_VER_MINOR__ >= 1))
    asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" ::"l"(addr), "f"(a), "f"(b) : "memory");
#else
    atomicAdd(addr, a);
    atomicAdd(addr + 1, b);
#endif
}

}  // namespace bwd
}  // namespace fa_sm80

#endif  // FA_SM80_BWD_PRIMITIVES_CUH

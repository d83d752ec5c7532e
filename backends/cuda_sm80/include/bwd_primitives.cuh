/*
 * bwd_primitives.cuh — what the sm80 backward needs beyond the shared vocabulary of
 * sm80_primitives.cuh (mma_16816, ldmatrix, cp_async_16, pack2, exp2_approx) and the
 * dropout RNG of philox.cuh: a 4-byte cp.async, 16-bit pairs back to fp32, tanh, an acquire
 * load for the deterministic-mode counters, and the fragment order of the dQ accumulator.
 * Lives in fa_sm80::bwd.
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

/*
 * The fp32 dQ accumulator is stored in MMA C fragments: one m16 x n8 fragment (rows g and g + 8,
 * columns 2t and 2t + 1 of lane 4g + t; element e = 2 * (row >= 8) + (column odd)) is 128
 * contiguous floats, in the order that makes one warp's addition of a whole fragment cheapest:
 *   sm_90: lane * 4 + e  — one red.global.add.v4.f32 per lane, 512 contiguous bytes per warp;
 *   older: e * 32 + lane — four scalar reductions, each 128 contiguous bytes (one cache line).
 * (A row-major accumulator made each warp instruction touch 8 rows, 8 cache lines: twice
 * FlashAttention 2's L1 requests for the same reductions.) The main kernel and the postprocess
 * kernel are compiled for the same architecture, so they agree on the order.
 */
__device__ __forceinline__ int dq_fragment_slot(int lane, int e) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    return lane * 4 + e;
#else
    return e * 32 + lane;
#endif
}

/* fragment[slot(lane, e)] += c[e] for e = 0..3, given slot0 = the global-space address of fragment + slot(lane, 0)
   (16-byte aligned on sm_90). Explicit red.global: a generic pointer made the compiler test for shared memory. */
__device__ __forceinline__ void red_add_fragment_slot(uint64_t slot0, const float (&c)[4]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && \
    (__CUDACC_VER_MAJOR__ > 12 || (__CUDACC_VER_MAJOR__ == 12 && __CUDACC_VER_MINOR__ >= 1))
    asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"l"(slot0), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3])
                 : "memory");
#else
#pragma unroll
    for (int e = 0; e < 4; ++e)
        asm volatile("red.global.add.f32 [%0], %1;\n" ::"l"(slot0 + 4 * (dq_fragment_slot(0, e) - dq_fragment_slot(0, 0))), "f"(c[e])
                     : "memory");
#endif
}

}  // namespace bwd
}  // namespace fa_sm80

#endif  // FA_SM80_BWD_PRIMITIVES_CUH

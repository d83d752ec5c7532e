/*
 * fa_cuda_math.cuh — the small device math every CUDA backend's softmax uses (sm80 FA2 and
 * sm90 FA3 kernels alike): fast exp2, an accurate tanh for softcap, fp32 → 16-bit pair packing
 * and the quad reductions of the MMA row layouts (the 4 lanes of a row group share a row in
 * both mma.sync m16n8 and wgmma m64nN accumulators).
 */
#ifndef FA_CUDA_MATH_CUH
#define FA_CUDA_MATH_CUH

#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace fa_cuda {

constexpr float kLog2e = 1.4426950408889634f; /* log2(e): exp(x) = 2^(x·log2e) */
constexpr float kLn2 = 0.6931471805599453f;   /* ln(2): ln(x) = log2(x)·ln2 */
constexpr float kNegInf = -__builtin_huge_valf();
constexpr float kPosInf = __builtin_huge_valf();

/* 2^x, ex2.approx.ftz (relative error 2^-22; ex2(-inf) = +0). */
__device__ __forceinline__ float exp2_approx(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* tanh(x) = 1 − 2 / (e^{2x} + 1) through one ex2: absolute error ~1e-7 everywhere and the limits
   exactly ±1 (tanh.approx.f32 has 2^-11 relative error, too coarse for softcap's tolerance). */
__device__ __forceinline__ float tanh_accurate(float x) {
    const float e = exp2_approx(x * (2.0f * kLog2e)); /* e^{2x} */
    return 1.0f - __fdividef(2.0f, e + 1.0f);
}

/* {lo, hi} rounded to nearest-even into one b32 (lo in the low half = the lower column). */
template <typename Element>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);

template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
    uint32_t r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
    uint32_t r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

/* Reductions over the 4 lanes (xor 1, 2) that hold one accumulator row. */
__device__ __forceinline__ float quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
    return x;
}

__device__ __forceinline__ float quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    x += __shfl_xor_sync(0xffffffffu, x, 2);
    return x;
}

/* A 4 × 4 transpose over the 4 lanes of a row (quad = lane % 4): lane q's v[b] becomes lane b's v[q] as it was.
   An accumulator row's lane holds columns 8j + 2q, 8j + 2q + 1 of j = 4a … 4a + 3 (one 32-bit pair per j);
   afterwards it holds columns 32a + 8q … 32a + 8q + 7 in order: one 16-byte store instead of four 4-byte ones
   scattered over the row. Two exchanges (xor 2, then xor 1) of two values each. */
__device__ __forceinline__ void quad_transpose(uint32_t (&v)[4], int quad) {
#pragma unroll
    for (int m = 2; m >= 1; m >>= 1) {
        const bool upper = (quad & m) != 0;
#pragma unroll
        for (int lo = 0; lo < 4; ++lo) {
            if (lo & m) continue;
            const int hi = lo | m;
            /* the upper lane sends its slot lo and takes the partner's slot hi there; the lower one the reverse */
            const uint32_t got = __shfl_xor_sync(0xffffffffu, upper ? v[lo] : v[hi], m);
            if (upper)
                v[lo] = got;
            else
                v[hi] = got;
        }
    }
}

}  // namespace fa_cuda

#endif  // FA_CUDA_MATH_CUH

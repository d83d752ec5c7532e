/*
 * ck_arch.h — the device vocabulary of the rocm_ck kernels, for three targets:
 *
 *   FA_CK_TARGET_AMD     hip-clang (hipcc / clang++ -x hip), CDNA gfx90a / gfx942: the target
 *                        the kernels are written for. Wave64, MFMA builtins, cross-lane ops
 *                        through ds_bpermute.
 *   FA_CK_TARGET_NVIDIA  nvcc: the same kernel bodies on an NVIDIA GPU, for running this
 *                        backend's tile pipeline where no AMD GPU is at hand. A "wave" is two
 *                        warps (64 threads); the MFMA step and cross-lane exchanges go through
 *                        shared memory with a 64-thread named barrier (slow, but the fragment
 *                        layouts are exactly the AMD ones).
 *   FA_CK_TARGET_HOST    a C++ compiler with FA_CK_HOST_EMULATION defined: every GPU thread of
 *                        a block is a fiber on the CPU (ck_host_emulation.h), so that CI can run
 *                        the kernels against the float64 reference on a machine without a GPU.
 *
 * Kernel bodies use only what the three spell alike — __global__, __device__, __shared__,
 * threadIdx/blockIdx/gridDim, __syncthreads() — plus what this header defines: FA_CK_DEVICE,
 * lane_id()/wave_id(), wave_sync(), shfl_xor_32(), fast exp2/log2, 16-byte global loads, and
 * (ck_mfma.h) the 32x32x8 matrix step.
 */
#ifndef FA_CK_ARCH_H
#define FA_CK_ARCH_H

#include <stdint.h>

#if defined(FA_CK_HOST_EMULATION)
#define FA_CK_TARGET_HOST 1
#elif defined(__HIP__)
#define FA_CK_TARGET_AMD 1
#elif defined(__CUDACC__)
#define FA_CK_TARGET_NVIDIA 1
#else
#error "ck_arch.h: compile with hip-clang (AMD), nvcc (NVIDIA) or with FA_CK_HOST_EMULATION defined (CPU emulation)"
#endif

#if FA_CK_TARGET_AMD
#include <hip/hip_runtime.h>
#define FA_CK_DEVICE __device__ __forceinline__
#define FA_CK_HOST_DEVICE __host__ __device__ __forceinline__
#define FA_CK_LAUNCH_BOUNDS(threads) __launch_bounds__(threads)
#elif FA_CK_TARGET_NVIDIA
#include <cuda_runtime.h>
#define FA_CK_DEVICE __device__ __forceinline__
#define FA_CK_HOST_DEVICE __host__ __device__ __forceinline__
#define FA_CK_LAUNCH_BOUNDS(threads) __launch_bounds__(threads)
#else
#include "ck_host_emulation.h"
#define FA_CK_DEVICE inline
#define FA_CK_HOST_DEVICE inline
#define FA_CK_LAUNCH_BOUNDS(threads)
#endif

#include <math.h>
#include <string.h>

namespace fa_ck {

/* A wave is 64 lanes on every target (two warps on NVIDIA, 64 fibers on the host). */
constexpr int kWaveSize = 64;
/* Most waves a block may have: the NVIDIA and host sides keep per-wave scratch of this many. */
constexpr int kMaxWaves = 4;

constexpr float kLog2e = 1.4426950408889634f; /* log2(e): exp(x) = exp2(x · log2e) */
constexpr float kLn2 = 0.6931471805599453f;   /* ln(2): ln(x) = log2(x) · ln2 */
constexpr float kInfinity = __builtin_huge_valf();

FA_CK_DEVICE int lane_id() { return static_cast<int>(threadIdx.x) % kWaveSize; }
FA_CK_DEVICE int wave_id() { return static_cast<int>(threadIdx.x) / kWaveSize; }

/*
 * Makes what the lanes of this wave wrote to shared memory visible to the other lanes of the
 * wave. A no-op on AMD (a wave executes in lock step and LDS operations of one wave complete in
 * order); a 64-thread named barrier on NVIDIA (the two warps of a wave are independent); a
 * barrier of the wave's 64 fibers on the host.
 */
FA_CK_DEVICE void wave_sync() {
#if FA_CK_TARGET_AMD
    __builtin_amdgcn_wave_barrier();
#elif FA_CK_TARGET_NVIDIA
    asm volatile("bar.sync %0, %1;" ::"r"(1 + wave_id()), "r"(kWaveSize) : "memory");
#else
    emu::wave_barrier();
#endif
}

/* Per-wave scratch in shared memory for the exchanges the NVIDIA and host sides emulate. */
#if !FA_CK_TARGET_AMD
template <int Floats>
FA_CK_DEVICE float* wave_scratch() {
    __shared__ float scratch[kMaxWaves][Floats];
    return scratch[wave_id()];
}
#endif

/* The value of lane (lane_id() ^ 32): the other half of the wave. */
FA_CK_DEVICE float shfl_xor_32(float x) {
#if FA_CK_TARGET_AMD
    return __shfl_xor(x, 32, kWaveSize);
#else
    float* s = wave_scratch<kWaveSize>();
    s[lane_id()] = x;
    wave_sync();
    const float y = s[lane_id() ^ 32];
    wave_sync();
    return y;
#endif
}

/* 2^x at the hardware's native precision (v_exp_f32 on CDNA; exp2(-inf) = 0). */
FA_CK_DEVICE float fast_exp2(float x) {
#if FA_CK_TARGET_AMD && __has_builtin(__builtin_amdgcn_exp2f) /* clang >= 17 */
    return __builtin_amdgcn_exp2f(x);
#elif FA_CK_TARGET_AMD
    return __builtin_exp2f(x); /* llvm.exp2.f32: v_exp_f32 (clang 15 of HIP 5.2) */
#else
    return exp2f(x);
#endif
}

FA_CK_DEVICE float accurate_log2(float x) { return log2f(x); }

FA_CK_DEVICE float tanh_f32(float x) { return tanhf(x); }

/* ---- 8- and 16-byte global / shared accesses ------------------------------------------------ */

/* Four 16-bit elements (an MFMA operand, or 8 bytes of a row): element e in bits 16·(e % 2) of w[e / 2].
   Aligned as one 8-byte access (every row offset the kernels use is a multiple of 4 elements). */
struct alignas(8) Pack4 {
    uint32_t w[2];
};

/* Eight 16-bit elements (16 bytes of a row): one 16-byte global access (fa_supports requires
   16-byte aligned tensors with strides in multiples of 8 elements). */
struct alignas(16) Pack8 {
    uint32_t w[4];
};

template <typename T>
FA_CK_DEVICE T load_pod(const void* p) {
#if FA_CK_TARGET_HOST
    T v;
    memcpy(&v, p, sizeof v);
    return v;
#else
    return *static_cast<const T*>(p);
#endif
}

template <typename T>
FA_CK_DEVICE void store_pod(void* p, const T& v) {
#if FA_CK_TARGET_HOST
    memcpy(p, &v, sizeof v);
#else
    *static_cast<T*>(p) = v;
#endif
}

FA_CK_DEVICE uint16_t pack_get(const Pack4& p, int e) { return static_cast<uint16_t>(p.w[e >> 1] >> (16 * (e & 1))); }

FA_CK_DEVICE void pack_set(Pack4& p, int e, uint16_t v) {
    const int shift = 16 * (e & 1);
    p.w[e >> 1] = (p.w[e >> 1] & ~(0xffffu << shift)) | (static_cast<uint32_t>(v) << shift);
}

FA_CK_DEVICE uint32_t pack2(uint16_t lo, uint16_t hi) { return static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16); }

}  // namespace fa_ck

#endif  // FA_CK_ARCH_H

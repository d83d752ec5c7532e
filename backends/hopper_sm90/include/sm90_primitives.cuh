// sm90_primitives.cuh -- first Hopper (sm_90a) primitives for FlashAttention for .NET.
// Written from the PTX ISA text (no code copied from CUTLASS/ThunderKittens/FlashAttention).
//
// Facts used (PTX ISA section in brackets; see ../shared/reference/hopper-fa3-facts.md):
//  F1 [9.7.13.15 mbarrier] mbarrier.init.shared::cta.b64 [bar], count; a fresh barrier is in phase 0.
//     mbarrier.arrive.expect_tx = one arrival + expect tx bytes; a phase completes when the pending
//     arrival count AND the tx-count both reach 0. try_wait.parity(P) succeeds once the phase with
//     parity P has completed (so waiting parity 0 on a fresh barrier blocks until phase 0 completes).
//     Other threads may use the barrier only after init is made visible (__syncthreads; plus
//     fence.mbarrier_init.release.cluster so the async proxy sees the init).
//  F2 [9.7.9.25 cp.async.bulk.tensor] 2D tiled load:
//     cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [dst], [tmap, {c0, c1}], [bar];
//     c0 = innermost (contiguous) coordinate, in elements. tmap = generic address of a 64B-aligned
//     CUtensorMap passed as a `const __grid_constant__` kernel parameter. Destination of a 128B-swizzled
//     box must be 1024 B aligned (swizzle is computed from absolute smem address bits [4:6] ^= [7:9]).
//  F3 [9.7.12.15 membar/fence] fence.proxy.async.shared::cta orders generic-proxy smem accesses with
//     async-proxy (TMA / wgmma) accesses.
//  F4 [9.7.15.5.1.2 matrix descriptor] 64-bit wgmma smem descriptor: bits 0-13 start addr >> 4,
//     16-29 LBO >> 4, 32-45 SBO >> 4, 49-51 base offset, 62-63 swizzle (0 none, 1 128B, 2 64B, 3 32B).
//     K-major + 128B swizzle: LBO unused (we write 1), SBO = 8 rows * 128 B = 1024 B, base offset 0
//     when the tile is 1024 B aligned. Advancing one k16 step inside a 128 B swizzled row = start += 32 B.
//  F5 [9.7.15.5 wgmma.mma_async] wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 d{32 f32}, descA,
//     descB, scale-d(pred), imm-scale-a, imm-scale-b, imm-trans-a, imm-trans-b. trans 0 = K-major.
//     scale-d = 0 -> D = A*B, 1 -> D = A*B + D. D = A(MxK) * B(KxN); B K-major == stored N x K row-major,
//     so with both K-major the product is C = A * B_stored^T.
//  F6 [9.7.15.6 wgmma.fence / commit_group / wait_group] fence before first wgmma and after any
//     register write to accumulators; commit closes the issued wgmmas into a group; wait_group N
//     waits until <= N groups pending. Accumulators must not be touched before their group completes.
//  F7 [9.7.15.5.1.1 register fragments, Fig. "WGMMA .m64nNk16 D"] f32 D: thread t, warp w=t/32, lane l,
//     g=l/4, q=l%4: d[i] -> row = 16w + g + 8*((i>>1)&1), col = 8*(i>>2) + 2q + (i&1).
//  F9 [9.7.15.5.1.1, wgmma .m64nNk32 A in registers, 8-bit types] thread t (warp w, g = lane/4, q = lane%4)
//     holds 4 .b32 registers of 4 elements each, byte j of register r at row 16w + g + 8*(r&1),
//     k = 16*(r>>1) + 4q + j (CuTe's ALayout_64x32 decodes to the same). fp8 wgmma takes no transpose
//     immediates: A and B both K-major (".e4m3 ... scale-d, imm-scale-a, imm-scale-b").
//  F10 [9.7.9.21 cvt] cvt.rn.satfinite.e4m3x2.f32 d, a, b: d (.b16) holds a converted in its upper byte and
//     b in its lower byte, rounded to nearest even, saturated to the largest finite value (±448).
//  F8 [9.7.17.1 setmaxnreg] setmaxnreg.{inc,dec}.sync.aligned.u32 N, N in [24,256], multiple of 8, whole
//     warpgroup executes it; needs a known register count at entry (__launch_bounds__(T,1)); .inc blocks
//     until the CTA pool has enough registers (over-subscription hangs).
#pragma once
#include <cstdint>
#include <cuda.h>  // CUtensorMap

#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL) && !defined(SM90_LOCAL_SYNTAX_CHECK)
#error "sm90_primitives.cuh needs -gencode arch=compute_90a,code=sm_90a (wgmma/setmaxnreg are sm_90a-only)"
#endif

namespace fa_sm90 {

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// ---------------------------------------------------------------- mbarrier (F1)
__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void fence_mbarrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t tx_bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)), "r"(tx_bytes)
               : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_u32(bar)) : "memory");
}
__device__ __forceinline__ bool mbar_try_wait(uint64_t* bar, uint32_t parity) {
  uint32_t ok;
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\t"
      "selp.u32 %0, 1, 0, p;\n\t}"
      : "=r"(ok)
      : "r"(smem_u32(bar)), "r"(parity)
      : "memory");
  return ok != 0;
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  while (!mbar_try_wait(bar, parity)) {
  }
}

// ---------------------------------------------------------------- proxy fence (F3)
__device__ __forceinline__ void fence_proxy_async_smem() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

// ---------------------------------------------------------------- TMA (F2)
__device__ __forceinline__ void prefetch_tmap(const CUtensorMap& tmap) {
  asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<uint64_t>(&tmap)) : "memory");
}
// c0 = innermost coordinate (elements), c1 = row coordinate.
__device__ __forceinline__ void tma_load_2d(void* smem_dst, const CUtensorMap& tmap, int32_t c0, int32_t c1,
                                            uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(
          smem_u32(smem_dst)),
      "l"(reinterpret_cast<uint64_t>(&tmap)), "r"(c0), "r"(c1), "r"(smem_u32(bar))
      : "memory");
}

// 4-D tiled load (c0 innermost: head-dim column, c1 row, c2 head, c3 batch), the FA3 "bshd" view.
__device__ __forceinline__ void tma_load_4d(void* smem_dst, const CUtensorMap& tmap, int32_t c0, int32_t c1, int32_t c2,
                                            int32_t c3, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];" ::"r"(
          smem_u32(smem_dst)),
      "l"(reinterpret_cast<uint64_t>(&tmap)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(smem_u32(bar))
      : "memory");
}

// 5-D tiled load: the same as tma_load_4d with one more axis (packed GQA's Q: {headdim, group heads, rows,
// kv heads, batch}); the box's elements land in shared memory in axis order, dim 0 fastest.
__device__ __forceinline__ void tma_load_5d(void* smem_dst, const CUtensorMap& tmap, int32_t c0, int32_t c1, int32_t c2,
                                            int32_t c3, int32_t c4, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.5d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5, %6}], [%7];" ::"r"(
          smem_u32(smem_dst)),
      "l"(reinterpret_cast<uint64_t>(&tmap)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(c4), "r"(smem_u32(bar))
      : "memory");
}

// 4-D tiled store from shared memory (same coordinates and swizzled image as tma_load_4d); completes
// through the issuing thread's bulk async-groups: commit, then wait (.read: until the source may be
// overwritten). Boxes reaching past the tensor's extents are clipped (PTX ISA 9.7.9.25, 9.7.9.26).
__device__ __forceinline__ void tma_store_4d(const CUtensorMap& tmap, const void* smem_src, int32_t c0, int32_t c1, int32_t c2,
                                             int32_t c3) {
  asm volatile("cp.async.bulk.tensor.4d.global.shared::cta.bulk_group [%0, {%1, %2, %3, %4}], [%5];" ::"l"(
                   reinterpret_cast<uint64_t>(&tmap)),
               "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(smem_u32(smem_src))
               : "memory");
}
__device__ __forceinline__ void bulk_commit_group() { asm volatile("cp.async.bulk.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void bulk_wait_group_read() {
  asm volatile("cp.async.bulk.wait_group.read %0;" ::"n"(N) : "memory");
}
template <int N>
__device__ __forceinline__ void bulk_wait_group() {
  asm volatile("cp.async.bulk.wait_group %0;" ::"n"(N) : "memory");
}

// ---------------------------------------------------------------- named barriers
// bar.sync waits until `threads` threads (whole warps) have arrived at barrier `id` (1..15; 0 is
// __syncthreads); bar.arrive counts the calling warps without waiting (PTX ISA 9.7.13.1).
__device__ __forceinline__ void named_barrier_sync(uint32_t id, uint32_t threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_barrier_arrive(uint32_t id, uint32_t threads) {
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

// ---------------------------------------------------------------- wgmma descriptor (F4)
enum : uint32_t { kSwizzleNone = 0, kSwizzle128B = 1, kSwizzle64B = 2, kSwizzle32B = 3 };

__device__ __forceinline__ uint64_t make_smem_desc(uint32_t smem_addr, uint32_t lbo_bytes, uint32_t sbo_bytes,
                                                   uint32_t swizzle_mode, uint32_t base_offset = 0) {
  uint64_t d = 0;
  d |= static_cast<uint64_t>((smem_addr & 0x3FFFFu) >> 4) & 0x3FFFull;
  d |= (static_cast<uint64_t>(lbo_bytes >> 4) & 0x3FFFull) << 16;
  d |= (static_cast<uint64_t>(sbo_bytes >> 4) & 0x3FFFull) << 32;
  d |= (static_cast<uint64_t>(base_offset) & 0x7ull) << 49;
  d |= (static_cast<uint64_t>(swizzle_mode) & 0x3ull) << 62;
  return d;
}
// K-major bf16 tile, rows of 64 elements (128 B), 128B swizzle, 1024 B aligned atom base.
// smem_addr may be advanced by 32 B per k16 step inside the row (k_step * 32).
__device__ __forceinline__ uint64_t make_desc_kmajor_sw128(uint32_t smem_addr) {
  return make_smem_desc(smem_addr, /*lbo (unused)*/ 16, /*sbo = 8 rows * 128 B*/ 1024, kSwizzle128B);
}

// ---------------------------------------------------------------- wgmma sync (F6)
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit_group() {
  asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wgmma_wait_group() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
// Compiler-only fence so that accumulator registers are not moved across wgmma issue/wait.
template <int N>
__device__ __forceinline__ void reg_fence(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// ptxas schedules within basic blocks and moves a wgmma.wait_group up past independent work, where
// it blocks the warp early. A branch on `x` that is never taken (x would have to be one particular
// NaN; if it were, the branch only sleeps a nanosecond) ends the block: what follows stays after
// the computation of x.
__device__ __forceinline__ void schedule_after(float x) {
  if (__float_as_uint(x) == 0x7fc00001u) asm volatile("nanosleep.u32 1;");
}

// ---------------------------------------------------------------- wgmma m64n64k16 SS (F5)
// d: 32 f32 accumulators per thread (layout F7). scale_d = 0 -> overwrite, 1 -> accumulate.
__device__ __forceinline__ void wgmma_m64n64k16_f32_bf16_ss(float (&d)[32], uint64_t desc_a, uint64_t desc_b,
                                                            uint32_t scale_d) {
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "setp.ne.b32 p, %34, 0;\n\t"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
      "%32, %33, p, 1, 1, 0, 0;\n\t}"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(desc_a), "l"(desc_b), "r"(scale_d)
      : "memory");
}

// D-fragment coordinates (F7) for accumulator index i of thread t (0..127) of the warpgroup.
__host__ __device__ constexpr int wgmma_d_row(int t, int i) { return 16 * (t / 32) + (t % 32) / 4 + 8 * ((i >> 1) & 1); }
__host__ __device__ constexpr int wgmma_d_col(int t, int i) { return 8 * (i >> 2) + 2 * (t % 4) + (i & 1); }
// A-fragment coordinates (F9) of byte j of register r of thread t, for an 8-bit k32 step.
__host__ __device__ constexpr int wgmma_a8_row(int t, int r) { return 16 * (t / 32) + (t % 32) / 4 + 8 * (r & 1); }
__host__ __device__ constexpr int wgmma_a8_k(int t, int r, int j) { return 16 * (r >> 1) + 4 * (t % 4) + j; }

// ---------------------------------------------------------------- e4m3 (F10)
// Four floats as e4m3 bytes of one register, b0 in the lowest byte.
__device__ __forceinline__ uint32_t pack_e4m3x4(float b0, float b1, float b2, float b3) {
  uint16_t lo, hi;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %2, %1;" : "=h"(lo) : "f"(b0), "f"(b1));
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %2, %1;" : "=h"(hi) : "f"(b2), "f"(b3));
  return static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
}

// ---------------------------------------------------------------- setmaxnreg (F8)
template <int N>
__device__ __forceinline__ void setmaxnreg_inc() {
  static_assert(N >= 24 && N <= 256 && N % 8 == 0, "setmaxnreg: N in [24,256], multiple of 8");
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void setmaxnreg_dec() {
  static_assert(N >= 24 && N <= 256 && N % 8 == 0, "setmaxnreg: N in [24,256], multiple of 8");
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(N));
}

}  // namespace fa_sm90

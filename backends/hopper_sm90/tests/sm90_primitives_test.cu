// Self-checking micro-test for sm90_primitives.cuh (TMA 128B swizzle + mbarrier + wgmma SS + setmaxnreg).
// Build/run (nvcc 12.x/13.x, links libcuda for cuTensorMapEncodeTiled):
//   nvcc -std=c++17 -O2 -gencode arch=compute_90a,code=sm_90a -Ibackends/hopper_sm90/include \
//        backends/hopper_sm90/tests/sm90_primitives_test.cu -o /tmp/sm90_test -lcuda && /tmp/sm90_test
// Exit code: 0 all pass, 1 a check failed, 2 CUDA/driver error, 3 kernel hang (watchdog).
#include <cuda.h>
#include <cuda_runtime.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "sm90_primitives.cuh"

#if defined(CUDA_VERSION) && CUDA_VERSION < 12000
// ---- local syntax-check stubs only (CUDA 11.x headers); never compiled on the GPU machine ----
typedef int CUtensorMapDataType;
enum { CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 = 9 };
enum { CU_TENSOR_MAP_INTERLEAVE_NONE = 0 };
enum { CU_TENSOR_MAP_SWIZZLE_128B = 3 };
enum { CU_TENSOR_MAP_L2_PROMOTION_L2_128B = 2 };
enum { CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE = 0 };
static CUresult cuTensorMapEncodeTiled(CUtensorMap*, int, cuuint32_t, void*, const cuuint64_t*, const cuuint64_t*,
                                       const cuuint32_t*, const cuuint32_t*, int, int, int, int) {
  return CUDA_ERROR_NOT_SUPPORTED;
}
#endif

#define CK(x)                                                                                   \
  do {                                                                                          \
    cudaError_t e_ = (x);                                                                       \
    if (e_ != cudaSuccess) {                                                                    \
      std::printf("CUDA error %s at %s:%d: %s\n", cudaGetErrorName(e_), __FILE__, __LINE__, #x); \
      std::exit(2);                                                                             \
    }                                                                                           \
  } while (0)

constexpr int kM = 64, kN = 64, kK = 64;
constexpr int kTileBytes = 64 * 64 * 2;  // 8192 B per bf16 64x64 tile

// ------------------------------------------------------------------------------------------------
// Kernel A: one warpgroup. TMA A (64x64, K-major) and B (64x64 stored N x K, K-major) into 1024 B
// aligned smem, 4 x wgmma m64n64k16 along K, write the fp32 fragment to C (row-major 64x64).
// Also dumps the raw smem images of A and B (to check the TMA 128B swizzle independently).
// ------------------------------------------------------------------------------------------------
__global__ void __launch_bounds__(128, 1)
    wgmma_tma_kernel(const __grid_constant__ CUtensorMap tmA, const __grid_constant__ CUtensorMap tmB, float* C,
                     uint16_t* smem_dump, unsigned long long* desc_dump) {
  extern __shared__ uint8_t dyn_smem[];
  __shared__ uint64_t bar;
  const int t = threadIdx.x;

  // Round the dynamic smem base up to 1024 B (swizzle atom) in the shared window.
  const uint32_t base = fa_sm90::smem_u32(dyn_smem);
  const uint32_t pad = (1024u - (base & 1023u)) & 1023u;
  uint8_t* sA = dyn_smem + pad;
  uint8_t* sB = sA + kTileBytes;

  if (t == 0) {
    fa_sm90::prefetch_tmap(tmA);
    fa_sm90::prefetch_tmap(tmB);
    fa_sm90::mbar_init(&bar, 1);
    fa_sm90::fence_mbarrier_init();
    fa_sm90::fence_proxy_async_smem();
  }
  __syncthreads();

  if (t == 0) {
    fa_sm90::mbar_arrive_expect_tx(&bar, 2 * kTileBytes);
    fa_sm90::tma_load_2d(sA, tmA, /*c0 (k)*/ 0, /*c1 (row)*/ 0, &bar);
    fa_sm90::tma_load_2d(sB, tmB, 0, 0, &bar);
  }
  fa_sm90::mbar_wait(&bar, /*parity*/ 0);

  float d[32];
#pragma unroll
  for (int i = 0; i < 32; ++i) d[i] = 0.f;

  const uint32_t aAddr = fa_sm90::smem_u32(sA);
  const uint32_t bAddr = fa_sm90::smem_u32(sB);
  fa_sm90::reg_fence(d);
  fa_sm90::wgmma_fence();
#pragma unroll
  for (int ks = 0; ks < kK / 16; ++ks) {
    const uint64_t da = fa_sm90::make_desc_kmajor_sw128(aAddr + 32u * ks);
    const uint64_t db = fa_sm90::make_desc_kmajor_sw128(bAddr + 32u * ks);
    fa_sm90::wgmma_m64n64k16_f32_bf16_ss(d, da, db, ks > 0 ? 1u : 0u);
  }
  fa_sm90::wgmma_commit_group();
  fa_sm90::wgmma_wait_group<0>();
  fa_sm90::reg_fence(d);

#pragma unroll
  for (int i = 0; i < 32; ++i) {
    const int r = fa_sm90::wgmma_d_row(t, i);
    const int c = fa_sm90::wgmma_d_col(t, i);
    C[r * kN + c] = d[i];
  }

  // Raw smem dump (TMA wrote through the async proxy; the mbarrier wait made it visible).
  const uint16_t* s16 = reinterpret_cast<const uint16_t*>(sA);
  for (int i = t; i < 2 * kTileBytes / 2; i += blockDim.x) smem_dump[i] = s16[i];
  if (t == 0) {
    for (int ks = 0; ks < kK / 16; ++ks) {  // for diagnostics only (kept out of the wgmma chain)
      desc_dump[2 * ks] = fa_sm90::make_desc_kmajor_sw128(aAddr + 32u * ks);
      desc_dump[2 * ks + 1] = fa_sm90::make_desc_kmajor_sw128(bAddr + 32u * ks);
    }
    desc_dump[8] = pad;
  }
}

// ------------------------------------------------------------------------------------------------
// setmaxnreg smoke kernel: 3 warpgroups (384 threads, like FA3 1 producer + 2 consumers).
// Launch cap = 65536/384 -> 168 regs; 40 + 2*232 = 504 = 3*168, so .inc must not block.
// ------------------------------------------------------------------------------------------------
__global__ void __launch_bounds__(384, 1) setmaxnreg_kernel(int* out) {
  const int wg = threadIdx.x / 128;
  if (wg == 0) {
    fa_sm90::setmaxnreg_dec<40>();
    out[threadIdx.x] = 1000 + threadIdx.x;
  } else {
    fa_sm90::setmaxnreg_inc<232>();
    // Use some registers so the consumer path is not trivial.
    float acc[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) acc[i] = float(threadIdx.x + i);
#pragma unroll
    for (int it = 0; it < 4; ++it)
#pragma unroll
      for (int i = 0; i < 32; ++i) acc[i] = acc[i] * 0.5f + acc[(i + 1) & 31];
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < 32; ++i) s += acc[i];
    out[threadIdx.x] = 2000 + threadIdx.x + (s != s ? 1 : 0);  // NaN guard keeps s alive
  }
}

// ------------------------------------------------------------------------------------------------ host
static uint16_t f2bf(float f) {  // exact for our small dyadic values
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>(u >> 16);
}

static bool wait_with_watchdog(const char* name, double seconds) {
  auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    cudaError_t e = cudaStreamQuery(0);
    if (e == cudaSuccess) return true;
    if (e != cudaErrorNotReady) {
      std::printf("[%s] CUDA error during kernel: %s (%s)\n", name, cudaGetErrorName(e), cudaGetErrorString(e));
      std::exit(2);
    }
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > seconds) {
      std::printf("[%s] HANG: kernel did not finish in %.1f s\n", name, seconds);
      std::fflush(stdout);
      std::_Exit(3);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

static void make_tmap_64x64_bf16_sw128(CUtensorMap* tm, void* gptr, int rows, int cols) {
  const cuuint64_t gdim[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};  // innermost first
  const cuuint64_t gstride[1] = {static_cast<cuuint64_t>(cols) * 2};  // bytes, for dims 1..rank-1
  const cuuint32_t box[2] = {64, 64};
  const cuuint32_t estride[2] = {1, 1};
  CUresult r = cuTensorMapEncodeTiled(tm, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, gptr, gdim, gstride, box, estride,
                                      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                      CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) {
    const char* s = nullptr;
    cuGetErrorString(r, &s);
    std::printf("cuTensorMapEncodeTiled failed: %d (%s)\n", static_cast<int>(r), s ? s : "?");
    std::exit(2);
  }
}

int main() {
  int dev = 0;
  CK(cudaSetDevice(dev));
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, dev));
  std::printf("device: %s (cc %d.%d, %d SMs)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
  if (prop.major != 9) {
    std::printf("FAIL: needs a compute capability 9.x GPU\n");
    return 2;
  }
  CK(cudaFree(nullptr));  // create the context
  bool all_ok = true;

  // ---------------------------------------------------------------- data
  std::vector<uint16_t> hA(kM * kK), hB(kN * kK);
  std::vector<float> fA(kM * kK), fB(kN * kK);
  uint32_t lcg = 12345u;
  auto rnd = [&]() {
    lcg = lcg * 1664525u + 1013904223u;
    return static_cast<int>((lcg >> 16) % 9) - 4;  // -4..4
  };
  for (int i = 0; i < kM * kK; ++i) {
    fA[i] = 0.25f * rnd();
    hA[i] = f2bf(fA[i]);
  }
  for (int i = 0; i < kN * kK; ++i) {
    fB[i] = 0.25f * rnd();
    hB[i] = f2bf(fB[i]);
  }
  // Reference C = A * B^T (A: M x K row-major, B: N x K row-major), exact in fp32 for these values.
  std::vector<float> ref(kM * kN), refAB(kM * kN);
  for (int m = 0; m < kM; ++m)
    for (int n = 0; n < kN; ++n) {
      float s = 0.f, s2 = 0.f;
      for (int k = 0; k < kK; ++k) {
        s += fA[m * kK + k] * fB[n * kK + k];
        s2 += fA[m * kK + k] * fB[k * kK + n];  // A*B (wrong-transpose hint)
      }
      ref[m * kN + n] = s;
      refAB[m * kN + n] = s2;
    }

  uint16_t *dA, *dB, *dDump;
  float* dC;
  unsigned long long* dDesc;
  CK(cudaMalloc(&dA, kTileBytes));
  CK(cudaMalloc(&dB, kTileBytes));
  CK(cudaMalloc(&dC, kM * kN * sizeof(float)));
  CK(cudaMalloc(&dDump, 2 * kTileBytes));
  CK(cudaMalloc(&dDesc, 16 * sizeof(unsigned long long)));
  CK(cudaMemcpy(dA, hA.data(), kTileBytes, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dB, hB.data(), kTileBytes, cudaMemcpyHostToDevice));
  CK(cudaMemset(dC, 0xFF, kM * kN * sizeof(float)));  // NaN pattern: unwritten cells show as NaN
  CK(cudaMemset(dDump, 0, 2 * kTileBytes));
  CK(cudaMemset(dDesc, 0, 16 * sizeof(unsigned long long)));

  alignas(64) CUtensorMap tmA, tmB;
  make_tmap_64x64_bf16_sw128(&tmA, dA, kM, kK);
  make_tmap_64x64_bf16_sw128(&tmB, dB, kN, kK);
  std::printf("tensor maps encoded (cuTensorMapEncodeTiled via -lcuda), box 64x64 bf16, SWIZZLE_128B\n");

  // ---------------------------------------------------------------- kernel A
  const size_t smem = 2 * kTileBytes + 1024;  // + slack for 1024 B alignment
  wgmma_tma_kernel<<<1, 128, smem>>>(tmA, tmB, dC, dDump, dDesc);
  CK(cudaGetLastError());
  wait_with_watchdog("wgmma_tma_kernel", 10.0);
  CK(cudaDeviceSynchronize());

  std::vector<float> hC(kM * kN);
  std::vector<uint16_t> hDump(2 * kTileBytes / 2);
  std::vector<unsigned long long> hDesc(16);
  CK(cudaMemcpy(hC.data(), dC, kM * kN * sizeof(float), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(hDump.data(), dDump, 2 * kTileBytes, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(hDesc.data(), dDesc, 16 * sizeof(unsigned long long), cudaMemcpyDeviceToHost));
  std::printf("smem pad to 1024 B: %llu; descriptors (A,B) per k-step:", hDesc[8]);
  for (int ks = 0; ks < 4; ++ks) std::printf(" [%016llx %016llx]", hDesc[2 * ks], hDesc[2 * ks + 1]);
  std::printf("\n");

  // (1) TMA swizzle check: element (r, c) expected at byte r*128 + ((c/8 ^ r%8)*16) + (c%8)*2.
  {
    const std::vector<uint16_t>* src[2] = {&hA, &hB};
    const char* nm[2] = {"A", "B"};
    for (int which = 0; which < 2; ++which) {
      int bad = 0, bad_linear = 0, first_r = -1, first_c = -1;
      for (int r = 0; r < 64; ++r)
        for (int c = 0; c < 64; ++c) {
          const uint16_t want = (*src[which])[r * 64 + c];
          const int off_sw = r * 128 + (((c / 8) ^ (r % 8)) * 16) + (c % 8) * 2;
          const int off_lin = r * 128 + c * 2;
          const uint16_t got = hDump[which * 4096 + off_sw / 2];
          if (got != want) {
            if (bad++ == 0) first_r = r, first_c = c;
          }
          if (hDump[which * 4096 + off_lin / 2] != want) ++bad_linear;
        }
      if (bad == 0) {
        std::printf("PASS tma_swizzle_128B[%s]: smem image matches r*128 + ((c/8 ^ r%%8)*16) + (c%%8)*2\n", nm[which]);
      } else {
        all_ok = false;
        std::printf("FAIL tma_swizzle_128B[%s]: %d/4096 mismatches, first (row %d, col %d); "
                    "unswizzled-layout mismatches: %d%s\n",
                    nm[which], bad, first_r, first_c, bad_linear,
                    bad_linear == 0 ? " (=> TMA did NOT swizzle)" : "");
      }
    }
  }

  // (2) wgmma result check.
  {
    double max_err = 0.0, max_err_ab = 0.0, max_err_t = 0.0;
    int bad = 0, first = -1, nan_cells = 0;
    int bad_by_band[4] = {0, 0, 0, 0}, bad_by_colgrp[8] = {0};
    for (int m = 0; m < kM; ++m)
      for (int n = 0; n < kN; ++n) {
        const float g = hC[m * kN + n];
        if (std::isnan(g)) ++nan_cells;
        const double e = std::fabs(static_cast<double>(g) - ref[m * kN + n]);
        max_err = std::max(max_err, std::isnan(g) ? 1e30 : e);
        max_err_ab = std::max(max_err_ab, std::fabs(static_cast<double>(g) - refAB[m * kN + n]));
        max_err_t = std::max(max_err_t, std::fabs(static_cast<double>(g) - ref[n * kN + m]));
        if (!(e <= 1e-3)) {
          if (bad++ == 0) first = m * kN + n;
          bad_by_band[m / 16]++;
          bad_by_colgrp[n / 8]++;
        }
      }
    if (bad == 0) {
      std::printf("PASS wgmma_m64n64k16_ss (C = A*B^T, K=64, 4 k-steps): max_abs_err = %.3g\n", max_err);
    } else {
      all_ok = false;
      std::printf("FAIL wgmma_m64n64k16_ss: %d/4096 mismatches, max_abs_err = %.6g, NaN (unwritten) cells = %d\n",
                  bad, max_err, nan_cells);
      std::printf("  first mismatch (row %d, col %d): expected %.6f got %.6f\n", first / kN, first % kN, ref[first],
                  hC[first]);
      std::printf("  mismatches by 16-row band (warp): %d %d %d %d; by 8-col group:", bad_by_band[0], bad_by_band[1],
                  bad_by_band[2], bad_by_band[3]);
      for (int j = 0; j < 8; ++j) std::printf(" %d", bad_by_colgrp[j]);
      std::printf("\n  hints: max_err vs A*B (no transpose) = %.3g, vs (A*B^T)^T (D layout transposed) = %.3g\n",
                  max_err_ab, max_err_t);
      // Which single k-step would explain row 0? (descriptor K-advance diagnosis)
      for (int ks = 0; ks < 4; ++ks) {
        double e0 = 0.0;
        for (int n = 0; n < kN; ++n) {
          float s = 0.f;
          for (int k = 16 * ks; k < 16 * ks + 16; ++k) s += fA[k] * fB[n * kK + k];
          e0 = std::max(e0, std::fabs(static_cast<double>(hC[n]) - 4.0 * s));
        }
        std::printf("  row0 vs 4x(k-step %d only): max_err %.3g\n", ks, e0);
      }
      std::printf("  got row 0 [0..7]:");
      for (int n = 0; n < 8; ++n) std::printf(" %.3f", hC[n]);
      std::printf("\n  ref row 0 [0..7]:");
      for (int n = 0; n < 8; ++n) std::printf(" %.3f", ref[n]);
      std::printf("\n");
    }
  }

  // ---------------------------------------------------------------- setmaxnreg smoke
  {
    cudaFuncAttributes fa;
    CK(cudaFuncGetAttributes(&fa, setmaxnreg_kernel));
    std::printf("setmaxnreg_kernel: numRegs at entry = %d (expect 168 for 384 threads, launch_bounds(384,1))\n",
                fa.numRegs);
    int* dOut;
    CK(cudaMalloc(&dOut, 384 * sizeof(int)));
    CK(cudaMemset(dOut, 0, 384 * sizeof(int)));
    setmaxnreg_kernel<<<1, 384>>>(dOut);
    CK(cudaGetLastError());
    wait_with_watchdog("setmaxnreg_kernel", 10.0);
    CK(cudaDeviceSynchronize());
    std::vector<int> hOut(384);
    CK(cudaMemcpy(hOut.data(), dOut, 384 * sizeof(int), cudaMemcpyDeviceToHost));
    int bad = 0, first = -1;
    for (int i = 0; i < 384; ++i) {
      const int want = (i < 128 ? 1000 : 2000) + i;
      if (hOut[i] != want && bad++ == 0) first = i;
    }
    if (bad == 0) {
      std::printf("PASS setmaxnreg (producer WG dec 40, 2 consumer WGs inc 232)\n");
    } else {
      all_ok = false;
      std::printf("FAIL setmaxnreg: %d bad outputs, first thread %d got %d\n", bad, first, hOut[first]);
    }
    CK(cudaFree(dOut));
  }

  CK(cudaFree(dA));
  CK(cudaFree(dB));
  CK(cudaFree(dC));
  CK(cudaFree(dDump));
  CK(cudaFree(dDesc));
  std::printf("%s\n", all_ok ? "ALL PASS" : "SOME CHECKS FAILED");
  return all_ok ? 0 : 1;
}

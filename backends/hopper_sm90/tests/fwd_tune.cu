// fwd_tune.cu — times alternatives of the FA3 forward's tile traits (fwd_tune_d*.cu) on the
// standard grid's shapes (16k tokens, model dim 2048, bf16, random inputs in [-1, 1]) and checks
// each against the instance's tile on the same inputs (max |difference| of the outputs).
//
//   fa_sm90_fwd_tune [--d 64,128,256] [--seqlen 1024,4096,16384] [--causal 0,1] [--iters 15]
//
// A variant may force the grid (FA_SM90_PERSISTENT / FA_SM90_BLOCK_MAJOR). The variants take turns in
// rounds so that clock and power drift spread over all of them. Output: one line per (d,
// causal, seqlen, variant): median ms, TFLOP/s and the ratio to the first variant.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "fa_common.h"
#include "fwd_tune.h"

#define CK(x)                                                                                        \
    do {                                                                                             \
        cudaError_t e_ = (x);                                                                        \
        if (e_ != cudaSuccess) {                                                                     \
            std::printf("CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__, __LINE__, #x); \
            std::exit(2);                                                                            \
        }                                                                                            \
    } while (0)

__global__ void fill_random(__nv_bfloat16* x, size_t n, uint32_t seed) {
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
        uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
        h ^= h >> 15;
        h *= 2246822519u;
        h ^= h >> 13;
        h *= 3266489917u;
        h ^= h >> 16;
        x[i] = __float2bfloat16(static_cast<float>(h & 0xFFFFFF) / 8388608.0f - 1.0f);
    }
}

__global__ void max_abs_diff(const __nv_bfloat16* a, const __nv_bfloat16* b, size_t n, unsigned* out) {
    float m = 0.0f;
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
        m = fmaxf(m, fabsf(__bfloat162float(a[i]) - __bfloat162float(b[i])));
    if (m != m) m = 1e30f; /* NaN */
    atomicMax(out, __float_as_uint(m));
}

static std::vector<int> parse_list(const char* s) {
    std::vector<int> v;
    for (const char* p = s; *p;) {
        v.push_back(std::atoi(p));
        const char* c = std::strchr(p, ',');
        if (!c) break;
        p = c + 1;
    }
    return v;
}

int main(int argc, char** argv) {
    std::vector<int> dims = {64, 128, 256}, seqlens = {1024, 4096, 16384};
    std::vector<int> causals = {0, 1};
    int iters = 15;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--d") && i + 1 < argc) dims = parse_list(argv[++i]);
        else if (!std::strcmp(argv[i], "--seqlen") && i + 1 < argc) seqlens = parse_list(argv[++i]);
        else if (!std::strcmp(argv[i], "--iters") && i + 1 < argc) iters = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--causal") && i + 1 < argc) causals = parse_list(argv[++i]);
        else {
            std::printf("usage: %s [--d 64,128,256] [--seqlen 1024,4096,16384] [--causal 0,1] [--iters N]\n", argv[0]);
            return 2;
        }
    }
    fa_cuda::LaunchContext ctx{};
    CK(cudaDeviceGetAttribute(&ctx.num_sms, cudaDevAttrMultiProcessorCount, 0));
    CK(cudaDeviceGetAttribute(&ctx.max_smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0));
    ctx.cc_major = 9;
    cudaStream_t stream;
    CK(cudaStreamCreate(&stream));
    ctx.stream = stream;
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device %s, %d SMs; bf16, 16384 tokens, model dim 2048, median of %d\n", prop.name, ctx.num_sms, iters);
    std::printf("%-5s %-6s %-6s %-52s %9s %8s %7s %10s\n", "d", "causal", "seqlen", "variant", "ms", "TFLOP/s", "ratio", "max|diff|");

    const size_t n = size_t(16384) * 2048;
    __nv_bfloat16 *q, *k, *v, *o, *o_ref;
    float* lse;
    unsigned* diff;
    CK(cudaMalloc(&q, n * 2));
    CK(cudaMalloc(&k, n * 2));
    CK(cudaMalloc(&v, n * 2));
    CK(cudaMalloc(&o, n * 2));
    CK(cudaMalloc(&o_ref, n * 2));
    CK(cudaMalloc(&lse, size_t(16384) * 64 * 4));
    CK(cudaMalloc(&diff, 4));
    fill_random<<<1024, 256>>>(q, n, 1);
    fill_random<<<1024, 256>>>(k, n, 2);
    fill_random<<<1024, 256>>>(v, n, 3);
    CK(cudaDeviceSynchronize());
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));

    for (int d : dims) {
        std::vector<TuneVariant> variants;
        if (d == 64) tune_variants_d64(variants);
        else if (d == 128) tune_variants_d128(variants);
        else if (d == 256) tune_variants_d256(variants);
        for (int causal : causals) {
            for (int s : seqlens) {
                const int b = 16384 / s, h = 2048 / d;
                fa_params p{};
                p.struct_size = sizeof p;
                p.abi_version = FA_ABI_VERSION;
                p.dtype = p.out_dtype = FA_DTYPE_BF16;
                p.batch = b, p.seqlen_q = p.seqlen_k = s, p.nheads_q = p.nheads_kv = h, p.headdim_qk = p.headdim_v = d;
                p.total_q = p.total_k = b * s, p.kv_batch = b;
                const int64_t row = int64_t(h) * d;
                p.q = {q, row * s, row, d}, p.k = {k, row * s, row, d}, p.v = {v, row * s, row, d};
                p.out = {o, row * s, row, d};
                p.softmax_lse = lse, p.lse_head_stride = s, p.lse_batch_stride = int64_t(h) * s;
                p.softmax_scale = 1.0f / std::sqrt(float(d));
                p.is_causal = causal, p.window_left = -1, p.window_right = causal ? 0 : -1, p.num_splits = 1;
                const double flops = 4.0 * b * h * double(s) * s * d * (causal ? 0.5 : 1.0);
                // Interleaved rounds (every variant once per round), so that clock and power drift
                // spread over all variants alike; the median of each variant's times.
                const int nv = static_cast<int>(variants.size());
                std::vector<std::vector<float>> times(nv);
                std::vector<bool> ok(nv, true);
                for (int round = -2; round < iters; ++round) { /* rounds −2, −1: warm-up */
                    for (int vi = 0; vi < nv; ++vi) {
                        if (!ok[vi]) continue;
                        const TuneVariant& var = variants[vi];
                        if (var.persistent) setenv("FA_SM90_PERSISTENT", var.persistent, 1);
                        if (var.block_major) setenv("FA_SM90_BLOCK_MAJOR", var.block_major, 1);
                        p.out.data = vi == 0 ? o_ref : o;
                        CK(cudaEventRecord(e0, stream));
                        ok[vi] = var.run(p, ctx) == FA_OK;
                        CK(cudaEventRecord(e1, stream));
                        unsetenv("FA_SM90_PERSISTENT");
                        unsetenv("FA_SM90_BLOCK_MAJOR");
                        CK(cudaEventSynchronize(e1));
                        float ms;
                        CK(cudaEventElapsedTime(&ms, e0, e1));
                        if (round >= 0) times[vi].push_back(ms);
                        if (!ok[vi]) std::printf("%s: %s\n", var.name, fa_get_last_error());
                    }
                }
                CK(cudaDeviceSynchronize());
                double first_ms = 0;
                for (int vi = 0; vi < nv; ++vi) {
                    if (!ok[vi] || times[vi].empty()) continue;
                    std::sort(times[vi].begin(), times[vi].end());
                    const double ms = times[vi][times[vi].size() / 2];
                    if (vi == 0) first_ms = ms;
                    float md = 0.0f;
                    if (vi > 0) { /* rerun once and compare with variant 0's output */
                        if (variants[vi].persistent) setenv("FA_SM90_PERSISTENT", variants[vi].persistent, 1);
                        if (variants[vi].block_major) setenv("FA_SM90_BLOCK_MAJOR", variants[vi].block_major, 1);
                        p.out.data = o;
                        variants[vi].run(p, ctx);
                        unsetenv("FA_SM90_PERSISTENT");
                        unsetenv("FA_SM90_BLOCK_MAJOR");
                        CK(cudaMemset(diff, 0, 4));
                        max_abs_diff<<<1024, 256, 0, stream>>>(o, o_ref, size_t(b) * s * h * d, diff);
                        unsigned bits;
                        CK(cudaMemcpy(&bits, diff, 4, cudaMemcpyDeviceToHost));
                        std::memcpy(&md, &bits, 4);
                    }
                    std::printf("%-5d %-6d %-6d %-52s %9.3f %8.1f %7.3f %10.2e\n", d, causal, s, variants[vi].name, ms,
                                flops / ms * 1e-9, first_ms / ms, md);
                }
            }
        }
    }
    return 0;
}

// bwd_check.cu — GPU correctness (and speed) driver for the sm80 backward.
//
// For each case: random q, k, v, dO rounded to the dtype; a float64 CPU forward gives out and
// LSE (rounded to the dtype / fp32, as the forward kernel would return them); the backward runs
// on the GPU (fa_sm80::run_bwd directly, or fa_backward through the C ABI when built with
// -DBWD_CHECK_USE_ABI); dq, dk, dv (and dsink) are compared with
//   * a float64 reference on the same rounded inputs (exact out and LSE), and
//   * a same-dtype baseline on the CPU (fp32 sums, every matmul / softmax / elementwise result
//     rounded to the dtype, as a naive dtype implementation computes it).
// Pass: max|gpu - ref| <= 2 * max|baseline - ref| + 1e-4 * max|ref| (+1e-6), per gradient.
// Also checked: padding columns and the rows that are no key (leftpad / past seqused_k) of the
// outputs, and, for deterministic cases, that two runs give bitwise identical dq, dk, dv.
// One line per case; exit status 1 when any case fails.
//
// Build (see the report / CMake): self-contained, instantiating the kernels in this TU
//   nvcc -std=c++17 -O2 -gencode arch=compute_90,code=sm_90 -DBWD_CHECK_INSTANTIATE \
//        -Ibackends/cuda_sm80/include -Ibackends/common/include \
//        backends/cuda_sm80/tests/bwd_check.cu backends/cuda_sm80/src/bwd_host.cu \
//        backends/common/src/last_error.cpp backends/common/src/features.cpp \
//        backends/common/src/check_params.cpp -Ibackends/common/generated -o bwd_check
// (-DBWD_CHECK_HDIM=128 limits the instantiated head dims to one for a quick build), or
// linked with the generated instance objects (no -DBWD_CHECK_INSTANTIATE), or with
// -DBWD_CHECK_USE_ABI against libfa_cuda_sm80.so.
//
// Usage: bwd_check [--selftest] [--quick] [--bench] [--filter SUBSTRING] [--seed N]
//   --selftest  CPU only (no GPU needed): the float64 reference against central differences
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "flash_attn_abi.h"
#include "philox.cuh"

#ifndef BWD_CHECK_USE_ABI
#ifdef BWD_CHECK_INSTANTIATE
#include "flash_bwd_launch.cuh"
#else
#include "sm80_launch.cuh"
#endif
#endif

#define CUDA_OK(x)                                                                                   \
    do {                                                                                             \
        cudaError_t e_ = (x);                                                                        \
        if (e_ != cudaSuccess) {                                                                     \
            std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
            std::exit(2);                                                                            \
        }                                                                                            \
    } while (0)

namespace {

// ---- random numbers (own generator: <random> of newer libstdc++ trips nvcc 11.8) ---------

struct Rng {
    uint64_t state;
    explicit Rng(uint64_t seed) : state(seed * 0x9E3779B97F4A7C15ull + 1) {}
    uint64_t next() {  // splitmix64
        uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
    float uniform(float lo, float hi) { return lo + static_cast<float>(uniform()) * (hi - lo); }
    float normal() {  // Box-Muller
        const double u1 = 1.0 - uniform(), u2 = uniform();
        return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
    }
};

// ---- dtype helpers ------------------------------------------------------------------------

uint16_t to_bits(float f, int dtype) {
    if (dtype == FA_DTYPE_BF16) {
        uint32_t u;
        std::memcpy(&u, &f, 4);
        if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
        u += 0x7fffu + ((u >> 16) & 1u);
        return static_cast<uint16_t>(u >> 16);
    }
    const __half h = __float2half_rn(f);
    uint16_t bits;
    std::memcpy(&bits, &h, 2);
    return bits;
}

float from_bits(uint16_t bits, int dtype) {
    if (dtype == FA_DTYPE_BF16) {
        const uint32_t u = static_cast<uint32_t>(bits) << 16;
        float f;
        std::memcpy(&f, &u, 4);
        return f;
    }
    __half h;
    std::memcpy(&h, &bits, 2);
    return __half2float(h);
}

float rd(float x, int dtype) { return from_bits(to_bits(x, dtype), dtype); }

const char* dtype_name(int dtype) { return dtype == FA_DTYPE_BF16 ? "bf16" : "fp16"; }

[[maybe_unused]] int instance_hdim(int d) { return d <= 32 ? 32 : d <= 64 ? 64 : d <= 96 ? 96 : d <= 128 ? 128 : d <= 192 ? 192 : 256; }

void parallel_for(int n, const std::function<void(int)>& body) {
    const int workers = std::max(1, std::min<int>(n, static_cast<int>(std::thread::hardware_concurrency())));
    std::vector<std::thread> threads;
    std::atomic<int> next{0};
    for (int w = 0; w < workers; ++w)
        threads.emplace_back([&] {
            for (int i = next++; i < n; i = next++) body(i);
        });
    for (auto& t : threads) t.join();
}

// ---- a case --------------------------------------------------------------------------------

struct Case {
    std::string name;
    int dtype = FA_DTYPE_BF16;
    int d = 128;
    int batch = 2, hq = 2, hk = 2;
    int sq = 128, sk = 128;          // dense lengths
    std::vector<int> lens_q, lens_k;  // varlen (non-empty = varlen); lens_k = raw rows per sequence
    std::vector<int> leftpad, used;   // optional, varlen only
    bool causal = false;
    int wl = -1, wr = -1;
    float softcap = 0.0f;
    int alibi = 0;  // 0 none, 1 (hq), 2 (batch, hq)
    float dropout = 0.0f;
    bool sinks = false;
    bool deterministic = false;
    bool lib_workspace = false;  // let run_bwd allocate the workspace
    int pad = 0;                 // extra elements per head row (strides stay multiples of 8)
};

struct Seq {
    int sq, sk;       // rows, keys
    int64_t q0;       // first token row
    int64_t k0;       // first raw k row of the sequence (row of raw key 0)
    int leftpad;      // key j = raw row leftpad + j
    int capacity;     // raw rows owned by the sequence
};

struct Problem {
    Case c;
    bool varlen = false;
    int total_q = 0, total_k = 0, max_q = 0, max_k = 0;
    std::vector<Seq> seqs;
    int ds = 0;  // head stride (d + pad)
    std::vector<float> q, k, v, dout;  // rounded values, (rows, heads, ds)
    std::vector<float> slopes;        // (batch, hq) expanded
    std::vector<float> sink;          // (hq)
    float scale = 0.0f;
    // reference / baseline results
    std::vector<double> out, lse;     // out (total_q, hq, d) exact; lse (hq, total_q)
    std::vector<double> dq, dk, dv, dsink;
    std::vector<float> bdq, bdk, bdv, bdsink;
};

int64_t at(int64_t row, int head, int heads, int ds, int c) { return (row * heads + head) * ds + c; }

bool visible(const Problem& p, const Seq& s, int i, int j) {
    const int a = i + s.sk - s.sq;
    int wl = p.c.wl, wr = p.c.causal ? 0 : p.c.wr;
    if (wl >= 0 && j < a - wl) return false;
    if (wr >= 0 && j > a + wr) return false;
    return true;
}

bool kept(const Problem& p, int b, int h, int i, int j, uint64_t seed, uint64_t offset, uint32_t threshold) {
    fa_sm80::DropoutParams dp{seed, offset, threshold, 0.0f};
    return fa_sm80::dropout_keep(dp, static_cast<uint32_t>(b * p.c.hq + h), static_cast<uint32_t>(i), static_cast<uint32_t>(j));
}

constexpr uint64_t kSeed = 0x1234abcd9876ull, kOffset = 77;

void setup(Problem& p, Rng& rng) {
    const Case& c = p.c;
    p.varlen = !c.lens_q.empty();
    p.ds = c.d + c.pad;
    p.scale = 1.0f / std::sqrt(static_cast<float>(c.d));
    int64_t q0 = 0, k0 = 0;
    for (int b = 0; b < c.batch; ++b) {
        Seq s;
        const int lq = p.varlen ? c.lens_q[b] : c.sq;
        const int cap = p.varlen ? c.lens_k[b] : c.sk;
        s.leftpad = c.leftpad.empty() ? 0 : c.leftpad[b];
        const int used = c.used.empty() ? cap : c.used[b];
        s.sq = lq;
        s.sk = used - s.leftpad;
        s.q0 = q0;
        s.k0 = k0;
        s.capacity = cap;
        q0 += lq;
        k0 += cap;
        p.max_q = std::max(p.max_q, lq);
        p.max_k = std::max(p.max_k, cap);
        p.seqs.push_back(s);
    }
    p.total_q = static_cast<int>(q0);
    p.total_k = static_cast<int>(k0);
    auto fill = [&](std::vector<float>& x, int64_t rows, int heads) {
        x.assign(rows * heads * p.ds, 0.0f);
        for (int64_t r = 0; r < rows; ++r)
            for (int h = 0; h < heads; ++h)
                for (int cc = 0; cc < c.d; ++cc) x[at(r, h, heads, p.ds, cc)] = rd(rng.normal(), c.dtype);
    };
    fill(p.q, p.total_q, c.hq);
    fill(p.k, p.total_k, c.hk);
    fill(p.v, p.total_k, c.hk);
    fill(p.dout, p.total_q, c.hq);
    p.slopes.assign(static_cast<size_t>(c.batch) * c.hq, 0.0f);
    if (c.alibi) {
        for (int b = 0; b < c.batch; ++b)
            for (int h = 0; h < c.hq; ++h) {
                if (b == 0 || c.alibi == 2)
                    p.slopes[b * c.hq + h] = rng.uniform(0.01f, 0.5f);
                else
                    p.slopes[b * c.hq + h] = p.slopes[h];
            }
    }
    if (c.sinks) {
        for (int h = 0; h < c.hq; ++h) p.sink.push_back(rng.uniform(-2.0f, 3.0f));
    }
}

// ---- float64 reference: forward (out, LSE) and backward ----------------------------------------

void reference(Problem& p) {
    const Case& c = p.c;
    const int group = c.hq / c.hk;
    const uint32_t threshold = c.dropout > 0 ? fa_sm80::dropout_threshold(c.dropout) : 0u;
    const double keep_scale = c.dropout > 0 ? 1.0 / (1.0 - static_cast<double>(c.dropout)) : 1.0;
    p.out.assign(static_cast<size_t>(p.total_q) * c.hq * c.d, 0.0);
    p.lse.assign(static_cast<size_t>(p.total_q) * c.hq, 0.0);
    p.dq.assign(static_cast<size_t>(p.total_q) * c.hq * c.d, 0.0);
    p.dk.assign(static_cast<size_t>(p.total_k) * c.hk * c.d, 0.0);
    p.dv.assign(static_cast<size_t>(p.total_k) * c.hk * c.d, 0.0);
    std::vector<double> dsink_part(static_cast<size_t>(c.batch) * c.hq, 0.0);
    parallel_for(c.batch * c.hk, [&](int task) {
        const int b = task / c.hk, kvh = task % c.hk;
        const Seq& s = p.seqs[b];
        std::vector<double> P(static_cast<size_t>(s.sq) * std::max(1, s.sk)), T(P.size()), keep(P.size());
        for (int gi = 0; gi < group; ++gi) {
            const int h = kvh * group + gi;
            const double slope = p.slopes[b * c.hq + h];
            for (int i = 0; i < s.sq; ++i) {
                const float* qi = &p.q[at(s.q0 + i, h, c.hq, p.ds, 0)];
                double mx = -INFINITY;
                bool any = false;
                std::vector<double> sc(s.sk, -INFINITY);
                for (int j = 0; j < s.sk; ++j) {
                    const float* kj = &p.k[at(s.k0 + s.leftpad + j, kvh, c.hk, p.ds, 0)];
                    double dot = 0;
                    for (int cc = 0; cc < c.d; ++cc) dot += static_cast<double>(qi[cc]) * kj[cc];
                    double x = dot * p.scale;
                    double t = 0;
                    if (c.softcap > 0) {
                        t = std::tanh(x / c.softcap);
                        x = c.softcap * t;
                    }
                    T[static_cast<size_t>(i) * s.sk + j] = t;
                    if (!visible(p, s, i, j)) continue;
                    if (c.alibi) x += -slope * std::abs(static_cast<double>(i + s.sk - s.sq - j));
                    sc[j] = x;
                    mx = std::max(mx, x);
                    any = true;
                }
                double sink = c.sinks ? p.sink[h] : -INFINITY;
                double lse;
                if (!any && !c.sinks) {
                    lse = INFINITY;
                } else {
                    const double m = std::max(mx, sink);
                    double l = c.sinks ? std::exp(sink - m) : 0.0;
                    for (int j = 0; j < s.sk; ++j)
                        if (sc[j] > -INFINITY) l += std::exp(sc[j] - m);
                    lse = m + std::log(l);
                }
                p.lse[static_cast<size_t>(h) * p.total_q + s.q0 + i] = lse;
                double* o = &p.out[(static_cast<size_t>(s.q0 + i) * c.hq + h) * c.d];
                for (int j = 0; j < s.sk; ++j) {
                    const double pr = sc[j] > -INFINITY ? std::exp(sc[j] - lse) : 0.0;
                    double kp = 1.0;
                    if (c.dropout > 0) kp = kept(p, b, h, i, j, kSeed, kOffset, threshold) ? keep_scale : 0.0;
                    P[static_cast<size_t>(i) * s.sk + j] = pr;
                    keep[static_cast<size_t>(i) * s.sk + j] = kp;
                    const float* vj = &p.v[at(s.k0 + s.leftpad + j, kvh, c.hk, p.ds, 0)];
                    if (pr * kp != 0)
                        for (int cc = 0; cc < c.d; ++cc) o[cc] += pr * kp * vj[cc];
                }
            }
            // backward
            for (int i = 0; i < s.sq; ++i) {
                const float* doi = &p.dout[at(s.q0 + i, h, c.hq, p.ds, 0)];
                const float* qi = &p.q[at(s.q0 + i, h, c.hq, p.ds, 0)];
                const double* o = &p.out[(static_cast<size_t>(s.q0 + i) * c.hq + h) * c.d];
                double D = 0;
                for (int cc = 0; cc < c.d; ++cc) D += static_cast<double>(doi[cc]) * o[cc];
                if (c.sinks) {
                    const double lse = p.lse[static_cast<size_t>(h) * p.total_q + s.q0 + i];
                    dsink_part[b * c.hq + h] -= std::exp(p.sink[h] - lse) * D;
                }
                double* dqi = &p.dq[(static_cast<size_t>(s.q0 + i) * c.hq + h) * c.d];
                for (int j = 0; j < s.sk; ++j) {
                    const double pr = P[static_cast<size_t>(i) * s.sk + j];
                    if (pr == 0) continue;
                    const double kp = keep[static_cast<size_t>(i) * s.sk + j];
                    const int64_t kr = s.k0 + s.leftpad + j;
                    const float* vj = &p.v[at(kr, kvh, c.hk, p.ds, 0)];
                    const float* kj = &p.k[at(kr, kvh, c.hk, p.ds, 0)];
                    double dp = 0;
                    for (int cc = 0; cc < c.d; ++cc) dp += static_cast<double>(doi[cc]) * vj[cc];
                    dp *= kp;
                    const double t = T[static_cast<size_t>(i) * s.sk + j];
                    const double ds = pr * (dp - D) * (c.softcap > 0 ? 1.0 - t * t : 1.0);
                    double* dkj = &p.dk[(static_cast<size_t>(kr) * c.hk + kvh) * c.d];
                    double* dvj = &p.dv[(static_cast<size_t>(kr) * c.hk + kvh) * c.d];
                    for (int cc = 0; cc < c.d; ++cc) {
                        dqi[cc] += p.scale * ds * kj[cc];
                        dkj[cc] += p.scale * ds * qi[cc];
                        dvj[cc] += pr * kp * doi[cc];
                    }
                }
            }
        }
    });
    p.dsink.assign(c.hq, 0.0);
    for (int b = 0; b < c.batch; ++b)
        for (int h = 0; h < c.hq; ++h) p.dsink[h] += dsink_part[b * c.hq + h];
}

void baseline(Problem& p);

// ---- CPU self-test of the reference: gradients against central differences -------------------

// L = sum dO . out for the inputs given in double (same layout as p.q, p.k, p.v; sink (hq)).
double forward_loss(const Problem& p, const std::vector<double>& q, const std::vector<double>& k,
                    const std::vector<double>& v, const std::vector<double>& sink) {
    const Case& c = p.c;
    const int group = c.hq / c.hk;
    const uint32_t threshold = c.dropout > 0 ? fa_sm80::dropout_threshold(c.dropout) : 0u;
    const double keep_scale = c.dropout > 0 ? 1.0 / (1.0 - static_cast<double>(c.dropout)) : 1.0;
    double loss = 0;
    for (int b = 0; b < c.batch; ++b) {
        const Seq& s = p.seqs[b];
        for (int h = 0; h < c.hq; ++h) {
            const int kvh = h / group;
            for (int i = 0; i < s.sq; ++i) {
                std::vector<double> sc(s.sk, -INFINITY);
                double mx = c.sinks ? sink[h] : -INFINITY;
                for (int j = 0; j < s.sk; ++j) {
                    if (!visible(p, s, i, j)) continue;
                    double dot = 0;
                    for (int cc = 0; cc < c.d; ++cc)
                        dot += q[at(s.q0 + i, h, c.hq, p.ds, cc)] * k[at(s.k0 + s.leftpad + j, kvh, c.hk, p.ds, cc)];
                    double x = dot * p.scale;
                    if (c.softcap > 0) x = c.softcap * std::tanh(x / c.softcap);
                    if (c.alibi) x += -static_cast<double>(p.slopes[b * c.hq + h]) * std::abs(static_cast<double>(i + s.sk - s.sq - j));
                    sc[j] = x;
                    mx = std::max(mx, x);
                }
                if (mx == -INFINITY) continue;
                double l = c.sinks ? std::exp(sink[h] - mx) : 0.0;
                for (int j = 0; j < s.sk; ++j)
                    if (sc[j] > -INFINITY) l += std::exp(sc[j] - mx);
                for (int j = 0; j < s.sk; ++j) {
                    if (sc[j] == -INFINITY) continue;
                    double w = std::exp(sc[j] - mx) / l;
                    if (c.dropout > 0) w *= kept(p, b, h, i, j, kSeed, kOffset, threshold) ? keep_scale : 0.0;
                    for (int cc = 0; cc < c.d; ++cc)
                        loss += w * v[at(s.k0 + s.leftpad + j, kvh, c.hk, p.ds, cc)] * p.dout[at(s.q0 + i, h, c.hq, p.ds, cc)];
                }
            }
        }
    }
    return loss;
}

bool selftest_case(Case c, uint64_t seed) {
    Problem p;
    p.c = c;
    Rng rng(seed);
    setup(p, rng);
    reference(p);
    baseline(p);
    std::vector<double> q(p.q.begin(), p.q.end()), k(p.k.begin(), p.k.end()), v(p.v.begin(), p.v.end());
    std::vector<double> sink(p.sink.begin(), p.sink.end());
    const double step = 1e-5;
    double worst = 0;
    auto probe = [&](std::vector<double>& x, int64_t rows, int heads, const std::vector<double>& grad, int grad_heads) {
        for (int t = 0; t < 12; ++t) {
            const int64_t r = static_cast<int64_t>(rng.uniform() * rows);
            const int h = static_cast<int>(rng.uniform() * heads), cc = static_cast<int>(rng.uniform() * c.d);
            double& e = x[at(r, h, heads, p.ds, cc)];
            const double keep = e;
            e = keep + step;
            const double up = forward_loss(p, q, k, v, sink);
            e = keep - step;
            const double down = forward_loss(p, q, k, v, sink);
            e = keep;
            const double fd = (up - down) / (2 * step);
            const double an = grad[(static_cast<size_t>(r) * grad_heads + h) * c.d + cc];
            worst = std::max(worst, std::abs(fd - an) / (1e-3 + std::abs(fd)));
        }
    };
    probe(q, p.total_q, c.hq, p.dq, c.hq);
    probe(k, p.total_k, c.hk, p.dk, c.hk);
    probe(v, p.total_k, c.hk, p.dv, c.hk);
    if (c.sinks)
        for (int h = 0; h < c.hq; ++h) {
            const double keep = sink[h];
            sink[h] = keep + step;
            const double up = forward_loss(p, q, k, v, sink);
            sink[h] = keep - step;
            const double down = forward_loss(p, q, k, v, sink);
            sink[h] = keep;
            const double fd = (up - down) / (2 * step);
            worst = std::max(worst, std::abs(fd - p.dsink[h]) / (1e-3 + std::abs(fd)));
        }
    double base_err = 0, refmax = 0;
    for (size_t i = 0; i < p.dq.size(); ++i) {
        base_err = std::max(base_err, std::abs(p.bdq[i] - p.dq[i]));
        refmax = std::max(refmax, std::abs(p.dq[i]));
    }
    const bool ok = worst < 1e-5;
    std::printf("%s selftest %-40s d=%-3d reference vs central differences: max rel err %.2e; baseline dq err %.2e (max |dq| %.2e)\n",
                ok ? "ok  " : "FAIL", c.name.c_str(), c.d, worst, base_err, refmax);
    return ok;
}

int selftest() {
    std::vector<Case> cases;
    Case base;
    base.d = 16;
    base.batch = 2;
    base.hq = 4;
    base.hk = 2;
    base.sq = 11;
    base.sk = 9;
    base.pad = 8;
    Case c = base;
    c.name = "dense gqa";
    cases.push_back(c);
    c.name = "causal sq>sk";
    c.causal = true;
    cases.push_back(c);
    c = base;
    c.name = "window (3,1) softcap 2";
    c.wl = 3;
    c.wr = 1;
    c.softcap = 2.0f;
    cases.push_back(c);
    c = base;
    c.name = "alibi per batch causal";
    c.alibi = 2;
    c.causal = true;
    cases.push_back(c);
    c = base;
    c.name = "dropout 0.25";
    c.dropout = 0.25f;
    cases.push_back(c);
    c = base;
    c.name = "sinks causal";
    c.sinks = true;
    c.causal = true;
    cases.push_back(c);
    c = base;
    c.name = "varlen leftpad seqused causal";
    c.batch = 3;
    c.lens_q = {4, 0, 7};
    c.lens_k = {10, 3, 12};
    c.leftpad = {2, 0, 3};
    c.used = {9, 3, 11};
    c.causal = true;
    cases.push_back(c);
    int failed = 0;
    for (const Case& cc : cases) failed += selftest_case(cc, 7) ? 0 : 1;
    std::printf("# selftest: %d of %zu passed\n", static_cast<int>(cases.size()) - failed, cases.size());
    return failed == 0 ? 0 : 1;
}

// ---- same-dtype baseline (fp32 sums, results rounded to the dtype) ---------------------------

void baseline(Problem& p) {
    const Case& c = p.c;
    const int dt = c.dtype, group = c.hq / c.hk;
    const uint32_t threshold = c.dropout > 0 ? fa_sm80::dropout_threshold(c.dropout) : 0u;
    const float keep_scale = c.dropout > 0 ? 1.0f / (1.0f - c.dropout) : 1.0f;
    p.bdq.assign(static_cast<size_t>(p.total_q) * c.hq * c.d, 0.0f);
    p.bdk.assign(static_cast<size_t>(p.total_k) * c.hk * c.d, 0.0f);
    p.bdv.assign(static_cast<size_t>(p.total_k) * c.hk * c.d, 0.0f);
    std::vector<float> dsink_part(static_cast<size_t>(c.batch) * c.hq, 0.0f);
    parallel_for(c.batch * c.hk, [&](int task) {
        const int b = task / c.hk, kvh = task % c.hk;
        const Seq& s = p.seqs[b];
        const size_t n = static_cast<size_t>(s.sq) * std::max(1, s.sk);
        std::vector<float> S(n), P(n), Pd(n), Kp(n), Tc(n), dS(n);
        std::vector<float> dk32(static_cast<size_t>(std::max(1, s.sk)) * c.d, 0.0f), dv32(dk32.size(), 0.0f);
        for (int gi = 0; gi < group; ++gi) {
            const int h = kvh * group + gi;
            const float slope = p.slopes[b * c.hq + h];
            std::vector<float> out(static_cast<size_t>(s.sq) * c.d), psink(s.sq, 0.0f);
            for (int i = 0; i < s.sq; ++i) {
                const float* qi = &p.q[at(s.q0 + i, h, c.hq, p.ds, 0)];
                float mx = -INFINITY;
                for (int j = 0; j < s.sk; ++j) {
                    const float* kj = &p.k[at(s.k0 + s.leftpad + j, kvh, c.hk, p.ds, 0)];
                    float dot = 0;
                    for (int cc = 0; cc < c.d; ++cc) dot += qi[cc] * kj[cc];
                    float x = rd(rd(dot, dt) * p.scale, dt);
                    float t = 0;
                    if (c.softcap > 0) {
                        t = rd(std::tanh(rd(x / c.softcap, dt)), dt);
                        x = rd(c.softcap * t, dt);
                    }
                    Tc[static_cast<size_t>(i) * s.sk + j] = t;
                    if (!visible(p, s, i, j)) {
                        x = -INFINITY;
                    } else if (c.alibi) {
                        x = rd(x + rd(-slope * std::abs(static_cast<float>(i + s.sk - s.sq - j)), dt), dt);
                    }
                    S[static_cast<size_t>(i) * s.sk + j] = x;
                    mx = std::max(mx, x);
                }
                const float sink = c.sinks ? p.sink[h] : -INFINITY;
                const float m = std::max(mx, sink);
                float l = 0;
                if (m > -INFINITY) {
                    for (int j = 0; j < s.sk; ++j) l += std::exp(S[static_cast<size_t>(i) * s.sk + j] - m);
                    if (c.sinks) l += std::exp(sink - m);
                }
                for (int j = 0; j < s.sk; ++j) {
                    const size_t ij = static_cast<size_t>(i) * s.sk + j;
                    const float pr = m > -INFINITY ? rd(std::exp(S[ij] - m) / l, dt) : 0.0f;
                    float kp = 1.0f;
                    if (c.dropout > 0) kp = kept(p, b, h, i, j, kSeed, kOffset, threshold) ? keep_scale : 0.0f;
                    P[ij] = pr;
                    Kp[ij] = kp;
                    Pd[ij] = rd(pr * kp, dt);
                }
                if (c.sinks) psink[i] = m > -INFINITY ? rd(std::exp(sink - m) / l, dt) : 0.0f;
            }
            // dP~ = dO V^T, dP = dP~ keep, Dsum = sum P dP, dS, dV
            for (int i = 0; i < s.sq; ++i) {
                const float* doi = &p.dout[at(s.q0 + i, h, c.hq, p.ds, 0)];
                float dsum = 0;
                for (int j = 0; j < s.sk; ++j) {
                    const size_t ij = static_cast<size_t>(i) * s.sk + j;
                    const float* vj = &p.v[at(s.k0 + s.leftpad + j, kvh, c.hk, p.ds, 0)];
                    float dot = 0;
                    for (int cc = 0; cc < c.d; ++cc) dot += doi[cc] * vj[cc];
                    const float dp = rd(rd(dot, dt) * Kp[ij], dt);
                    dS[ij] = dp;
                    dsum += P[ij] * dp;
                }
                if (c.sinks) dsink_part[b * c.hq + h] -= psink[i] * dsum;
                for (int j = 0; j < s.sk; ++j) {
                    const size_t ij = static_cast<size_t>(i) * s.sk + j;
                    float ds = rd(P[ij] * (dS[ij] - dsum), dt);
                    if (c.softcap > 0) ds = rd(ds * rd(1.0f - Tc[ij] * Tc[ij], dt), dt);
                    dS[ij] = rd(ds * p.scale, dt);
                }
            }
            for (int i = 0; i < s.sq; ++i) {
                float* dqi = &p.bdq[(static_cast<size_t>(s.q0 + i) * c.hq + h) * c.d];
                std::vector<float> acc(c.d, 0.0f);
                for (int j = 0; j < s.sk; ++j) {
                    const float ds = dS[static_cast<size_t>(i) * s.sk + j];
                    if (ds == 0) continue;
                    const float* kj = &p.k[at(s.k0 + s.leftpad + j, kvh, c.hk, p.ds, 0)];
                    for (int cc = 0; cc < c.d; ++cc) acc[cc] += ds * kj[cc];
                }
                for (int cc = 0; cc < c.d; ++cc) dqi[cc] = rd(acc[cc], dt);
            }
            for (int j = 0; j < s.sk; ++j) {
                std::vector<float> ak(c.d, 0.0f), av(c.d, 0.0f);
                for (int i = 0; i < s.sq; ++i) {
                    const size_t ij = static_cast<size_t>(i) * s.sk + j;
                    const float* qi = &p.q[at(s.q0 + i, h, c.hq, p.ds, 0)];
                    const float* doi = &p.dout[at(s.q0 + i, h, c.hq, p.ds, 0)];
                    if (dS[ij] != 0)
                        for (int cc = 0; cc < c.d; ++cc) ak[cc] += dS[ij] * qi[cc];
                    if (Pd[ij] != 0)
                        for (int cc = 0; cc < c.d; ++cc) av[cc] += Pd[ij] * doi[cc];
                }
                for (int cc = 0; cc < c.d; ++cc) {
                    dk32[static_cast<size_t>(j) * c.d + cc] += rd(ak[cc], dt);
                    dv32[static_cast<size_t>(j) * c.d + cc] += rd(av[cc], dt);
                }
            }
        }
        for (int j = 0; j < s.sk; ++j)
            for (int cc = 0; cc < c.d; ++cc) {
                const size_t row = static_cast<size_t>(s.k0 + s.leftpad + j);
                p.bdk[(row * c.hk + kvh) * c.d + cc] = rd(dk32[static_cast<size_t>(j) * c.d + cc], dt);
                p.bdv[(row * c.hk + kvh) * c.d + cc] = rd(dv32[static_cast<size_t>(j) * c.d + cc], dt);
            }
    });
    p.bdsink.assign(c.hq, 0.0f);
    for (int b = 0; b < c.batch; ++b)
        for (int h = 0; h < c.hq; ++h) p.bdsink[h] += dsink_part[b * c.hq + h];
}

// ---- device side ----------------------------------------------------------------------------

struct DevBuf {
    void* ptr = nullptr;
    size_t bytes = 0;
    explicit DevBuf(size_t n = 0) : bytes(n) {
        if (n) CUDA_OK(cudaMalloc(&ptr, n));
    }
    ~DevBuf() {
        if (ptr) cudaFree(ptr);
    }
    DevBuf(const DevBuf&) = delete;
    DevBuf& operator=(const DevBuf&) = delete;
};

#ifndef BWD_CHECK_USE_ABI
template <typename E, int D, bool C>
fa_status call_instance(const fa_params& p, const fa_sm80::LaunchContext& ctx) {
#if defined(BWD_CHECK_HDIM)
    if (D != BWD_CHECK_HDIM) return FA_ERR_UNSUPPORTED;
#endif
    return fa_sm80::run_bwd<E, D, D, C>(p, ctx);
}

template <typename E>
fa_status dispatch_dtype(const fa_params& p, const fa_sm80::LaunchContext& ctx, int hd, bool causal) {
    switch (hd) {
        case 32: return causal ? call_instance<E, 32, true>(p, ctx) : call_instance<E, 32, false>(p, ctx);
        case 64: return causal ? call_instance<E, 64, true>(p, ctx) : call_instance<E, 64, false>(p, ctx);
        case 96: return causal ? call_instance<E, 96, true>(p, ctx) : call_instance<E, 96, false>(p, ctx);
        case 128: return causal ? call_instance<E, 128, true>(p, ctx) : call_instance<E, 128, false>(p, ctx);
        case 192: return causal ? call_instance<E, 192, true>(p, ctx) : call_instance<E, 192, false>(p, ctx);
        default: return causal ? call_instance<E, 256, true>(p, ctx) : call_instance<E, 256, false>(p, ctx);
    }
}
#endif

struct Device {
    int id = 0, sms = 0, major = 0, minor = 0, smem_optin = 0;
    cudaStream_t stream = nullptr;
};

fa_status run_backward(const fa_params& params, const Device& dev, void* ws, uint64_t ws_bytes) {
#ifdef BWD_CHECK_USE_ABI
    fa_params p = params;
    p.workspace = ws;
    p.workspace_bytes = ws ? ws_bytes : 0;
    return fa_backward(&p);
#else
    fa_sm80::LaunchContext ctx{dev.stream, ws, ws ? ws_bytes : 0, dev.id, dev.sms, dev.major, dev.minor, dev.smem_optin};
    const int hd = instance_hdim(std::max(params.headdim_qk, params.headdim_v));
    const bool causal = params.is_causal != 0;
    return params.dtype == FA_DTYPE_BF16 ? dispatch_dtype<__nv_bfloat16>(params, ctx, hd, causal)
                                         : dispatch_dtype<__half>(params, ctx, hd, causal);
#endif
}

uint64_t workspace_bytes(const fa_params& params) {
#ifdef BWD_CHECK_USE_ABI
    uint64_t n = 0;
    fa_workspace_size(&params, FA_OP_BACKWARD, &n);
    return n;
#else
    return fa_sm80::bwd_workspace_bytes(params);
#endif
}

struct Outputs {
    std::vector<uint16_t> dq, dk, dv;
    std::vector<float> dsink;
};

constexpr uint16_t kSentinel = 0x7e7e;  // a NaN in fp16 and in bf16

// Runs the backward once; returns false (and prints) on an API error.
bool run_gpu(const Problem& p, const Device& dev, Outputs& out, std::string& error, bool& unsupported) {
    const Case& c = p.c;
    const int dt = c.dtype;
    auto upload16 = [&](const std::vector<float>& x, DevBuf& buf, bool garbage_pad) {
        std::vector<uint16_t> h(x.size());
        for (size_t i = 0; i < x.size(); ++i) h[i] = to_bits(x[i], dt);
        if (garbage_pad && c.pad > 0)
            for (size_t i = 0; i < x.size(); ++i)
                if (static_cast<int>(i % p.ds) >= c.d) h[i] = kSentinel;
        CUDA_OK(cudaMemcpy(buf.ptr, h.data(), h.size() * 2, cudaMemcpyHostToDevice));
    };
    const size_t nq = static_cast<size_t>(p.total_q) * c.hq * p.ds, nk = static_cast<size_t>(p.total_k) * c.hk * p.ds;
    DevBuf q(nq * 2), k(nk * 2), v(nk * 2), o(nq * 2), dO(nq * 2), dq(nq * 2), dk(nk * 2), dv(nk * 2);
    upload16(p.q, q, true);
    upload16(p.k, k, true);
    upload16(p.v, v, true);
    upload16(p.dout, dO, true);
    {
        std::vector<float> of(nq, 0.0f);
        for (int64_t r = 0; r < p.total_q; ++r)
            for (int h = 0; h < c.hq; ++h)
                for (int cc = 0; cc < c.d; ++cc)
                    of[at(r, h, c.hq, p.ds, cc)] = static_cast<float>(p.out[(static_cast<size_t>(r) * c.hq + h) * c.d + cc]);
        upload16(of, o, true);
    }
    std::vector<uint16_t> sentinel(std::max(nq, nk), kSentinel);
    CUDA_OK(cudaMemcpy(dq.ptr, sentinel.data(), nq * 2, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dk.ptr, sentinel.data(), nk * 2, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dv.ptr, sentinel.data(), nk * 2, cudaMemcpyHostToDevice));

    // LSE: dense (batch, hq, max_q); varlen (hq, total_q)
    std::vector<float> lse_h;
    int64_t lse_bs = 0, lse_hs = 0;
    if (p.varlen) {
        lse_h.assign(static_cast<size_t>(c.hq) * p.total_q, 0.0f);
        lse_hs = p.total_q;
        for (int h = 0; h < c.hq; ++h)
            for (int r = 0; r < p.total_q; ++r) lse_h[static_cast<size_t>(h) * p.total_q + r] = static_cast<float>(p.lse[static_cast<size_t>(h) * p.total_q + r]);
    } else {
        lse_h.assign(static_cast<size_t>(c.batch) * c.hq * c.sq, 0.0f);
        lse_bs = static_cast<int64_t>(c.hq) * c.sq;
        lse_hs = c.sq;
        for (int b = 0; b < c.batch; ++b)
            for (int h = 0; h < c.hq; ++h)
                for (int i = 0; i < c.sq; ++i)
                    lse_h[b * lse_bs + h * lse_hs + i] = static_cast<float>(p.lse[static_cast<size_t>(h) * p.total_q + p.seqs[b].q0 + i]);
    }
    DevBuf lse(lse_h.size() * 4);
    CUDA_OK(cudaMemcpy(lse.ptr, lse_h.data(), lse_h.size() * 4, cudaMemcpyHostToDevice));

    std::vector<int> cu_q, cu_k, lp, used;
    DevBuf d_cuq(p.varlen ? (c.batch + 1) * 4 : 0), d_cuk(p.varlen ? (c.batch + 1) * 4 : 0);
    DevBuf d_lp(c.leftpad.empty() ? 0 : c.batch * 4), d_used(c.used.empty() ? 0 : c.batch * 4);
    if (p.varlen) {
        for (int b = 0; b <= c.batch; ++b) {
            cu_q.push_back(b < c.batch ? static_cast<int>(p.seqs[b].q0) : p.total_q);
            cu_k.push_back(b < c.batch ? static_cast<int>(p.seqs[b].k0) : p.total_k);
        }
        CUDA_OK(cudaMemcpy(d_cuq.ptr, cu_q.data(), cu_q.size() * 4, cudaMemcpyHostToDevice));
        CUDA_OK(cudaMemcpy(d_cuk.ptr, cu_k.data(), cu_k.size() * 4, cudaMemcpyHostToDevice));
        if (!c.leftpad.empty()) CUDA_OK(cudaMemcpy(d_lp.ptr, c.leftpad.data(), c.batch * 4, cudaMemcpyHostToDevice));
        if (!c.used.empty()) CUDA_OK(cudaMemcpy(d_used.ptr, c.used.data(), c.batch * 4, cudaMemcpyHostToDevice));
    }
    DevBuf d_slopes(c.alibi ? p.slopes.size() * 4 : 0), d_sink(c.sinks ? c.hq * 4 : 0), d_dsink(c.sinks ? c.hq * 4 : 0);
    if (c.alibi) CUDA_OK(cudaMemcpy(d_slopes.ptr, p.slopes.data(), p.slopes.size() * 4, cudaMemcpyHostToDevice));
    if (c.sinks) CUDA_OK(cudaMemcpy(d_sink.ptr, p.sink.data(), c.hq * 4, cudaMemcpyHostToDevice));

    fa_params prm;
    std::memset(&prm, 0, sizeof prm);
    prm.struct_size = sizeof prm;
    prm.abi_version = FA_ABI_VERSION;
    prm.dtype = prm.out_dtype = static_cast<fa_dtype>(dt);
    prm.batch = c.batch;
    prm.seqlen_q = p.varlen ? p.max_q : c.sq;
    prm.seqlen_k = p.varlen ? p.max_k : c.sk;
    prm.nheads_q = c.hq;
    prm.nheads_kv = c.hk;
    prm.headdim_qk = prm.headdim_v = c.d;
    prm.total_q = p.total_q;
    prm.total_k = p.total_k;
    prm.kv_batch = p.varlen ? 1 : c.batch;
    auto tensor = [&](void* ptr, int heads, int rows_per_batch) {
        fa_tensor t;
        t.data = ptr;
        t.head_stride = p.ds;
        t.row_stride = static_cast<int64_t>(heads) * p.ds;
        t.batch_stride = p.varlen ? 0 : t.row_stride * rows_per_batch;
        return t;
    };
    prm.q = tensor(q.ptr, c.hq, c.sq);
    prm.k = tensor(k.ptr, c.hk, c.sk);
    prm.v = tensor(v.ptr, c.hk, c.sk);
    prm.out = tensor(o.ptr, c.hq, c.sq);
    prm.dout = tensor(dO.ptr, c.hq, c.sq);
    prm.dq = tensor(dq.ptr, c.hq, c.sq);
    prm.dk = tensor(dk.ptr, c.hk, c.sk);
    prm.dv = tensor(dv.ptr, c.hk, c.sk);
    prm.softmax_lse = static_cast<float*>(lse.ptr);
    prm.lse_batch_stride = lse_bs;
    prm.lse_head_stride = lse_hs;
    prm.softmax_scale = p.scale;
    prm.softcap = c.softcap;
    prm.is_causal = c.causal ? 1 : 0;
    prm.window_left = c.wl;
    prm.window_right = c.causal ? 0 : c.wr;
    prm.deterministic = c.deterministic ? 1 : 0;
    prm.alibi_slopes = c.alibi ? static_cast<const float*>(d_slopes.ptr) : nullptr;
    prm.alibi_batch_stride = c.alibi == 2 ? c.hq : 0;
    prm.dropout_p = c.dropout;
    prm.dropout_seed = kSeed;
    prm.dropout_offset = kOffset;
    prm.sink_logits = c.sinks ? static_cast<const float*>(d_sink.ptr) : nullptr;
    prm.dsink = c.sinks ? static_cast<float*>(d_dsink.ptr) : nullptr;
    prm.cu_seqlens_q = p.varlen ? static_cast<const int32_t*>(d_cuq.ptr) : nullptr;
    prm.cu_seqlens_k = p.varlen ? static_cast<const int32_t*>(d_cuk.ptr) : nullptr;
    prm.leftpad_k = c.leftpad.empty() ? nullptr : static_cast<const int32_t*>(d_lp.ptr);
    prm.seqused_k = c.used.empty() ? nullptr : static_cast<const int32_t*>(d_used.ptr);
    prm.device = dev.id;
    prm.stream = dev.stream;

    const uint64_t wsb = workspace_bytes(prm);
    DevBuf ws(c.lib_workspace ? 0 : wsb);
    if (!c.lib_workspace && wsb > 0) CUDA_OK(cudaMemset(ws.ptr, 0xff, wsb));  // garbage: the kernels must initialise it
    const fa_status st = run_backward(prm, dev, c.lib_workspace ? nullptr : ws.ptr, wsb);
    if (st != FA_OK) {
        char buf[1200];
#ifdef BWD_CHECK_USE_ABI
        std::snprintf(buf, sizeof buf, "status %d: %s", static_cast<int>(st), fa_last_error());
#else
        std::snprintf(buf, sizeof buf, "status %d", static_cast<int>(st));
#endif
        error = buf;
        unsupported = st == FA_ERR_UNSUPPORTED;
        return false;
    }
    CUDA_OK(cudaStreamSynchronize(dev.stream));
    CUDA_OK(cudaGetLastError());
    out.dq.resize(nq);
    out.dk.resize(nk);
    out.dv.resize(nk);
    CUDA_OK(cudaMemcpy(out.dq.data(), dq.ptr, nq * 2, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(out.dk.data(), dk.ptr, nk * 2, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(out.dv.data(), dv.ptr, nk * 2, cudaMemcpyDeviceToHost));
    if (c.sinks) {
        out.dsink.resize(c.hq);
        CUDA_OK(cudaMemcpy(out.dsink.data(), d_dsink.ptr, c.hq * 4, cudaMemcpyDeviceToHost));
    }
    return true;
}

// ---- comparison -----------------------------------------------------------------------------

struct Err {
    double gpu = 0, base = 0, refmax = 0;
    long bad_pad = 0, nonfinite = 0;
    bool ok(double factor = 2.0) const {
        return bad_pad == 0 && nonfinite == 0 && gpu <= factor * base + 1e-4 * refmax + 1e-6;
    }
};

// Tensor (rows, heads, ds): compares columns < d of `valid` rows; checks the padding columns
// kept the sentinel and that rows not valid are 0 where `zero_rows` says so.
Err compare(const Problem& p, const std::vector<uint16_t>& gpu, const std::vector<double>& ref, const std::vector<float>& base,
            int heads, int64_t rows, const std::function<int(int64_t)>& row_kind /* 0 skip, 1 compare, 2 must be 0 */) {
    Err e;
    const int d = p.c.d;
    for (int64_t r = 0; r < rows; ++r) {
        const int kind = row_kind(r);
        for (int h = 0; h < heads; ++h) {
            for (int cc = 0; cc < p.ds; ++cc) {
                const uint16_t bits = gpu[at(r, h, heads, p.ds, cc)];
                if (cc >= d) {
                    if (bits != kSentinel) ++e.bad_pad;
                    continue;
                }
                const float g = from_bits(bits, p.c.dtype);
                if (kind == 0) continue;
                if (!std::isfinite(g)) {
                    ++e.nonfinite;
                    continue;
                }
                const size_t idx = (static_cast<size_t>(r) * heads + h) * d + cc;
                const double rf = kind == 2 ? 0.0 : ref[idx];
                const double bs = kind == 2 ? 0.0 : base[idx];
                e.gpu = std::max(e.gpu, std::abs(g - rf));
                e.base = std::max(e.base, std::abs(bs - rf));
                e.refmax = std::max(e.refmax, std::abs(rf));
            }
        }
    }
    return e;
}

enum class Verdict { kPass, kFail, kSkip };

Verdict check_case(const Case& c, const Device& dev, uint64_t seed) {
    Problem p;
    p.c = c;
    Rng rng(seed ^ std::hash<std::string>{}(c.name + dtype_name(c.dtype) + std::to_string(c.d)));
    setup(p, rng);
    reference(p);
    baseline(p);
    Outputs out;
    std::string error;
    bool unsupported = false;
    if (!run_gpu(p, dev, out, error, unsupported)) {
#ifdef BWD_CHECK_USE_ABI
        // A library built with FA_HDIMS / FA_DTYPES filters refuses the other instances.
        if (unsupported) {
            std::printf("skip %-44s %s d=%d: %s\n", c.name.c_str(), dtype_name(c.dtype), c.d, error.c_str());
            return Verdict::kSkip;
        }
#endif
        std::printf("FAIL %-44s %s d=%d: backward returned %s\n", c.name.c_str(), dtype_name(c.dtype), c.d, error.c_str());
        return Verdict::kFail;
    }
    // rows of k that are keys (compare), raw rows that are not keys (must be 0)
    std::vector<int> krow_kind(p.total_k, 1);
    for (const Seq& s : p.seqs)
        for (int r = 0; r < s.capacity; ++r) krow_kind[s.k0 + r] = (r >= s.leftpad && r < s.leftpad + s.sk) ? 1 : 2;
    const Err eq = compare(p, out.dq, p.dq, p.bdq, c.hq, p.total_q, [](int64_t) { return 1; });
    const Err ek = compare(p, out.dk, p.dk, p.bdk, c.hk, p.total_k, [&](int64_t r) { return krow_kind[r]; });
    const Err ev = compare(p, out.dv, p.dv, p.bdv, c.hk, p.total_k, [&](int64_t r) { return krow_kind[r]; });
    bool ok = eq.ok() && ek.ok() && ev.ok();
    std::string extra;
    if (c.sinks) {
        Err es;
        for (int h = 0; h < c.hq; ++h) {
            es.gpu = std::max(es.gpu, std::abs(out.dsink[h] - p.dsink[h]));
            es.base = std::max(es.base, std::abs(p.bdsink[h] - p.dsink[h]));
            es.refmax = std::max(es.refmax, std::abs(p.dsink[h]));
            if (!std::isfinite(out.dsink[h])) ++es.nonfinite;
        }
        char buf[128];
        std::snprintf(buf, sizeof buf, " dsink %.2e/%.2e", es.gpu, es.base);
        extra += buf;
        ok = ok && es.ok();
    }
    if (c.deterministic) {
        bool same = true;
        for (int rep = 0; rep < 2 && same; ++rep) {
            Outputs again;
            if (!run_gpu(p, dev, again, error, unsupported)) {
                same = false;
                break;
            }
            same = again.dq == out.dq && again.dk == out.dk && again.dv == out.dv && again.dsink == out.dsink;
        }
        extra += same ? " bitwise-repeatable" : " NOT-REPEATABLE";
        ok = ok && same;
    }
    auto pad_note = [](const Err& e) {
        std::string s;
        if (e.bad_pad) s += " pad-overwritten=" + std::to_string(e.bad_pad);
        if (e.nonfinite) s += " nonfinite=" + std::to_string(e.nonfinite);
        return s;
    };
    std::printf("%s %-44s %s d=%-3d dq %.2e/%.2e dk %.2e/%.2e dv %.2e/%.2e (gpu/base)%s%s%s%s\n", ok ? "ok  " : "FAIL",
                c.name.c_str(), dtype_name(c.dtype), c.d, eq.gpu, eq.base, ek.gpu, ek.base, ev.gpu, ev.base, extra.c_str(),
                pad_note(eq).c_str(), pad_note(ek).c_str(), pad_note(ev).c_str());
    std::fflush(stdout);
    return ok ? Verdict::kPass : Verdict::kFail;
}

std::vector<Case> make_cases(bool quick) {
    std::vector<Case> cases;
    const int dts[2] = {FA_DTYPE_BF16, FA_DTYPE_F16};
    const int hdims[6] = {32, 64, 96, 128, 192, 256};
    for (int dt : dts)
        for (int d : hdims) {
            Case c;
            c.dtype = dt;
            c.d = d;
            c.name = "dense b2 h3 sq=sk=257";
            c.batch = 2;
            c.hq = c.hk = 3;
            c.sq = c.sk = 257;
            c.pad = 8;
            cases.push_back(c);
            c.name = "causal sq=300 sk=190 (empty rows)";
            c.causal = true;
            c.sq = 300;
            c.sk = 190;
            c.pad = 0;
            cases.push_back(c);
            c.name = "causal sq=77 sk=500";
            c.sq = 77;
            c.sk = 500;
            cases.push_back(c);
            if (quick && d != 128 && d != 64) continue;
            c = Case();
            c.dtype = dt;
            c.d = d;
            c.name = "gqa 6/2 window(70,20) sq=200 sk=333";
            c.hq = 6;
            c.hk = 2;
            c.sq = 200;
            c.sk = 333;
            c.wl = 70;
            c.wr = 20;
            cases.push_back(c);
            c = Case();
            c.dtype = dt;
            c.d = d;
            c.name = "varlen causal + deterministic, mqa 4/1";
            c.batch = 4;
            c.hq = 4;
            c.hk = 1;
            c.lens_q = {0, 1, 150, 257};
            c.lens_k = {5, 64, 129, 300};
            c.causal = true;
            c.deterministic = true;
            cases.push_back(c);
        }
    // features at d = 64 and 128 (both paths of tile shapes: 128 and 256 for the smem path)
    const int fdims[3] = {64, 128, 256};
    for (int dt : dts)
        for (int d : fdims) {
            Case base;
            base.dtype = dt;
            base.d = d;
            base.batch = 2;
            base.hq = 4;
            base.hk = 2;
            base.sq = 160;
            base.sk = 211;
            Case c = base;
            c.name = "softcap 30";
            c.softcap = 30.0f;
            cases.push_back(c);
            c.name = "softcap 5 causal";
            c.softcap = 5.0f;
            c.causal = true;
            cases.push_back(c);
            c = base;
            c.name = "alibi per head, causal";
            c.alibi = 1;
            c.causal = true;
            cases.push_back(c);
            c = base;
            c.name = "alibi per batch, window(40,-1)";
            c.alibi = 2;
            c.wl = 40;
            cases.push_back(c);
            c = base;
            c.name = "dropout 0.17";
            c.dropout = 0.17f;
            cases.push_back(c);
            c.name = "dropout 0.3 causal deterministic";
            c.dropout = 0.3f;
            c.causal = true;
            c.deterministic = true;
            cases.push_back(c);
            c = base;
            c.name = "sinks";
            c.sinks = true;
            cases.push_back(c);
            c.name = "sinks causal sq>sk";
            c.causal = true;
            c.sq = 250;
            c.sk = 100;
            cases.push_back(c);
            c = base;
            c.name = "deterministic gqa window(30,0) lib workspace";
            c.deterministic = true;
            c.wl = 30;
            c.wr = 0;
            c.lib_workspace = true;
            cases.push_back(c);
            c = base;
            c.name = "varlen leftpad + seqused_k";
            c.batch = 3;
            c.lens_q = {40, 0, 97};
            c.lens_k = {120, 30, 200};
            c.leftpad = {7, 0, 33};
            c.used = {100, 30, 181};
            cases.push_back(c);
            c.name = "varlen leftpad + seqused_k causal";
            c.causal = true;
            cases.push_back(c);
            c = base;
            c.name = "decode sq=1 sk=1000";
            c.sq = 1;
            c.sk = 1000;
            c.batch = 3;
            cases.push_back(c);
            c = base;
            c.name = "long causal sq=sk=1024 deterministic";
            c.sq = c.sk = 1024;
            c.batch = 1;
            c.causal = true;
            c.deterministic = true;
            if (!quick) cases.push_back(c);
        }
    // head dims that are not instance sizes (padded inside the instance)
    const int odd[4] = {40, 72, 136, 200};
    for (int d : odd) {
        Case c;
        c.d = d;
        c.name = "head dim not an instance size, causal";
        c.causal = true;
        c.sq = 130;
        c.sk = 170;
        c.pad = 8;
        cases.push_back(c);
    }
    return cases;
}

// ---- speed ------------------------------------------------------------------------------------

void bench(const Device& dev) {
    std::printf("# backward speed (FLOPs = 2.5 x 4 b h sq sk d, halved when causal)\n");
    struct B {
        int d, s;
        bool causal;
        int dtype;
        bool det;
    };
    std::vector<B> shapes;
    for (int d : {64, 128, 256})
        for (int s : {1024, 2048, 4096, 8192, 16384})
            for (bool causal : {false, true}) shapes.push_back({d, s, causal, FA_DTYPE_BF16, false});
    shapes.push_back({128, 8192, false, FA_DTYPE_F16, false});
    shapes.push_back({128, 8192, false, FA_DTYPE_BF16, true});
    shapes.push_back({128, 8192, true, FA_DTYPE_BF16, true});
    for (const B& sh : shapes) {
        const int batch = std::max(1, 16384 / sh.s), heads = 2048 / sh.d, d = sh.d, s = sh.s;
        const size_t n = static_cast<size_t>(batch) * s * heads * d;
        DevBuf q(n * 2), k(n * 2), v(n * 2), o(n * 2), dO(n * 2), dq(n * 2), dk(n * 2), dv(n * 2),
            lse(static_cast<size_t>(batch) * heads * s * 4);
        {
            std::vector<uint16_t> h(n);
            Rng rng(1);
            for (auto& x : h) x = to_bits(rng.normal(), sh.dtype);
            for (DevBuf* b : {&q, &k, &v, &o, &dO}) CUDA_OK(cudaMemcpy(b->ptr, h.data(), n * 2, cudaMemcpyHostToDevice));
            std::vector<float> l(static_cast<size_t>(batch) * heads * s, 2.0f * std::log(static_cast<float>(s)));
            CUDA_OK(cudaMemcpy(lse.ptr, l.data(), l.size() * 4, cudaMemcpyHostToDevice));
        }
        fa_params prm;
        std::memset(&prm, 0, sizeof prm);
        prm.struct_size = sizeof prm;
        prm.abi_version = FA_ABI_VERSION;
        prm.dtype = prm.out_dtype = static_cast<fa_dtype>(sh.dtype);
        prm.batch = batch;
        prm.seqlen_q = prm.seqlen_k = s;
        prm.nheads_q = prm.nheads_kv = heads;
        prm.headdim_qk = prm.headdim_v = d;
        prm.total_q = prm.total_k = batch * s;
        prm.kv_batch = batch;
        auto tensor = [&](void* ptr) {
            fa_tensor t;
            t.data = ptr;
            t.head_stride = d;
            t.row_stride = static_cast<int64_t>(heads) * d;
            t.batch_stride = t.row_stride * s;
            return t;
        };
        prm.q = tensor(q.ptr);
        prm.k = tensor(k.ptr);
        prm.v = tensor(v.ptr);
        prm.out = tensor(o.ptr);
        prm.dout = tensor(dO.ptr);
        prm.dq = tensor(dq.ptr);
        prm.dk = tensor(dk.ptr);
        prm.dv = tensor(dv.ptr);
        prm.softmax_lse = static_cast<float*>(lse.ptr);
        prm.lse_batch_stride = static_cast<int64_t>(heads) * s;
        prm.lse_head_stride = s;
        prm.softmax_scale = 1.0f / std::sqrt(static_cast<float>(d));
        prm.is_causal = sh.causal;
        prm.window_left = -1;
        prm.window_right = sh.causal ? 0 : -1;
        prm.deterministic = sh.det;
        prm.stream = dev.stream;
        const uint64_t wsb = workspace_bytes(prm);
        DevBuf ws(wsb);
        cudaEvent_t e0, e1;
        CUDA_OK(cudaEventCreate(&e0));
        CUDA_OK(cudaEventCreate(&e1));
        fa_status st = FA_OK;
        for (int w = 0; w < 2; ++w) st = run_backward(prm, dev, ws.ptr, wsb);
        if (st != FA_OK) {
            std::printf("d=%d s=%d: status %d\n", d, s, static_cast<int>(st));
            continue;
        }
        const int reps = 10;
        CUDA_OK(cudaEventRecord(e0, dev.stream));
        for (int r = 0; r < reps; ++r) run_backward(prm, dev, ws.ptr, wsb);
        CUDA_OK(cudaEventRecord(e1, dev.stream));
        CUDA_OK(cudaEventSynchronize(e1));
        float ms = 0;
        CUDA_OK(cudaEventElapsedTime(&ms, e0, e1));
        ms /= reps;
        const double flops = 2.5 * 4.0 * batch * heads * static_cast<double>(s) * s * d * (sh.causal ? 0.5 : 1.0);
        std::printf("bwd %s d=%-3d b=%-2d h=%-2d s=%-5d %-6s %-13s %8.3f ms %7.1f TFLOP/s\n", dtype_name(sh.dtype), d, batch,
                    heads, s, sh.causal ? "causal" : "", sh.det ? "deterministic" : "", ms, flops / ms * 1e-9);
        std::fflush(stdout);
        cudaEventDestroy(e0);
        cudaEventDestroy(e1);
    }
}

}  // namespace

#ifdef BWD_CHECK_INSTANTIATE
// The instances this self-contained build needs (normally the generated instance files provide them).
#define BWD_CHECK_INST(E, D)                                                                                   \
    template fa_status fa_sm80::run_bwd<E, D, D, false>(const fa_params&, const fa_sm80::LaunchContext&); \
    template fa_status fa_sm80::run_bwd<E, D, D, true>(const fa_params&, const fa_sm80::LaunchContext&);
#if defined(BWD_CHECK_HDIM)
BWD_CHECK_INST(__nv_bfloat16, BWD_CHECK_HDIM)
BWD_CHECK_INST(__half, BWD_CHECK_HDIM)
#else
BWD_CHECK_INST(__nv_bfloat16, 32)
BWD_CHECK_INST(__nv_bfloat16, 64)
BWD_CHECK_INST(__nv_bfloat16, 96)
BWD_CHECK_INST(__nv_bfloat16, 128)
BWD_CHECK_INST(__nv_bfloat16, 192)
BWD_CHECK_INST(__nv_bfloat16, 256)
BWD_CHECK_INST(__half, 32)
BWD_CHECK_INST(__half, 64)
BWD_CHECK_INST(__half, 96)
BWD_CHECK_INST(__half, 128)
BWD_CHECK_INST(__half, 192)
BWD_CHECK_INST(__half, 256)
#endif
#endif

int main(int argc, char** argv) {
    bool quick = false, do_bench = false, do_selftest = false;
    std::string filter;
    uint64_t seed = 2024;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--quick") quick = true;
        else if (a == "--bench") do_bench = true;
        else if (a == "--selftest") do_selftest = true;
        else if (a == "--filter" && i + 1 < argc) filter = argv[++i];
        else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
        else {
            std::fprintf(stderr, "usage: %s [--selftest] [--quick] [--bench] [--filter SUBSTRING] [--seed N]\n", argv[0]);
            return 2;
        }
    }
    if (do_selftest) return selftest();  // CPU only: checks the float64 reference itself
    Device dev;
    CUDA_OK(cudaGetDevice(&dev.id));
    CUDA_OK(cudaDeviceGetAttribute(&dev.sms, cudaDevAttrMultiProcessorCount, dev.id));
    CUDA_OK(cudaDeviceGetAttribute(&dev.major, cudaDevAttrComputeCapabilityMajor, dev.id));
    CUDA_OK(cudaDeviceGetAttribute(&dev.minor, cudaDevAttrComputeCapabilityMinor, dev.id));
    CUDA_OK(cudaDeviceGetAttribute(&dev.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev.id));
    CUDA_OK(cudaStreamCreate(&dev.stream));
    std::printf("# device %d: sm_%d%d, %d SMs, %d B shared per block\n", dev.id, dev.major, dev.minor, dev.sms, dev.smem_optin);
    if (do_bench) {
        bench(dev);
        return 0;
    }
    int failed = 0, run = 0, skipped = 0;
    // FA_CHECK_SMALL=1 (compute-sanitizer runs, 10-100x slower): dense cases of at most
    // 256 x 256 scores per head, each feature once per head dim.
    const char* small_env = std::getenv("FA_CHECK_SMALL");
    const bool small = small_env != nullptr && std::strcmp(small_env, "1") == 0;
    for (const Case& c : make_cases(quick || small)) {
        const std::string label = c.name + " " + dtype_name(c.dtype) + " d=" + std::to_string(c.d);
        if (!filter.empty() && label.find(filter) == std::string::npos) continue;
        if (small && (!c.lens_q.empty() || static_cast<long>(c.batch) * c.sq * c.sk > 2L * 256 * 256)) continue;
#if defined(BWD_CHECK_HDIM) && !defined(BWD_CHECK_USE_ABI)
        if (instance_hdim(c.d) != BWD_CHECK_HDIM) continue;
#endif
        const Verdict v = check_case(c, dev, seed);
        if (v == Verdict::kSkip) {
            ++skipped;
            continue;
        }
        ++run;
        if (v == Verdict::kFail) ++failed;
    }
    std::printf("# %d of %d cases passed (%d skipped: not compiled into the library)\n", run - failed, run, skipped);
    return failed == 0 ? 0 : 1;
}

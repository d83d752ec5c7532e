// fwd_check.cu — GPU correctness driver (and benchmark) for libfa_cuda_sm80's forward.
//
//   fa_sm80_fwd_check                 run every case; one line per case; exit 1 on any failure
//   fa_sm80_fwd_check --filter TEXT   only cases whose name contains TEXT
//   fa_sm80_fwd_check --refusals-skip a case the library refuses (fa_supports) is a SKIP with the
//                                     reason, not a FAIL (a backend covering part of the features)
//   fa_sm80_fwd_check --bench [--dtype bf16|fp16|e4m3] [--d 64,128,256] [--iters N]
//                                     TFLOP/s on the standard grid (16k tokens, model dim 2048);
//                                     e4m3: q, k, v in e4m3, out in bf16
//   fa_sm80_fwd_check --bench-decode [--dtype bf16|fp16] [--d 128]
//                                     fa_forward_kvcache, one query row, 16 heads, batch 1..64 × kv
//                                     8k..64k: GB/s of K + V against a device copy, splits chosen
//
// Each case draws random inputs (rounded to the dtype), runs fa_forward / fa_forward_kvcache,
// and compares with
//   ref       float64 attention on the same (rounded) inputs, docs/semantics.md step by step;
//   baseline  the same attention in the test dtype: QKᵀ rounded to the dtype, softmax in fp32,
//             P rounded to the dtype, P·V accumulated in fp32 and rounded (upstream's out_pt).
//             e4m3 (bf16 out): the exact QKᵀ times softmax_scale·q_descale·k_descale rounded to
//             bf16, softmax in fp32, P rounded to e4m3, P·V in fp32 times v_descale, rounded to bf16.
// Pass: max|out − ref| ≤ m·max|baseline − ref| + 1e-5 (m = 2; 3 with softcap or the kv cache),
// LSE within 1e-4·(1 + |ref|) (+inf where a row sees no key; e4m3 also the accumulation bound at kE4m3AccUlp), KV cache: V bit-exact, rotated K
// within 1e-3. Cases the library refuses because the instance was not compiled (FA_HDIMS /
// FA_DTYPES) are reported as SKIP.
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "flash_attn_abi.h"
#include "flash_fwd_plan.cuh"
#include "philox.cuh"

namespace {

#define CUDA_CHECK(expr)                                                                                          \
    do {                                                                                                          \
        const cudaError_t err_ = (expr);                                                                          \
        if (err_ != cudaSuccess) {                                                                                \
            std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(err_)); \
            std::exit(2);                                                                                         \
        }                                                                                                         \
    } while (0)

// ---- element conversion ---------------------------------------------------------------------------

/* OCP e4m3: bias 7, no infinities, NaN 0x7f / 0xff, largest finite 448, subnormals m·2^-9.
   Round to nearest even; beyond ±448 (infinities too) saturates, as the kernels' cvt.rn.satfinite does. */
uint8_t e4m3_from_float(float x) {
    if (std::isnan(x)) return 0x7f;
    const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
    const float a = std::fabs(x);
    if (a >= 448.0f) return sign | 0x7e;
    int e;
    std::frexp(a, &e);                          /* a in [2^(e-1), 2^e) */
    const int binade = std::max(e - 1, -6);     /* below 2^-6 the subnormals share the quantum 2^-9 */
    int m = static_cast<int>(std::nearbyint(std::ldexp(a, 3 - binade))); /* exact scaling, then RNE: m in [0, 16] */
    int exponent = binade + 7;
    if (m == 16) { /* rounded up into the next binade (a < 448 keeps it finite) */
        m = 8;
        ++exponent;
    }
    if (m < 8) return sign | static_cast<uint8_t>(m); /* subnormal (binade -6 only) or zero */
    return sign | static_cast<uint8_t>(exponent << 3 | (m - 8));
}

float e4m3_to_float(uint8_t b) {
    const int exponent = (b >> 3) & 15, mantissa = b & 7;
    if (exponent == 15 && mantissa == 7) return NAN;
    const float magnitude = exponent == 0 ? std::ldexp(static_cast<float>(mantissa), -9)                 /* m·2^-9 */
                                          : std::ldexp(static_cast<float>(8 + mantissa), exponent - 10); /* (1 + m/8)·2^(e-7) */
    return (b & 0x80) ? -magnitude : magnitude;
}

/* The H100's fp8 tensor cores accumulate into 13 mantissa bits (e8m13, truncating), not fp32's 23: each k32 step of
   an e4m3 q·k may lose up to 2^-13 of the sum of |products| (Khattak & Mikaitis, "Accurate Models of NVIDIA Tensor
   Cores", arXiv 2512.07004). The LSE check allows that much per step (and one step more) on top of its fp32 rule. */
constexpr double kE4m3AccUlp = 1.0 / 8192;

/* Bytes per element on the device: 1 for e4m3, 2 for fp16 / bf16. */
size_t dtype_bytes(fa_dtype dt) { return dt == FA_DTYPE_F8_E4M3 ? 1 : 2; }

/* The dtype of out for inputs of dtype dt: bf16 for an e4m3 forward (the ABI's only choice). */
fa_dtype out_dtype_for(fa_dtype dt) { return dt == FA_DTYPE_F8_E4M3 ? FA_DTYPE_BF16 : dt; }

const char* dtype_label(fa_dtype dt) { return dt == FA_DTYPE_F16 ? "fp16" : dt == FA_DTYPE_F8_E4M3 ? "e4m3" : "bf16"; }

/* The element's bit pattern (e4m3 in the low byte). */
uint16_t to_bits(float x, fa_dtype dt) {
    uint16_t b;
    if (dt == FA_DTYPE_F8_E4M3) {
        b = e4m3_from_float(x);
    } else if (dt == FA_DTYPE_F16) {
        const __half h = __float2half_rn(x);
        std::memcpy(&b, &h, 2);
    } else {
        const __nv_bfloat16 h = __float2bfloat16_rn(x);
        std::memcpy(&b, &h, 2);
    }
    return b;
}

float from_bits(uint16_t b, fa_dtype dt) {
    if (dt == FA_DTYPE_F8_E4M3) return e4m3_to_float(static_cast<uint8_t>(b));
    if (dt == FA_DTYPE_F16) {
        __half h;
        std::memcpy(&h, &b, 2);
        return __half2float(h);
    }
    __nv_bfloat16 h;
    std::memcpy(&h, &b, 2);
    return __bfloat162float(h);
}

float round_to(float x, fa_dtype dt) { return from_bits(to_bits(x, dt), dt); }

// ---- random numbers ----------------------------------------------------------------------------------

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
    uint64_t next() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        return s;
    }
    double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
    int range(int lo, int hi) { return lo + static_cast<int>(next() % static_cast<uint64_t>(hi - lo + 1)); } /* [lo, hi] */
    float normal() {
        const double u1 = std::max(uniform(), 1e-12), u2 = uniform();
        return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
    }
};

// ---- cases -----------------------------------------------------------------------------------------------

/* --refusals-skip: fa_supports refusals count as SKIP (with the reason), not FAIL. The default
   is on in builds for such a backend (FWD_CHECK_REFUSALS_SKIP=1, e.g. fa_sm90_fwd_check). */
#ifndef FWD_CHECK_REFUSALS_SKIP
#define FWD_CHECK_REFUSALS_SKIP 0
#endif
bool g_refusals_skip = FWD_CHECK_REFUSALS_SKIP != 0;

struct Case {
    std::string name;
    fa_dtype dtype = FA_DTYPE_BF16;
    int d = 128;
    int batch = 2, sq = 128, sk = 128, hq = 4, hk = 4;
    bool causal = false;
    int wl = -1, wr = -1;
    float softcap = 0.0f;
    int alibi = 0; /* 1: slopes (hq); 2: slopes (batch, hq) */
    float dropout = 0.0f;
    bool varlen = false;
    bool seqused = false;
    bool leftpad = false;
    bool sinks = false;
    bool strided = false;
    bool descale = false; /* e4m3: random q/k/v descales in [0.5, 2] per (batch, kv head); else none (= 1) */
    int num_splits = 1;
    int page_size = 0; /* > 0: paged K/V (block_table) */
    // kv cache
    bool kvcache = false;
    int seqlen_new = 0;
    int rotary_dim = 0;
    bool interleaved = false;
    bool batch_idx = false;
    bool persistent = false; /* FA_SM90_PERSISTENT=1 during the call (hopper_sm90's persistent grid) */
    bool nan_outside = false; /* k/v rows that are not keys (past seqused_k, past the cache length) hold NaN */
};

struct Seq {
    int sq = 0, raw = 0, leftpad = 0, sk = 0; /* sk = raw − leftpad keys */
    int cache_len = 0;                        /* kv cache: rows already present */
};

/* A device buffer of 8- or 16-bit elements with its host copy. The host holds every element's
   bits as to_bits writes them (e4m3 in the low byte) and indexes elements alike for every dtype;
   1-byte elements are packed on the way to the device and unpacked on the way back. */
struct Buffer {
    std::vector<uint16_t> host;
    size_t elem_bytes = 2;
    void* dev = nullptr;
    void alloc(size_t n, fa_dtype dt) {
        elem_bytes = dtype_bytes(dt);
        host.assign(n, 0);
        CUDA_CHECK(cudaMalloc(&dev, std::max<size_t>(n * elem_bytes, 16)));
    }
    void upload() {
        if (elem_bytes == 2) {
            CUDA_CHECK(cudaMemcpy(dev, host.data(), host.size() * 2, cudaMemcpyHostToDevice));
            return;
        }
        std::vector<uint8_t> bytes(host.size());
        for (size_t i = 0; i < host.size(); ++i) bytes[i] = static_cast<uint8_t>(host[i]);
        CUDA_CHECK(cudaMemcpy(dev, bytes.data(), bytes.size(), cudaMemcpyHostToDevice));
    }
    void download() {
        if (elem_bytes == 2) {
            CUDA_CHECK(cudaMemcpy(host.data(), dev, host.size() * 2, cudaMemcpyDeviceToHost));
            return;
        }
        std::vector<uint8_t> bytes(host.size());
        CUDA_CHECK(cudaMemcpy(bytes.data(), dev, bytes.size(), cudaMemcpyDeviceToHost));
        std::copy(bytes.begin(), bytes.end(), host.begin());
    }
    ~Buffer() {
        if (dev) cudaFree(dev);
    }
};

template <typename T>
T* device_copy(const std::vector<T>& v) {
    T* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(v.size(), 1) * sizeof(T)));
    if (!v.empty()) CUDA_CHECK(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
    return p;
}

/* Strides of a (rows, heads, d) tensor of dtype dt: contiguous, or padded by one 16-byte piece
   (pad = 8 elements of 16 bits, 16 of e4m3: head stride d + pad, row stride heads·(d + pad) + pad,
   batch stride rows·row + 64) when the case asks for odd strides. The pieces keep every stride a
   multiple of 16 bytes, as the 16-byte (TMA, cp.async) loads need. */
fa_tensor layout(void* data, int rows, int heads, int d, bool strided, fa_dtype dt) {
    const int pad = strided ? static_cast<int>(16 / dtype_bytes(dt)) : 0;
    fa_tensor t{};
    t.data = data;
    t.head_stride = d + pad;
    t.row_stride = static_cast<int64_t>(heads) * t.head_stride + pad;
    t.batch_stride = static_cast<int64_t>(rows) * t.row_stride + (strided ? 64 : 0);
    return t;
}

size_t elements(const fa_tensor& t, int entries) { return static_cast<size_t>(t.batch_stride) * entries + 64; }

struct Rotary {
    std::vector<float> cos, sin; /* (seqlen_rotary, rotary_dim / 2), rounded to the dtype */
    int pairs = 0;
};

/* (x, y) → (x cos − y sin, x sin + y cos) on the first rotary_dim columns, fp32, rounded. */
void rotate_row(float* row, const Rotary& r, int position, bool interleaved, fa_dtype dt) {
    for (int i = 0; i < r.pairs; ++i) {
        const float c = r.cos[static_cast<size_t>(position) * r.pairs + i], s = r.sin[static_cast<size_t>(position) * r.pairs + i];
        const int xi = interleaved ? 2 * i : i, yi = interleaved ? 2 * i + 1 : i + r.pairs;
        const float x = row[xi], y = row[yi];
        const float xc = x * c, ys = y * s, xs = x * s, yc = y * c;
        row[xi] = round_to(xc - ys, dt);
        row[yi] = round_to(xs + yc, dt);
    }
}

struct Result {
    bool ran = false, skipped = false, pass = false;
    std::string note;
    double err = 0, err_base = 0, lse_err = 0, drop_fraction = -1;
};

/* One case end to end. */
Result run_case(const Case& c, uint64_t seed) {
    Result res;
    Rng rng(seed);
    const fa_dtype dt = c.dtype, out_dt = out_dtype_for(dt);
    const int d = c.d, hq = c.hq, hk = c.hk, group = hq / hk;
    const int B = c.batch;

    // ---- per-sequence lengths ---------------------------------------------------------------------------
    std::vector<Seq> seqs(B);
    for (int b = 0; b < B; ++b) {
        Seq& s = seqs[b];
        if (c.kvcache) {
            s.sq = c.sq;
            s.cache_len = rng.range(c.seqlen_new == 0 ? 1 : 0, c.sk - c.seqlen_new);
            s.raw = s.cache_len + c.seqlen_new;
        } else if (c.varlen) {
            s.sq = b == 1 ? 0 : rng.range(1, c.sq); /* sequence 1 is empty: rows of an empty sequence do not exist */
            if (b == 2) s.sq = 1;
            s.raw = rng.range(b == 3 ? 0 : 1, c.sk);
        } else {
            s.sq = c.sq;
            s.raw = c.seqused ? rng.range(0, c.sk) : c.sk;
        }
        s.leftpad = c.leftpad ? rng.range(0, std::min(s.raw, 17)) : 0;
        if (c.kvcache && c.leftpad) s.leftpad = std::min(s.leftpad, s.cache_len);
        s.sk = s.raw - s.leftpad;
    }
    // varlen with seqused_k: the packed k rows per sequence exceed the used ones.
    std::vector<int> k_rows(B);
    for (int b = 0; b < B; ++b) k_rows[b] = seqs[b].raw + ((c.varlen && c.seqused) ? rng.range(0, 9) : 0);

    // ---- logical inputs (rounded to the dtype), per sequence ----------------------------------------------------
    auto fill = [&](std::vector<float>& v, size_t n) {
        v.resize(n);
        for (auto& x : v) x = round_to(rng.normal(), dt);
    };
    std::vector<std::vector<float>> Q(B), K(B), V(B); /* Q: sq×hq×d; K, V: raw×hk×d (raw rows, before leftpad) */
    for (int b = 0; b < B; ++b) {
        fill(Q[b], static_cast<size_t>(seqs[b].sq) * hq * d);
        fill(K[b], static_cast<size_t>(k_rows[b]) * hk * d);
        fill(V[b], static_cast<size_t>(k_rows[b]) * hk * d);
    }
    Rotary rot;
    if (c.rotary_dim > 0) {
        rot.pairs = c.rotary_dim / 2;
        const int seqlen_ro = c.sk;
        rot.cos.resize(static_cast<size_t>(seqlen_ro) * rot.pairs);
        rot.sin.resize(rot.cos.size());
        for (int p = 0; p < seqlen_ro; ++p)
            for (int i = 0; i < rot.pairs; ++i) {
                const double theta = p * std::pow(10000.0, -2.0 * i / c.rotary_dim);
                rot.cos[static_cast<size_t>(p) * rot.pairs + i] = round_to(static_cast<float>(std::cos(theta)), dt);
                rot.sin[static_cast<size_t>(p) * rot.pairs + i] = round_to(static_cast<float>(std::sin(theta)), dt);
            }
    }
    std::vector<float> slopes;
    if (c.alibi) {
        slopes.resize(static_cast<size_t>(c.alibi == 2 ? B : 1) * hq);
        for (auto& s : slopes) s = static_cast<float>(rng.uniform() * 0.3);
    }
    std::vector<float> sinks;
    if (c.sinks) {
        sinks.resize(hq);
        for (auto& s : sinks) s = rng.normal() * 2.0f;
    }
    // e4m3 descales, (batch, kv head) row-major here; 1 where the case has none, so that the
    // reference below applies them unconditionally.
    std::vector<float> q_descale(static_cast<size_t>(B) * hk, 1.0f), k_descale = q_descale, v_descale = q_descale;
    if (c.descale)
        for (auto* descale : {&q_descale, &k_descale, &v_descale})
            for (auto& x : *descale) x = static_cast<float>(0.5 + 1.5 * rng.uniform());
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));

    // ---- device layout ------------------------------------------------------------------------------------------
    fa_params p{};
    p.struct_size = sizeof p;
    p.abi_version = FA_ABI_VERSION;
    p.dtype = dt;
    p.out_dtype = out_dt;
    p.batch = B;
    p.nheads_q = hq;
    p.nheads_kv = hk;
    p.headdim_qk = p.headdim_v = d;
    p.softmax_scale = scale;
    p.softcap = c.softcap;
    p.is_causal = c.causal;
    p.window_left = c.wl;
    p.window_right = c.causal ? 0 : c.wr;
    p.dropout_p = c.dropout;
    p.dropout_seed = 0x1234abcd5678ull + seed;
    p.dropout_offset = 977;
    p.num_splits = c.num_splits;
    p.device = 0;

    int max_sq = 0, total_q = 0, total_k = 0;
    std::vector<int> cu_q(B + 1, 0), cu_k(B + 1, 0);
    for (int b = 0; b < B; ++b) {
        max_sq = std::max(max_sq, seqs[b].sq);
        cu_q[b + 1] = cu_q[b] + seqs[b].sq;
        cu_k[b + 1] = cu_k[b] + k_rows[b];
    }
    total_q = cu_q[B];
    total_k = cu_k[B];
    p.seqlen_q = c.varlen ? max_sq : c.sq;
    p.seqlen_k = c.sk;
    if (c.varlen) {
        int max_k = 0;
        for (int b = 0; b < B; ++b) max_k = std::max(max_k, k_rows[b]);
        p.seqlen_k = max_k;
    }
    p.total_q = c.varlen ? total_q : B * c.sq;

    // q / out
    const int q_entries = c.varlen ? 1 : B;
    const int q_rows = c.varlen ? total_q : c.sq;
    Buffer qbuf, obuf, kbuf, vbuf, knew, vnew;
    fa_tensor qt = layout(nullptr, q_rows, hq, d, c.strided, dt), ot = layout(nullptr, q_rows, hq, d, c.strided, out_dt);
    qbuf.alloc(elements(qt, q_entries), dt);
    obuf.alloc(elements(ot, q_entries), out_dt);
    qt.data = qbuf.dev;
    ot.data = obuf.dev;
    auto q_index = [&](const fa_tensor& t, int b, int i, int h) -> size_t {
        return c.varlen ? static_cast<size_t>((cu_q[b] + i) * t.row_stride + h * t.head_stride)
                        : static_cast<size_t>(b * t.batch_stride + i * t.row_stride + h * t.head_stride);
    };
    for (int b = 0; b < B; ++b)
        for (int i = 0; i < seqs[b].sq; ++i)
            for (int h = 0; h < hq; ++h)
                for (int x = 0; x < d; ++x)
                    qbuf.host[q_index(qt, b, i, h) + x] = to_bits(Q[b][(static_cast<size_t>(i) * hq + h) * d + x], dt);
    std::fill(obuf.host.begin(), obuf.host.end(), to_bits(777.0f, out_dt)); /* poison: rows never written stay 777 */

    // k / v: dense (batch, sk, hk, d), varlen (total_k, hk, d), paged (pages, page_size, hk, d), or a cache
    // (kv_batch, capacity, hk, d) addressed through cache_batch_idx.
    std::vector<int32_t> block_table, batch_idx(B);
    int kv_entries = B, kv_rows = c.sk, max_pages = 0;
    if (c.page_size > 0) {
        max_pages = (c.sk + c.page_size - 1) / c.page_size + 1;
        kv_entries = B * max_pages + 3;
        kv_rows = c.page_size;
        std::vector<int32_t> pages(kv_entries);
        for (int i = 0; i < kv_entries; ++i) pages[i] = i;
        for (int i = kv_entries - 1; i > 0; --i) std::swap(pages[i], pages[rng.range(0, i)]);
        block_table.assign(static_cast<size_t>(B) * max_pages, 0);
        for (size_t i = 0; i < block_table.size(); ++i) block_table[i] = pages[i];
    } else if (c.varlen) {
        kv_entries = 1;
        kv_rows = total_k;
    } else if (c.batch_idx) {
        kv_entries = B + 2;
        for (int b = 0; b < B; ++b) batch_idx[b] = (b * 3 + 1) % kv_entries;
        std::vector<int> used(kv_entries, 0);
        for (int b = 0; b < B; ++b) used[batch_idx[b]]++;
        for (int b = 0; b < B; ++b)
            if (used[batch_idx[b]] > 1) {
                std::fprintf(stderr, "cache_batch_idx collision\n");
                std::exit(2);
            }
    }
    fa_tensor kt = layout(nullptr, kv_rows, hk, d, c.strided, dt), vt = layout(nullptr, kv_rows, hk, d, c.strided, dt);
    kbuf.alloc(elements(kt, kv_entries), dt);
    vbuf.alloc(elements(vt, kv_entries), dt);
    kt.data = kbuf.dev;
    vt.data = vbuf.dev;
    /* garbage outside the keys: random values, or NaN (0x7fff in fp16 and bf16, 0x7f in e4m3), which must not reach out */
    const uint16_t nan_bits = dt == FA_DTYPE_F8_E4M3 ? uint16_t{0x7f} : uint16_t{0x7fff};
    for (size_t i = 0; i < kbuf.host.size(); ++i) kbuf.host[i] = c.nan_outside ? nan_bits : to_bits(rng.normal(), dt);
    for (size_t i = 0; i < vbuf.host.size(); ++i) vbuf.host[i] = c.nan_outside ? nan_bits : to_bits(rng.normal(), dt);
    auto kv_index = [&](const fa_tensor& t, int b, int r, int h) -> size_t { /* raw row r of sequence b */
        if (c.page_size > 0) {
            const int page = block_table[static_cast<size_t>(b) * max_pages + r / c.page_size];
            return static_cast<size_t>(page * t.batch_stride + (r % c.page_size) * t.row_stride + h * t.head_stride);
        }
        if (c.varlen) return static_cast<size_t>((cu_k[b] + r) * t.row_stride + h * t.head_stride);
        const int entry = c.batch_idx ? batch_idx[b] : b;
        return static_cast<size_t>(entry * t.batch_stride + r * t.row_stride + h * t.head_stride);
    };
    // Everything but the appended rows is in k/v before the call.
    for (int b = 0; b < B; ++b) {
        const int present = c.kvcache ? seqs[b].cache_len : k_rows[b];
        for (int r = 0; r < present; ++r)
            for (int h = 0; h < hk; ++h)
                for (int x = 0; x < d; ++x) {
                    kbuf.host[kv_index(kt, b, r, h) + x] = to_bits(K[b][(static_cast<size_t>(r) * hk + h) * d + x], dt);
                    vbuf.host[kv_index(vt, b, r, h) + x] = to_bits(V[b][(static_cast<size_t>(r) * hk + h) * d + x], dt);
                }
    }
    std::vector<uint16_t> k_expected, v_expected; /* kv cache after the append */
    if (c.kvcache && c.seqlen_new > 0) {
        fa_tensor knt = layout(nullptr, c.seqlen_new, hk, d, false, dt), vnt = knt;
        knew.alloc(elements(knt, B), dt);
        vnew.alloc(elements(vnt, B), dt);
        knt.data = knew.dev;
        vnt.data = vnew.dev;
        for (int b = 0; b < B; ++b)
            for (int t = 0; t < c.seqlen_new; ++t) {
                const int r = seqs[b].cache_len + t;
                for (int h = 0; h < hk; ++h) {
                    float* krow = &K[b][(static_cast<size_t>(r) * hk + h) * d];
                    const float* vrow = &V[b][(static_cast<size_t>(r) * hk + h) * d];
                    for (int x = 0; x < d; ++x) {
                        knew.host[b * knt.batch_stride + t * knt.row_stride + h * knt.head_stride + x] = to_bits(krow[x], dt);
                        vnew.host[b * vnt.batch_stride + t * vnt.row_stride + h * vnt.head_stride + x] = to_bits(vrow[x], dt);
                    }
                    if (c.rotary_dim > 0) rotate_row(krow, rot, r, c.interleaved, dt); /* logical K = rotated */
                }
            }
        knew.upload();
        vnew.upload();
        p.k_new = knt;
        p.v_new = vnt;
        p.seqlen_new = c.seqlen_new;
    }
    if (c.kvcache && c.rotary_dim > 0) { /* logical Q = rotated q */
        const bool local = c.causal || c.wl >= 0 || c.wr >= 0;
        for (int b = 0; b < B; ++b)
            for (int i = 0; i < seqs[b].sq; ++i)
                for (int h = 0; h < hq; ++h)
                    rotate_row(&Q[b][(static_cast<size_t>(i) * hq + h) * d], rot, seqs[b].cache_len + (local ? i : 0), c.interleaved, dt);
    }
    if (c.kvcache) { /* the expected caches: every present or appended row at its place */
        k_expected = kbuf.host;
        v_expected = vbuf.host;
        for (int b = 0; b < B; ++b)
            for (int r = seqs[b].cache_len; r < seqs[b].raw; ++r)
                for (int h = 0; h < hk; ++h)
                    for (int x = 0; x < d; ++x) {
                        k_expected[kv_index(kt, b, r, h) + x] = to_bits(K[b][(static_cast<size_t>(r) * hk + h) * d + x], dt);
                        v_expected[kv_index(vt, b, r, h) + x] = to_bits(V[b][(static_cast<size_t>(r) * hk + h) * d + x], dt);
                    }
    }
    qbuf.upload();
    obuf.upload();
    kbuf.upload();
    vbuf.upload();
    p.q = qt;
    p.k = kt;
    p.v = vt;
    p.out = ot;
    p.kv_batch = kv_entries;
    p.total_k = c.varlen ? total_k : kv_entries * kv_rows;

    // metadata
    std::vector<void*> to_free;
    auto dev = [&](const auto& v) {
        auto* ptr = device_copy(v);
        to_free.push_back(ptr);
        return ptr;
    };
    std::vector<int32_t> used(B), leftpad(B), cache_seqlens(B), rotary_cos_bits, rotary_sin_bits;
    for (int b = 0; b < B; ++b) {
        used[b] = seqs[b].raw;
        leftpad[b] = seqs[b].leftpad;
        cache_seqlens[b] = seqs[b].cache_len;
    }
    if (c.varlen) {
        p.cu_seqlens_q = dev(cu_q);
        p.cu_seqlens_k = dev(cu_k);
    }
    if (c.seqused) p.seqused_k = dev(used);
    if (c.leftpad) p.leftpad_k = dev(leftpad);
    if (c.page_size > 0) {
        p.block_table = dev(block_table);
        p.block_table_batch_stride = max_pages;
        p.page_size = c.page_size;
        p.max_pages_per_seq = max_pages;
    }
    if (c.kvcache) {
        p.cache_seqlens = dev(cache_seqlens);
        if (c.batch_idx) p.cache_batch_idx = dev(batch_idx);
    }
    Buffer cosb, sinb;
    if (c.rotary_dim > 0) {
        cosb.alloc(rot.cos.size(), dt);
        sinb.alloc(rot.sin.size(), dt);
        for (size_t i = 0; i < rot.cos.size(); ++i) {
            cosb.host[i] = to_bits(rot.cos[i], dt);
            sinb.host[i] = to_bits(rot.sin[i], dt);
        }
        cosb.upload();
        sinb.upload();
        p.rotary_dim = c.rotary_dim;
        p.rotary_cos = cosb.dev;
        p.rotary_sin = sinb.dev;
        p.seqlen_rotary = c.sk;
        p.rotary_interleaved = c.interleaved;
    }
    if (c.alibi) {
        p.alibi_slopes = dev(slopes);
        p.alibi_batch_stride = c.alibi == 2 ? hq : 0;
    }
    if (c.sinks) p.sink_logits = dev(sinks);
    if (c.descale) {
        // Row-major (batch, kv head), or head-major in the strided case: the strides are honoured, not assumed.
        p.descale_batch_stride = c.strided ? 1 : hk;
        p.descale_head_stride = c.strided ? B : 1;
        auto dev_descale = [&](const std::vector<float>& descale) {
            std::vector<float> laid(descale.size());
            for (int b = 0; b < B; ++b)
                for (int h = 0; h < hk; ++h)
                    laid[b * p.descale_batch_stride + h * p.descale_head_stride] = descale[static_cast<size_t>(b) * hk + h];
            return dev(laid);
        };
        p.q_descale = dev_descale(q_descale);
        p.k_descale = dev_descale(k_descale);
        p.v_descale = dev_descale(v_descale);
    }
    std::vector<float> lse_host(static_cast<size_t>(hq) * std::max(total_q, B * c.sq) + 8, 12345.0f);
    float* lse_dev = dev(lse_host);
    p.softmax_lse = lse_dev;
    p.lse_head_stride = c.varlen ? total_q : c.sq;
    p.lse_batch_stride = c.varlen ? 0 : static_cast<int64_t>(hq) * c.sq;
    auto lse_index = [&](int b, int h, int i) -> size_t {
        return c.varlen ? static_cast<size_t>(h) * total_q + cu_q[b] + i : (static_cast<size_t>(b) * hq + h) * c.sq + i;
    };

    // ---- run ---------------------------------------------------------------------------------------------------------
    const fa_op op = c.kvcache ? FA_OP_FORWARD_KVCACHE : FA_OP_FORWARD;
    char reason[1024];
    const fa_status sup = fa_supports(&p, op, reason, sizeof reason);
    auto cleanup = [&] {
        for (void* ptr : to_free) cudaFree(ptr);
    };
    if (sup != FA_OK) {
        cleanup();
        // Not compiled into this library (FA_HDIMS / FA_DTYPES filters): no instance of the head
        // dim, or no instance of the dtype at all (the capabilities then lack it: e4m3 in cuda_sm80,
        // which has no fp8 kernels, or in a hopper_sm90 built without them).
        fa_capabilities caps{};
        caps.struct_size = sizeof caps;
        const bool dtype_built = fa_get_capabilities(&caps) == FA_OK && (caps.dtypes & (1u << c.dtype)) != 0;
        // --refusals-skip: a backend that covers part of the features (hopper_sm90; the dispatcher
        // takes the rest to cuda_sm80) reports what it refuses, with the reason, as SKIP.
        if (std::strstr(reason, "instance") != nullptr || !dtype_built || g_refusals_skip) {
            res.skipped = true;
            res.note = reason;
            return res;
        }
        res.note = std::string("fa_supports refused: ") + reason;
        return res;
    }
    if (c.persistent) setenv("FA_SM90_PERSISTENT", "1", 1);
    const fa_status st = c.kvcache ? fa_forward_kvcache(&p) : fa_forward(&p);
    if (c.persistent) unsetenv("FA_SM90_PERSISTENT");
    if (st != FA_OK) {
        cleanup();
        res.note = std::string("call failed: ") + fa_last_error();
        return res;
    }
    CUDA_CHECK(cudaDeviceSynchronize());
    res.ran = true;
    obuf.download();
    CUDA_CHECK(cudaMemcpy(lse_host.data(), lse_dev, lse_host.size() * sizeof(float), cudaMemcpyDeviceToHost));

    // ---- reference (fp64) and baseline (dtype), row by row -----------------------------------------------------------------
    // e4m3: the scores are softmax_scale·q_descale·k_descale·(q·k) and out is v_descale·(P·V), descales of the row's kv head.
    const bool fp8 = dt == FA_DTYPE_F8_E4M3;
    int left = c.wl, right = c.causal ? 0 : c.wr;
    if (left >= p.seqlen_k) left = -1;
    if (right >= p.seqlen_k) right = -1;
    const double keep_scale = 1.0 / (1.0 - c.dropout);
    fa_sm80::DropoutParams drop{p.dropout_seed, p.dropout_offset, fa_sm80::dropout_threshold(c.dropout), 0.0f};
    double err = 0, err_base = 0, lse_err = 0;
    long long dropped = 0, visible = 0;
    bool lse_bad = false, poison_bad = false;
    std::vector<double> sref, pref;
    std::vector<float> sbase;
    for (int b = 0; b < B; ++b) {
        const Seq& s = seqs[b];
        for (int h = 0; h < hq; ++h) {
            const int hkv = h / group;
            const size_t descale_index = static_cast<size_t>(b) * hk + hkv;
            const double qk_descale = static_cast<double>(q_descale[descale_index]) * k_descale[descale_index];
            const double v_scale = v_descale[descale_index];
            const double slope = c.alibi ? slopes[static_cast<size_t>(c.alibi == 2 ? b : 0) * hq + h] : 0.0;
            for (int i = 0; i < s.sq; ++i) {
                const long a = static_cast<long>(i) + s.sk - s.sq;
                const float* q = &Q[b][(static_cast<size_t>(i) * hq + h) * d];
                sref.assign(s.sk, -INFINITY);
                sbase.assign(s.sk, -INFINITY);
                double score_acc_err = 0; /* e4m3: bound of the tensor cores' accumulation error in any score of the row */
                for (int j = 0; j < s.sk; ++j) {
                    const bool vis = (left < 0 || j >= a - left) && (right < 0 || j <= a + right);
                    if (!vis) continue;
                    const float* k = &K[b][(static_cast<size_t>(s.leftpad + j) * hk + hkv) * d];
                    double dot = 0, dot_abs = 0;
                    float dotf = 0;
                    for (int x = 0; x < d; ++x) {
                        dot += static_cast<double>(q[x]) * k[x];
                        dot_abs += std::fabs(static_cast<double>(q[x]) * k[x]);
                        dotf += q[x] * k[x];
                    }
                    if (fp8) score_acc_err = std::max(score_acc_err, kE4m3AccUlp * ((d + 31) / 32 + 1) * dot_abs * scale * qk_descale);
                    double sc = dot * scale * qk_descale;
                    /* fp16 / bf16 round q·k to the dtype, then scale; e4m3 (exact q·k) rounds the scaled score to bf16 */
                    float scf = fp8 ? round_to(static_cast<float>(sc), out_dt) : round_to(dotf, dt) * scale;
                    if (c.softcap > 0) {
                        sc = c.softcap * std::tanh(sc / c.softcap);
                        scf = c.softcap * std::tanh(scf / c.softcap);
                    }
                    if (c.alibi) {
                        sc -= slope * std::fabs(static_cast<double>(a - j));
                        scf -= static_cast<float>(slope) * std::fabs(static_cast<float>(a - j));
                    }
                    sref[j] = sc;
                    sbase[j] = scf;
                }
                double m = -INFINITY;
                float mf = -INFINITY;
                for (int j = 0; j < s.sk; ++j) {
                    m = std::max(m, sref[j]);
                    mf = std::max(mf, sbase[j]);
                }
                if (c.sinks) {
                    m = std::max(m, static_cast<double>(sinks[h]));
                    mf = std::max(mf, sinks[h]);
                }
                double l = 0;
                float lf = 0;
                for (int j = 0; j < s.sk; ++j) {
                    if (sref[j] != -INFINITY) l += std::exp(sref[j] - m);
                    if (sbase[j] != -INFINITY) lf += std::exp(sbase[j] - mf);
                }
                if (c.sinks) {
                    l += std::exp(sinks[h] - m);
                    lf += std::exp(sinks[h] - mf);
                }
                double lse_ref;
                if (c.sinks) lse_ref = m + std::log(l);
                else lse_ref = l > 0 ? m + std::log(l) : INFINITY;
                // out
                std::vector<double> o(d, 0.0);
                std::vector<float> ob(d, 0.0f);
                for (int j = 0; j < s.sk; ++j) {
                    if (sref[j] == -INFINITY) continue;
                    bool keep = true;
                    if (c.dropout > 0) {
                        keep = fa_sm80::dropout_keep(drop, static_cast<uint32_t>(b * hq + h), static_cast<uint32_t>(i),
                                                     static_cast<uint32_t>(j));
                        ++visible;
                        dropped += keep ? 0 : 1;
                    }
                    if (!keep) continue;
                    const double pj = std::exp(sref[j] - m) / l * keep_scale;
                    const float pb = round_to(std::exp(sbase[j] - mf) / lf, dt);
                    const float* v = &V[b][(static_cast<size_t>(s.leftpad + j) * hk + hkv) * d];
                    for (int x = 0; x < d; ++x) {
                        o[x] += pj * v[x];
                        ob[x] += pb * v[x];
                    }
                }
                const uint16_t* got = &obuf.host[q_index(ot, b, i, h)];
                for (int x = 0; x < d; ++x) {
                    const double ref = o[x] * v_scale;
                    const float base = round_to(static_cast<float>(ob[x] * keep_scale * v_scale), out_dt);
                    const float out = from_bits(got[x], out_dt);
                    err = std::max(err, std::fabs(out - ref));
                    if (!(std::fabs(out - ref) <= 1e30)) err = INFINITY; /* NaN */
                    err_base = std::max(err_base, std::fabs(base - ref));
                }
                const float lse = lse_host[lse_index(b, h, i)];
                if (std::isinf(lse_ref)) {
                    if (!(std::isinf(lse) && lse > 0)) lse_bad = true;
                } else {
                    /* LSE is 1-Lipschitz in the scores (max norm): e4m3 adds the scores' accumulation bound */
                    const double e = std::fabs(lse - lse_ref), bound = 1e-4 * (1.0 + std::fabs(lse_ref)) + score_acc_err;
                    lse_err = std::max(lse_err, e / (1.0 + std::fabs(lse_ref)));
                    if (!(e <= bound)) lse_bad = true;
                }
            }
        }
    }
    // Padding rows of q (dense rows never exist beyond sq; varlen poison between sequences is none) — check
    // that nothing outside the head dims was written: the strided padding columns must still be poison.
    if (c.strided) {
        for (int b = 0; b < B && !poison_bad; ++b)
            for (int i = 0; i < seqs[b].sq && !poison_bad; ++i)
                for (int x = d; x < d + 8 && !poison_bad; ++x) {
                    // Compared bitwise: 777 itself is not a bf16 value (it rounds to 776).
                    const uint16_t poison = to_bits(777.0f, out_dt);
                    const float found = from_bits(obuf.host[q_index(ot, b, i, hq - 1) + x], out_dt);
                    if (obuf.host[q_index(ot, b, i, hq - 1) + x] != poison) {
                        poison_bad = true;
                        char where[160];
                        std::snprintf(where, sizeof where, " padding (b %d, row %d, head %d, col %d) = %g;", b, i, hq - 1, x, found);
                        res.note += where;
                    }
                }
    }
    const double mult = (c.softcap > 0 || c.kvcache) ? 3.0 : 2.0;
    res.err = err;
    res.err_base = err_base;
    res.lse_err = lse_err;
    res.pass = err <= mult * err_base + 1e-5 && !lse_bad && !poison_bad;
    if (lse_bad) res.note += " LSE mismatch;";
    if (poison_bad) res.note += " wrote outside the head dims;";
    if (c.dropout > 0 && visible > 0) {
        res.drop_fraction = static_cast<double>(dropped) / visible;
        if (visible > 20000 && std::fabs(res.drop_fraction - c.dropout) > 0.01) {
            res.pass = false;
            res.note += " drop fraction off;";
        }
    }
    if (c.kvcache) {
        kbuf.download();
        vbuf.download();
        double kerr = 0;
        bool v_exact = true;
        for (size_t i = 0; i < kbuf.host.size(); ++i) {
            kerr = std::max(kerr, static_cast<double>(std::fabs(from_bits(kbuf.host[i], dt) - from_bits(k_expected[i], dt))));
            if (vbuf.host[i] != v_expected[i]) v_exact = false;
        }
        if (kerr > 1e-3) {
            res.pass = false;
            res.note += " K cache off by " + std::to_string(kerr) + ";";
        }
        if (!v_exact) {
            res.pass = false;
            res.note += " V cache not bit-exact;";
        }
    }
    cleanup();
    return res;
}

std::vector<Case> all_cases() {
    std::vector<Case> cases;
    auto add = [&](Case c) { cases.push_back(c); };
    for (fa_dtype dt : {FA_DTYPE_BF16, FA_DTYPE_F16}) {
        const std::string ty = dtype_label(dt);
        for (int d : {32, 64, 96, 128, 192, 256}) {
            Case c;
            c.dtype = dt;
            c.d = d;
            c.name = ty + " d" + std::to_string(d) + " dense 2x257x257 h4";
            c.sq = c.sk = 257;
            add(c);
            c.name = ty + " d" + std::to_string(d) + " causal 113x203 gqa 8/2";
            c.causal = true;
            c.sq = 113;
            c.sk = 203;
            c.hq = 8;
            c.hk = 2;
            add(c);
        }
        // More tiles than SMs, so that CTAs of a persistent grid walk several tiles.
        Case c;
        c.dtype = dt;
        c.name = ty + " d64 dense many tiles 2x300x300 h40";
        c.d = 64, c.sq = c.sk = 300, c.hq = c.hk = 40;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d128 causal many tiles 2x520x520 h16 gqa 16/4 persistent";
        c.causal = true, c.sq = c.sk = 520, c.hq = 16, c.hk = 4, c.persistent = true;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d128 long keys 2x200x4133 h2 causal"; /* hopper_sm90's wide key blocks (>= 4096 keys) */
        c.causal = true, c.sq = 200, c.sk = 4133, c.hq = c.hk = 2;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d128 long keys 2x130x4096 h2 window (1000,300)";
        c.wl = 1000, c.wr = 300, c.sq = 130, c.sk = 4096, c.hq = c.hk = 2;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d128 causal sq>sk 300x129 (empty rows)";
        c.causal = true, c.sq = 300, c.sk = 129;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d64 window (40,17) 200x333";
        c.d = 64, c.wl = 40, c.wr = 17, c.sq = 200, c.sk = 333;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d128 window left only (64,-1) causal 511x511";
        c.causal = true, c.wl = 64, c.sq = c.sk = 511;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d128 softcap 15 causal 190x190";
        c.softcap = 15.0f, c.causal = true, c.sq = c.sk = 190;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d64 softcap 30 varlen b3 gqa 6/2";
        c.d = 64, c.softcap = 30.0f, c.varlen = true, c.batch = 3, c.sq = 230, c.sk = 170, c.hq = 6, c.hk = 2;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d64 alibi (h) causal 150x260";
        c.d = 64, c.alibi = 1, c.causal = true, c.sq = 150, c.sk = 260;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d96 alibi (b,h) 99x130";
        c.d = 96, c.alibi = 2, c.sq = 99, c.sk = 130;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d128 mqa 8/1 1x1000";
        c.hq = 8, c.hk = 1, c.sq = 1, c.sk = 1000;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d128 varlen b5 (empty, len 1) causal";
        c.varlen = true, c.batch = 5, c.sq = 300, c.sk = 280, c.causal = true;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d64 varlen b4 seqused_k leftpad_k gqa";
        c.d = 64, c.varlen = true, c.batch = 4, c.sq = 130, c.sk = 250, c.seqused = true, c.leftpad = true, c.hq = 6, c.hk = 3;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d128 dense leftpad_k seqused_k causal";
        c.sq = 70, c.sk = 300, c.seqused = true, c.leftpad = true, c.causal = true;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d128 dropout 0.17 300x300";
        c.dropout = 0.17f, c.sq = c.sk = 300;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d64 dropout 0.3 causal varlen";
        c.d = 64, c.dropout = 0.3f, c.causal = true, c.varlen = true, c.batch = 4, c.sq = 200, c.sk = 200;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d128 sinks causal 77x150";
        c.sinks = true, c.causal = true, c.sq = 77, c.sk = 150;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d64 strided 3x129x65";
        c.d = 64, c.strided = true, c.batch = 3, c.sq = 129, c.sk = 65;
        add(c);
        for (int d : {40, 80, 200}) {
            c = Case{};
            c.dtype = dt;
            c.d = d;
            c.name = ty + " d" + std::to_string(d) + " padded head dim causal 97x97";
            c.causal = true, c.sq = c.sk = 97;
            add(c);
        }
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d128 split-KV 3 ways 64x700";
        c.num_splits = 3, c.sq = 64, c.sk = 700, c.causal = true;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d64 paged varlen page 16";
        c.d = 64, c.varlen = true, c.batch = 4, c.sq = 90, c.sk = 170, c.page_size = 16, c.causal = true;
        add(c);
        // kv cache
        c = Case{};
        c.dtype = dt;
        c.kvcache = true;
        c.name = ty + " d128 kvcache append 3, rotary half, causal";
        c.sq = 3, c.sk = 400, c.seqlen_new = 3, c.rotary_dim = 64, c.causal = true, c.hq = 8, c.hk = 2, c.batch = 3;
        add(c);
        c.name = ty + " d128 kvcache append 1, rotary interleaved, paged 5, splits auto";
        c.sq = 1, c.seqlen_new = 1, c.interleaved = true, c.page_size = 5, c.num_splits = 0;
        add(c);
        // Decode shapes that the num_splits = 0 heuristic (flash_fwd_plan.cuh) splits: 128 (b, h)
        // pairs → 2 splits on 132 SMs (halves of ≤ 9 key tiles, per-sequence cache lengths);
        // 16 pairs → 16 splits of ≤ 3 tiles, the last ones empty for the shorter caches (−∞
        // partials, skipped by the combine).
        c = Case{};
        c.dtype = dt;
        c.kvcache = true;
        c.name = ty + " d128 decode b8 h16 kv 1100 append 1, splits auto";
        c.batch = 8, c.hq = c.hk = 16, c.sq = 1, c.sk = 1100, c.seqlen_new = 1, c.num_splits = 0;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.kvcache = true;
        c.name = ty + " d64 decode gqa 8/2 b2 kv 3000, splits auto";
        c.d = 64, c.batch = 2, c.hq = 8, c.hk = 2, c.sq = 1, c.sk = 3000, c.num_splits = 0;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.kvcache = true;
        c.name = ty + " d64 kvcache cache_batch_idx leftpad window, no append";
        c.d = 64, c.sq = 4, c.sk = 300, c.batch_idx = true, c.leftpad = true, c.wl = 50, c.wr = 0, c.batch = 3;
        add(c);
        // d64 from 2048 keys takes cuda_sm80's long-key tile (128 keys per block, FwdLongConfig): both kernels
        // (lean and full), causal bottom-right with sq < sk, a window, and a key count off the block size.
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d64 long keys causal 257x2100 gqa 4/2";
        c.d = 64, c.sq = 257, c.sk = 2100, c.causal = true, c.hq = 4, c.hk = 2, c.batch = 1;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d64 long keys window (70,20) 130x2300";
        c.d = 64, c.sq = 130, c.sk = 2300, c.wl = 70, c.wr = 20, c.batch = 1, c.hq = c.hk = 2;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d64 long keys softcap 20 varlen b3 seqused_k";
        c.d = 64, c.softcap = 20.0f, c.varlen = true, c.batch = 3, c.sq = 90, c.sk = 2600, c.seqused = true, c.hq = c.hk = 2;
        add(c);
        // Paged caches with pages of whole 8-row TMA boxes (what hopper_sm90 takes: page 16 is loaded as
        // 16-row boxes, page 256 as whole key blocks) and NaN in every row that is not a key.
        c = Case{};
        c.dtype = dt;
        c.kvcache = true;
        c.name = ty + " d128 kvcache paged 16 gqa 8/2 splits 3, NaN outside the keys";
        c.batch = 3, c.hq = 8, c.hk = 2, c.sq = 1, c.sk = 700, c.seqlen_new = 1, c.page_size = 16, c.num_splits = 3;
        c.nan_outside = true;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.kvcache = true;
        c.name = ty + " d64 kvcache paged 256 causal 5 rows, splits auto, NaN outside";
        c.d = 64, c.batch = 3, c.sq = 5, c.sk = 900, c.seqlen_new = 2, c.page_size = 256, c.causal = true, c.num_splits = 0;
        c.nan_outside = true;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.kvcache = true;
        c.name = ty + " d192 kvcache paged 24 window, rotary interleaved";
        c.d = 192, c.batch = 2, c.sq = 3, c.sk = 500, c.seqlen_new = 3, c.page_size = 24, c.wl = 100, c.wr = 0;
        c.rotary_dim = 64, c.interleaved = true;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.kvcache = true;
        c.name = ty + " d256 kvcache cache_batch_idx splits 2 softcap, NaN outside";
        c.d = 256, c.batch = 3, c.sq = 2, c.sk = 450, c.seqlen_new = 2, c.batch_idx = true, c.num_splits = 2, c.softcap = 20.0f;
        c.nan_outside = true;
        add(c);
        // GQA decode shapes (hopper_sm90 packs the group's query heads into one tile when the group divides
        // its rows: 8, 12 and 16 here; 3 at d256 does not divide 128 and runs unpacked).
        c = Case{};
        c.dtype = dt;
        c.kvcache = true;
        c.name = ty + " d128 decode gqa 32/4 b4 kv 2000, splits auto, NaN outside";
        c.batch = 4, c.hq = 32, c.hk = 4, c.sq = 1, c.sk = 2000, c.seqlen_new = 1, c.num_splits = 0, c.nan_outside = true;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.kvcache = true;
        c.name = ty + " d64 kvcache mqa 12/1 causal 7 rows window 60, paged 32";
        c.d = 64, c.batch = 2, c.hq = 12, c.hk = 1, c.sq = 7, c.sk = 600, c.seqlen_new = 7, c.causal = true, c.wl = 60;
        c.page_size = 32;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.kvcache = true;
        c.name = ty + " d96 kvcache gqa 16/1 9 rows (two row blocks packed), splits 2, softcap";
        c.d = 96, c.batch = 2, c.hq = 16, c.hk = 1, c.sq = 9, c.sk = 500, c.seqlen_new = 2, c.num_splits = 2, c.softcap = 25.0f;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.kvcache = true;
        c.name = ty + " d128 kvcache gqa 8/2 sinks leftpad 3 rows, no split"; /* cuda_sm80: packed, the sink per row's head */
        c.batch = 3, c.hq = 8, c.hk = 2, c.sq = 3, c.sk = 400, c.seqlen_new = 3, c.sinks = true, c.leftpad = true, c.causal = true;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.kvcache = true;
        c.name = ty + " d256 kvcache gqa 6/2 causal 4 rows";
        c.d = 256, c.batch = 2, c.hq = 6, c.hk = 2, c.sq = 4, c.sk = 350, c.seqlen_new = 4, c.causal = true;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.name = ty + " d128 dense seqused_k, NaN past the used keys";
        c.sq = 100, c.sk = 300, c.seqused = true, c.batch = 3, c.nan_outside = true;
        add(c);
        c = Case{};
        c.dtype = dt;
        c.kvcache = true;
        c.name = ty + " d256 kvcache splits 4 alibi sinks";
        c.d = 256, c.sq = 2, c.sk = 512, c.seqlen_new = 2, c.num_splits = 4, c.alibi = 1, c.sinks = true;
        add(c);
    }
    // e4m3 inputs, bf16 out: fa_forward only, head dims multiples of 16, no paged K/V or splits (what
    // hopper_sm90 runs in fp8; cuda_sm80 has no e4m3 and reports these as SKIP). After the fp16 / bf16
    // cases, so that their seeds stay as they were. --quick takes the three of at most 256 x 256
    // scores: softcap with descales, seqused_k with NaN past the keys, and the strided layout.
    const std::string ty = dtype_label(FA_DTYPE_F8_E4M3);
    auto fp8_case = [&] {
        Case c;
        c.dtype = FA_DTYPE_F8_E4M3;
        return c;
    };
    for (int d : {64, 96, 128, 192, 256}) {
        Case c = fp8_case();
        c.d = d;
        c.name = ty + " d" + std::to_string(d) + " dense 2x257x257 h4";
        c.sq = c.sk = 257;
        add(c);
        c.name = ty + " d" + std::to_string(d) + " causal 260x390 gqa 8/2 descale";
        c.causal = true, c.sq = 260, c.sk = 390, c.hq = 8, c.hk = 2, c.descale = true;
        add(c);
    }
    Case c = fp8_case();
    c.name = ty + " d128 causal many tiles 2x600x600 h16 gqa 16/4 persistent descale";
    c.causal = true, c.sq = c.sk = 600, c.hq = 16, c.hk = 4, c.persistent = true, c.descale = true;
    add(c);
    c = fp8_case();
    c.name = ty + " d128 long keys 2x200x4133 h2 causal descale";
    c.causal = true, c.sq = 200, c.sk = 4133, c.hq = c.hk = 2, c.descale = true;
    add(c);
    c = fp8_case();
    c.name = ty + " d128 long keys 2x130x4096 h2 window (1000,300)";
    c.wl = 1000, c.wr = 300, c.sq = 130, c.sk = 4096, c.hq = c.hk = 2;
    add(c);
    c = fp8_case();
    c.name = ty + " d128 causal sq>sk 400x170 (empty rows)";
    c.causal = true, c.sq = 400, c.sk = 170;
    add(c);
    c = fp8_case();
    c.name = ty + " d128 window (40,17) 200x333 descale";
    c.wl = 40, c.wr = 17, c.sq = 200, c.sk = 333, c.descale = true;
    add(c);
    c = fp8_case();
    c.name = ty + " d128 softcap 15 causal 190x190 descale";
    c.softcap = 15.0f, c.causal = true, c.sq = c.sk = 190, c.descale = true;
    add(c);
    c = fp8_case();
    c.name = ty + " d128 softcap 30 varlen b3 gqa 6/2";
    c.softcap = 30.0f, c.varlen = true, c.batch = 3, c.sq = 330, c.sk = 270, c.hq = 6, c.hk = 2;
    add(c);
    c = fp8_case();
    c.name = ty + " d128 mqa 8/1 100x1000 descale";
    c.hq = 8, c.hk = 1, c.sq = 100, c.sk = 1000, c.descale = true;
    add(c);
    c = fp8_case();
    c.name = ty + " d128 varlen b5 (empty, len 1) causal descale";
    c.varlen = true, c.batch = 5, c.sq = 300, c.sk = 280, c.causal = true, c.descale = true;
    add(c);
    c = fp8_case();
    c.name = ty + " d128 varlen b4 seqused_k gqa 6/3 descale";
    c.varlen = true, c.batch = 4, c.sq = 300, c.sk = 250, c.seqused = true, c.hq = 6, c.hk = 3, c.descale = true;
    add(c);
    c = fp8_case();
    c.name = ty + " d128 dense seqused_k, NaN past the used keys";
    c.sq = 100, c.sk = 300, c.seqused = true, c.batch = 3, c.nan_outside = true;
    add(c);
    c = fp8_case();
    c.name = ty + " d128 strided 3x129x65 gqa 4/2 descale (head-major)";
    c.strided = true, c.batch = 3, c.sq = 129, c.sk = 65, c.hk = 2, c.descale = true;
    add(c);
    return cases;
}

// ---- benchmark ---------------------------------------------------------------------------------------------------------

void bench(fa_dtype dt, const std::vector<int>& dims, int iters) {
    const fa_dtype out_dt = out_dtype_for(dt);
    const size_t in_bytes = dtype_bytes(dt), out_bytes = dtype_bytes(out_dt);
    std::printf("%-6s %-5s %-7s %-6s %-6s %-10s %-10s\n", "dtype", "d", "causal", "batch", "seqlen", "ms", "TFLOP/s");
    /* Random normal inputs (every configuration has 16k tokens x 2048 columns): constant bytes let the tensor cores
       draw less power and clock higher than on real data (H100, 2026-11-24: bf16 d128 at 16k keys 788 TFLOP/s on
       constant bytes, 692 on random ones; e4m3 986 and 919). */
    const size_t n = static_cast<size_t>(16384) * 2048;
    std::vector<std::vector<uint8_t>> inputs(3, std::vector<uint8_t>(n * in_bytes));
    Rng rng(7);
    for (auto& bytes : inputs)
        for (size_t i = 0; i < n; ++i) {
            const uint16_t bits = to_bits(rng.normal(), dt);
            std::memcpy(&bytes[i * in_bytes], &bits, in_bytes); /* little-endian: e4m3 is the low byte */
        }
    for (int d : dims) {
        for (int causal : {0, 1}) {
            for (int s : {512, 1024, 2048, 4096, 8192, 16384}) {
                const int b = 16384 / s, h = 2048 / d;
                void *q, *k, *v, *o;
                CUDA_CHECK(cudaMalloc(&q, n * in_bytes));
                CUDA_CHECK(cudaMalloc(&k, n * in_bytes));
                CUDA_CHECK(cudaMalloc(&v, n * in_bytes));
                CUDA_CHECK(cudaMalloc(&o, n * out_bytes));
                CUDA_CHECK(cudaMemcpy(q, inputs[0].data(), n * in_bytes, cudaMemcpyHostToDevice));
                CUDA_CHECK(cudaMemcpy(k, inputs[1].data(), n * in_bytes, cudaMemcpyHostToDevice));
                CUDA_CHECK(cudaMemcpy(v, inputs[2].data(), n * in_bytes, cudaMemcpyHostToDevice));
                float* lse;
                CUDA_CHECK(cudaMalloc(&lse, static_cast<size_t>(b) * h * s * 4));
                fa_params p{};
                p.struct_size = sizeof p;
                p.abi_version = FA_ABI_VERSION;
                p.dtype = dt;
                p.out_dtype = out_dt;
                p.batch = b, p.seqlen_q = p.seqlen_k = s, p.nheads_q = p.nheads_kv = h, p.headdim_qk = p.headdim_v = d;
                p.total_q = p.total_k = b * s, p.kv_batch = b;
                p.q = layout(q, s, h, d, false, dt), p.k = layout(k, s, h, d, false, dt), p.v = layout(v, s, h, d, false, dt);
                p.out = layout(o, s, h, d, false, out_dt);
                p.softmax_lse = lse, p.lse_head_stride = s, p.lse_batch_stride = static_cast<int64_t>(h) * s;
                p.softmax_scale = static_cast<float>(1.0 / std::sqrt(d));
                p.is_causal = causal, p.window_left = -1, p.window_right = causal ? 0 : -1, p.num_splits = 1;
                char reason[512];
                if (fa_supports(&p, FA_OP_FORWARD, reason, sizeof reason) != FA_OK) {
                    std::printf("%-6s %-5d %-7d %-6d %-6d skipped: %s\n", dtype_label(dt), d, causal, b, s, reason);
                } else {
                    for (int w = 0; w < 3; ++w) fa_forward(&p);
                    cudaEvent_t e0, e1;
                    cudaEventCreate(&e0);
                    cudaEventCreate(&e1);
                    cudaEventRecord(e0);
                    for (int it = 0; it < iters; ++it) fa_forward(&p);
                    cudaEventRecord(e1);
                    CUDA_CHECK(cudaEventSynchronize(e1));
                    float ms = 0;
                    cudaEventElapsedTime(&ms, e0, e1);
                    ms /= iters;
                    const double flops = 4.0 * b * h * static_cast<double>(s) * s * d / (causal ? 2.0 : 1.0);
                    std::printf("%-6s %-5d %-7d %-6d %-6d %-10.3f %-10.1f\n", dtype_label(dt), d, causal, b, s, ms, flops / ms / 1e9);
                    cudaEventDestroy(e0);
                    cudaEventDestroy(e1);
                }
                cudaFree(q), cudaFree(k), cudaFree(v), cudaFree(o), cudaFree(lse);
            }
        }
    }
}

/*
 * Decode (fa_forward_kvcache, one query row, no append, num_splits = 0): GB/s of K + V read,
 * next to a device-to-device copy of the same bytes, and the split count the heuristic picks.
 */
void bench_decode(fa_dtype dt, const std::vector<int>& dims, int iters) {
    int num_sms = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, 0));
    std::printf("%-6s %-5s %-6s %-6s %-7s %-7s %-10s %-10s %-10s %-6s %-10s %-6s\n", "dtype", "d", "heads", "batch", "kv", "splits", "us", "GB/s",
                "copy GB/s", "ratio", "synced us", "ratio");
    const int h = 16;
    for (int d : dims) {
        for (int b : {1, 2, 4, 8, 16, 32, 64}) {
            for (int kv : {8192, 16384, 32768, 65536}) {
                const size_t n = static_cast<size_t>(b) * kv * h * d; /* elements of K (and of V) */
                void *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr, *ws = nullptr;
                int32_t* lens = nullptr;
                if (cudaMalloc(&k, n * 2) != cudaSuccess || cudaMalloc(&v, n * 2) != cudaSuccess) {
                    cudaGetLastError();
                    if (k) cudaFree(k);
                    std::printf("%-6s %-5d %-6d %-6d %-7d skipped: K/V do not fit\n", dtype_label(dt), d, h, b, kv);
                    continue;
                }
                CUDA_CHECK(cudaMalloc(&q, static_cast<size_t>(b) * h * d * 2));
                CUDA_CHECK(cudaMalloc(&o, static_cast<size_t>(b) * h * d * 2));
                CUDA_CHECK(cudaMemset(q, 0x3c, static_cast<size_t>(b) * h * d * 2));
                CUDA_CHECK(cudaMemset(k, 0x3c, n * 2));
                CUDA_CHECK(cudaMemset(v, 0x3c, n * 2));
                const std::vector<int32_t> lens_host(b, kv);
                CUDA_CHECK(cudaMalloc(&lens, b * sizeof(int32_t)));
                CUDA_CHECK(cudaMemcpy(lens, lens_host.data(), b * sizeof(int32_t), cudaMemcpyHostToDevice));
                fa_params p{};
                p.struct_size = sizeof p;
                p.abi_version = FA_ABI_VERSION;
                p.dtype = p.out_dtype = dt;
                p.batch = b, p.seqlen_q = 1, p.seqlen_k = kv, p.nheads_q = p.nheads_kv = h, p.headdim_qk = p.headdim_v = d;
                p.total_q = b, p.total_k = b * kv, p.kv_batch = b;
                p.q = layout(q, 1, h, d, false, dt), p.k = layout(k, kv, h, d, false, dt), p.v = layout(v, kv, h, d, false, dt);
                p.out = layout(o, 1, h, d, false, dt);
                p.cache_seqlens = lens;
                p.softmax_scale = static_cast<float>(1.0 / std::sqrt(d));
                p.window_left = p.window_right = -1, p.num_splits = 0;
                const int splits = fa_sm80::plan_forward(p, FA_OP_FORWARD_KVCACHE, num_sms).num_splits;
                uint64_t ws_bytes = 0;
                char reason[512];
                if (fa_supports(&p, FA_OP_FORWARD_KVCACHE, reason, sizeof reason) != FA_OK ||
                    fa_workspace_size(&p, FA_OP_FORWARD_KVCACHE, &ws_bytes) != FA_OK) {
                    std::printf("%-6s %-5d %-6d %-6d %-7d skipped: %s\n", dtype_label(dt), d, h, b, kv, reason);
                } else {
                    if (ws_bytes > 0) CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
                    p.workspace = ws, p.workspace_bytes = ws_bytes;
                    cudaEvent_t e0, e1;
                    cudaEventCreate(&e0);
                    cudaEventCreate(&e1);
                    for (int w = 0; w < 3; ++w) fa_forward_kvcache(&p);
                    cudaEventRecord(e0);
                    for (int it = 0; it < iters; ++it) fa_forward_kvcache(&p);
                    cudaEventRecord(e1);
                    CUDA_CHECK(cudaEventSynchronize(e1));
                    float ms = 0, copy_ms = 0;
                    cudaEventElapsedTime(&ms, e0, e1);
                    ms /= iters;
                    /* the copy reference: K → V, n elements (reads n·2 bytes, writes n·2) */
                    cudaEventRecord(e0);
                    for (int it = 0; it < iters; ++it) cudaMemcpyAsync(v, k, n * 2, cudaMemcpyDeviceToDevice);
                    cudaEventRecord(e1);
                    CUDA_CHECK(cudaEventSynchronize(e1));
                    cudaEventElapsedTime(&copy_ms, e0, e1);
                    copy_ms /= iters;
                    /* As `flashattn bench --decode` times it: one call between two events and a
                       synchronisation, the library allocating its workspace (median). */
                    fa_params q_own = p;
                    q_own.workspace = nullptr, q_own.workspace_bytes = 0;
                    std::vector<float> once;
                    for (int it = 0; it < std::max(iters, 5); ++it) {
                        cudaEventRecord(e0);
                        fa_forward_kvcache(&q_own);
                        cudaEventRecord(e1);
                        CUDA_CHECK(cudaEventSynchronize(e1));
                        float t1 = 0;
                        cudaEventElapsedTime(&t1, e0, e1);
                        once.push_back(t1);
                    }
                    std::sort(once.begin(), once.end());
                    const float synced_ms = once[once.size() / 2];
                    const double gbs = 2.0 * n * 2 / (ms * 1e6);
                    const double copy_gbs = 2.0 * n * 2 / (copy_ms * 1e6); /* bytes read + written */
                    std::printf("%-6s %-5d %-6d %-6d %-7d %-7d %-10.1f %-10.0f %-10.0f %-6.2f %-10.1f %-6.2f\n",
                                dtype_label(dt), d, h, b, kv, splits, ms * 1e3, gbs, copy_gbs, gbs / copy_gbs,
                                synced_ms * 1e3, 2.0 * n * 2 / (synced_ms * 1e6) / copy_gbs);
                    cudaEventDestroy(e0);
                    cudaEventDestroy(e1);
                }
                cudaFree(q), cudaFree(k), cudaFree(v), cudaFree(o), cudaFree(lens);
                if (ws) cudaFree(ws);
            }
        }
    }
}

/* --dtype NAME: bf16, fp16 or e4m3; false for any other name. */
bool parse_dtype(const std::string& name, fa_dtype* dt) {
    for (fa_dtype candidate : {FA_DTYPE_BF16, FA_DTYPE_F16, FA_DTYPE_F8_E4M3})
        if (name == dtype_label(candidate)) {
            *dt = candidate;
            return true;
        }
    return false;
}

}  // namespace

int main(int argc, char** argv) {
    std::string filter;
    bool do_bench = false, do_bench_decode = false, quick = false;
    // FA_CHECK_SMALL=1 (set by tools/device/gpu-check.sh for compute-sanitizer) = --quick.
    const char* small_env = std::getenv("FA_CHECK_SMALL");
    const bool small = small_env != nullptr && std::strcmp(small_env, "1") == 0;
    fa_dtype bench_dtype = FA_DTYPE_BF16;
    std::vector<int> dims = {64, 128, 256};
    int iters = 20;
    bool dims_given = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--filter" && i + 1 < argc) filter = argv[++i];
        else if (a == "--bench") do_bench = true;
        else if (a == "--bench-decode") do_bench_decode = true;
        else if (a == "--quick") quick = true; /* small problems only: for compute-sanitizer */
        else if (a == "--refusals-skip") g_refusals_skip = true;
        else if (a == "--dtype" && i + 1 < argc && parse_dtype(argv[i + 1], &bench_dtype)) ++i;
        else if (a == "--iters" && i + 1 < argc) iters = std::atoi(argv[++i]);
        else if (a == "--d" && i + 1 < argc) {
            dims.clear();
            dims_given = true;
            std::string list = argv[++i];
            size_t pos = 0;
            while (pos < list.size()) {
                const size_t comma = list.find(',', pos);
                dims.push_back(std::atoi(list.substr(pos, comma - pos).c_str()));
                if (comma == std::string::npos) break;
                pos = comma + 1;
            }
        } else {
            std::fprintf(stderr,
                         "usage: %s [--quick] [--refusals-skip] [--filter TEXT]"
                         " [--bench [--dtype bf16|fp16|e4m3] | --bench-decode [--dtype bf16|fp16] [--d 64,128] [--iters N]]\n",
                         argv[0]);
            return 2;
        }
    }
    if (do_bench_decode && bench_dtype == FA_DTYPE_F8_E4M3) {
        std::fprintf(stderr, "--bench-decode times fa_forward_kvcache, which takes no e4m3 inputs: --dtype bf16 or fp16\n");
        return 2;
    }
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s (sm_%d%d, %d SMs), library %s\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount,
                fa_backend_name());
    if (do_bench_decode) {
        bench_decode(bench_dtype, dims_given ? dims : std::vector<int>{128}, iters);
        return 0;
    }
    if (do_bench) {
        bench(bench_dtype, dims, iters);
        return 0;
    }
    int failed = 0, passed = 0, skipped = 0;
    uint64_t seed = 1;
    for (const Case& c : all_cases()) {
        ++seed;
        if (!filter.empty() && c.name.find(filter) == std::string::npos) continue;
        // Under compute-sanitizer kernels run 10-100x slower: keep the cases of at most 256 x 256 scores per head.
        if ((quick || small) && (long)c.sq * c.sk > 256L * 256L) continue;
        const auto t0 = std::chrono::steady_clock::now();
        const Result r = run_case(c, seed);
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (r.skipped) {
            ++skipped;
            std::printf("SKIP %-60s %s\n", c.name.c_str(), r.note.c_str());
            continue;
        }
        const bool ok = r.ran && r.pass;
        ok ? ++passed : ++failed;
        std::printf("%s %-60s err %.3e base %.3e lse %.1e", ok ? "PASS" : "FAIL", c.name.c_str(), r.err, r.err_base, r.lse_err);
        if (r.drop_fraction >= 0) std::printf(" drop %.4f", r.drop_fraction);
        std::printf(" (%.1fs)%s%s\n", secs, r.note.empty() ? "" : " —", r.note.c_str());
    }
    std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed == 0 ? 0 : 1;
}

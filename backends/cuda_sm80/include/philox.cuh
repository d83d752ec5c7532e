/*
 * philox.cuh — the dropout RNG of flash_attn_abi.h ("DROPOUT RNG"), shared by the sm80
 * forward and backward so that both realise the same mask, and equal bit for bit to the CPU
 * backend's (src/Core/Philox.cs).
 *
 * Philox4x32-10 (Salmon et al., SC'11): 10 rounds; round r > 0 first bumps the key by the
 * Weyl constants; a round maps (c0, c1, c2, c3) to
 *   (hi(M1·c2) ^ c1 ^ k0,  lo(M1·c2),  hi(M0·c0) ^ c3 ^ k1,  lo(M0·c0)).
 * Element (b, h, i, j) is kept when word j % 4 of
 *   Philox(key = {seed_lo, seed_hi}, counter = {lo(offset + j/4), hi(offset + j/4), i, b·hq + h})
 * is >= floor(p · 2^32).
 */
#ifndef FA_SM80_PHILOX_CUH
#define FA_SM80_PHILOX_CUH

#include <cmath>
#include <cstdint>

namespace fa_sm80 {

struct PhiloxWords {
    uint32_t x[4];
};

__host__ __device__ __forceinline__ void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
#ifdef __CUDA_ARCH__
    lo = a * b;
    hi = __umulhi(a, b);
#else
    const uint64_t p = static_cast<uint64_t>(a) * b;
    lo = static_cast<uint32_t>(p);
    hi = static_cast<uint32_t>(p >> 32);
#endif
}

__host__ __device__ __forceinline__ PhiloxWords philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                                             uint32_t k0, uint32_t k1) {
    constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
    constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
#pragma unroll
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += kW0;
            k1 += kW1;
        }
        uint32_t hi0, lo0, hi1, lo1;
        philox_mulhilo(kM0, c0, hi0, lo0);
        philox_mulhilo(kM1, c2, hi1, lo1);
        const uint32_t n0 = hi1 ^ c1 ^ k0;
        const uint32_t n2 = hi0 ^ c3 ^ k1;
        c1 = lo1;
        c3 = lo0;
        c0 = n0;
        c2 = n2;
    }
    return PhiloxWords{{c0, c1, c2, c3}};
}

/* The per-call constants of the mask, computed once on the host. */
struct DropoutParams {
    uint64_t seed;
    uint64_t offset;
    uint32_t threshold; /* floor(p · 2^32): a word below it drops its element */
    float keep_scale;   /* 1 / (1 − p) */
};

inline uint32_t dropout_threshold(float p) {
    const double t = std::floor(static_cast<double>(p) * 4294967296.0);
    return t >= 4294967295.0 ? 0xffffffffu : static_cast<uint32_t>(t);
}

/* The four words for keys 4·(j/4) .. 4·(j/4)+3 of row i of (sequence b, query head h);
   bh = b · nheads_q + h. */
__host__ __device__ __forceinline__ PhiloxWords dropout_words(const DropoutParams& d, uint32_t bh, uint32_t i, uint32_t j) {
    const uint64_t c = d.offset + (j >> 2);
    return philox4x32_10(static_cast<uint32_t>(c), static_cast<uint32_t>(c >> 32), i, bh, static_cast<uint32_t>(d.seed),
                         static_cast<uint32_t>(d.seed >> 32));
}

__host__ __device__ __forceinline__ bool dropout_keep(const DropoutParams& d, uint32_t bh, uint32_t i, uint32_t j) {
    return dropout_words(d, bh, i, j).x[j & 3] >= d.threshold;
}

}  // namespace fa_sm80

#endif  // FA_SM80_PHILOX_CUH

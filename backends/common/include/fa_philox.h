/*
 * fa_philox.h — the dropout RNG of flash_attn_abi.h ("DROPOUT RNG") for any compiler that
 * builds a backend: host C++, nvcc and hip-clang (device and host passes). Every backend must
 * realise the same mask as the CPU backend (src/Core/Philox.cs), so the generator is written
 * once here, without intrinsics, and a compiler turns the 32x32 → 64-bit products into its
 * own mul-hi instruction.
 *
 * Philox4x32-10 (Salmon et al., SC'11): 10 rounds; every round after the first adds the Weyl
 * constants to the key; a round maps the counter (c0, c1, c2, c3) to
 *   (hi(M1·c2) ^ c1 ^ k0,  lo(M1·c2),  hi(M0·c0) ^ c3 ^ k1,  lo(M0·c0)).
 * Element (b, h, i, j) is kept when word j % 4 of
 *   Philox(key = {seed_lo, seed_hi}, counter = {lo(offset + j/4), hi(offset + j/4), i, b·hq + h})
 * is >= floor(p · 2^32); kept values are scaled by 1 / (1 − p).
 */
#ifndef FA_PHILOX_H
#define FA_PHILOX_H

#include <stdint.h>

#if defined(__CUDACC__) || defined(__HIPCC__) || defined(__HIP__)
#define FA_PHILOX_FN __host__ __device__ inline
#else
#define FA_PHILOX_FN inline
#endif

namespace fa_philox {

/* Four 32-bit words of one Philox block. */
struct Block {
    uint32_t word[4];
};

constexpr uint32_t kMul0 = 0xD2511F53u;
constexpr uint32_t kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;
constexpr uint32_t kWeyl1 = 0xBB67AE85u;

FA_PHILOX_FN Block philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += kWeyl0;
            k1 += kWeyl1;
        }
        const uint64_t p0 = static_cast<uint64_t>(kMul0) * c0;
        const uint64_t p1 = static_cast<uint64_t>(kMul1) * c2;
        const uint32_t next0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
        const uint32_t next2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
        c1 = static_cast<uint32_t>(p1);
        c3 = static_cast<uint32_t>(p0);
        c0 = next0;
        c2 = next2;
    }
    return Block{{c0, c1, c2, c3}};
}

/* floor(p · 2^32) as the kept/dropped threshold; p in [0, 1). */
inline uint32_t keep_threshold(float p) {
    const double t = static_cast<double>(p) * 4294967296.0;
    return t >= 4294967295.0 ? 0xffffffffu : static_cast<uint32_t>(t);
}

/* The words for keys 4·(j/4) … 4·(j/4)+3 of row i of (sequence b, query head h), bh = b·hq + h. */
FA_PHILOX_FN Block mask_block(uint64_t seed, uint64_t offset, uint32_t bh, uint32_t i, uint32_t j) {
    const uint64_t counter = offset + (j >> 2);
    return philox4x32_10(static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), i, bh,
                         static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

}  // namespace fa_philox

#endif /* FA_PHILOX_H */

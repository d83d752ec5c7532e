/*
 * ck_bits.h — fp16 and bf16 as bit patterns: conversions to and from fp32 (round to nearest
 * even) by integer arithmetic, usable by any compiler (kernels on the host emulation, the
 * device code's bf16 path, and the host-side tests).
 */
#ifndef FA_CK_BITS_H
#define FA_CK_BITS_H

#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__) || defined(__HIP__)
#define FA_CK_BITS_FN __host__ __device__ inline
#else
#define FA_CK_BITS_FN inline
#endif

namespace fa_ck {

FA_CK_BITS_FN uint32_t float_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

FA_CK_BITS_FN float bits_float(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* bf16: the high half of an fp32, rounded to nearest even; NaN stays a (quiet) NaN. */
FA_CK_BITS_FN uint16_t float_to_bf16(float x) {
    const uint32_t u = float_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
    return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

FA_CK_BITS_FN float bf16_to_float(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

/* IEEE binary16 by bit arithmetic (host side and tests), round to nearest even. */
FA_CK_BITS_FN uint16_t float_to_half_bits(float x) {
    const uint32_t u = float_bits(x);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
    if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (abs < 0x38800000u) {                                               /* subnormal half (or 0) */
        if (abs < 0x33000000u) return static_cast<uint16_t>(sign);        /* below half the smallest subnormal */
        const uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
        const int shift = 126 - static_cast<int>(abs >> 23); /* 14 .. 24 */
        uint32_t h = mantissa >> shift;
        const uint32_t rest = mantissa & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (h & 1u))) ++h;
        return static_cast<uint16_t>(sign | h);
    }
    uint32_t h = ((abs - 0x38000000u) >> 13); /* rebias exponent 127 → 15 */
    const uint32_t rest = abs & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
}

FA_CK_BITS_FN float half_bits_to_float(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
    if (exponent == 0x1fu) return bits_float(sign | 0x7f800000u | (mantissa << 13));
    if (exponent == 0) {
        const float magnitude = static_cast<float>(mantissa) * (1.0f / 16777216.0f); /* mantissa · 2^-24 */
        return sign ? -magnitude : magnitude;
    }
    return bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

}  // namespace fa_ck

#endif  // FA_CK_BITS_H

/*
 * ck_numeric.h — the 16-bit element types of the rocm_ck kernels, held as raw bits
 * (uint16_t) in memory and in MFMA operands, with conversions to and from fp32.
 *
 * Element<FA_DTYPE_F16> / Element<FA_DTYPE_BF16>: to_float / from_float (round to nearest
 * even, as the hardware converts). AMD converts fp16 with v_cvt_f16_f32 / v_cvt_f32_f16,
 * NVIDIA with its intrinsics; bf16, and fp16 on the host, by the bit arithmetic of ck_bits.h.
 */
#ifndef FA_CK_NUMERIC_H
#define FA_CK_NUMERIC_H

#include "ck_arch.h"
#include "ck_bits.h"
#include "flash_attn_abi.h"

#if FA_CK_TARGET_NVIDIA
#include <cuda_fp16.h>
#endif

namespace fa_ck {

template <int DType>
struct Element;

template <>
struct Element<FA_DTYPE_F16> {
    static FA_CK_DEVICE float to_float(uint16_t b) {
#if FA_CK_TARGET_AMD
        return static_cast<float>(__builtin_bit_cast(_Float16, b));
#elif FA_CK_TARGET_NVIDIA
        return __half2float(__ushort_as_half(b));
#else
        return half_bits_to_float(b);
#endif
    }
    static FA_CK_DEVICE uint16_t from_float(float x) {
#if FA_CK_TARGET_AMD
        return __builtin_bit_cast(uint16_t, static_cast<_Float16>(x));
#elif FA_CK_TARGET_NVIDIA
        return __half_as_ushort(__float2half_rn(x));
#else
        return float_to_half_bits(x);
#endif
    }
};

template <>
struct Element<FA_DTYPE_BF16> {
    static FA_CK_DEVICE float to_float(uint16_t b) { return bf16_to_float(b); }
    static FA_CK_DEVICE uint16_t from_float(float x) { return float_to_bf16(x); }
};

}  // namespace fa_ck

#endif  // FA_CK_NUMERIC_H

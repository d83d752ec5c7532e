/*
 * ck_mfma.h — the one matrix step of the rocm_ck kernels: D = A·B + C with A 32x8, B 8x32,
 * C/D 32x32 fp32, over one wave of 64 lanes (CDNA v_mfma_f32_32x32x8f16 /
 * v_mfma_f32_32x32x8bf16_1k), and the fragment layouts that every kernel addresses through
 * the functions below. Lane l, element e of a Pack4 operand, accumulator register v:
 *
 *   A[row][k]   row = l % 32,                         k = 4·(l / 32) + e
 *   B[k][col]   k = 4·(l / 32) + e,                   col = l % 32
 *   C[row][col] row = 8·(v / 4) + 4·(l / 32) + v % 4,  col = l % 32      (16 registers)
 *
 * (AMD's "Matrix Instruction Calculator" for these instructions, one block, cbsz = abid =
 * blgp = 0.) The kernels use the transposed form S^T = K·Q^T: a lane then owns one query (a
 * column) and its accumulator registers 4·s … 4·s+3 are exactly the B operand of the next
 * step's k-slice s, so P^T feeds O^T = V^T·P^T without leaving registers.
 *
 * On NVIDIA and the host the step is emulated with the same layouts: each lane puts its
 * operands in per-wave shared memory, the wave synchronises, and each lane computes its 16
 * outputs in fp32 (products of 16-bit values are exact in fp32, as in the MFMA).
 */
#ifndef FA_CK_MFMA_H
#define FA_CK_MFMA_H

#include "ck_arch.h"
#include "ck_numeric.h"

namespace fa_ck {

/* Rows/columns of the step and the k depth of one operand slice. */
constexpr int kMfmaM = 32;
constexpr int kMfmaN = 32;
constexpr int kMfmaK = 8;
constexpr int kAccRegs = 16;

/* Where lane `lane` holds things (see the table above). */
struct MfmaLayout {
    static FA_CK_DEVICE int operand_row(int lane) { return lane % 32; }             /* A row / B column */
    static FA_CK_DEVICE int operand_k(int lane, int e) { return 4 * (lane / 32) + e; } /* A/B k index */
    static FA_CK_DEVICE int acc_row(int lane, int v) { return 8 * (v / 4) + 4 * (lane / 32) + (v % 4); }
    static FA_CK_DEVICE int acc_col(int lane) { return lane % 32; }
};

#if FA_CK_TARGET_AMD
typedef float Acc __attribute__((ext_vector_type(16)));
typedef _Float16 MfmaHalf4 __attribute__((ext_vector_type(4)));
typedef short MfmaShort4 __attribute__((ext_vector_type(4)));
#else
/* 16 fp32 accumulator registers. */
struct Acc {
    float v[16];
    FA_CK_DEVICE float& operator[](int i) { return v[i]; }
    FA_CK_DEVICE float operator[](int i) const { return v[i]; }
};
#endif

FA_CK_DEVICE void acc_zero(Acc& c) {
#pragma unroll
    for (int v = 0; v < kAccRegs; ++v) c[v] = 0.0f;
}

/* c += a·b over one wave (every lane must call it, with wave-uniform control flow). */
template <int DType>
FA_CK_DEVICE void mfma_32x32x8(const Pack4& a, const Pack4& b, Acc& c) {
#if FA_CK_TARGET_AMD
    if constexpr (DType == FA_DTYPE_F16) {
        c = __builtin_amdgcn_mfma_f32_32x32x8f16(__builtin_bit_cast(MfmaHalf4, a), __builtin_bit_cast(MfmaHalf4, b), c, 0, 0, 0);
    } else {
        c = __builtin_amdgcn_mfma_f32_32x32x8bf16_1k(__builtin_bit_cast(MfmaShort4, a), __builtin_bit_cast(MfmaShort4, b), c, 0,
                                                     0, 0);
    }
#else
    /* Operands of the whole wave: A at [lane][e], B at 256 + [lane][e]. */
    float* s = wave_scratch<2 * kWaveSize * 4>();
    const int lane = lane_id();
#pragma unroll
    for (int e = 0; e < 4; ++e) {
        s[lane * 4 + e] = Element<DType>::to_float(pack_get(a, e));
        s[256 + lane * 4 + e] = Element<DType>::to_float(pack_get(b, e));
    }
    wave_sync();
    const int col = MfmaLayout::acc_col(lane);
#pragma unroll
    for (int v = 0; v < kAccRegs; ++v) {
        const int row = MfmaLayout::acc_row(lane, v);
        float sum = c[v];
        for (int k = 0; k < kMfmaK; ++k) {
            /* A[row][k] is element k % 4 of lane row + 32·(k / 4); B[k][col] likewise of lane col + 32·(k / 4). */
            sum += s[(row + 32 * (k / 4)) * 4 + k % 4] * s[256 + (col + 32 * (k / 4)) * 4 + k % 4];
        }
        c[v] = sum;
    }
    wave_sync();
#endif
}

}  // namespace fa_ck

#endif  // FA_CK_MFMA_H

/*
 * bwd_smem_layout.cuh — where the sm80 backward keeps its [row][column] tiles in shared memory (RowLayout) and
 * how a lane addresses them for ldmatrix (OperandRows). Plain integer arithmetic, host and device alike, so
 * that tests/smem_layout_test.cpp checks on the host what the kernel computes on the GPU.
 */
#ifndef FA_SM80_BWD_SMEM_LAYOUT_CUH
#define FA_SM80_BWD_SMEM_LAYOUT_CUH

#include <cstdint>

#if defined(__CUDACC__)
#define FA_LAYOUT_FN __host__ __device__ __forceinline__
#else
#define FA_LAYOUT_FN inline
#endif

namespace fa_sm80 {
namespace bwd {

/* A tile of rows of kCols 16-bit elements in shared memory: at(r, col, x) is the byte offset of element col
 * (a multiple of 8: the start of a 16-byte chunk) of row r, where x = r % 8 (callers pass the value they
 * know per lane).
 *   padded (kSwizzle false): rows of kCols + 8 elements; the 16-byte pad puts 8 consecutive rows in 8
 *     different bank groups;
 *   swizzled (kCols a multiple of 64): rows of kCols elements, chunk c stored at c ^ x within its group of 8
 *     (128 bytes). The same bank spread for ldmatrix, and a 32-byte global sector (chunks 2j, 2j + 1) stays in
 *     one aligned 32-byte span: with the pad every odd row split each cp.async sector over two wavefronts
 *     (Nsight Compute, H100: 2.6x the ideal for those copies). */
template <int kCols, bool kSwizzle_>
struct RowLayout {
    static_assert(!kSwizzle_ || kCols % 64 == 0, "the swizzle permutes groups of 8 chunks");
    static constexpr bool kSwizzle = kSwizzle_;
    static constexpr int kPitch = kSwizzle ? kCols : kCols + 8;  // elements per row
    static FA_LAYOUT_FN uint32_t at(int r, int col, int x) {
        return kSwizzle ? static_cast<uint32_t>(r * kPitch * 2 + (((col >> 3) ^ x) << 4)) : static_cast<uint32_t>((r * kPitch + col) * 2);
    }
};

/* The ldmatrix.x4 address of one operand: the 16 x 16 block at (dr, dc) from this lane's row r and column c of
 * it (c: the lane's 0 or 8 plus the warp's column offset). Padded layouts: one base per lane plus constant
 * offsets. Swizzled: base = tile + r pitch + chunk(c) ^ (r % 8), and the block's address is
 * (base ^ 2 dc) + dr pitch: one XOR per distinct dc, shared by every dr. That holds when
 *   - dc's chunk bits and c's do not overlap (c's warp offset is a multiple of the warp tile's width, dc a
 *     multiple of 16 below it; the lane's 8 is bit 0 of the chunk, dc's chunks are even), so the chunk
 *     c + dc = c ^ dc and its swizzle (c ^ dc) ^ (r % 8) = (c ^ (r % 8)) ^ dc;
 *   - the pitch is a power of two and tile a multiple of it (base's bits below the pitch are then the chunk's
 *     alone).
 * dr and dc are compile-time constants after unrolling. */
template <class L>
struct OperandRows {
    static constexpr int kPitchBytes = L::kPitch * 2;
    // The XOR form needs base's bits below the pitch to be the chunk's alone: a power-of-two pitch (d 192's
    // 384-byte rows take the general form, an XOR per load).
    static constexpr bool kXor = L::kSwizzle && (kPitchBytes & (kPitchBytes - 1)) == 0;
    uint32_t base;
    int c, x;
    FA_LAYOUT_FN OperandRows(uint32_t tile, int r, int c_, int lane) : c(c_), x(lane & 7) {
        if (kXor)
            base = tile + r * kPitchBytes + ((((c >> 3) ^ x) & 7) << 4) + (((c >> 3) & ~7) << 4);
        else if (L::kSwizzle)
            base = tile + r * kPitchBytes;
        else
            base = tile + L::at(r, c, x);
    }
    FA_LAYOUT_FN uint32_t at(int dr, int dc) const {
        if (kXor) return (base ^ static_cast<uint32_t>(2 * dc)) + dr * kPitchBytes;
        if (L::kSwizzle) return base + L::at(dr, c + dc, x);
        return base + (dr * L::kPitch + dc) * 2;
    }
};

}  // namespace bwd
}  // namespace fa_sm80

#endif  // FA_SM80_BWD_SMEM_LAYOUT_CUH

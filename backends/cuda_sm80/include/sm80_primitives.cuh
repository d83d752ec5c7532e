/*
 * sm80_primitives.cuh — the small device vocabulary the sm80 kernels (forward and backward)
 * are written in: one warp-level MMA shape, the shared-memory loads that feed it, async
 * global→shared copies, an XOR-swizzled shared tile layout, 16-bit packing and quad
 * reductions. Everything is a thin, force-inlined wrapper over one PTX instruction or a
 * fixed short sequence, so the kernels read as tile operations and the SASS stays predictable.
 *
 * Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"), with
 * g = lane / 4 (group) and t = lane % 4 (thread in group):
 *   A (16×16, row-major), 4 × b32, each two consecutive-column elements:
 *       a0 = (g, 2t..2t+1)  a1 = (g+8, 2t..)  a2 = (g, 2t+8..)  a3 = (g+8, 2t+8..)
 *   B (16×8, "col": element (k, n)), 2 × b32:
 *       b0 = (k = 2t..2t+1, n = g)  b1 = (k = 2t+8.., n = g)
 *   C/D (16×8 fp32), 4 × f32:
 *       c0, c1 = (g, 2t), (g, 2t+1)  c2, c3 = (g+8, 2t), (g+8, 2t+1)
 * So the C fragments of two adjacent n-tiles, converted to 16 bits pairwise, are exactly the
 * A fragment of one k-step: that is how P goes from the S accumulator into P·V without
 * touching shared memory.
 *
 * ldmatrix .x4: lanes 8m..8m+7 give the row addresses of 8×8 matrix m (16 bytes each);
 * register r[m] of lane l holds row l/4, columns 2(l%4)..+1 of matrix m, or with .trans
 * rows 2(l%4)..+1, column l/4.
 */
#ifndef FA_SM80_PRIMITIVES_CUH
#define FA_SM80_PRIMITIVES_CUH

#include <cstdint>
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#include "fa_cuda_math.cuh"

#define FA_DEVICE __device__ __forceinline__
#define FA_HOST_DEVICE __host__ __device__ __forceinline__

namespace fa_sm80 {

// ---- element types ------------------------------------------------------------------------

template <typename Element>
struct ElementTraits;

template <>
struct ElementTraits<__half> {
    static constexpr const char* kName = "fp16";
};

template <>
struct ElementTraits<__nv_bfloat16> {
    static constexpr const char* kName = "bf16";
};

// ---- addresses ----------------------------------------------------------------------------

/* 32-bit shared-state-space address of a generic pointer into shared memory. */
FA_DEVICE uint32_t smem_addr(const void* ptr) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(ptr));
}

// ---- tensor-core MMA: D += A·B, m16n8k16, fp16/bf16 in, fp32 accumulate --------------------

template <typename Element>
FA_DEVICE void mma_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]);

template <>
FA_DEVICE void mma_16816<__half>(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

template <>
FA_DEVICE void mma_16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// ---- shared → registers: ldmatrix ---------------------------------------------------------

FA_DEVICE void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

FA_DEVICE void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

/* .x2: lanes 0..15 give the addresses (matrices 0 and 1); lanes 16..31 must still pass a valid one. */
FA_DEVICE void ldmatrix_x2(uint32_t (&r)[2], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(addr));
}

FA_DEVICE void ldmatrix_x2_trans(uint32_t (&r)[2], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(addr));
}

// ---- global → shared: cp.async (16 bytes, L2 only) ----------------------------------------

/* Copies 16 bytes, or writes 16 zero bytes when !valid (src-size 0: the source is not read,
   but must still be a valid-looking address, so callers pass the tensor base). */
FA_DEVICE void cp_async_16(uint32_t smem_dst, const void* gmem_src, bool valid) {
    const int src_bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_dst), "l"(gmem_src), "r"(src_bytes));
}

FA_DEVICE void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

/* Waits until at most `Pending` committed groups of this thread are still in flight. */
template <int Pending>
FA_DEVICE void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending));
}

// ---- 16-byte global/shared stores and loads -------------------------------------------

FA_DEVICE void st_global_16(void* ptr, const uint4& v) {
    asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"l"(ptr), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w));
}

FA_DEVICE uint4 ld_shared_16(uint32_t addr) {
    uint4 v;
    asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr));
    return v;
}

FA_DEVICE void st_shared_16(uint32_t addr, const uint4& v) {
    asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w));
}

FA_DEVICE void st_shared_32(uint32_t addr, uint32_t v) {
    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(addr), "r"(v));
}

// ---- register-pressure control ---------------------------------------------------------------

/* Returns x, opaque to the optimiser: addresses derived from the result inside a loop are
   recomputed per iteration (one LOP3 each) instead of being hoisted into long-lived registers. */
FA_DEVICE uint32_t opaque(uint32_t x) {
    asm volatile("" : "+r"(x));
    return x;
}

// ---- math shared with the sm90 backend: pack2, exp2_approx, tanh_accurate, quad_max/quad_sum,
// kLog2e/kLn2 (backends/common/include/fa_cuda_math.cuh) -------------------------------------

using fa_cuda::exp2_approx;
using fa_cuda::kLn2;
using fa_cuda::kLog2e;
using fa_cuda::pack2;
using fa_cuda::quad_max;
using fa_cuda::quad_sum;
using fa_cuda::tanh_accurate;

// ---- swizzled shared tiles ------------------------------------------------------------------

/*
 * A Rows × Cols tile of 16-bit elements in shared memory, addressed in 16-byte chunks
 * (8 elements). Columns are split into panels of 64 elements (128 bytes, 8 chunks); panel p
 * holds rows × 8 chunks contiguously, and chunk c of row r is stored at chunk c ^ (r % 8).
 * ldmatrix reads 8 rows of one chunk column per phase; with the XOR those land on 8
 * different 16-byte bank groups, so there are no bank conflicts, and a warp's cp.async
 * writes of whole rows are conflict-free as well. A last panel of only 4 chunks (Cols % 64
 * == 32: head dims 32, 96) uses 64-byte rows and the swizzle c ^ ((r / 2) % 4): two rows
 * fill 128 bytes, and rows r..r+7 again cover all 8 bank groups.
 */
template <int Rows, int Cols>
struct SwizzledTile {
    static_assert(Cols % 32 == 0, "SwizzledTile: Cols must be a multiple of 32 elements");
    static constexpr int kRows = Rows;
    static constexpr int kCols = Cols;
    static constexpr int kChunks = Cols / 8;                         /* 16-byte chunks per row */
    static constexpr int kFullPanels = Cols / 64;                    /* 128-byte-wide panels */
    static constexpr int kBytes = Rows * Cols * 2;

    /* Byte offset of chunk `chunk` (0 ≤ chunk < kChunks) of row `row`. */
    static FA_HOST_DEVICE uint32_t offset(int row, int chunk) {
        const int panel = chunk >> 3;
        const int c = chunk & 7;
        if (kChunks % 8 != 0 && panel == kFullPanels) {
            return static_cast<uint32_t>(panel * Rows * 128 + row * 64 + ((c ^ ((row >> 1) & 3)) << 4));
        }
        return static_cast<uint32_t>(panel * Rows * 128 + row * 128 + ((c ^ (row & 7)) << 4));
    }

    /*
     * Cheap ldmatrix addressing for the pattern "lane reads row R + row_imm, chunk 2k + hi"
     * (hi = 0/1 per lane, row_imm a compile-time multiple of 8, k compile-time): with a
     * 128-byte-aligned tile the swizzle bits of (row, 2k + hi) are those of (row, hi) XOR
     * 2k, so a lane keeps one base per panel kind and each access is one XOR with a constant
     * plus an immediate offset.
     */
    struct LdsmBase {
        uint32_t full; /* tile + row·128 + ((row%8) ^ hi)·16 */
        uint32_t part; /* last 4-chunk panel: tile + P + row·64 + (((row/2)%4) ^ hi)·16 */
    };

    static FA_DEVICE LdsmBase ldsm_base(uint32_t tile, int row, int hi) {
        LdsmBase b;
        b.full = tile + static_cast<uint32_t>(row * 128 + (((row & 7) ^ hi) << 4));
        b.part = tile + static_cast<uint32_t>(kFullPanels * Rows * 128 + row * 64 + ((((row >> 1) & 3) ^ hi) << 4));
        return b;
    }

    /* `b` made opaque to the optimiser (see opaque()); only the kinds of panel this tile has. */
    static FA_DEVICE LdsmBase opaque_base(const LdsmBase& b) {
        LdsmBase r = b;
        if (kFullPanels > 0) r.full = opaque(r.full);
        if (kChunks % 8 != 0) r.part = opaque(r.part);
        return r;
    }

    /* Address of (row + row_imm, chunk_even + hi) for the lane whose base is `b`; chunk_even even. */
    static FA_DEVICE uint32_t ldsm_addr(const LdsmBase& b, int row_imm, int chunk_even) {
        const int panel = chunk_even >> 3;
        if (kChunks % 8 != 0 && panel == kFullPanels)
            return (b.part ^ static_cast<uint32_t>((chunk_even & 3) << 4)) + static_cast<uint32_t>(row_imm * 64);
        return (b.full ^ static_cast<uint32_t>((chunk_even & 7) << 4)) + static_cast<uint32_t>(panel * Rows * 128 + row_imm * 128);
    }
};

}  // namespace fa_sm80

#endif  // FA_SM80_PRIMITIVES_CUH

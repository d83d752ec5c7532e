/*
 * flash_fwd_launch.cuh — host side of the FA3 forward: fa_params → FwdParams (TMA tensor maps
 * built with cuTensorMapEncodeTiled), the grid (persistent or one CTA per tile) and the launch.
 * run_fwd is instantiated per (dtype, head dim, softcap) by launch_template.h.
 *
 * Contract (as for the sm80 backend, sm80_launch.cuh): `params` passed fa_check_params, this
 * library's capabilities and device checks (src/api.cu); the device is current; work goes on
 * ctx.stream; errors come back as fa_status with the last-error message.
 */
#ifndef FA_SM90_FLASH_FWD_LAUNCH_CUH
#define FA_SM90_FLASH_FWD_LAUNCH_CUH

#include <cinttypes>
#include <cstdlib>
#include <numeric>

#include <cuda.h>
#include <cuda_runtime.h>

#include "fa_common.h"
#include "fa_cuda_host.h"
#include "flash_attn_abi.h"
#include "flash_fwd_kernel.cuh"
#include "sm90_launch.cuh"
/* The kv cache's small kernels (append with rotary, q rotation, split combine) are the sm80
   backend's, compiled here for sm_90a: one implementation of those semantics. */
#include "../../cuda_sm80/include/flash_fwd_launch.cuh"

namespace fa_sm90 {

/* cuTensorMapEncodeTiled with what every map of this kernel shares: unit element strides, the 128-byte swizzle
   (the wgmma K-major / MN-major smem image), no interleave, zero fill out of bounds. e4m3 travels as bytes. */
inline CUresult encode_tiled(CUtensorMap* map, fa_dtype dtype, cuuint32_t rank, const void* data, const cuuint64_t* dims,
                             const cuuint64_t* strides, const cuuint32_t* box) {
    const cuuint32_t element_strides[5] = {1, 1, 1, 1, 1};
    const CUtensorMapDataType type = dtype == FA_DTYPE_BF16       ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                     : dtype == FA_DTYPE_F8_E4M3 ? CU_TENSOR_MAP_DATA_TYPE_UINT8
                                                                 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
    return cuTensorMapEncodeTiled(map, type, rank, const_cast<void*>(data), dims, strides, box, element_strides,
                                  CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
}

/* Bytes of an element, and the columns of a 128-byte swizzled box row (FwdTraits::kSlabCols). */
inline uint64_t element_bytes(fa_dtype dtype) { return dtype == FA_DTYPE_F8_E4M3 ? 1 : 2; }

inline const char* cu_error_text(CUresult r) {
    const char* text = nullptr;
    cuGetErrorString(r, &text);
    return text != nullptr ? text : "?";
}

/*
 * A 4-D TMA view {headdim, rows, heads, batch} of a bshd tensor with 128-byte boxes (64 columns, 128 of e4m3) of
 * `box_rows` rows.
 * Axes of extent 1 get a harmless stride (TMA checks every stride, even unused ones).
 */
inline fa_status encode_tensor_map(CUtensorMap* map, const char* name, const void* data, fa_dtype dtype, int cols, int rows,
                                   int heads, int batch, int64_t row_stride, int64_t head_stride, int64_t batch_stride,
                                   int box_rows) {
    const uint64_t elem = element_bytes(dtype);
    const uint64_t fallback = static_cast<uint64_t>(row_stride) * elem * (rows > 0 ? rows : 1);
    const cuuint64_t dims[4] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows > 0 ? rows : 1),
                                static_cast<cuuint64_t>(heads), static_cast<cuuint64_t>(batch > 0 ? batch : 1)};
    const cuuint64_t strides[3] = {static_cast<cuuint64_t>(row_stride) * elem,
                                   heads > 1 ? static_cast<cuuint64_t>(head_stride) * elem : fallback,
                                   batch > 1 ? static_cast<cuuint64_t>(batch_stride) * elem : fallback};
    const cuuint32_t box[4] = {static_cast<cuuint32_t>(128 / elem), static_cast<cuuint32_t>(box_rows), 1, 1};
    const CUresult r = encode_tiled(map, dtype, 4, data, dims, strides, box);
    if (r == CUDA_SUCCESS) return FA_OK;
    return fa_set_last_error(FA_ERR_UNSUPPORTED,
                             "hopper_sm90: cannot describe fa_params.%s to TMA (dims %d x %d x %d x %d, strides %" PRId64 "/%" PRId64
                             "/%" PRId64 " elements): %s",
                             name, cols, rows, heads, batch, row_stride, head_stride, batch_stride, cu_error_text(r));
}

/*
 * Packed GQA's Q view (FwdParams::pack_gqa): 5-D {headdim, group, rows, nheads_kv, batch} of a bshd q, so that a
 * box {64, group, kBlockM / group, 1, 1} is kBlockM tile rows ordered (row, head within the group): the rows of
 * one kv head's query heads, in the smem image a 4-D box of kBlockM rows would have.
 */
inline fa_status encode_packed_q_map(CUtensorMap* map, const fa_tensor& q, fa_dtype dtype, int cols, int group, int rows,
                                     int kv_heads, int batch, int block_m) {
    const uint64_t elem = element_bytes(dtype);
    const cuuint64_t dims[5] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(group), static_cast<cuuint64_t>(rows),
                                static_cast<cuuint64_t>(kv_heads), static_cast<cuuint64_t>(batch)};
    const cuuint64_t strides[4] = {static_cast<cuuint64_t>(q.head_stride) * elem, static_cast<cuuint64_t>(q.row_stride) * elem,
                                   static_cast<cuuint64_t>(q.head_stride) * group * elem,
                                   static_cast<cuuint64_t>(q.batch_stride) * elem};
    const cuuint32_t box[5] = {static_cast<cuuint32_t>(128 / elem), static_cast<cuuint32_t>(group), static_cast<cuuint32_t>(block_m / group), 1, 1};
    const CUresult r = encode_tiled(map, dtype, 5, q.data, dims, strides, box);
    if (r == CUDA_SUCCESS) return FA_OK;
    return fa_set_last_error(FA_ERR_UNSUPPORTED,
                             "hopper_sm90: cannot describe fa_params.q to TMA as packed GQA (group %d, rows %d, kv heads %d, batch %d): %s",
                             group, rows, kv_heads, batch, cu_error_text(r));
}

/* e4m3: Vᵀ in the workspace (fp8_transpose_v.cuh) as {cols, headdim_v, nheads_kv, 1}, boxes of 128 keys × `rows`
   (the head-dim bucket; rows past headdim_v are zero-filled). */
inline fa_status encode_vt_map(CUtensorMap* map, const void* vt, int64_t cols, int headdim_v, int kv_heads, int rows) {
    const cuuint64_t dims[4] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(headdim_v), static_cast<cuuint64_t>(kv_heads), 1};
    const cuuint64_t plane = static_cast<cuuint64_t>(cols) * headdim_v;
    const cuuint64_t strides[3] = {static_cast<cuuint64_t>(cols), plane, plane * kv_heads};
    const cuuint32_t box[4] = {128, static_cast<cuuint32_t>(rows), 1, 1};
    const CUresult r = encode_tiled(map, FA_DTYPE_F8_E4M3, 4, vt, dims, strides, box);
    if (r == CUDA_SUCCESS) return FA_OK;
    return fa_set_last_error(FA_ERR_UNSUPPORTED, "hopper_sm90: cannot describe the transposed e4m3 V to TMA (%" PRId64 " x %d x %d): %s",
                             cols, headdim_v, kv_heads, cu_error_text(r));
}

/*
 * The grid and tile order (fa_sm90_fwd_tune, H100, bf16, 2026-11-23): always one CTA per SM
 * walking the tiles in the zig-zag of TileWalk (persistent: the next tile's Q and K load during
 * this tile's last steps, and a CTA's fixed costs — barrier set-up, first loads, epilogue —
 * overlap work). A CTA per tile was 1–10 % slower everywhere but equal at 16k causal.
 *  - heads outer (query blocks inner, longest first): CTAs running together stream one head's
 *    K/V from L2. Best for equal tiles, and for masked tiles up to kHeadsOuterKeys keys.
 *  - query blocks outer over long masked sequences: with heads outer the zig-zag sums stay
 *    uneven there (0.58–0.67x at 16k causal); query blocks outer levels them, and the few
 *    heads of a long-sequence batch still share K/V in L2 (1.5–1.7x over heads outer at 16k).
 * FA_SM90_PERSISTENT=0/1 and FA_SM90_BLOCK_MAJOR=0/1 force either choice (measurements).
 */
struct FwdGrid {
    int ctas;
    bool block_major;
};
constexpr int kHeadsOuterKeys = 4096;

inline FwdGrid fwd_grid(const fa_params& a, int num_tiles, int num_sms, bool uneven_tiles) {
    bool persistent = true;
    bool block_major = uneven_tiles && a.seqlen_k > kHeadsOuterKeys;
    if (const char* env = std::getenv("FA_SM90_PERSISTENT")) persistent = env[0] == '1';
    if (const char* env = std::getenv("FA_SM90_BLOCK_MAJOR")) block_major = env[0] == '1';
    return {persistent && num_tiles > num_sms ? num_sms : num_tiles, block_major};
}

/* The forward with explicit traits (run_fwd's tile, or an alternative that fa_sm90_fwd_tune times). */
template <class Traits, typename Element, bool Softcap>
fa_status run_fwd_with(const fa_params& a, const LaunchContext& ctx) {
    if (a.batch == 0 || (a.total_q == 0 && a.cache_seqlens == nullptr)) return FA_OK; /* no rows (a cache may still append) */
    const bool varlen = a.cu_seqlens_q != nullptr;
    const bool kvcache = a.cache_seqlens != nullptr; /* fa_forward_kvcache: dense q, a dense or paged cache */
    const bool paged = a.block_table != nullptr;     /* k/v (pages, page_size, heads, d); varlen or a cache */
    /* The cache kernel (kCache): cache lengths and entries, paged K/V, split-KV partials. */
    const bool cache_kernel = kvcache || paged || a.num_splits > 1;
    const int q_rows = varlen ? a.total_q : a.seqlen_q;
    const int k_rows = paged ? a.page_size : varlen ? a.total_k : a.seqlen_k;
    const int q_batch = varlen ? 1 : a.batch;
    const int kv_batch = varlen && !paged ? 1 : a.kv_batch; /* pages when paged */

    FwdParams p{};
    /* The arguments of the sm80 backend's small kernels (append, q rotation, split combine). */
    fa_sm80::FwdArgs small_args = fa_sm80::make_fwd_args(a);
    SplitPlan cache_plan;
    unsigned char* const workspace = static_cast<unsigned char*>(ctx.workspace);
    fa_tensor q = a.q;
    p.num_splits = 1;
    if constexpr (Traits::kFp8) {
        if (cache_kernel) /* api.cu refuses these; a direct caller gets the same answer */
            return fa_set_last_error(FA_ERR_UNSUPPORTED, "hopper_sm90: e4m3 runs fa_forward without paged K/V or splits");
    }
    if (cache_kernel || Traits::kFp8) {
        cache_plan = split_plan(a, ctx.num_sms);
        if (cache_plan.workspace_bytes > 0 && (ctx.workspace == nullptr || ctx.workspace_bytes < cache_plan.workspace_bytes))
            return fa_set_last_error(FA_ERR_INVALID_ARGUMENT, "fa_params.workspace_bytes must be at least %llu for this call; got %llu",
                                     static_cast<unsigned long long>(cache_plan.workspace_bytes),
                                     static_cast<unsigned long long>(ctx.workspace_bytes));
        p.num_splits = cache_plan.num_splits;
        if (cache_plan.num_splits > 1) {
            p.o_partial = reinterpret_cast<float*>(workspace + cache_plan.partial_o_offset);
            p.lse_partial = reinterpret_cast<float*>(workspace + cache_plan.partial_lse_offset);
        }
    }
    if constexpr (!Traits::kFp8) { /* e4m3 never takes the cache kernel (refused above) */
        if (kvcache) {
            const fa_sm80::RotaryArgs rot{a.rotary_cos, a.rotary_sin, a.rotary_dim, a.rotary_interleaved};
            if (small_args.seqlen_new > 0) {
                const fa_sm80::AppendArgs n{a.k_new.data,         a.v_new.data,        a.k_new.batch_stride, a.k_new.row_stride,
                                            a.k_new.head_stride,  a.v_new.batch_stride, a.v_new.row_stride,  a.v_new.head_stride,
                                            small_args.seqlen_new};
                fa_sm80::kvcache_append_kernel<Element><<<dim3(small_args.seqlen_new, a.batch), 128, 0, ctx.stream>>>(small_args, n, rot);
                FA_TRY(fa_cuda::launch_status("hopper_sm90", "the kv-cache append kernel"));
            }
            if (a.rotary_dim > 0 && a.seqlen_q > 0) {
                Element* q_rot = reinterpret_cast<Element*>(workspace + cache_plan.q_rotated_offset);
                const int local = (small_args.window_left >= 0 || small_args.window_right >= 0) ? 1 : 0;
                fa_sm80::rotate_q_kernel<Element><<<dim3(a.seqlen_q, a.batch), 128, 0, ctx.stream>>>(small_args, q_rot, rot, local);
                FA_TRY(fa_cuda::launch_status("hopper_sm90", "the q rotation kernel"));
                q.data = q_rot;
                q.head_stride = a.headdim_qk;
                q.row_stride = static_cast<int64_t>(a.nheads_q) * a.headdim_qk;
                q.batch_stride = static_cast<int64_t>(a.seqlen_q) * q.row_stride;
            }
            p.cache_seqlens = a.cache_seqlens;
            p.seqlen_new = small_args.seqlen_new;
            p.cache_batch_idx = a.cache_batch_idx;
            if (a.seqlen_q == 0) return FA_OK;
        }
    }
    int kv_box_rows = Traits::kBlockN;
    if (paged) {
        kv_box_rows = std::gcd(a.page_size, Traits::kBlockN); /* api.cu admits page sizes that are multiples of 8 */
        p.block_table = a.block_table;
        p.block_table_batch_stride = a.block_table_batch_stride;
        p.page_size = a.page_size;
        p.page_box_rows = kv_box_rows;
    }
    p.zero_v_tail = !Traits::kFp8 && (kvcache || paged || a.seqused_k != nullptr) ? 1 : 0; /* e4m3: Vᵀ has zeros there */

    const int group = a.nheads_q / a.nheads_kv;
    p.pack_gqa = kvcache && kvcache_pack_gqa(a, Traits::kBlockM) > 1 ? 1 : 0;
    if (p.pack_gqa) {
        FA_TRY(encode_packed_q_map(&p.tma_q, q, a.dtype, a.headdim_qk, group, a.seqlen_q, a.nheads_kv, a.batch, Traits::kBlockM));
    } else {
        FA_TRY(encode_tensor_map(&p.tma_q, "q", q.data, a.dtype, a.headdim_qk, q_rows, a.nheads_q, q_batch, q.row_stride,
                                 q.head_stride, q.batch_stride, Traits::kBlockM));
    }
    // Without keys the K/V maps are never read; q's address stands in for the absent tensors.
    const bool no_keys = a.k.data == nullptr || k_rows == 0;
    const void* k_data = no_keys ? q.data : a.k.data;
    const void* v_data = no_keys ? q.data : a.v.data;
    FA_TRY(encode_tensor_map(&p.tma_k, "k", k_data, a.dtype, a.headdim_qk, no_keys ? 1 : k_rows, a.nheads_kv, kv_batch,
                                    no_keys ? q.row_stride : a.k.row_stride, a.k.head_stride, a.k.batch_stride, kv_box_rows));
    if constexpr (Traits::kFp8) {
        /* Vᵀ into the workspace first (fp8_transpose_v.cuh); the kernel loads it like K. */
        uint8_t* vt = workspace + cache_plan.vt_offset;
        const int64_t cols = vt_cols(a);
        if (!no_keys) {
            const VtArgs t{static_cast<const uint8_t*>(a.v.data), a.v.batch_stride, a.v.row_stride, a.v.head_stride, vt, cols,
                           a.cu_seqlens_k, a.seqused_k, a.seqlen_k, a.headdim_v};
            constexpr int kVtKeys = 64;
            const int key_ctas = (a.seqlen_k + kFp8BlockN - 1) / kFp8BlockN * (kFp8BlockN / kVtKeys);
            transpose_v_fp8_kernel<kVtKeys><<<dim3(key_ctas, a.nheads_kv, a.batch), 256, 0, ctx.stream>>>(t);
            FA_TRY(fa_cuda::launch_status("hopper_sm90", "the e4m3 V transpose kernel"));
        }
        FA_TRY(encode_vt_map(&p.tma_v, no_keys ? q.data : vt, cols, a.headdim_v, a.nheads_kv, Traits::kHeadDim));
        p.q_descale = a.q_descale;
        p.k_descale = a.k_descale;
        p.v_descale = a.v_descale;
        p.descale_batch_stride = a.descale_batch_stride;
        p.descale_head_stride = a.descale_head_stride;
    } else {
        FA_TRY(encode_tensor_map(&p.tma_v, "v", v_data, a.dtype, a.headdim_v, no_keys ? 1 : k_rows, a.nheads_kv, kv_batch,
                                 no_keys ? q.row_stride : a.v.row_stride, a.v.head_stride, a.v.batch_stride, kv_box_rows));
    }
    if constexpr (Traits::kStoreOWithTma) {
        p.o_tma = (varlen || p.num_splits > 1 || p.pack_gqa) ? 0 : 1;
        if (p.o_tma)
            FA_TRY(encode_tensor_map(&p.tma_o, "out", a.out.data, a.out_dtype, a.headdim_v, q_rows, a.nheads_q, q_batch,
                                     a.out.row_stride, a.out.head_stride, a.out.batch_stride, 64));
    }
    p.out = a.out.data;
    p.o_batch_stride = a.out.batch_stride;
    p.o_row_stride = a.out.row_stride;
    p.o_head_stride = a.out.head_stride;
    p.lse = a.softmax_lse;
    p.lse_batch_stride = a.lse_batch_stride;
    p.lse_head_stride = a.lse_head_stride;
    p.cu_seqlens_q = a.cu_seqlens_q;
    p.cu_seqlens_k = a.cu_seqlens_k;
    p.seqused_k = a.seqused_k;
    p.nheads_q = a.nheads_q;
    p.group = group;
    p.seqlen_q = a.seqlen_q;
    p.seqlen_k = a.seqlen_k;
    p.headdim_v = a.headdim_v;
    p.tile_heads = p.pack_gqa ? a.nheads_kv : a.nheads_q;
    p.num_m_blocks = static_cast<int>((static_cast<int64_t>(a.seqlen_q) * (p.pack_gqa ? group : 1) + Traits::kBlockM - 1) / Traits::kBlockM);
    p.partial_rows = static_cast<int64_t>(a.batch) * a.nheads_q * a.seqlen_q;
    const int64_t tiles = static_cast<int64_t>(a.batch) * p.tile_heads * p.num_m_blocks * p.num_splits;
    if (tiles > INT32_MAX)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "hopper_sm90: batch x nheads_q x query blocks must be < 2^31; got %" PRId64,
                                 tiles);
    p.num_tiles = static_cast<int>(tiles);
    p.num_bh = a.batch * p.tile_heads;
    if (Softcap) {
        p.scale_log2 = a.softcap * fa_cuda::kLog2e;
        p.score_scale = a.softmax_scale / a.softcap;
    } else {
        p.scale_log2 = a.softmax_scale * fa_cuda::kLog2e;
        p.score_scale = 1.0f;
    }
    fa_entry::normalise_window(a, p.window_left, p.window_right);
    if (p.num_tiles == 0) return FA_OK;

    auto kernel = flash_fwd_sm90_kernel<Traits, Element, Softcap, false>;
    if constexpr (!Traits::kFp8) { /* e4m3 has no cache kernel (refused above) */
        if (cache_kernel) kernel = flash_fwd_sm90_kernel<Traits, Element, Softcap, true>;
    }
    cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Traits::kSmemBytes);
    if (err != cudaSuccess)
        return fa_set_last_error(FA_ERR_DEVICE, "hopper_sm90: cannot give the forward kernel %d bytes of shared memory: %s",
                                 Traits::kSmemBytes, cudaGetErrorString(err));
    const FwdGrid plan = fwd_grid(a, p.num_tiles, ctx.num_sms, p.window_left >= 0 || p.window_right >= 0 || varlen);
    p.block_major = plan.block_major ? 1 : 0;
    const int grid = plan.ctas;
    kernel<<<grid, Traits::kThreads, Traits::kSmemBytes, ctx.stream>>>(p);
    FA_TRY(fa_cuda::launch_status("hopper_sm90", "the FA3 forward kernel"));
    if constexpr (!Traits::kFp8) {
        if (p.num_splits > 1) {
            small_args.num_splits = p.num_splits;
            small_args.o_partial = p.o_partial;
            small_args.lse_partial = p.lse_partial;
            fa_sm80::split_combine_kernel<Element><<<dim3((a.seqlen_q + 3) / 4, a.nheads_q, a.batch), 128, 0, ctx.stream>>>(small_args);
            FA_TRY(fa_cuda::launch_status("hopper_sm90", "the split-KV combine kernel"));
        }
    }
    return FA_OK;
}

template <typename Element, int HeadDimQK, int HeadDimV, bool Softcap>
fa_status run_fwd(const fa_params& a, const LaunchContext& ctx) {
    static_assert(HeadDimQK == HeadDimV, "the FA3 forward runs headdim_v == headdim_qk");
    constexpr int kElemBytes = static_cast<int>(sizeof(Element));
    using ShortMasked = FwdShortMaskedTile<HeadDimQK, Softcap>;
    if constexpr (ShortMasked::kHas && kElemBytes == 2) {
        const bool masked = a.is_causal || a.window_left >= 0 || a.window_right >= 0;
        if (masked && a.seqlen_k <= ShortMasked::kMaxKeys)
            return run_fwd_with<typename ShortMasked::Traits, Element, Softcap>(a, ctx);
    }
    return run_fwd_with<FwdInstanceTraits<HeadDimQK, Softcap, kElemBytes>, Element, Softcap>(a, ctx);
}

}  // namespace fa_sm90

#endif  // FA_SM90_FLASH_FWD_LAUNCH_CUH
